"""Four speakers through the gRPC API: the mix of tests/service/test_speakers.py's
test_four_speakers (4088, 4406, 5652 and 8226 in turns, three voices coming back),
streamed as LINEAR16 PCM to the in-process server with the real model and embedder."""

from __future__ import annotations

import grpc
from transcribe.v1 import transcripts_pb2

from tests.helpers import Stub, TStub, chunks, pcm16, stream
from tests.service.test_speakers import FOUR as TURNS
from tests.service.test_speakers import mix
from tests.service.test_speakers_api import (
    assert_labels_follow_turns,
    diarized,
    first_sends,
    latest,
)

voice, start, end, _ = TURNS[-1]
FOUR = [*TURNS[:-1], (voice, start, end, 1.5)]
"""test_four_speakers' turns, the last pause long enough to end the last utterance."""


async def test_four_speakers_get_four_labels_that_follow_the_turns_and_are_stored(
    stub: Stub, transcripts_stub: TStub
) -> None:
    """Sent as fast as the server takes it (as test_speakers_api's mixes are): labels
    change within 1 s of every true turn, each voice keeps the label it was first given
    when it comes back, and the stored transcript has the labels last sent."""
    audio, starts = mix(FOUR)
    run = await stream(stub, diarized(), chunks(pcm16(audio), 3200))
    assert run.code == grpc.StatusCode.OK, run.details
    sent = run.results(True)
    # Every final as sent (first sends and revisions): its words carry its label.
    for r in sent:
        assert r.speaker_label, r
        assert all(w.speaker_label == r.speaker_label for w in r.alternatives[0].words), r
    finals = first_sends(sent)
    names = {"4088": "S1", "4406": "S2", "5652": "S3", "8226": "S4"}
    assert next(iter(finals.values())).speaker_label == "S1"
    assert {r.speaker_label for r in finals.values()} == set(names.values())
    assert_labels_follow_turns(finals, starts, names, slack_s=1.0)
    got = await transcripts_stub.GetTranscript(
        transcripts_pb2.GetTranscriptRequest(transcript_id=run.transcript_id)
    )
    stored = {s.index: s for s in got.transcript.segments}
    assert {i: (s.text, s.speaker_label) for i, s in stored.items()} == {
        i: (r.alternatives[0].transcript, r.speaker_label) for i, r in latest(sent).items()
    }
    assert all(w.speaker_label == s.speaker_label for s in stored.values() for w in s.words)
