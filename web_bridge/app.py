"""The aiohttp application: the page, the WebSocket relay and a JSON API over TranscriptService.

The bridge keeps no transcription state: every request maps onto gRPC calls, so
it can be restarted or run as several copies. Login: the page posts an API key,
the bridge checks it with the service and keeps it in an HttpOnly, SameSite=Strict
cookie (unreadable by scripts, not sent by other sites); every gRPC call then
carries it as `authorization: Bearer`, so the service decides the principal and
scopes every transcript to it. Keeping the key itself (not a bridge-side session)
keeps the bridge stateless: a restarted or second bridge accepts the same cookie.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.field_mask_pb2 import FieldMask
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from web_bridge.config import BridgeSettings
from web_bridge.relay import relay

logger = logging.getLogger(__name__)
pb = transcripts_pb2
SETTINGS = web.AppKey("settings", BridgeSettings)
CHANNEL = web.AppKey("channel", grpc.aio.Channel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}
EXPORTS = {
    "txt": pb.EXPORT_FORMAT_TXT,
    "srt": pb.EXPORT_FORMAT_SRT,
    "vtt": pb.EXPORT_FORMAT_VTT,
    "json": pb.EXPORT_FORMAT_JSON,
}
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
COOKIE = "transcribe_key"
MAX_KEY_CHARS = 512


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Strict headers on every response; gRPC errors become JSON errors with HTTP codes."""
    try:
        resp = await handler(request)
    except grpc.aio.AioRpcError as err:
        resp = web.json_response(
            {"error": {"code": err.code().name, "message": err.details()}},
            status=HTTP_STATUS.get(err.code(), 502),
        )
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Permissions-Policy"] = "microphone=(self)"
    if request.path.startswith("/api/"):
        resp.headers.setdefault("Cache-Control", "no-store")  # private transcripts
    return resp


def origin_allowed(request: web.Request) -> bool:
    """Same origin or a configured one; a request without Origin is not from a browser page."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = set(request.app[SETTINGS].allowed_origins)
    allowed.add(f"{request.scheme}://{request.host}")
    return origin in allowed


def _check_origin(request: web.Request) -> None:
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="origin not allowed")


def credentials(request: web.Request) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the logged-in API key, if any (the service checks it)."""
    key = request.cookies.get(COOKIE, "")
    return (("authorization", f"Bearer {key}"),) if key else ()


async def session_state(request: web.Request) -> web.StreamResponse:
    """Whether the page may use the service as it is (logged in, or auth is off)."""
    try:
        await _stub(request).ListTranscripts(
            pb.ListTranscriptsRequest(page_size=1), metadata=credentials(request)
        )
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        return web.json_response({"authenticated": False, "login_required": True})
    return web.json_response({"authenticated": True, "login_required": COOKIE in request.cookies})


