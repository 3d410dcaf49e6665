"""What language_bench adds to its scores: when a clip's text stops changing, and the
error rate of the finals as first sent (before revisions)."""

from __future__ import annotations

from transcribe.v1 import streaming_pb2

from benchmarks.language_bench import settled_after_end
from benchmarks.lib.client import ClipRun


def response(*finals: bool) -> streaming_pb2.StreamingTranscribeResponse:
    results = [streaming_pb2.StreamingTranscriptionResult(is_final=f) for f in finals]
    return streaming_pb2.StreamingTranscribeResponse(results=results)


def test_a_clip_settles_at_its_last_final_or_revision_after_its_audio_ends() -> None:
    run = ClipRun("c", "ref", duration_s=10.0)
    run.responses = [(2.0, response(False)), (9.0, response(True)), (11.5, response(True))]
    run.responses.append((12.0, response(False)))  # an interim after it changes nothing
    assert settled_after_end(run) == 1.5
    assert settled_after_end(ClipRun("c", "ref", duration_s=1.0)) is None
