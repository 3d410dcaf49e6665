"""The bridge when things go wrong: a browser that leaves at the wrong moment, a bridge
that shuts down under live sockets, and API refusals that must keep the JSON error shape."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.server import RunningServer
from tests.helpers import chunks, decode_16k, dev_clips, encode_container, until
from tests.web_bridge.conftest import (
    Response,
    ScriptedTranscription,
    bridge_for,
    final,
    start_scripted,
)
from tests.web_bridge.test_bad_input import no_tracebacks
from tests.web_bridge.test_upload_api import upload_bridge
from web_bridge.app import create_app
from web_bridge.config import BridgeSettings
from web_bridge.state import RELAYS
from web_bridge.upload import CHUNK


async def stored(http: aiohttp.ClientSession, url: str, tid: str) -> dict[str, Any]:
    """The transcript once it is no longer live (its stream has ended on the server)."""
    for _ in range(600):
        got: dict[str, Any] = await (await http.get(f"{url}/api/transcripts/{tid}")).json()
        if got["status"] != "live":
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"transcript {tid} still live")


async def test_a_browser_gone_after_stop_still_has_its_transcript_completed(
    server: RunningServer,
) -> None:
    """The page pressed stop, then the tab closed while the service was still finishing:
    the audio was complete, so the call must run to its end and the transcript be stored
    complete, last words included (it was cancelled: interrupted, the tail lost)."""
    audio = decode_16k(dev_clips()[0].path)
    data = encode_container(audio, "webm")
    async with bridge_for(server.port) as (app, url), aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{url}/ws")
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        tid = (await ws.receive_json())["transcript_id"]
        for piece in chunks(data, 3000):
            await ws.send_bytes(piece)
        await ws.send_json({"type": "stop"})
        # An RST makes the bridge's kernel drop what it has not read yet: the tab leaves
        # once the bridge has read the stop (under load it read it late; ci on 269fcf6)
        relays = app[RELAYS]  # the relay leaves this set when its call has ended
        await until(lambda: not relays or any(r.stopped for r in relays), "the stop is read")
        conn = ws._conn  # aiohttp types it optional: an open websocket has one
        assert conn is not None and conn.transport is not None
        conn.transport.abort()  # the tab is gone: no close frame, the TCP connection drops
        await ws.close()  # the client's side released (nothing reaches the bridge)
        got = await stored(http, url, tid)
    assert got["status"] == "complete", got["status"]
    assert got["segments"], "the transcript kept its words"
    assert not server.registry.active  # nothing left running on the server


async def test_shutdown_tells_a_live_page_at_once_to_resume_elsewhere() -> None:
    """A bridge stopping under a live socket tells the page at once (`leaving`: the page
    records on for the stream that will resume the transcript), ends the stream's audio
    with what it read (aiohttp no longer reads the socket), relays the finals the service
    then makes of what it heard, and as soon as the stream ends tells the page to resume
    (UNAVAILABLE, which the page shows as a restart; close 1001 going away), instead of
    holding the stop for the whole shutdown timeout and then closing as if normally (1000,
    no message). Before the handover the stream was cut at once and its last words lost
    (test_bridge_shutdown.py)."""
    service = ScriptedTranscription()
    server = grpc.aio.server()
    streaming_pb2_grpc.add_TranscriptionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    app = create_app(BridgeSettings(grpc_target=f"127.0.0.1:{port}"))
    runner = web.AppRunner(app, shutdown_timeout=30)  # run_app's is 60 s
    cleanup = None
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        service.responses.put_nowait(Response(session=streaming_pb2.SessionInfo(transcript_id="t")))
        async with aiohttp.ClientSession() as http:
            live = await http.ws_connect(f"{url}/ws")
            await live.send_json({"type": "start", "config": {"encoding": "webm"}})
            assert (await live.receive_json())["type"] == "session"
            await live.send_bytes(b"audio" * 100)
            idle = await http.ws_connect(f"{url}/ws")  # no start message yet
            await until(lambda: len(app[RELAYS]) == 2, "both sockets are relayed")
            cleanup = asyncio.create_task(runner.cleanup())
            async with asyncio.timeout(20):  # without the fix: only after shutdown_timeout
                told = await live.receive_json()
                assert told["type"] == "leaving", told
                await until(
                    lambda: service.audio_bytes == 500, "the audio read reaches the service"
                )
                service.responses.put_nowait(final(0, "last words", 0.0, 1.0))
                service.responses.put_nowait(None)  # it ends the stream once it is final
                last = await live.receive_json()
                assert last["type"] == "final" and last["text"] == "last words", last
                told = await live.receive_json()
                assert told["type"] == "error" and told["code"] == "UNAVAILABLE", told
                assert "resume" in told["message"]
                for ws in (live, idle):  # the close frame's code: what a browser reports
                    closing = await ws.receive()
                    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
                    assert closing.data == aiohttp.WSCloseCode.GOING_AWAY, closing
                await cleanup
            assert not app[RELAYS]
    finally:
        if cleanup is None:
            await runner.cleanup()
        await server.stop(0)


async def api_error(resp: aiohttp.ClientResponse, status: int, code: str) -> str:
    """The shared JSON error shape with `status` and `code`; its message."""
    assert resp.status == status, (resp.status, await resp.text())
    assert resp.content_type == "application/json", await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == code and error["message"], error
    return str(error["message"])


async def test_the_apis_own_refusals_keep_the_json_error_shape() -> None:
    """A body over the size limit, an unknown path, a wrong method and a range past the
    recording are refused by aiohttp itself: the page reads `error.message` from them
    like from every other refusal (they were text/plain)."""
    async with start_scripted() as (_, transcripts, _, url):
        transcripts.recording = bytes(1000)
        async with aiohttp.ClientSession() as http:
            big = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
            r = await http.patch(
                f"{url}/api/transcripts/t1",
                data=io.BytesIO(big),  # raw bytes this large: aiohttp warns
                headers={"Content-Type": "application/json"},
            )
            assert "1048576" in await api_error(r, 413, "RESOURCE_EXHAUSTED")
            r = await http.get(f"{url}/api/nope")
            assert "/api/nope" in await api_error(r, 404, "NOT_FOUND")
            r = await http.post(f"{url}/api/transcripts")
            await api_error(r, 405, "METHOD_NOT_ALLOWED")
            assert "GET" in r.headers["Allow"]
            r = await http.get(
                f"{url}/api/transcripts/t1/recording", headers={"Range": "bytes=5000-"}
            )
            await api_error(r, 416, "OUT_OF_RANGE")
            assert r.headers["Content-Range"] == "bytes */1000"
            assert r.headers["Cache-Control"] == "no-store"  # still hardened
            r = await http.get(f"{url}/nope")  # not the API: aiohttp's page as before
            assert r.status == 404 and r.content_type == "text/plain"


class Refusing(transcripts_pb2_grpc.TranscriptServiceServicer):
    """ListTranscripts ends with the status in `code`; GetRecording sends the head of a
    1 MiB recording, then fails with it (the store went away mid-download)."""

    code = grpc.StatusCode.INTERNAL

    async def ListTranscripts(
        self,
        request: transcripts_pb2.ListTranscriptsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> transcripts_pb2.ListTranscriptsResponse:
        await context.abort(self.code, f"refused with {self.code.name}")

    async def GetRecording(
        self,
        request: transcripts_pb2.GetRecordingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[transcripts_pb2.GetRecordingResponse]:
        size = min(65536, request.range_length or 65536)
        yield transcripts_pb2.GetRecordingResponse(
            data=bytes(size), mime_type="audio/ogg", total_size=1 << 20
        )
        if request.range_length != 1:  # the bridge's probe of the size passes
            await context.abort(self.code, "the recording store went away")


@contextlib.asynccontextmanager
async def refusing_bridge() -> AsyncGenerator[tuple[Refusing, str]]:
    """A bridge in front of a Refusing TranscriptService."""
    service = Refusing()  # type: ignore[abstract]  # stubs: all abstract
    server = grpc.aio.server()
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runner = web.AppRunner(create_app(BridgeSettings(grpc_target=f"127.0.0.1:{port}")))
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield service, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await server.stop(0)


async def test_a_busy_transcript_is_a_conflict_not_a_broken_gateway() -> None:
    """ABORTED (the service's busy transcript: retry) and the other statuses a request
    can earn get their HTTP meaning; only the unexpected ones stay 502."""
    async with refusing_bridge() as (service, url):
        cases = [
            (grpc.StatusCode.ABORTED, 409),
            (grpc.StatusCode.FAILED_PRECONDITION, 400),
            (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
            (grpc.StatusCode.INTERNAL, 502),
        ]
        async with aiohttp.ClientSession() as http:
            for code, status in cases:
                service.code = code
                r = await http.get(f"{url}/api/transcripts")
                assert code.name in await api_error(r, status, code.name)


async def test_a_recording_failing_mid_download_cuts_the_connection() -> None:
    """The store fails after the headers and some audio went out: the download must
    fail as a download (the connection cut), not get a JSON error written into the
    audio bytes and then wait forever for the rest of its Content-Length."""
    async with refusing_bridge() as (service, url):
        service.code = grpc.StatusCode.UNAVAILABLE
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/transcripts/t1/recording") as r:
                assert r.status == 200 and r.content_length == 1 << 20
                got = b""
                with pytest.raises(aiohttp.ClientPayloadError):
                    async with asyncio.timeout(30):  # without the fix: waits for the rest
                        async for part in r.content.iter_any():
                            got += part
            assert b"HTTP/1.1" not in got and b"UNAVAILABLE" not in got


async def test_an_upload_cut_off_mid_body_is_cancelled_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The browser closes the tab halfway through an upload (first chunk read, or later,
    with the gRPC call open): the upload is cancelled and one info line says so; it was
    a 500 with an ERROR traceback. The call never gets UploadRecording's `end`, so the
    service can store nothing of it even if the cancel reaches it as a half-close."""
    caplog.set_level(logging.INFO)
    async with upload_bridge() as (service, url):
        service.hold.clear()  # a call the bridge did not cancel would wait here for ever
        host, port = url.removeprefix("http://").split(":")
        head = f"POST /api/upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
        for sent in (100_000, 2 * CHUNK + 1000):  # within the first chunk; with the call open
            caplog.clear()
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"{head}Content-Length: 1000000\r\n\r\n".encode() + bytes(sent))
            await writer.drain()
            if sent > CHUNK:
                await until(lambda: len(service.messages) >= 2, "two chunks reached gRPC")
            writer.close()
            await writer.wait_closed()

            def answered() -> bool:
                return any(
                    "upload cut off" in r.getMessage() or r.levelno >= logging.ERROR
                    for r in caplog.records
                )

            await until(answered, "the bridge noticed the cut-off upload")
            no_tracebacks(caplog)
        await until(lambda: service.cancelled == 1, "the bridge cancelled the open call")
        assert not service.ends and service.completed == 0


