"""Limits answer RESOURCE_EXHAUSTED with a message; a model failure hurts only its stream."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeAlias, cast

import grpc
import numpy as np
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from service.config import LimitSettings, Settings, StorageSettings
from service.engine import DecodeRequest, DecodeResult, WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import Enc, Stub, chunks, config, decode_16k, dev_clips, pcm16, stream


class FailingEngine:
    """The real engine, raising on requests whose prompt asks for it (fault injection)."""

    def __init__(self, real: WhisperEngine) -> None:
        self.real = real
        self.name = real.name

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        if any("FAIL-HERE" in r.prompt for r in requests):
            raise RuntimeError("injected model failure")
        return self.real.decode_batch(requests)


@pytest.fixture
async def tight(engine: WhisperEngine, tmp_path: Path) -> AsyncIterator[RunningServer]:
    limits = LimitSettings(
        max_streams=2,
        max_stream_s=3.0,
        max_message_bytes=64 * 1024,
        idle_timeout_s=1.0,
        live_max_speed=2.0,
        live_burst_s=1.0,
    )
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), limits=limits),
        engine=FailingEngine(engine),
    )
    yield running
    await running.stop(1)


def stub_for(server: RunningServer) -> tuple[grpc.aio.Channel, Stub]:
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    return ch, streaming_pb2_grpc.TranscriptionServiceStub(ch)


First: TypeAlias = Coroutine[Any, Any, streaming_pb2.StreamingTranscribeResponse]
"""The first response of a call, as an awaitable for asyncio.create_task."""

PCM = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)


async def test_limits(tight: RunningServer) -> None:
    ch, stub = stub_for(tight)
    async with ch:
        audio = pcm16(decode_16k(dev_clips()[0].path)[: 16000 * 5])
        too_long = await stream(stub, PCM, chunks(audio, 16000))  # 5 s of audio, limit 3 s
        assert too_long.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "longer than the limit" in too_long.details
        huge = await stream(stub, PCM, [b"\x00" * 3200, b"\x00" * (128 * 1024)])
        assert huge.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "message 3 carries 131072 bytes" in huge.details and "smaller chunks" in huge.details
        absurd = await stream(stub, PCM, [b"\x00" * (1024 * 1024)])  # over the transport cap
        assert absurd.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        idle = await stream(stub, PCM, [b"\x00" * 3200], extra_first=None)
        assert idle.code == grpc.StatusCode.OK  # half-closed: not idle
        # Two streams held open until the third is refused: by an event, not by sends timed
        # against the 1 s idle timeout (a slow machine could delay one past it).
        tight.deps.limits = dataclasses.replace(tight.deps.limits, idle_timeout_s=600.0)
        refused_third = asyncio.Event()

        async def hold() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
            yield streaming_pb2.StreamingTranscribeRequest(config=PCM)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=b"\x00" * 3200)
            await refused_third.wait()

        holders = [stub.StreamingTranscribe(hold()) for _ in range(2)]
        # anext() of the call (an async generator) is a coroutine, as create_task needs;
        # typeshed types anext() as any Awaitable.
        readers = [asyncio.create_task(cast(First, anext(aiter(h)))) for h in holders]
        await asyncio.gather(*readers)  # both have their session: two streams active
        third = await stream(stub, PCM, [b"\x00" * 3200])
        refused_third.set()
        assert third.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 2 concurrent streams" in third.details
        for h in holders:
            h.cancel()
        for _ in range(200):  # the server notices the cancels (asynchronously) and frees room
            if not tight.registry.active:
                break
            await asyncio.sleep(0.02)
        tight.deps.limits = dataclasses.replace(tight.deps.limits, idle_timeout_s=1.0)

        async def silent() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
            yield streaming_pb2.StreamingTranscribeRequest(config=PCM)
            await asyncio.Event().wait()  # never sends audio

        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.StreamingTranscribe(silent()):
                pass
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "idle" in (err.value.details() or "")
    refused = tight.deps.metrics.registry.get_sample_value
    for reason in ("max_duration", "max_streams", "idle", "message_size"):
        assert refused("transcribe_refused_streams_total", {"reason": reason}) == 1, reason


async def test_live_streams_cannot_run_far_ahead_of_the_clock(tight: RunningServer) -> None:
    ch, stub = stub_for(tight)
    live = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, live=True)
    audio = pcm16(decode_16k(dev_clips()[0].path)[: int(16000 * 2.5)])
    async with ch:
        flood = await stream(stub, live, chunks(audio, 3200))  # 2.5 s at once, burst is 1 s
        assert flood.code == grpc.StatusCode.RESOURCE_EXHAUSTED, flood.details
        assert "at most 2x real time" in flood.details and "config.live=false" in flood.details
        upload = await stream(stub, PCM, chunks(audio, 3200))  # the same audio as a file
        assert upload.code == grpc.StatusCode.OK, upload.details
        paced = await stream(stub, live, chunks(audio, 3200), pace_s=0.1)  # like a microphone
        assert paced.code == grpc.StatusCode.OK, paced.details
        assert paced.final_text
    reason = {"reason": "live_rate"}
    assert tight.deps.metrics.registry.get_sample_value("transcribe_refused_streams_total", reason)


async def test_model_failure_in_one_stream_leaves_the_others_running(tight: RunningServer) -> None:
    ch, stub = stub_for(tight)
    async with ch:
        clip = dev_clips()[3]
        audio = decode_16k(clip.path)[: 16000 * 2]  # under the 3 s limit
        bad = stream(
            stub,
            config(
                encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, prompt="FAIL-HERE"
            ),
            chunks(pcm16(audio), 8000),
        )
        good = stream(stub, PCM, chunks(pcm16(audio), 8000))
        bad_run, good_run = await asyncio.gather(bad, good)
        assert bad_run.code == grpc.StatusCode.INTERNAL
        assert "speech model failed" in bad_run.details
        assert good_run.code == grpc.StatusCode.OK and good_run.final_text
        assert np.isfinite(len(good_run.final_text))
