"""A page stream the service has not answered yet when the bridge shuts down keeps its
audio: the stream may yet be refused (the service at its limit or shutting down too, as
under `make run`), and then everything its socket sent goes again, header first, on the
stream that continues it. Before, the page handed it over as if the service had it (a
new recorder for the next stream, the old socket's audio dropped) and it was lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from playwright.async_api import async_playwright, expect
from transcribe.v1 import streaming_pb2

from tests.helpers import until
from tests.web_bridge.conftest import Response, ScriptedTranscription, bridge_for, serving
from tests.web_bridge.test_browser import launch_with_mic, speech_wav
from tests.web_bridge.test_reconnect import start_bridge
from web_bridge import relay
from web_bridge.app import leave


class Unanswered(ScriptedTranscription):
    """Scripted, each stream's audio kept in `audio`: the first stream is not answered
    until `answer` or `refuse` is set; refused, it ends UNAVAILABLE (a service shutting
    down too). Answered streams (later ones at once) get a session and are read until
    their client half-closes, then end OK."""

    def __init__(self) -> None:
        super().__init__(keep_audio=True)
        self.refuse = asyncio.Event()
        self.answer = asyncio.Event()

    async def respond(
        self, reader: asyncio.Task[None], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Response]:
        first = len(self.configs) == 1
        if first:
            decided = [asyncio.ensure_future(e.wait()) for e in (self.refuse, self.answer)]
            await asyncio.wait(decided, return_when=asyncio.FIRST_COMPLETED)
            for wait in decided:
                wait.cancel()
        if first and self.refuse.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        yield Response(session=streaming_pb2.SessionInfo(transcript_id="t"))
        await reader


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
    service = Unanswered()
    async with serving(service) as grpc_port, async_playwright() as p:
        runner, port = await start_bridge(grpc_port, shutdown_timeout=60)
        browser = await launch_with_mic(p, wav)
        try:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.click("#record")
            await until(lambda: len(service.audio) == 1 and len(service.audio[0]) > 0, "audio")
            heard = len(service.audio[0])
            leaving = asyncio.create_task(leave(runner.app))  # what SIGTERM does first
            await until(lambda: len(service.audio[0]) > heard, "the page sends on after leaving")
            service.refuse.set()
            await leaving
            await runner.cleanup()
            # back on the same address
            runner, _ = await start_bridge(grpc_port, port, shutdown_timeout=60)
            await until(lambda: len(service.audio) == 2, "the page reconnects", 60)
            first, second = service.audio[0], service.audio[1]
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
    service = Unanswered()
    async with (
        serving(service) as grpc_port,
        bridge_for(grpc_port) as (app, url),
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(f"{url}/ws")
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        await ws.send_bytes(b"a" * 100)
        await until(lambda: service.audio[:1] == [b"a" * 100], "the audio reaches it")
        leaving = asyncio.create_task(leave(app))
        assert (await ws.receive_json(timeout=30))["type"] == "leaving"
        await ws.send_bytes(b"b" * 100)  # the page sends on: no answer yet
        await until(lambda: len(service.audio[0]) == 200, "audio sent after leaving", 10)
        service.answer.set()
        assert (await ws.receive_json(timeout=30))["type"] == "session"
        told = await ws.receive_json(timeout=30)  # its audio ended (HANDOVER_S): it ends
        assert told["type"] == "error" and told["code"] == "UNAVAILABLE", told
        closing = await ws.receive(timeout=30)
        assert closing.data == aiohttp.WSCloseCode.GOING_AWAY, closing
        await asyncio.wait_for(leaving, 30)
        assert service.audio[0] == b"a" * 100 + b"b" * 100
