"""A replica at its stream limit refuses with RESOURCE_EXHAUSTED; the Python client then
tries the next replica before giving up (two in-process servers on port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from clients.python import FinalText, StreamingTranscriber, SyncClient, connect
from clients.python.streaming import ReplayableAudio
from service.server import RunningServer
from tests.helpers import dev_clips, wer

pytestmark = pytest.mark.timeout(300)


def refused(server: RunningServer) -> float:
    value = server.deps.metrics.registry.get_sample_value(
        "transcribe_refused_streams_total", {"reason": "max_streams"}
    )
    return value or 0.0


def streamed(server: RunningServer) -> float:
    """Streams the server ran to their end, whatever their status."""
    return sum(
        sample.value
        for metric in server.deps.metrics.registry.collect()
        if metric.name == "transcribe_streams"
        for sample in metric.samples
        if sample.name == "transcribe_streams_total"
    )


async def test_a_full_replica_sends_the_stream_to_the_next(
    full_and_free: tuple[RunningServer, RunningServer],
) -> None:
    full, free = full_and_free
    clip = dev_clips()[0]
    target = f"ipv4:127.0.0.1:{full.port},127.0.0.1:{free.port}"
    async with connect(target) as channel:
        # Round robin alternates calls, so of two streams at least one first meets the
        # full replica (three: every attempt is counted there).
        for _ in range(3):
            text = FinalText()
            async for r in StreamingTranscriber(channel).transcribe_file(clip.path):
                text.add(r)
            assert wer([clip.text], [text.text]) < 0.3  # the whole clip, none of it lost
    assert refused(full) >= 1
    assert streamed(free) == 3


async def test_the_sync_client_fails_over_too(
    full_and_free: tuple[RunningServer, RunningServer],
) -> None:
    full, free = full_and_free
    target = f"ipv4:127.0.0.1:{full.port},127.0.0.1:{free.port}"
    before = refused(full)

    def run() -> None:  # the servers run on this test's loop: the blocking client elsewhere
        with SyncClient(target) as client:
            # Round robin picks only connected replicas: until the full one's connection
            # is up (slower on a loaded machine) every call goes to the free one. Call
            # until one was refused and failed over, each call answered either way.
            for _ in range(10):
                results = list(client.transcribe_file(dev_clips()[1].path))
                assert results[0].transcript_id
                if refused(full) > before:
                    return

    await asyncio.to_thread(run)
    assert refused(full) > before


async def test_gives_up_with_the_status_when_every_replica_is_full(
    full_and_free: tuple[RunningServer, RunningServer],
) -> None:
    full, _ = full_and_free
    before = refused(full)
    async with connect(f"127.0.0.1:{full.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in StreamingTranscriber(channel, attempts=2).transcribe([b"\0" * 3200]):
                pass
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused(full) == before + 2


async def test_audio_read_before_a_refusal_is_sent_again_in_order() -> None:
    async def source() -> AsyncIterator[bytes]:
        for i in range(6):
            yield bytes([i])

    audio = ReplayableAudio(source())
    try:
        first = [await audio.next() for _ in range(3)]  # sent to a replica that refused
        audio.rewind()
        second = [await audio.next() for _ in range(4)]  # the next replica answers here
        audio.confirm()
        audio.rewind()  # nothing to send again once a replica took the stream
        rest = [await audio.next() for _ in range(3)]
    finally:
        await audio.aclose()
    assert first == [b"\0", b"\1", b"\2"]
    assert second == [b"\0", b"\1", b"\2", b"\3"]
    assert rest == [b"\4", b"\5", None]


async def test_a_failing_source_raises_its_own_error() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"\0"
        raise OSError("microphone unplugged")

    audio = ReplayableAudio(source())
    try:
        assert await audio.next() == b"\0"
        with pytest.raises(OSError, match="unplugged"):
            await audio.next()
    finally:
        await audio.aclose()