async def test_a_refused_start_closes_1008_with_its_reason() -> None:
    """Audio before the start message, or a start that is not one: the error message,
    then close 1008 (policy violation) with the reason, not 1000 as if all went well."""
    async with start_scripted() as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            for send in (b"audio first", '{"type": "start", "config": {"encoding": "wma"}}'):
                async with http.ws_connect(f"{url}/ws") as ws:
                    if isinstance(send, bytes):
                        await ws.send_bytes(send)
                    else:
                        await ws.send_str(send)
                    told = await ws.receive_json()
                    assert told["code"] == "INVALID_ARGUMENT", told
                    closing = await ws.receive()
                    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
                    assert closing.data == aiohttp.WSCloseCode.POLICY_VIOLATION, closing
                    assert closing.extra == told["message"][:123]


def test_a_null_title_or_resume_id_is_absent() -> None:
    """`null` from a client's JSON is no value (it was the text "None": a transcript
    titled None, or a resume of transcript "None")."""
    from web_bridge.messages import stream_config

    config = stream_config({"title": None, "resume_transcript_id": None})
    assert (config.title, config.resume_transcript_id) == ("", "")
    assert stream_config({"title": "Board call"}).title == "Board call"


async def test_a_browser_gone_while_the_bridge_waits_for_a_stalled_service_is_noticed() -> None:
    """The service stopped reading, the bridge's queue is full and it no longer reads the
    socket, and then the browser goes: the relay must still notice (its call cancelled,
    the socket released), not wait for room forever with a call running for nobody.
    (A service still taking audio gets what the browser sent before leaving.)"""
    # The heartbeat is what shows an unread socket's loss: 2 s here instead of the
    # default 20 s (the same path, noticed ~2-3 s after the tab left rather than ~30 s).
    settings = BridgeSettings(max_buffered_bytes=256 * 1024, heartbeat_s=2.0)
    async with start_scripted(settings) as (service, _, app, url):
        service.reading.clear()  # stalled: its window fills, then the bridge's queue
        service.responses.put_nowait(Response(session=streaming_pb2.SessionInfo(transcript_id="t")))
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{url}/ws")
            await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
            assert (await ws.receive_json())["type"] == "session"
            (relay,) = app[RELAYS]

            async def flood() -> None:
                for _ in range(200):
                    await ws.send_bytes(bytes(65536))

            sender = asyncio.create_task(flood())
            await until(lambda: relay.audio.blocked, "the bridge stops reading the socket")
            conn = ws._conn  # aiohttp types it optional: an open websocket has one
            assert conn is not None and conn.transport is not None
            conn.transport.abort()  # the tab is gone
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await ws.close()  # the client's side released (nothing reaches the bridge)
            # The unread socket shows the loss only through the heartbeat (a ping every
            # heartbeat_s, half of it for the answer); without the fix the relay never ends.
            await until(lambda: not app[RELAYS], "the relay ended", seconds=90)
            assert relay._call is not None and relay._call.done()  # ended, not left running