async def login(request: web.Request) -> web.StreamResponse:
    """Check an API key with the service; on success keep it in an HttpOnly cookie."""
    _check_origin(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='expected JSON {"api_key": "..."}') from None
    key = body.get("api_key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
        raise web.HTTPBadRequest(text='expected JSON {"api_key": "..."}')
    key = key.strip()
    await _stub(request).ListTranscripts(  # UNAUTHENTICATED becomes 401 in the middleware
        pb.ListTranscriptsRequest(page_size=1), metadata=(("authorization", f"Bearer {key}"),)
    )
    resp = web.json_response({"authenticated": True})
    resp.set_cookie(COOKIE, key, httponly=True, samesite="Strict", secure=request.secure, path="/")
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    resp = web.json_response({"authenticated": False})
    resp.del_cookie(COOKIE, path="/")
    return resp


def _stub(request: web.Request) -> transcripts_pb2_grpc.TranscriptServiceAsyncStub:
    return transcripts_pb2_grpc.TranscriptServiceStub(request.app[CHANNEL])


def _secs(d: Any) -> float:
    return round(float(d.seconds) + float(d.nanos) / 1e9, 3)


def transcript_json(t: pb.Transcript) -> dict[str, Any]:
    return {
        "id": t.id,
        "title": t.title,
        "tags": list(t.tags),
        "keywords": list(t.keywords),
        "status": pb.TranscriptStatus.Name(t.status).removeprefix("TRANSCRIPT_STATUS_").lower(),
        "created": t.create_time.ToJsonString(),
        "duration": _secs(t.duration),
        "segment_count": t.segment_count,
        "recording": bool(t.recording_mime_type),
        "segments": [
            {
                "index": s.index,
                "start": _secs(s.start_offset),
                "end": _secs(s.end_offset),
                "text": s.text,
            }
            for s in t.segments
        ],
    }


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html")


async def ws_handler(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=2 * 1024 * 1024)
    await ws.prepare(request)
    stub = streaming_pb2_grpc.TranscriptionServiceStub(request.app[CHANNEL])
    await relay(ws, stub, request.app[SETTINGS].max_buffered_chunks, credentials(request))
    return ws


async def list_transcripts(request: web.Request) -> web.StreamResponse:
    q = request.query
    resp = await _stub(request).ListTranscripts(
        pb.ListTranscriptsRequest(
            page_size=int(q.get("page_size", "20") or 20),
            page_token=q.get("page_token", ""),
            tags=[t for t in q.getall("tag", []) if t],
        ),
        metadata=credentials(request),
    )
    return web.json_response(
        {
            "transcripts": [transcript_json(t) for t in resp.transcripts],
            "next_page_token": resp.next_page_token,
        }
    )


async def search(request: web.Request) -> web.StreamResponse:
    resp = await _stub(request).SearchTranscripts(
        pb.SearchTranscriptsRequest(
            query=request.query.get("q", ""), page_token=request.query.get("page_token", "")
        ),
        metadata=credentials(request),
    )
    hits = [
        {
            "transcript_id": h.transcript_id,
            "title": h.transcript_title,
            "segment_index": h.segment_index,
            "start": _secs(h.start_offset),
            "snippet": h.snippet,
            "highlights": [[r.start, r.end] for r in h.highlights],
            "kind": "transcript" if h.kind == pb.SEARCH_HIT_KIND_TRANSCRIPT else "segment",
        }
        for h in resp.hits
    ]
    return web.json_response({"hits": hits, "next_page_token": resp.next_page_token})


async def get_transcript(request: web.Request) -> web.StreamResponse:
    resp = await _stub(request).GetTranscript(
        pb.GetTranscriptRequest(transcript_id=request.match_info["id"]),
        metadata=credentials(request),
    )
    return web.json_response(transcript_json(resp.transcript))


async def update_transcript(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    t = pb.Transcript(id=request.match_info["id"])
    paths = []
    if "title" in body:
        t.title = str(body["title"])
        paths.append("title")
    if "tags" in body:
        t.tags.extend(str(x) for x in body["tags"])
        paths.append("tags")
    resp = await _stub(request).UpdateTranscript(
        pb.UpdateTranscriptRequest(transcript=t, update_mask=FieldMask(paths=paths)),
        metadata=credentials(request),
    )
    return web.json_response(transcript_json(resp.transcript))


async def delete_transcript(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    await _stub(request).DeleteTranscript(
        pb.DeleteTranscriptRequest(transcript_id=request.match_info["id"]),
        metadata=credentials(request),
    )
    return web.json_response({"deleted": request.match_info["id"]})


async def export(request: web.Request) -> web.StreamResponse:
    fmt = EXPORTS.get(request.query.get("format", "txt"))
    if fmt is None:
        raise web.HTTPBadRequest(text="format must be txt, srt, vtt or json")
    resp = await _stub(request).ExportTranscript(
        pb.ExportTranscriptRequest(transcript_id=request.match_info["id"], format=fmt),
        metadata=credentials(request),
    )
    return web.Response(
        body=resp.content,
        content_type=resp.mime_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{resp.file_name}"'},
    )


async def recording(request: web.Request) -> web.StreamResponse:
    """The recording, with HTTP Range so the audio element can seek."""
    stub = _stub(request)
    tid = request.match_info["id"]
    start, length, status = 0, 0, 200
    header = request.headers.get("Range")
    head = None
    async for msg in stub.GetRecording(
        pb.GetRecordingRequest(transcript_id=tid, range_length=1), metadata=credentials(request)
    ):
        head = msg
        break
    assert head is not None
    total = head.total_size
    if header:
        m = RANGE.match(header.strip())
        if not m or (not m.group(1) and not m.group(2)):
            raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{total}"})
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
        else:  # suffix range: the last N bytes
            start = max(0, total - int(m.group(2)))
            end = total - 1
        if start >= total or end < start:
            raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{total}"})
        length, status = end - start + 1, 206
    else:
        length = total
    resp = web.StreamResponse(status=status)
    resp.content_type = head.mime_type
    resp.content_length = length
    resp.headers["Accept-Ranges"] = "bytes"
    if status == 206:
        resp.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{total}"
    await resp.prepare(request)
    async for msg in stub.GetRecording(
        pb.GetRecordingRequest(transcript_id=tid, range_start=start, range_length=length),
        metadata=credentials(request),
    ):
        await resp.write(msg.data)
    await resp.write_eof()
    return resp


async def config_js(request: web.Request) -> web.StreamResponse:
    """Settings the page needs, as JSON (no inline script, so the CSP stays strict)."""
    return web.json_response({"chunk_ms": request.app[SETTINGS].chunk_ms})


def create_app(settings: BridgeSettings) -> web.Application:
    """The bridge application for `settings`; the gRPC channel lives as long as the app."""
    app = web.Application(middlewares=[security_headers], client_max_size=1024 * 1024)
    app[SETTINGS] = settings

    ca = Path(settings.grpc_ca_file).read_bytes() if settings.grpc_ca_file else None

    async def channel_ctx(app: web.Application) -> AsyncIterator[None]:
        if ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=ca)
            channel = grpc.aio.secure_channel(settings.grpc_target, creds)
        else:
            channel = grpc.aio.insecure_channel(settings.grpc_target)
        async with channel:
            app[CHANNEL] = channel
            yield

    app.cleanup_ctx.append(channel_ctx)
    app.router.add_get("/", index)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/api/config", config_js)
    app.router.add_get("/api/session", session_state)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/transcripts", list_transcripts)
    app.router.add_get("/api/search", search)
    app.router.add_get("/api/transcripts/{id}", get_transcript)
    app.router.add_patch("/api/transcripts/{id}", update_transcript)
    app.router.add_delete("/api/transcripts/{id}", delete_transcript)
    app.router.add_get("/api/transcripts/{id}/export", export)
    app.router.add_get("/api/transcripts/{id}/recording", recording)
    app.router.add_static("/static/", settings.static_dir)
    return app
