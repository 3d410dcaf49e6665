"""Malformed browser input gets a clean answer, never a 500 or a traceback in the log:
bad JSON bodies, keys and query values (400 naming the field), a bad control frame in
the middle of a stream (an error message, and the stream goes on), and a browser that
aborts a recording download (normal traffic)."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import aiohttp
import pytest
from transcribe.v1 import streaming_pb2

from tests.helpers import chunks, decode_16k, dev_clips, encode_container, until
from tests.web_bridge.conftest import start_scripted
from tests.web_bridge.test_bridge_protocol import collect

BAD_BODIES = [
    (b"{not json", "body"),
    (b'{"title": "caf\xe9"}', "body"),  # Latin-1, not UTF-8
    (b"[" * 100_000, "body"),
    (b"[]", "body"),
    (b'{"tags": 5}', "tags"),
    (b'{"tags": ["a", 5]}', "tags"),
    (b'{"title": {"x": 1}}', "title"),
    (b'{"owner": "bob"}', "owner"),
]
BAD_KEYS = ["alice\nkey", "ключ-alice", "alice\x7fkey", "a" * 513]
BAD_PAGE_SIZES = ["abc", "99999999999", "-1", "1e3"]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def error_field(resp: aiohttp.ClientResponse) -> str:
    assert resp.status == 400, (resp.status, await resp.text())
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["message"]
    return str(error["field"])


async def test_malformed_requests_get_400_naming_the_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with start_scripted() as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            for body, field in BAD_BODIES:
                r = await http.patch(
                    f"{url}/api/transcripts/t1",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                assert await error_field(r) == field, body[:20]
            for key in BAD_KEYS:
                r = await http.post(f"{url}/api/login", json={"api_key": key})
                assert await error_field(r) == "api_key", repr(key[:20])
            for size in BAD_PAGE_SIZES:
                r = await http.get(f"{url}/api/transcripts", params={"page_size": size})
                assert await error_field(r) == "page_size", size
            r = await http.get(f"{url}/api/transcripts", params={"page_size": "5"})
            assert r.status == 200
    no_tracebacks(caplog)


async def test_a_bad_control_frame_mid_stream_is_answered_and_the_stream_goes_on(
    bridge_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    audio = decode_16k(dev_clips()[3].path)
    pieces = chunks(encode_container(audio, "webm"), 3000)
    half = len(pieces) // 2
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{bridge_url}/ws") as ws:
            await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
            tid = (await ws.receive_json())["transcript_id"]
            for piece in pieces[:half]:
                await ws.send_bytes(piece)
            for bad in ("{bad json", "[1]", '{"type": "pause"}', "[" * 100_000):
                await ws.send_str(bad)
            for piece in pieces[half:]:
                await ws.send_bytes(piece)
            await ws.send_json({"type": "stop"})
            async with asyncio.timeout(60):  # without the fix: held until the idle timeout
                messages = await collect(ws)
        errors = [m for m in messages if m["type"] == "error"]
        assert len(errors) == 4 and {e["code"] for e in errors} == {"INVALID_ARGUMENT"}
        assert messages[-1]["type"] == "end"
        assert any(m["type"] == "final" for m in messages)
        got = await (await http.get(f"{bridge_url}/api/transcripts/{tid}")).json()
    assert got["status"] == "complete"
    no_tracebacks(caplog)


async def test_an_aborted_recording_download_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Browsers abort media fetches whenever the user seeks: a debug line at most."""
    caplog.set_level(logging.DEBUG)
    async with start_scripted() as (_, transcripts, _, url):
        transcripts.recording = os.urandom(4 * 1024 * 1024)
        transcripts.recording_gate.clear()  # the first 64 KiB, then wait
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/transcripts/t1/recording HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(1000)  # the body is flowing
        writer.close()  # the browser seeks: this fetch is abandoned
        await writer.wait_closed()
        transcripts.recording_gate.set()  # the bridge writes on into the closed connection

        def finished() -> bool:
            return any(
                "closed the connection" in r.getMessage() or r.levelno >= logging.ERROR
                for r in caplog.records
            )

        await until(finished, "the bridge noticed the closed connection")
        # and cancelled its call: the service is not stopped under a call still sending
        await until(lambda: transcripts.reading == 0, "the bridge's GetRecording call ended")
    no_tracebacks(caplog)


def test_start_frames_that_are_not_json_objects_are_protocol_errors() -> None:
    from web_bridge.messages import ProtocolError, start_config

    for bad in (
        "{bad",
        "[" * 100_000,
        "5",
        '{"type": "stop"}',
        json.dumps({"type": "start", "config": 1}),
    ):
        with pytest.raises(ProtocolError):
            start_config(bad)
    assert start_config('{"type": "start"}').encoding == streaming_pb2.AUDIO_ENCODING_WEBM_OPUS
