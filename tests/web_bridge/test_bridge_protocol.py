"""The bridge's WebSocket protocol and HTTP API, over real HTTP to the real gRPC server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from transcribe.v1 import common_pb2, streaming_pb2

from service.server import RunningServer
from tests.helpers import chunks, decode_16k, dev_clips, encode_container
from tests.web_bridge.conftest import Response, ScriptedTranscription, final
from web_bridge.relay import stream_config


async def collect(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    out = []
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            out.append(json.loads(msg.data))
    return out


async def test_stream_webm_chunks_and_get_typed_messages(bridge_url: str) -> None:
    audio = decode_16k(dev_clips()[3].path)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{bridge_url}/ws") as ws:
        await ws.send_json({"type": "start", "config": {"encoding": "webm", "title": "via bridge"}})
        for piece in chunks(encode_container(audio, "webm"), 3000):
            await ws.send_bytes(piece)
        await ws.send_json({"type": "stop"})
        messages = await collect(ws)
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "session" and kinds[-1] == "end"
    assert "final" in kinds and "error" not in kinds
    finals = [m for m in messages if m["type"] == "final"]
    first = [m for m in finals if m["revision"] == 0]
    assert [m["segment_index"] for m in first] == list(range(len(first)))
    assert all(m["end"] >= m["start"] for m in finals)
    finals = list({m["segment_index"]: m for m in finals}.values())  # a revision replaces
    tid = messages[0]["transcript_id"]
    async with aiohttp.ClientSession() as http:
        got = await (await http.get(f"{bridge_url}/api/transcripts/{tid}")).json()
        assert got["title"] == "via bridge"
        assert " ".join(s["text"] for s in got["segments"]) == " ".join(m["text"] for m in finals)
        r = await http.get(f"{bridge_url}/api/transcripts/{tid}/export?format=vtt")
        assert r.status == 200 and (await r.text()).startswith("WEBVTT")
        assert "attachment" in r.headers["Content-Disposition"]
        r = await http.get(
            f"{bridge_url}/api/transcripts/{tid}/recording", headers={"Range": "bytes=10-19"}
        )
        assert r.status == 206 and len(await r.read()) == 10
        assert r.headers["Content-Range"].startswith("bytes 10-19/")
        r = await http.get(
            f"{bridge_url}/api/transcripts/{tid}/recording", headers={"Range": "bytes=99999999-"}
        )
        assert r.status == 416
        r = await http.patch(
            f"{bridge_url}/api/transcripts/{tid}", json={"title": "renamed", "tags": ["a"]}
        )
        assert (await r.json())["title"] == "renamed"
        r = await http.delete(f"{bridge_url}/api/transcripts/{tid}")
        assert r.status == 200
        r = await http.get(f"{bridge_url}/api/transcripts/{tid}")
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "NOT_FOUND"


async def test_a_revised_final_is_relayed_with_its_revision(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    session = Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
    alt = common_pb2.TranscriptionAlternative(transcript="and")
    interim = Response(
        results=[streaming_pb2.StreamingTranscriptionResult(alternatives=[alt], stability=0.2)]
    )
    script = [
        session,
        final(0, "the whether is fine", 0.0, 1.0),
        interim,
        final(0, "The weather is fine.", 0.0, 1.1, revision=1),
        None,
    ]
    for resp in script:
        service.responses.put_nowait(resp)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws") as ws:
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        messages = await collect(ws)
    assert [m["type"] for m in messages] == ["session", "final", "interim", "final", "end"]
    first, revised = messages[1], messages[3]
    assert (first["segment_index"], first["revision"], first["text"]) == (
        0, 0, "the whether is fine",
    )  # fmt: skip
    assert (revised["segment_index"], revised["revision"], revised["text"]) == (
        0, 1, "The weather is fine.",
    )  # fmt: skip
    assert revised["end"] == 1.1
    assert "revision" not in messages[2]  # finals only


async def test_errors_are_relayed_with_their_codes(bridge_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{bridge_url}/ws") as ws:
            await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
            await ws.send_bytes(b"definitely not webm" * 200)
            await ws.send_json({"type": "stop"})
            messages = await collect(ws)
        err = [m for m in messages if m["type"] == "error"]
        assert err and err[0]["code"] == "INVALID_ARGUMENT" and "WEBM_OPUS" in err[0]["message"]
        async with http.ws_connect(f"{bridge_url}/ws") as ws:
            await ws.send_bytes(b"audio before start")
            messages = await collect(ws)
        assert messages == [
            {
                "type": "error",
                "code": "INVALID_ARGUMENT",
                "message": "the first message must be a JSON start message",
            }
        ]
        async with http.ws_connect(f"{bridge_url}/ws") as ws:
            await ws.send_json({"type": "start", "config": {"encoding": "wma"}})
            messages = await collect(ws)
        assert messages[0]["code"] == "INVALID_ARGUMENT"
        r = await http.get(f"{bridge_url}/api/search?q=")
        assert r.status == 400


async def test_foreign_origin_is_refused_and_headers_are_strict(bridge_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(f"{bridge_url}/ws", headers={"Origin": "https://evil.example"})
        assert err.value.status == 403
        r = await http.delete(
            f"{bridge_url}/api/transcripts/x", headers={"Origin": "https://evil.example"}
        )
        assert r.status == 403
        r = await http.get(bridge_url)
        assert r.status == 200
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        async with http.ws_connect(f"{bridge_url}/ws", headers={"Origin": bridge_url}) as ws:
            await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
            await ws.send_json({"type": "stop"})
            assert [m["type"] for m in await collect(ws)] == ["session", "end"]


async def test_socket_dropped_mid_stream_interrupts_the_transcript(
    bridge_url: str, server: RunningServer
) -> None:
    audio = decode_16k(dev_clips()[0].path)
    data = encode_container(audio, "webm")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{bridge_url}/ws")
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        first = await ws.receive_json()
        tid = first["transcript_id"]
        for piece in chunks(data, 3000)[: len(data) // 6000]:  # half the audio
            await ws.send_bytes(piece)
        await ws.close()  # no stop: the connection is simply gone
        for _ in range(200):
            got = await (await http.get(f"{bridge_url}/api/transcripts/{tid}")).json()
            if got["status"] != "live":
                break
            await asyncio.sleep(0.1)
        assert got["status"] == "interrupted"
    assert not server.registry.active  # nothing left running on the server


async def test_slow_reader_is_met_with_back_pressure(bridge_url: str) -> None:
    """A client that floods audio without reading: bounded queues, all consumed, clean end."""
    import numpy as np

    noise = (np.random.default_rng(3).standard_normal(16000 * 60) * 0.05).astype(np.float32)
    data = encode_container(noise, "webm")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{bridge_url}/ws") as ws:
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        sent = 0
        for piece in chunks(data, 2000):
            await ws.send_bytes(piece)
            sent += len(piece)
        await ws.send_json({"type": "stop"})
        messages = await collect(ws)
    assert sent == len(data)
    assert messages[-1]["type"] == "end"  # everything was consumed, in order, and ended cleanly


def test_the_page_asks_for_revisions_unless_its_config_says_not() -> None:
    """The page replaces a segment by index, so the bridge asks for revised finals; a bridge
    client that appends finals turns them off with `"revisions": false`."""
    assert stream_config({"encoding": "webm"}).enable_revisions
    assert not stream_config({"encoding": "webm", "revisions": False}).enable_revisions
