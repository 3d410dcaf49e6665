"""A bridge given several replicas sends a stream that one refuses (at its stream limit)
to another, with every chunk the browser sent so far, the WebM header first (issue 22).
Two in-process servers on port 0 behind a real bridge, the page's WebSocket protocol."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from service.server import RunningServer
from tests.helpers import chunks, decode_16k, dev_clips, encode_container, wer
from web_bridge.app import create_app
from web_bridge.config import BridgeSettings

pytestmark = pytest.mark.timeout(300)


def refused(server: RunningServer) -> float:
    value = server.deps.metrics.registry.get_sample_value(
        "transcribe_refused_streams_total", {"reason": "max_streams"}
    )
    return value or 0.0


@pytest.fixture
async def bridge(full_and_free: tuple[RunningServer, RunningServer]) -> AsyncIterator[str]:
    full, free = full_and_free
    target = f"ipv4:127.0.0.1:{full.port},127.0.0.1:{free.port}"
    runner = web.AppRunner(create_app(BridgeSettings(grpc_target=target)), shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def page_stream(url: str, webm: bytes) -> list[dict[str, Any]]:
    """One stream as the page sends it: start, all chunks at once, stop."""
    out = []
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws") as ws:
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        for piece in chunks(webm, 4000):
            await ws.send_bytes(piece)
        await ws.send_json({"type": "stop"})
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                out.append(json.loads(msg.data))
    return out


async def test_a_refused_page_stream_goes_to_the_next_replica_with_all_its_audio(
    full_and_free: tuple[RunningServer, RunningServer], bridge: str
) -> None:
    full, _ = full_and_free
    clip = dev_clips()[0]
    webm = encode_container(decode_16k(clip.path), "webm")
    # Round robin alternates calls, so of three streams at least one first meets the
    # full replica; each must still be transcribed whole, by the free one.
    for _ in range(3):
        messages = await page_stream(bridge, webm)
        kinds = [m["type"] for m in messages]
        assert "error" not in kinds, messages
        assert kinds[0] == "session" and kinds[-1] == "end"
        finals = {m["segment_index"]: m["text"] for m in messages if m["type"] == "final"}
        assert wer([clip.text], [" ".join(finals.values())]) < 0.3  # nothing lost
    assert refused(full) >= 1


async def test_gives_up_with_the_refusal_when_every_replica_is_full(
    full_and_free: tuple[RunningServer, RunningServer],
) -> None:
    full, _ = full_and_free
    before = refused(full)
    settings = BridgeSettings(grpc_target=f"127.0.0.1:{full.port}")
    runner = web.AppRunner(create_app(settings), shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        messages = await page_stream(f"http://127.0.0.1:{runner.addresses[0][1]}", b"\0" * 100)
    finally:
        await runner.cleanup()
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] == "RESOURCE_EXHAUSTED"
    assert "limit" in messages[0]["message"]
    assert refused(full) == before + 3


class RefuseAfterReading(streaming_pb2_grpc.TranscriptionServiceServicer):
    """The first call reads the config and all the audio without answering (so the
    bridge has sent chunks: a server slow to answer, then gone), then fails UNAVAILABLE;
    later calls answer and record their audio. (Reading to the end keeps the refusal from
    racing the bridge's writes, which gRPC would report as INTERNAL.)"""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []

    async def StreamingTranscribe(
        self,
        request_iterator: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[streaming_pb2.StreamingTranscribeResponse]:
        audio: list[bytes] = []
        self.calls.append(audio)
        first = await anext(request_iterator)
        assert first.HasField("config")
        if len(self.calls) == 1:
            async for request in request_iterator:
                audio.append(request.audio_content)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        yield streaming_pb2.StreamingTranscribeResponse(
            session=streaming_pb2.SessionInfo(transcript_id="t-replayed")
        )
        async for request in request_iterator:
            audio.append(request.audio_content)


async def stream_to_refuser(
    settings: BridgeSettings, sent: list[bytes]
) -> tuple[RefuseAfterReading, list[dict[str, Any]]]:
    service = RefuseAfterReading()  # type: ignore[abstract]  # stubs: all abstract
    server = grpc.aio.server()
    streaming_pb2_grpc.add_TranscriptionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    settings = dataclasses.replace(settings, grpc_target=f"127.0.0.1:{port}")
    runner = web.AppRunner(create_app(settings), shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws") as ws:
            await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
            for piece in sent:
                await ws.send_bytes(piece)
            await ws.send_json({"type": "stop"})
            messages = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
    finally:
        await runner.cleanup()
        await server.stop(0)
    return service, messages


async def test_chunks_sent_to_a_refusing_replica_are_sent_again_from_the_first() -> None:
    sent = [b"header" + bytes([i]) * 100 for i in range(8)]
    service, messages = await stream_to_refuser(BridgeSettings(), sent)
    assert [m["type"] for m in messages] == ["session", "end"], messages
    assert len(service.calls) == 2, [len(c) for c in service.calls]
    assert service.calls[0] == sent  # the refused call took them all
    assert service.calls[1] == sent  # all of them again, the header first


async def test_audio_kept_for_another_replica_is_bounded_by_the_socket_buffer() -> None:
    """A server that read more than the buffer bound before failing had the stream: the
    page gets its error, and the bridge never held more than the bound for a replay."""
    sent = [b"header" + bytes([i]) * 1000 for i in range(8)]
    service, messages = await stream_to_refuser(BridgeSettings(max_buffered_bytes=3000), sent)
    assert [m["type"] for m in messages] == ["error"], messages
    assert messages[0]["code"] == "UNAVAILABLE"
    assert len(service.calls) == 1
