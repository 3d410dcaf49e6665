"""A bridge that shuts down under a live page stream hands it over without losing audio:
the words the service heard but had not made final are stored and shown, and the page
continues the same transcript through another bridge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
from playwright.async_api import async_playwright, expect
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.server import RunningServer
from tests.helpers import TStub, chunks, decode_16k, dev_clips, encode_container, wer
from tests.web_bridge.conftest import bridge_for
from tests.web_bridge.test_browser import speech_wav
from tests.web_bridge.test_reconnect import (
    finish_recording,
    recording,
    start_bridge,
    the_transcript,
)
from web_bridge.app import leave

CHUNK = 4000
"""Bytes per binary frame: about a MediaRecorder chunk of Opus."""


def webm(index: int) -> tuple[bytes, str]:
    """Dev clip `index` with a second of silence after it, as a browser's WebM/Opus, and
    its words."""
    clip = dev_clips()[index]
    audio = np.concatenate([decode_16k(clip.path), np.zeros(16000, dtype=np.float32)])
    return encode_container(audio, "webm"), clip.text


async def messages_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Every JSON message the bridge sends until it closes the socket; its close code last."""
    out: list[dict[str, Any]] = []
    async for msg in ws:
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(msg.json())
    out.append({"type": "closed", "code": ws.close_code})
    return out


def shown(messages: list[dict[str, Any]]) -> dict[int, str]:
    """Final text by segment index, each as last sent (a revision replaces it)."""
    return {m["segment_index"]: m["text"] for m in messages if m["type"] == "final"}


async def test_shutdown_mid_stream_keeps_the_words_not_yet_final(server: RunningServer) -> None:
    """A page streams a whole clip; right after its first final the bridge is told to stop
    (SIGTERM). The page, told `leaving`, sends `stop` as live.js does; the service makes every word
    it heard final and stores it, the page is shown those finals and only then told to
    resume (UNAVAILABLE, close 1001). It resumes through another bridge with the next
    clip. Before, the bridge cancelled the call: the service stored the transcript with
    what it had made final by then and the rest of the first clip was lost."""
    first, first_text = webm(0)
    second, second_text = webm(1)
    start = {"type": "start", "config": {"encoding": "webm", "title": "Bridge shutdown"}}
    async with aiohttp.ClientSession() as http:
        stack = contextlib.AsyncExitStack()
        app, url = await stack.enter_async_context(bridge_for(server.port, shutdown_timeout=60))
        ws = await http.ws_connect(f"{url}/ws")
        await ws.send_json(start)
        session = await ws.receive_json(timeout=60)
        assert session["type"] == "session", session
        tid = session["transcript_id"]
        for chunk in chunks(first, CHUNK):
            await ws.send_bytes(chunk)
        before: list[dict[str, Any]] = []
        while not any(m["type"] == "final" for m in before):  # the stream is under way
            before.append(await ws.receive_json(timeout=120))
        stopping = asyncio.create_task(leave(app))  # what SIGTERM does first
        while (told := await ws.receive_json(timeout=60))["type"] != "leaving":
            before.append(told)  # results already on their way
        await ws.send_json({"type": "stop"})  # what the page does when told (live.js handOver)
        after = await asyncio.wait_for(messages_until_closed(ws), 120)
        await asyncio.wait_for(stopping, 60)
        await stack.aclose()

        assert after[-2]["type"] == "error" and after[-2]["code"] == "UNAVAILABLE", after[-2:]
        assert "resume" in after[-2]["message"]
        assert after[-1]["code"] == aiohttp.WSCloseCode.GOING_AWAY, after[-1]
        seen = shown(before + after)
        assert wer([first_text], [" ".join(seen.values())]) < 0.25, seen

        async with grpc_transcripts(server) as stub:
            t = await get(stub, tid)
        assert t.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED, "still resumable"
        assert {s.index: s.text for s in t.segments} == seen, "every final shown is stored"

        async with bridge_for(server.port) as (_, url2):  # the page resumes elsewhere
            ws2 = await http.ws_connect(f"{url2}/ws")
            await ws2.send_json(
                {**start, "config": {"encoding": "webm", "resume_transcript_id": tid}}
            )
            resumed = await ws2.receive_json(timeout=60)
            assert resumed["type"] == "session" and resumed["transcript_id"] == tid, resumed
            assert resumed["first_segment_index"] == max(seen) + 1, resumed
            for chunk in chunks(second, CHUNK):
                await ws2.send_bytes(chunk)
            await ws2.send_json({"type": "stop"})
            rest = await asyncio.wait_for(messages_until_closed(ws2), 120)
        assert rest[-2]["type"] == "end", rest[-2:]
        seen |= shown(rest)

    async with grpc_transcripts(server) as stub:
        t = await get(stub, tid)
    assert t.status == transcripts_pb2.TRANSCRIPT_STATUS_COMPLETE
    assert {s.index: s.text for s in t.segments} == seen, "every final shown is stored"
    assert wer([f"{first_text} {second_text}"], [" ".join(seen.values())]) < 0.25


@contextlib.asynccontextmanager
async def grpc_transcripts(server: RunningServer) -> AsyncIterator[TStub]:
    """The server's TranscriptService, on a channel of its own."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield transcripts_pb2_grpc.TranscriptServiceStub(ch)


async def get(stub: TStub, tid: str) -> transcripts_pb2.Transcript:
    req = transcripts_pb2.GetTranscriptRequest(transcript_id=tid)
    return (await stub.GetTranscript(req)).transcript


async def test_page_hands_over_to_a_restarted_bridge_without_losing_words(
    server: RunningServer, tmp_path: Path
) -> None:
    """The page (Chromium, fake microphone) records a clip; after its first final the
    bridge is stopped as SIGTERM stops it and started again on the same address. The page
    ends its stream at a recorder boundary when told `leaving`, records on for the next,
    and resumes the transcript: one transcript, every final shown stored, and the clip's
    words all there (test_reconnect.py, where the bridge vanishes, may lose seconds)."""
    wav = tmp_path / "speech.wav"
    reference = speech_wav(wav)
    runner, port = await start_bridge(server.port, shutdown_timeout=60)
    async with async_playwright() as p:
        browser, page = await recording(p, wav, port, "Handover on SIGTERM", 30_000)
        await leave(runner.app)  # what SIGTERM does, then aiohttp's own shutdown
        await runner.cleanup()
        runner, _ = await start_bridge(server.port, port=port)  # back on the same address
        await expect(page.locator("#conn")).to_have_text("Live", timeout=30_000)
        shown = await finish_recording(page, 60_000)
        await browser.close()
    await runner.cleanup()
    t = await the_transcript(server, "Handover on SIGTERM")
    assert t.status == transcripts_pb2.TRANSCRIPT_STATUS_COMPLETE
    stored = [s.text for s in t.segments]
    assert stored == [s.strip() for s in shown], "every final shown is stored, in order"
    assert wer([reference], [" ".join(stored)]) < 0.2, stored
