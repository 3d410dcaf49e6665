"""A lone stream's second passes run beside its first passes (service/side_pass): while a
sentence is decoded again on the model's other worker, the stream goes on decoding what is
being said, instead of waiting for the second pass. Real model (tiny.en, two workers as
declared), real speech at real time, in-process server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings, StreamingSettings
from service.engine import DecodeRequest, DecodeResult, WhisperEngine
from service.policy import DecodeJob, JobKind, Policy
from service.server import start_server
from service.side_pass import SidePass
from tests.helpers import Enc, clips, config, decode_16k, pcm16

CHUNK = 3200  # bytes: 100 ms of 16 kHz 16-bit PCM per message


async def paced(
    audio: bytes, pace: float, sent_all: asyncio.Event | None = None
) -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
    """A LINEAR16 stream's requests, the audio at `pace` x real time (1.0: a live source);
    `sent_all` is set once the last chunk is sent."""
    cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
    yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i, at in enumerate(range(0, len(audio), CHUNK)):
        await asyncio.sleep(max(0.0, t0 + i * 0.1 / pace - loop.time()))
        yield streaming_pb2.StreamingTranscribeRequest(audio_content=audio[at : at + CHUNK])
    if sent_all is not None:
        sent_all.set()


async def stream_stores_what_it_was_sent(channel: grpc.aio.Channel, audio: bytes) -> None:
    """One live stream of `audio`; its stored segments are the finals it was sent last."""
    stub = streaming_pb2_grpc.TranscriptionServiceStub(channel)
    sent: dict[int, str] = {}
    transcript_id = ""
    async for resp in stub.StreamingTranscribe(paced(audio, 1.0)):
        if resp.HasField("session"):
            transcript_id = resp.session.transcript_id
        for r in resp.results:
            if r.is_final:
                sent[r.segment_index] = r.alternatives[0].transcript
    got = await transcripts_pb2_grpc.TranscriptServiceStub(channel).GetTranscript(
        transcripts_pb2.GetTranscriptRequest(transcript_id=transcript_id)
    )
    assert {s.index: s.text for s in got.transcript.segments} == sent


async def two_streams_store_what_they_were_sent(port: int) -> None:
    """Two live streams at once (they share the model) of two sentences with a pause."""
    pause = np.zeros(3 * 16000, np.float32)
    first, second = (decode_16k(clips()[c].path) for c in ("5652-19215-0000", "4406-16882-0000"))
    audio = pcm16(np.concatenate([first, pause, second]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.gather(*(stream_stores_what_it_was_sent(channel, audio) for _ in range(2)))


async def test_first_passes_go_on_while_a_second_pass_runs(
    engine: WhisperEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each second pass is held (before it reaches the model) until a first pass of the
    stream has finished after it began, or the audio has all been sent: a stream that
    waited for its second pass, as every stream did before, could never finish a first
    pass meanwhile. Revisions still replace sent segments once, and storage holds them."""
    beside = dataclasses.replace(StreamingSettings(), revise_beside=True)  # base's default
    settings = Settings(port=0, storage=StorageSettings(data_dir=tmp_path), streaming=beside)
    running = await start_server(settings, engine=engine)
    try:
        model = running.deps.models.default
        assert model.second_pass_beside  # tiny.en with --revise-beside: two workers
        real = model.scheduler.decode
        first_done = asyncio.Event()
        sent_all = asyncio.Event()
        held: list[bool] = []  # per second pass: a first pass finished while it was held

        async def decode(request: DecodeRequest, low: bool = False) -> DecodeResult:
            task = asyncio.current_task()
            if task is None or task.get_name() != "second-pass":
                assert not low, "a first pass queued as a second pass"
                out = await real(request)
                first_done.set()
                return out
            first_done.clear()
            waits = [asyncio.ensure_future(e.wait()) for e in (first_done, sent_all)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            held.append(first_done.is_set())
            assert low, "a second pass queued as a first pass"
            return await real(request, low)

        monkeypatch.setattr(model.scheduler, "decode", decode)
        # Two readers with a pause between them: in the pause the stream has caught up
        # (whatever the machine's load) and starts a second pass; the next reader's
        # speech then needs first passes while it runs.
        pause = np.zeros(3 * 16000, np.float32)
        first, second = (
            decode_16k(clips()[c].path) for c in ("5652-19215-0000", "4406-16882-0000")
        )
        audio = pcm16(np.concatenate([first, pause, second]))

        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(channel)
            finals: list[streaming_pb2.StreamingTranscriptionResult] = []
            transcript_id = ""
            async for resp in stub.StreamingTranscribe(paced(audio, 1.0, sent_all)):
                if resp.HasField("session"):
                    transcript_id = resp.session.transcript_id
                finals.extend(r for r in resp.results if r.is_final)
            assert any(held), f"no first pass finished while a second pass ran: {held}"
            sent: dict[int, str] = {}
            revised: set[int] = set()
            for r in finals:
                if r.revision:
                    assert r.segment_index in sent and r.segment_index not in revised, r
                    revised.add(r.segment_index)
                sent[r.segment_index] = r.alternatives[0].transcript
            got = await transcripts_pb2_grpc.TranscriptServiceStub(channel).GetTranscript(
                transcripts_pb2.GetTranscriptRequest(transcript_id=transcript_id)
            )
            assert {s.index: s.text for s in got.transcript.segments} == sent
    finally:
        await running.stop(1.0)


async def test_a_source_faster_than_real_time_gets_its_second_passes_inline(
    engine: WhisperEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audio arriving at 4x real time (a file piped in, not a live source): no second pass
    runs beside the first passes while the audio comes in, though the stream catches up in
    a long pause (where a live stream starts one beside); its sentences still get their
    second passes. Inline made better text for such a source (stream_loop.py FASTER_PACE)."""
    beside = dataclasses.replace(StreamingSettings(), revise_beside=True)
    settings = Settings(port=0, storage=StorageSettings(data_dir=tmp_path), streaming=beside)
    running = await start_server(settings, engine=engine)
    ended = asyncio.Event()
    started_beside: list[bool] = []  # per second pass started beside: was the input over?
    second_passes: list[DecodeJob] = []  # every second pass started, beside or inline
    finish, start, job_started = Policy.finish, SidePass.start, Policy.job_started

    def finishing(policy: Policy) -> None:
        ended.set()
        finish(policy)

    def started(policy: Policy, job: DecodeJob) -> None:
        if job.kind is JobKind.REVISE:
            second_passes.append(job)
        job_started(policy, job)

    def starting(
        side: SidePass, job: DecodeJob, request: DecodeRequest, shared: bool = False
    ) -> None:
        started_beside.append(ended.is_set())
        start(side, job, request, shared)

    monkeypatch.setattr(Policy, "finish", finishing)
    monkeypatch.setattr(SidePass, "start", starting)
    monkeypatch.setattr(Policy, "job_started", started)
    try:
        pause = np.zeros(8 * 16000, np.float32)  # 2 s at 4x: time to catch up
        # The rule's slack (FASTER_SLACK_S, for a resumed page's burst) lets the first ~1.2 s
        # of a 4x source count as live: open with 6 s of silence (1.5 s at 4x), so that no
        # sentence can be complete before the source shows its pace.
        lead = np.zeros(6 * 16000, np.float32)
        first, second = (
            decode_16k(clips()[c].path) for c in ("5652-19215-0000", "4406-16882-0000")
        )
        audio = pcm16(np.concatenate([lead, first, pause, second]))

        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(channel)
            async for _ in stub.StreamingTranscribe(paced(audio, 4.0)):
                pass
        # Whether a second pass changes the text (a revision is sent) depends on how the
        # first pass's windows fell, which load shifts: count the second passes instead.
        assert second_passes, "the sentences still had their second passes"
        assert all(started_beside), f"a second pass ran beside before the end: {started_beside}"
    finally:
        await running.stop(1.0)


async def test_streams_sharing_the_model_get_second_passes_with_revise_shared(
    engine: WhisperEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--revise-shared`: two live streams at once share the model, and their sentences
    still get second passes, beside their first passes (the scheduler runs them in its
    slack); each stream's stored transcript is what it was sent, revisions included."""
    streaming = dataclasses.replace(StreamingSettings(), revise_beside=True, revise_shared=True)
    settings = Settings(port=0, storage=StorageSettings(data_dir=tmp_path), streaming=streaming)
    running = await start_server(settings, engine=engine)
    shared_second_passes: list[DecodeJob] = []
    next_job = Policy.next_job

    def offering(
        policy: Policy, caught_up: bool = True, shared: bool = False, beside: bool = False
    ) -> DecodeJob | None:
        job = next_job(policy, caught_up, shared, beside)
        if job is not None and job.kind is JobKind.REVISE and shared:
            shared_second_passes.append(job)
        return job

    monkeypatch.setattr(Policy, "next_job", offering)
    try:
        await two_streams_store_what_they_were_sent(running.port)
        assert shared_second_passes, "no second pass was started while the streams shared"
    finally:
        await running.stop(1.0)
