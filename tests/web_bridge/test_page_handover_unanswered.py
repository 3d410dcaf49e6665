"""A page stream the service has not answered yet when the bridge shuts down keeps its
audio: the stream may yet be refused (the service at its limit or shutting down too, as
under `make run`), and then everything its socket sent goes again, header first, on the
stream that continues it. Before, the page handed it over as if the service had it (a
new recorder for the next stream, the old socket's audio dropped) and it was lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from playwright.async_api import async_playwright, expect
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2_grpc

from tests.web_bridge.conftest import (
    SCRIPTED_MODELS,
    NoTranscripts,
    Response,
    bridge_for,
    until,
)
from tests.web_bridge.test_browser import launch_with_mic, speech_wav
from web_bridge import relay
from web_bridge.app import create_app, leave
from web_bridge.config import BridgeSettings


class Unanswered(streaming_pb2_grpc.TranscriptionServiceServicer):
    """Keeps each call's audio bytes (`calls`). The first call is not answered until
    `answer` or `refuse` is set; refused, it ends UNAVAILABLE (a service shutting down
    too). Answered calls (later ones at once) get a session and are read until their
    client half-closes, then end OK."""

    def __init__(self) -> None:
        self.calls: list[bytearray] = []
        self.refuse = asyncio.Event()
        self.answer = asyncio.Event()

    async def StreamingTranscribe(
        self,
        request_iterator: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
        context: grpc.aio.ServicerContext[streaming_pb2.StreamingTranscribeRequest, Response],
    ) -> AsyncIterator[Response]:
        await anext(request_iterator)  # the config
        audio = bytearray()
        self.calls.append(audio)
        first = len(self.calls) == 1

        async def read() -> None:
            async for request in request_iterator:
                audio.extend(request.audio_content)

        reader = asyncio.create_task(read())
        try:
            if first:
                decided = [asyncio.ensure_future(e.wait()) for e in (self.refuse, self.answer)]
                await asyncio.wait(decided, return_when=asyncio.FIRST_COMPLETED)
                for wait in decided:
                    wait.cancel()
            if first and self.refuse.is_set():
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
            yield Response(session=streaming_pb2.SessionInfo(transcript_id="t"))
            await reader
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader

    async def ListModels(
        self,
        request: streaming_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> streaming_pb2.ListModelsResponse:
        return SCRIPTED_MODELS


@contextlib.asynccontextmanager
async def unanswered() -> AsyncIterator[tuple[Unanswered, int]]:
    """An `Unanswered` service (and an empty history) on a free port."""
    service = Unanswered()
    server = grpc.aio.server()
    streaming_pb2_grpc.add_TranscriptionServiceServicer_to_server(service, server)
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(
        NoTranscripts(),  # type: ignore[abstract]  # stubs: all abstract
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield service, port
    finally:
        await server.stop(0)


async def start_bridge(grpc_port: int, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(create_app(BridgeSettings(grpc_target=f"127.0.0.1:{grpc_port}")))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, runner.addresses[0][1]


async def test_a_stream_not_yet_answered_keeps_its_audio_across_a_shutdown(
    tmp_path: Path,
) -> None:
    """The page (Chromium, fake microphone) records; its stream has no answer yet when the
    bridge leaves; the service then refuses it. The bridge restarts on the same address,
    and the stream that continues begins with every byte the first socket sent (its WebM
    header first). Without the fix it began with a new recorder's audio: the first
    socket's was gone."""
    wav = tmp_path / "speech.wav"
    speech_wav(wav)
    async with unanswered() as (service, grpc_port), async_playwright() as p:
        runner, port = await start_bridge(grpc_port)
        browser = await launch_with_mic(p, wav)
        try:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.click("#record")
            await until(lambda: len(service.calls) == 1 and len(service.calls[0]) > 0, "audio")
            heard = len(service.calls[0])
            leaving = asyncio.create_task(leave(runner.app))  # what SIGTERM does first
            await until(lambda: len(service.calls[0]) > heard, "the page sends on after leaving")
            service.refuse.set()
            await leaving
            await runner.cleanup()
            runner, _ = await start_bridge(grpc_port, port)  # back on the same address
            await until(lambda: len(service.calls) == 2, "the page reconnects", 60)
            first, second = service.calls[0], service.calls[1]
            await until(lambda: len(second) >= len(first), "the audio is sent again", 60)
            assert second[: len(first)] == first, "the first socket's audio comes first"
            await page.click("#record")
            await expect(page.locator("#conn")).to_have_text("Saved", timeout=30_000)
        finally:
            await browser.close()
            await runner.cleanup()


async def test_the_bridge_reads_an_unanswered_stream_until_the_service_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Told `leaving` before its stream is answered, a page sends on (above); the bridge
    gives it HANDOVER_S from the answer, not from `leaving` (0 s here), so what it sends
    meanwhile reaches the service. Without that the bridge ended the audio at once: a
    service that then took the stream never got what the page sent after `leaving`."""
    monkeypatch.setattr(relay, "HANDOVER_S", 0.0)
    async with (
        unanswered() as (service, grpc_port),
        bridge_for(grpc_port) as (app, url),
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(f"{url}/ws")
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        await ws.send_bytes(b"a" * 100)
        await until(lambda: service.calls[:1] == [b"a" * 100], "the audio reaches it")
        leaving = asyncio.create_task(leave(app))
        assert (await ws.receive_json(timeout=30))["type"] == "leaving"
        await ws.send_bytes(b"b" * 100)  # the page sends on: no answer yet
        await until(lambda: len(service.calls[0]) == 200, "audio sent after leaving", 10)
        service.answer.set()
        assert (await ws.receive_json(timeout=30))["type"] == "session"
        told = await ws.receive_json(timeout=30)  # its audio ended (HANDOVER_S): it ends
        assert told["type"] == "error" and told["code"] == "UNAVAILABLE", told
        closing = await ws.receive(timeout=30)
        assert closing.data == aiohttp.WSCloseCode.GOING_AWAY, closing
        await asyncio.wait_for(leaving, 30)
        assert service.calls[0] == b"a" * 100 + b"b" * 100
