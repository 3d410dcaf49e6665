"""Sign-in: the page posts an API key, the bridge checks it with the service and keeps it
sealed in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS); every gRPC call then
carries the key as `authorization: Bearer`, so the service decides the principal.

In `api-key` mode (the default off localhost) the bridge also refuses to relay anything
for a browser that is not signed in, and refuses sign-ins, and its own start, while the
service answers calls that carry no key: a bridge on the network must never turn a
keyless localhost server into an open one.
"""

from __future__ import annotations

import logging

import grpc
from aiohttp import web
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from web_bridge import inputs
from web_bridge.guard import ApiError
from web_bridge.state import CHANNEL, SEALER, SETTINGS

logger = logging.getLogger(__name__)
pb = transcripts_pb2
COOKIE = "transcribe_session"
Metadata = tuple[tuple[str, str], ...]
PROBE_TIMEOUT_S = 5.0


def bearer(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)


def signed_in_key(request: web.Request) -> str | None:
    """The API key sealed in this browser's cookie, if genuine and not expired."""
    token = request.cookies.get(COOKIE)
    return request.app[SEALER].open(token) if token else None


def credentials(request: web.Request) -> Metadata:
    """gRPC metadata of the signed-in browser; without a sign-in, none (auth off) or,
    in api-key mode, 401 before anything reaches the service."""
    key = signed_in_key(request)
    if key is not None:
        return bearer(key)
    if request.app[SETTINGS].auth_mode == "api-key":
        raise ApiError(401, "UNAUTHENTICATED", "sign in with an API key first")
    return ()


def _stub(request: web.Request) -> transcripts_pb2_grpc.TranscriptServiceAsyncStub:
    return transcripts_pb2_grpc.TranscriptServiceStub(request.app[CHANNEL])


async def accepts_keyless(stub: transcripts_pb2_grpc.TranscriptServiceAsyncStub) -> bool:
    """Whether the service answers a call that carries no key (UNAUTHENTICATED = no)."""
    try:
        await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=1), timeout=PROBE_TIMEOUT_S)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.UNAUTHENTICATED:
            return False
        raise
    return True


async def session_state(request: web.Request) -> web.StreamResponse:
    """Whether the page may use the service as it is (signed in, or auth is off)."""
    try:
        metadata = credentials(request)
        await _stub(request).ListTranscripts(
            pb.ListTranscriptsRequest(page_size=1), metadata=metadata
        )
    except ApiError:
        return web.json_response({"authenticated": False, "login_required": True})
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        return web.json_response({"authenticated": False, "login_required": True})
    return web.json_response({"authenticated": True, "login_required": bool(metadata)})


async def login(request: web.Request) -> web.StreamResponse:
    """Check an API key with the service; on success keep it sealed in an HttpOnly cookie."""
    key = inputs.api_key(await inputs.json_object(request))
    stub = _stub(request)
    # UNAUTHENTICATED becomes 401 in the middleware
    await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=1), metadata=bearer(key))
    if request.app[SETTINGS].auth_mode == "api-key" and await accepts_keyless(stub):
        logger.error("refused a sign-in: the transcription service does not check API keys")
        raise ApiError(
            503, "FAILED_PRECONDITION", "the transcription service does not check API keys"
        )
    sealer = request.app[SEALER]
    resp = web.json_response({"authenticated": True})
    resp.set_cookie(
        COOKIE,
        sealer.seal(key),
        httponly=True,
        samesite="Strict",
        secure=request.secure,  # https, directly or from a trusted proxy
        path="/",
        max_age=int(sealer.lifetime_s),
    )
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    resp = web.json_response({"authenticated": False})
    resp.del_cookie(COOKIE, path="/", secure=request.secure, httponly=True, samesite="Strict")
    return resp


async def check_service_auth(app: web.Application) -> None:
    """At start, in api-key mode: refuse to serve in front of a service that takes calls
    without a key. A service that cannot be reached yet is let through with a warning:
    every request then still needs a sign-in, and sign-in repeats this check."""
    settings = app[SETTINGS]
    if settings.auth_mode != "api-key":
        if not settings.local:
            logger.warning(
                "--auth none on %s: anyone who can reach this bridge uses the service "
                "as the bridge does",
                settings.host,
            )
        return
    stub = transcripts_pb2_grpc.TranscriptServiceStub(app[CHANNEL])
    try:
        open_service = await accepts_keyless(stub)
    except grpc.aio.AioRpcError as err:
        logger.warning(
            "could not check that %s requires API keys (%s); sign-in will check it",
            settings.grpc_target,
            err.code().name,
        )
        return
    if open_service:
        raise SystemExit(
            f"refusing to serve on {settings.host}: the transcription service at "
            f"{settings.grpc_target} answers without an API key, so anyone reaching this "
            "bridge would read every transcript. Give transcribe-server --api-keys-file, "
            "or pass --auth none to the bridge to allow unauthenticated access explicitly."
        )
