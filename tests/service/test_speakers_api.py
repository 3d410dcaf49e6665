"""Speaker labels through the gRPC API: real model, real speech, the in-process server.

The mixes join clips of two test speakers (4088 and 4406) in turns, A then B then A,
with short pauses, and stream them as LINEAR16 PCM.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from transcribe.v1 import streaming_pb2, transcripts_pb2

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from tests.dynamodb_local import DynamoDBLocal
from tests.helpers import Enc, StreamRun, Stub, TStub, chunks, config, pcm16, stream
from tests.service.test_speakers import SR, Audio, mix

Result = streaming_pb2.StreamingTranscriptionResult

ABA = [("4088", 0.0, 6.0, 0.5), ("4406", 0.0, 7.0, 0.4), ("4088", 6.0, 12.7, 1.5)]
"""A then B then A again (the last pause lets the last utterance end)."""


def secs(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def diarized(**kw: object) -> streaming_pb2.StreamingTranscriptionConfig:
    return config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16,
        sample_rate_hertz=16000,
        enable_word_time_offsets=True,
        diarization_config=streaming_pb2.SpeakerDiarizationConfig(enable_speaker_diarization=True),
        **kw,
    )


def latest(results: list[Result]) -> dict[int, Result]:
    """Each final as last sent (a revision replaces it), by segment index."""
    out: dict[int, Result] = {}
    for r in results:
        if r.is_final:
            out[r.segment_index] = r
    return dict(sorted(out.items()))


def first_sends(results: list[Result]) -> dict[int, Result]:
    """Each final as first sent, with its label as last sent (the second pass's revised
    words can stretch past a turn: what is split at turns is the first pass)."""
    last = latest(results)
    out: dict[int, Result] = {}
    for r in results:
        if r.is_final and not r.revision:
            first = Result()
            first.CopyFrom(r)
            first.speaker_label = last[r.segment_index].speaker_label
            for w in first.alternatives[0].words:
                w.speaker_label = first.speaker_label
            out[r.segment_index] = first
    return dict(sorted(out.items()))


def speaker_at(starts: list[tuple[float, str]], t: float) -> str:
    return [name for s, name in starts if s <= t][-1]


def assert_labels_follow_turns(
    finals: dict[int, Result],
    starts: list[tuple[float, str]],
    names: dict[str, str],
    slack_s: float = 0.0,
) -> None:
    """Every final has the label of its turn's voice (`names`: voice -> label), none spans a
    turn by more than 1 s on both sides, and labels change within 1 s of the true turns.
    With `slack_s`, a final whose middle is that near a turn may have either side's label
    (a turn without a pause that cuts a word: its piece is a final of its own)."""
    turns = [t for t, _ in starts[1:]]
    prev: Result | None = None
    for r in finals.values():
        a, b = secs(r.result_start_offset), secs(r.result_end_offset)
        assert r.speaker_label, r
        assert all(w.speaker_label == r.speaker_label for w in r.alternatives[0].words), r
        for t in turns:
            assert not (a < t - 1.0 and b > t + 1.0), f"final {a:.1f}-{b:.1f} spans turn {t}"
        mid = (a + b) / 2
        near = {names[speaker_at(starts, max(0.0, t))] for t in (mid - slack_s, mid, mid + slack_s)}
        assert r.speaker_label in near, (r, starts)
        if prev is not None and prev.speaker_label != r.speaker_label:
            seam = (secs(prev.result_end_offset) + a) / 2
            assert min(abs(seam - t) for t in turns) <= 1.0, (seam, turns)
        prev = r


async def test_labels_change_at_turns_a_returning_voice_keeps_its_label_and_are_stored(
    stub: Stub, transcripts_stub: TStub
) -> None:
    audio, starts = mix(ABA)
    run = await stream(stub, diarized(interim_results=True), chunks(pcm16(audio), 3200))
    assert run.code == grpc.StatusCode.OK, run.details
    finals = first_sends(run.results(True))
    assert next(iter(finals.values())).speaker_label == "S1"
    assert_labels_follow_turns(finals, starts, {"4088": "S1", "4406": "S2"})
    assert list(finals) == list(range(len(finals))), "segment indexes stay contiguous"
    assert any(r.speaker_label for r in run.results(False)), "interims carry a label"
    sent: dict[int, int] = {}  # each resend of a segment is one revision higher
    for r in run.results(True):
        assert r.revision == sent.get(r.segment_index, -1) + 1, r
        sent[r.segment_index] = r.revision
    got = await transcripts_stub.GetTranscript(
        transcripts_pb2.GetTranscriptRequest(transcript_id=run.transcript_id)
    )
    stored = {s.index: s for s in got.transcript.segments}
    assert {i: (s.text, s.speaker_label) for i, s in stored.items()} == {
        i: (r.alternatives[0].transcript, r.speaker_label)
        for i, r in latest(run.results(True)).items()
    }
    assert all(w.speaker_label == s.speaker_label for s in stored.values() for w in s.words)


async def stream_until(
    stub: Stub, audio: Audio, until_s: float
) -> tuple[StreamRun, grpc.aio.StreamStreamCall[Any, Any]]:
    """Stream `audio` without half-closing until a final reaches `until_s`: what came back,
    and the call, still open."""
    run = StreamRun()

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(config=diarized())
        for c in chunks(pcm16(audio), 3200):
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=c)
        await asyncio.Event().wait()  # the connection just goes

    call = stub.StreamingTranscribe(requests())
    # read(), not `async for`: leaving that loop leaves its generator to the garbage
    # collector, whose closing it cancels the call (the stream would end by itself).
    while True:
        resp = await call.read()
        assert isinstance(resp, streaming_pb2.StreamingTranscribeResponse), "ended early"
        run.responses.append((0.0, resp))
        if any(r.is_final and secs(r.result_end_offset) >= until_s for r in resp.results):
            return run, call


async def interrupted_part(stub: Stub, tstub: TStub, audio: Audio, until_s: float) -> StreamRun:
    """Stream `audio` without half-closing, drop the connection once a final reaches
    `until_s`, and wait until the server stored the transcript as interrupted."""
    run, call = await stream_until(stub, audio, until_s)
    call.cancel()
    tid = run.transcript_id
    for _ in range(300):
        got = await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
        if got.transcript.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED:
            return run
        await asyncio.sleep(0.05)
    pytest.fail("the dropped stream's transcript never became interrupted")


PART1 = [("4088", 0.0, 6.0, 0.5), ("4406", 0.0, 7.0, 2.0)]
"""A then B: the first stream of a transcript that another stream resumes with PART2."""
PART2 = [("4406", 7.0, 13.0, 1.0), ("4088", 6.0, 12.7, 1.5)]
"""B then A: a fresh tracker would call B "S1"."""


def part1_until() -> tuple[Audio, float]:
    """PART1's audio, and how far its stream must get (4 s into B's turn)."""
    part1, starts1 = mix(PART1)
    return part1, starts1[1][0] + 4.0


async def resume_part2(stub: Stub, transcript_id: str) -> StreamRun:
    """PART2, resuming `transcript_id`."""
    part2, _ = mix(PART2)
    cfg = diarized(resume_transcript_id=transcript_id)
    return await stream(stub, cfg, chunks(pcm16(part2), 3200))


def assert_resumed_labels(run: StreamRun) -> None:
    """PART2's stream (`resume_part2`) called A "S1" and B "S2", as PART1's did."""
    assert run.code == grpc.StatusCode.OK, run.details
    offset = secs(next(r.session.start_offset for _, r in run.responses if r.HasField("session")))
    finals = first_sends(run.results(True))
    assert {r.speaker_label for r in finals.values()} == {"S1", "S2"}, finals
    shifted = [(t + offset, name) for t, name in mix(PART2)[1]]
    assert_labels_follow_turns(finals, shifted, {"4088": "S1", "4406": "S2"})


async def resume_keeps_labels(stub_a: Stub, tstub_a: TStub, stub_b: Stub) -> None:
    """Part 1 (A then B) on one server, dropped; part 2 (B then A) resumed through
    `stub_b`: the same voices keep their labels (a fresh tracker would call B "S1")."""
    first = await interrupted_part(stub_a, tstub_a, *part1_until())
    labels1 = {r.speaker_label for r in latest(first.results(True)).values()}
    assert labels1 == {"S1", "S2"}, labels1
    assert_resumed_labels(await resume_part2(stub_b, first.transcript_id))


async def test_a_resumed_stream_keeps_the_labels_of_the_voices_heard_before(
    stub: Stub, transcripts_stub: TStub
) -> None:
    """The tracker's state is stored with the transcript: the new stream (a new session,
    labels only from storage) calls the same voices by the same labels."""
    await resume_keeps_labels(stub, transcripts_stub, stub)


async def test_labels_survive_a_resume_on_another_server(
    engine: WhisperEngine, dynamodb_local: DynamoDBLocal, tmp_path: Path
) -> None:
    """Two servers on one DynamoDB (and one recordings volume): the stream dropped on the
    first is resumed on the second, which knows the voices only from the stored state."""
    storage = StorageSettings(
        backend="dynamodb",
        data_dir=tmp_path,
        dynamodb_endpoint=dynamodb_local.endpoint,
        dynamodb_table_prefix="spk" + uuid.uuid4().hex[:8],
        dynamodb_create_tables=True,
    )
    a = await start_server(Settings(port=0, storage=storage), engine=engine)
    b = await start_server(Settings(port=0, storage=storage), engine=engine)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch_b,
        ):
            await resume_keeps_labels(Stub(ch_a), TStub(ch_a), Stub(ch_b))
    finally:
        await a.stop(1.0)
        await b.stop(1.0)


async def test_without_diarization_nothing_is_labelled(stub: Stub) -> None:
    audio, _ = mix(ABA[:2])
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, enable_word_time_offsets=True
    )
    run = await stream(stub, cfg, chunks(pcm16(audio), 3200))
    assert run.code == grpc.StatusCode.OK, run.details
    results = run.results()
    assert results and not any(r.speaker_label for r in results)
    assert not any(w.speaker_label for r in results for w in r.alternatives[0].words)


@pytest.mark.parametrize(
    ("counts", "field"),
    [
        ({"min_speaker_count": -1}, "config.diarization_config.min_speaker_count"),
        ({"max_speaker_count": 9}, "config.diarization_config.max_speaker_count"),
        ({"min_speaker_count": 3, "max_speaker_count": 2}, "config.diarization_config.min"),
    ],
)
async def test_bad_diarization_config_is_invalid_argument_naming_the_field(
    stub: Stub, counts: dict[str, Any], field: str
) -> None:
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16,
        sample_rate_hertz=16000,
        diarization_config=streaming_pb2.SpeakerDiarizationConfig(
            enable_speaker_diarization=True, **counts
        ),
    )
    run = await stream(stub, cfg, [pcm16(np.zeros(SR // 10, dtype=np.float32))])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in run.details, run.details


async def test_exports_show_the_names_given_with_update_transcript(
    stub: Stub, transcripts_stub: TStub
) -> None:
    audio, _ = mix(ABA)
    run = await stream(stub, diarized(), chunks(pcm16(audio), 3200))
    assert run.code == grpc.StatusCode.OK, run.details
    tid = run.transcript_id
    await transcripts_stub.UpdateTranscript(
        transcripts_pb2.UpdateTranscriptRequest(
            transcript=transcripts_pb2.Transcript(id=tid, speaker_names={"S1": "Alice"}),
            update_mask=FieldMask(paths=["speaker_names"]),
        )
    )

    async def export(fmt: transcripts_pb2.ExportFormat.ValueType) -> str:
        got = await transcripts_stub.ExportTranscript(
            transcripts_pb2.ExportTranscriptRequest(transcript_id=tid, format=fmt)
        )
        return bytes(got.content).decode()

    vtt = await export(transcripts_pb2.EXPORT_FORMAT_VTT)
    cues = [line for line in vtt.splitlines() if line.startswith("<v ")]
    assert cues and all(c.startswith(("<v Alice>", "<v S2>")) for c in cues), vtt
    # A then B then A: the voice spans go Alice, S2, Alice.
    voices = [c.split(">")[0] for c in cues]
    turns = [v for i, v in enumerate(voices) if i == 0 or voices[i - 1] != v]
    assert turns == ["<v Alice", "<v S2", "<v Alice"], voices
    srt = await export(transcripts_pb2.EXPORT_FORMAT_SRT)
    prefixed = [ln.split(":")[0] for ln in srt.splitlines() if ln.startswith(("Alice:", "S2:"))]
    assert prefixed == ["Alice", "S2", "Alice"], srt
    txt = await export(transcripts_pb2.EXPORT_FORMAT_TXT)
    assert "] Alice: " in txt and "] S2: " in txt, txt
    doc = json.loads(await export(transcripts_pb2.EXPORT_FORMAT_JSON))
    assert {s["speaker"] for s in doc["segments"]} == {"S1", "S2"}
    assert {s["speaker_name"] for s in doc["segments"]} == {"Alice", "S2"}
    assert all(w["speaker"] == s["speaker"] for s in doc["segments"] for w in s["words"])
