"""The aiohttp application: the page, the WebSocket relay and a JSON API over TranscriptService.

The bridge keeps no transcription state: every request maps onto gRPC calls, so it
can be restarted or run as several copies. Who may reach it and how is in
web_bridge.guard (Host, Origin, proxies, TLS, headers); sign-in in web_bridge.session
(the API key sealed in an HttpOnly cookie, so bridges sharing a session secret accept
each other's cookies); the transcript API in web_bridge.api; the socket in
web_bridge.relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from aiohttp import WSCloseCode, web
from transcribe.v1 import streaming_pb2_grpc

from clients.python.channel import channel_options
from web_bridge import api, catalogue, session, upload
from web_bridge.config import BridgeSettings
from web_bridge.guard import GUARD, ApiError, Guard, guard, security_headers
from web_bridge.messages import error
from web_bridge.relay import Relay
from web_bridge.sealed import SessionSealer
from web_bridge.state import CHANNEL, LEAVING, RELAYS, SEALER, SETTINGS

logger = logging.getLogger(__name__)
MAX_WS_MESSAGE = 2 * 1024 * 1024
LEAVE_S = 20.0
"""On SIGTERM, live streams get this long to be handed over (their last words stored and
shown, their pages told to resume) before aiohttp's shutdown stops reading the sockets."""
SHUTDOWN_S = 10.0
"""aiohttp's shutdown timeout under `web.run_app`, after `leave`: it waits this long for
the requests still running (an upload, a recording download; the sockets are closed by
then), then as long again for the ones it cancelled. LEAVE_S + 2 * SHUTDOWN_S = 40 s fits
the bridge pod's 45 s termination grace (tests/deploy/test_manifests.py); aiohttp's
default of 60 s made the worst case 140 s, so Kubernetes' SIGKILL would have ended it."""


def grpc_options() -> list[tuple[str, object]]:
    """The Python client's channel policy (round_robin over every address of the target,
    keepalive pings, retries of idempotent calls), under the bridge's own user agent.
    Round robin is what lets a bridge given several replicas spread streams over them
    and send a refused one elsewhere; gRPC's default, pick_first, uses one address."""
    agent = "grpc.primary_user_agent"
    return [o for o in channel_options() if o[0] != agent] + [(agent, "transcribe-bridge")]


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html")


async def ws_handler(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        heartbeat=request.app[SETTINGS].heartbeat_s, max_msg_size=MAX_WS_MESSAGE
    )
    await ws.prepare(request)
    if request.app[LEAVING].is_set():  # shutting down: the page retries elsewhere (or later)
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"bridge shutting down")
        return ws
    try:
        metadata = session.credentials(request)
    except ApiError as err:  # the page shows its sign-in form on this message
        await ws.send_json(error(err.code, err.message))
        await ws.close()
        return ws
    settings = request.app[SETTINGS]
    stub = streaming_pb2_grpc.TranscriptionServiceStub(request.app[CHANNEL])

    def connected() -> bool:
        return request.transport is not None and not request.transport.is_closing()

    relay = Relay(
        ws, stub, settings.max_buffered_chunks, settings.max_buffered_bytes, metadata, connected
    )
    request.app[RELAYS].add(relay)
    try:
        await relay.run()
    finally:
        request.app[RELAYS].discard(relay)
    return ws


async def config_js(request: web.Request) -> web.StreamResponse:
    """Settings the page needs, as JSON (no inline script, so the CSP stays strict)."""
    settings = request.app[SETTINGS]
    return web.json_response(
        {"chunk_ms": settings.chunk_ms, "max_upload_bytes": settings.max_upload_bytes}
    )


async def favicon(request: web.Request) -> web.StreamResponse:
    """Browsers and tools ask for /favicon.ico whatever the page links: the same icon."""
    resp = web.FileResponse(request.app[SETTINGS].static_dir / "favicon.svg")
    resp.content_type = "image/svg+xml"
    return resp


