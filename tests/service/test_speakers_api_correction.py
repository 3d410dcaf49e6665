"""The end-of-stream speaker correction through the gRPC API (service/stream_loop.py sends
the re-clustering's changed labels as revisions, and stores them, before the stream ends).

The mix makes the online pass wrong on purpose, the same way on every run: 4088 speaks
only 1.5 s first (three windows, a "young" voice that another turn joins only at 0.75
similarity), 4406 answers, and 4088's return scores below that against its short start,
so the online pass calls it a new voice (S3) and never merges the two (S1 never reaches
the four windows a live merge needs). At the end the re-clustering hears one voice in
both turns and gives them one label.
"""

from __future__ import annotations

import grpc
from transcribe.v1 import transcripts_pb2

from tests.helpers import Stub, TStub, chunks, pcm16, stream
from tests.service.test_speakers import mix
from tests.service.test_speakers_api import (
    Result,
    diarized,
    first_sends,
    latest,
    secs,
    speaker_at,
)

SPLIT = [("4088", 0.0, 1.5, 0.3), ("4406", 0.0, 4.0, 0.3), ("4088", 1.5, 5.5, 1.0)]


async def test_labels_the_end_of_stream_pass_corrects_are_sent_and_stored(
    stub: Stub, transcripts_stub: TStub
) -> None:
    audio, starts = mix(SPLIT)
    run = await stream(stub, diarized(), chunks(pcm16(audio), 3200))
    assert run.code == grpc.StatusCode.OK, run.details
    sent = run.results(True)

    def voice(r: Result) -> str:
        a, b = secs(r.result_start_offset), secs(r.result_end_offset)
        return speaker_at(starts, (a + b) / 2)

    # The online pass: 4088's two turns under two labels.
    online = {i: r for i, r in enumerate(sent) if not r.revision}
    labels_4088 = {r.speaker_label for r in online.values() if voice(r) == "4088"}
    assert len(labels_4088) == 2, [(voice(r), r.speaker_label) for r in online.values()]
    # The corrections: revisions with the segment's words and a new label, sent after
    # every first send (at the stream's end), in the response stream before its status.
    before: dict[int, Result] = {}
    corrected: list[int] = []
    for n, r in enumerate(sent):
        prev = before.get(r.segment_index)
        if prev is not None and prev.speaker_label != r.speaker_label:
            assert r.revision == prev.revision + 1, r
            assert r.alternatives[0].transcript == prev.alternatives[0].transcript
            assert n > max(online), "a correction comes after every first send"
            corrected.append(r.segment_index)
        before[r.segment_index] = r
    assert corrected, "no label was corrected at the stream's end"
    # After them, each voice has one label, and the two voices two.
    last = latest(sent)
    by_voice = {
        v: {r.speaker_label for r in last.values() if voice(r) == v} for v in ("4088", "4406")
    }
    assert all(len(labels) == 1 for labels in by_voice.values()), by_voice
    assert by_voice["4088"] != by_voice["4406"], by_voice
    assert set(first_sends(sent)) == set(last)
    got = await transcripts_stub.GetTranscript(
        transcripts_pb2.GetTranscriptRequest(transcript_id=run.transcript_id)
    )
    stored = {s.index: s.speaker_label for s in got.transcript.segments}
    assert stored == {i: r.speaker_label for i, r in last.items()}
    assert all(stored[i] == last[i].speaker_label for i in corrected)
