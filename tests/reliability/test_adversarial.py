"""Issue 17 items 1, 2 and 5 at the scale they were found: calls at the same instant.

- 30 streams opened at once against --max-streams 16: exactly 16 admitted, 14 refused.
- 24 resumes of one interrupted transcript at once: exactly one admitted, 23 ABORTED,
  and the stored transcript stays consistent (contiguous segments, one intact recording).
- Calls that never send a config count against the limit and end at the idle timeout.

Cheap on CPU: most calls are refused, the admitted ones send a few seconds of audio.
Each admitted call holds its place until every call has its answer (waiting on that
condition), so the counts do not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import LimitSettings, Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import Enc, Stub, TStub, chunks, config, decode_16k, dev_clips, pcm16

PCM = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
SILENCE = b"\x00" * 64000  # 2 s of 16 kHz PCM


async def serve(engine: WhisperEngine, data: Path, max_streams: int) -> RunningServer:
    limits = LimitSettings(max_streams=max_streams, idle_timeout_s=1.0)
    settings = Settings(port=0, storage=StorageSettings(data_dir=data), limits=limits)
    return await start_server(settings, engine=engine)


class Crowd:
    """N calls started at once; each admitted call waits until every call has an answer."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.answered = 0
        self.everyone = asyncio.Event()

    def answer(self) -> None:
        self.answered += 1
        if self.answered == self.n:
            self.everyone.set()

    async def call(
        self,
        stub: Stub,
        cfg: streaming_pb2.StreamingTranscriptionConfig,
        audio: bytes,
    ) -> tuple[grpc.StatusCode, str]:
        async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
            yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
            await self.everyone.wait()
            for c in chunks(audio, 16000):
                yield streaming_pb2.StreamingTranscribeRequest(audio_content=c)

        answered = False
        try:
            async for resp in stub.StreamingTranscribe(requests()):
                if resp.HasField("session") and not answered:
                    answered = True
                    self.answer()
            return grpc.StatusCode.OK, ""
        except grpc.aio.AioRpcError as err:
            if not answered:
                self.answer()
            return err.code(), err.details() or ""


def active(server: RunningServer) -> float:
    value = server.deps.metrics.registry.get_sample_value("transcribe_active_streams")
    return value or 0.0


async def test_thirty_streams_at_once_admit_exactly_the_limit(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await serve(engine, tmp_path, max_streams=16)
    crowd = Crowd(30)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            calls = [asyncio.create_task(crowd.call(stub, PCM, SILENCE)) for _ in range(30)]
            await asyncio.wait_for(crowd.everyone.wait(), 60)
            assert active(server) <= 16  # at the moment every call has its answer
            results = await asyncio.wait_for(asyncio.gather(*calls), 120)
    finally:
        await server.stop(1)
    codes = [code for code, _ in results]
    assert codes.count(grpc.StatusCode.OK) == 16, results
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 14, results
    assert all("limit of 16 concurrent streams" in d for c, d in results if c != grpc.StatusCode.OK)


async def interrupted_transcript(
    stub: Stub,
    tstub: TStub,
    audio: bytes,
) -> str:
    """A transcript whose stream dropped after its first final (the page's connection lost)."""
    final = asyncio.Event()

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(config=PCM)
        for c in chunks(audio, 16000):
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=c)
        await asyncio.Event().wait()  # never half-closes: the connection just goes

    call = stub.StreamingTranscribe(requests())
    tid = ""
    async for resp in call:
        tid = resp.session.transcript_id or tid
        if any(r.is_final for r in resp.results):
            final.set()
            break
    call.cancel()
    for _ in range(300):  # the server notices the drop and stores the transcript interrupted
        got = await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
        if got.transcript.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED:
            return tid
        await asyncio.sleep(0.05)
    pytest.fail("the dropped stream's transcript never became interrupted")


async def test_simultaneous_resumes_of_one_transcript_admit_one_writer(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await serve(engine, tmp_path, max_streams=32)
    speech = decode_16k(dev_clips()[0].path)
    silence = b"\x00" * 48000  # 1.5 s: the speaker pauses, the utterance becomes final
    first, second = pcm16(speech[: 16000 * 3]) + silence, pcm16(speech[16000 * 3 : 16000 * 6])
    crowd = Crowd(24)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            tid = await interrupted_transcript(stub, tstub, first)
            before = (
                await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
            ).transcript
            resume = config(
                encoding=Enc.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                resume_transcript_id=tid,
            )
            calls = [asyncio.create_task(crowd.call(stub, resume, second)) for _ in range(24)]
            await asyncio.wait_for(crowd.everyone.wait(), 60)
            # The admitted call's OK comes after its results and recording are stored.
            results = await asyncio.wait_for(asyncio.gather(*calls), 120)
            after = (
                await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
            ).transcript
            info = server.deps.recordings.info(tid)
    finally:
        await server.stop(1)
    codes = [code for code, _ in results]
    assert codes.count(grpc.StatusCode.OK) == 1, results
    assert codes.count(grpc.StatusCode.ABORTED) == 23, results
    busy = f"transcript {tid} is being written by another stream; retry after it ends"
    assert all(busy in d for c, d in results if c == grpc.StatusCode.ABORTED)
    # One writer continued where the first stream stopped: contiguous segments, in order.
    assert before.segments and after.status == transcripts_pb2.TRANSCRIPT_STATUS_COMPLETE
    indexes = [s.index for s in after.segments]
    assert indexes == list(range(len(indexes))) and len(indexes) > len(before.segments)
    assert [s.text for s in after.segments[: len(before.segments)]] == [
        s.text for s in before.segments
    ]
    starts = [s.start_offset.seconds + s.start_offset.nanos / 1e9 for s in after.segments]
    assert starts == sorted(starts)
    # One recording of both streams' audio (4.5 s + 3 s), not 24 copies of the second.
    assert info.duration_s == pytest.approx(7.5, abs=0.6)
    assert not list(info.path.parent.glob("part-*")) and not list(info.path.parent.glob("join*"))


async def test_calls_without_a_config_count_and_end_at_the_idle_timeout(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await serve(engine, tmp_path, max_streams=16)

    async def nothing() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        await asyncio.Event().wait()  # connects, then never sends anything
        yield streaming_pb2.StreamingTranscribeRequest()

    async def silent_call(stub: Stub) -> tuple[object, str]:
        try:
            async for _ in stub.StreamingTranscribe(nothing()):
                pass
            return grpc.StatusCode.OK, ""
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            silent = [asyncio.create_task(silent_call(stub)) for _ in range(16)]
            for _ in range(200):  # all 16 are counted while they wait for their config
                if active(server) == 16:
                    break
                await asyncio.sleep(0.02)
            assert active(server) == 16, "calls waiting for their config are not counted"
            crowd = Crowd(1)
            code, details = await crowd.call(stub, PCM, SILENCE)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
            assert "limit of 16 concurrent streams" in details
            # The idle timeout (1 s here) ends every one of them; bounded wait on that.
            results = await asyncio.wait_for(asyncio.gather(*silent), 30)
            assert all(c == grpc.StatusCode.RESOURCE_EXHAUSTED for c, _ in results), results
            assert all("no config message received for 1 s" in d for _, d in results), results
            assert active(server) == 0
            code, details = await Crowd(1).call(stub, PCM, SILENCE)  # room again
            assert code == grpc.StatusCode.OK, details
    finally:
        await server.stop(1)