async def leave(app: web.Application, within: float = LEAVE_S) -> None:
    """What SIGTERM does before aiohttp's shutdown, which stops reading every socket: new
    sockets are turned away and each live stream is handed over (web_bridge.relay: its
    page ends the stream's audio, the last words are stored and shown, then the page
    resumes the transcript elsewhere); returns when they are, or after `within`."""
    app[LEAVING].set()
    live: set[Relay] = app[RELAYS]
    relays = list(live)
    await asyncio.gather(*(relay.going_away() for relay in relays))
    waits = [asyncio.ensure_future(relay.finished.wait()) for relay in relays]
    if waits:
        await asyncio.wait(waits, timeout=within)
    for wait in waits:
        wait.cancel()


async def leave_on_sigterm(app: web.Application) -> None:
    """On start-up under `web.run_app`: SIGTERM first hands the live streams over (`leave`),
    then stops the bridge as run_app's own handler does; a second SIGTERM stops it at once."""
    loop = asyncio.get_running_loop()
    leaving: list[asyncio.Task[None]] = []

    def stop() -> None:
        raise web.GracefulExit

    async def leave_then_stop() -> None:
        await leave(app)
        loop.call_soon(stop)

    def on_sigterm() -> None:
        if leaving:
            stop()
        leaving.append(asyncio.ensure_future(leave_then_stop()))

    with contextlib.suppress(NotImplementedError):  # no signal handlers (Windows)
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)


async def close_sockets(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for handlers (up to its shutdown timeout): a
    stream `leave` did not hand over is handed over with the audio read so far (sockets
    are no longer read), instead of holding the stop for the whole timeout and closing
    with no word to the page."""
    app[LEAVING].set()
    relays: set[Relay] = app[RELAYS]
    await asyncio.gather(*(relay.unread() for relay in list(relays)))


def create_app(settings: BridgeSettings) -> web.Application:
    """The bridge application for `settings`; the gRPC channel lives as long as the app.
    In api-key mode its start fails (SystemExit) in front of a service without keys."""
    app = web.Application(middlewares=[security_headers, guard], client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[GUARD] = Guard(settings)
    app[RELAYS] = set()
    app[LEAVING] = asyncio.Event()
    secret = settings.session_secret.encode()
    if not secret:
        logger.info(
            "no session secret set: sign-ins last until this bridge restarts "
            "(set TRANSCRIBE_BRIDGE_SESSION_SECRET to keep them and share them between bridges)"
        )
        secret = secrets.token_bytes(32)
    app[SEALER] = SessionSealer(secret, settings.session_hours * 3600)

    ca = Path(settings.grpc_ca_file).read_bytes() if settings.grpc_ca_file else None

    async def channel_ctx(app: web.Application) -> AsyncIterator[None]:
        if ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=ca)
            channel = grpc.aio.secure_channel(settings.grpc_target, creds, options=grpc_options())
        else:
            channel = grpc.aio.insecure_channel(settings.grpc_target, options=grpc_options())
        async with channel:
            app[CHANNEL] = channel
            await session.check_service_auth(app)
            yield

    app.cleanup_ctx.append(channel_ctx)
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/api/config", config_js)
    app.router.add_get("/api/session", session.session_state)
    app.router.add_post("/api/login", session.login)
    app.router.add_post("/api/logout", session.logout)
    app.router.add_get("/api/models", catalogue.list_models)
    app.router.add_get("/api/transcripts", api.list_transcripts)
    app.router.add_get("/api/search", api.search)
    app.router.add_get("/api/transcripts/{id}", api.get_transcript)
    app.router.add_patch("/api/transcripts/{id}", api.update_transcript)
    app.router.add_delete("/api/transcripts/{id}", api.delete_transcript)
    app.router.add_get("/api/transcripts/{id}/export", api.export)
    app.router.add_get("/api/transcripts/{id}/recording", api.recording)
    app.router.add_post("/api/upload", upload.upload)
    app.router.add_get("/api/voices", api.list_voices)
    app.router.add_delete("/api/voices/{name}", api.forget_voice)
    app.router.add_static("/static/", settings.static_dir)
    return app
