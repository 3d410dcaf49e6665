"""The aiohttp application: the page, the WebSocket relay and a JSON API over TranscriptService.

The bridge keeps no transcription state: every request maps onto gRPC calls, so it
can be restarted or run as several copies. Who may reach it and how is in
web_bridge.guard (Host, Origin, proxies, TLS, headers); sign-in in web_bridge.session
(the API key sealed in an HttpOnly cookie, so bridges sharing a session secret accept
each other's cookies); the transcript API in web_bridge.api; the socket in
web_bridge.relay.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from aiohttp import web
from transcribe.v1 import streaming_pb2_grpc

from clients.python.channel import channel_options
from web_bridge import api, catalogue, session, upload
from web_bridge.config import BridgeSettings
from web_bridge.guard import GUARD, ApiError, Guard, guard, security_headers
from web_bridge.messages import error
from web_bridge.relay import Relay
from web_bridge.sealed import SessionSealer
from web_bridge.state import CHANNEL, RELAYS, SEALER, SETTINGS

logger = logging.getLogger(__name__)
MAX_WS_MESSAGE = 2 * 1024 * 1024


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
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_WS_MESSAGE)
    await ws.prepare(request)
    try:
        metadata = session.credentials(request)
    except ApiError as err:  # the page shows its sign-in form on this message
        await ws.send_json(error(err.code, err.message))
        await ws.close()
        return ws
    settings = request.app[SETTINGS]
    stub = streaming_pb2_grpc.TranscriptionServiceStub(request.app[CHANNEL])
    relay = Relay(ws, stub, settings.max_buffered_chunks, settings.max_buffered_bytes, metadata)
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


def create_app(settings: BridgeSettings) -> web.Application:
    """The bridge application for `settings`; the gRPC channel lives as long as the app.
    In api-key mode its start fails (SystemExit) in front of a service without keys."""
    app = web.Application(middlewares=[security_headers, guard], client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[GUARD] = Guard(settings)
    app[RELAYS] = set()
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
