"""The bridge's WebSocket protocol and HTTP API, over real HTTP to the real gRPC server."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import aiohttp
import pytest
from transcribe.v1 import common_pb2, streaming_pb2

from service.server import RunningServer
from tests.helpers import chunks, decode_16k, dev_clips, encode_container, until
from tests.web_bridge.conftest import Response, ScriptedTranscription, final, start_scripted
from web_bridge.config import BridgeSettings


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


async def test_a_flood_is_held_to_the_bridge_buffer_bound() -> None:
    """A client that floods audio while the service reads nothing: the bridge queues at
    most --max-buffered-bytes for the socket, then stops reading it (the client's own
    sends stall); its Python heap grows by about that much, not by the flood; when the
    service reads again every byte arrives and the stream ends cleanly."""
    from web_bridge.state import RELAYS

    bound, chunk, count = 512 * 1024, 256 * 1024, 128  # a 32 MiB flood in 256 KiB chunks
    payload = bytes(range(256)) * (chunk // 256)
    settings = BridgeSettings(max_buffered_bytes=bound)
    async with start_scripted(settings) as (service, _, app, url):
        service.reading.clear()  # the service is stuck: its gRPC window fills, then the queue
        service.responses.put_nowait(Response(session=streaming_pb2.SessionInfo(transcript_id="t")))
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws") as ws:
            await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
            assert (await ws.receive_json())["type"] == "session"
            (relay,) = app[RELAYS]
            tracemalloc.start()
            try:

                async def flood() -> None:
                    for _ in range(count):
                        await ws.send_bytes(payload)

                sender = asyncio.create_task(flood())
                conn = ws._conn  # aiohttp types it optional: an open websocket has one
                assert conn is not None and conn.transport is not None
                transport = conn.transport
                await until(
                    lambda: relay.audio.blocked and transport.get_write_buffer_size() > 0,
                    "the bridge stops reading and the client's sends back up",
                )
                _, peak_heap = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert not sender.done()
            assert relay.audio.peak_bytes <= bound
            assert relay.read_bytes < count * chunk // 2, "the socket is no longer read"
            assert peak_heap < 8 * 1024 * 1024, f"{peak_heap} bytes of Python heap for a flood"
            service.reading.set()
            await sender
            await ws.send_json({"type": "stop"})
            await until(lambda: service.audio_bytes == count * chunk, "all audio reached gRPC")
            service.responses.put_nowait(None)
            assert [m["type"] for m in await collect(ws)] == ["end"]
        assert relay.audio.peak_bytes <= bound


def test_the_page_asks_for_revisions_unless_its_config_says_not() -> None:
    """The page replaces a segment by index, so the bridge asks for revised finals; a bridge
    client that appends finals turns them off with `"revisions": false`."""
    from web_bridge.messages import stream_config

    assert stream_config({"encoding": "webm"}).enable_revisions
    assert not stream_config({"encoding": "webm", "revisions": False}).enable_revisions
