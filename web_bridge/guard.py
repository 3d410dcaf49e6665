"""Who may reach the bridge, over what: Host and Origin checks, trusted proxies, TLS,
strict response headers, and the JSON error shape every refusal uses.

DNS rebinding: a hostile page can make its own name resolve to 127.0.0.1 and then read
the bridge as "same origin"; its requests carry `Host: evil.example`. So the bridge
answers only Host names it was told about (by default the address it listens on and the
localhost names), and requests from another Origin are refused on the API and the socket.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web

from web_bridge.config import LOCAL_HOSTS, BridgeSettings

logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# 'self' covers ws: and wss: on the page's own host and port (CSP Level 3, which Chromium
# and Firefox follow), so no other host can be reached from the page.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    # google.rpc.Code's HTTP mapping: a busy transcript (ABORTED) is a conflict to retry,
    # not a broken gateway (502, what anything unlisted gets)
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}
HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "RESOURCE_EXHAUSTED",
    416: "OUT_OF_RANGE",
}
"""Codes for aiohttp's own refusals on the API (the rest: the HTTP reason, upper-case)."""
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class ApiError(Exception):
    """A refusal answered as `{"error": {"code", "message"[, "field"]}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return web.json_response({"error": error}, status=self.status)


UNREACHABLE = (
    "failed to connect",
    "connections to all backends failing",
    "dns resolution failed",
    "socket closed",
    "connection reset",
)
"""What gRPC's own UNAVAILABLE details say when the channel, not the service, failed."""
UNREACHABLE_MESSAGE = (
    "The transcription service cannot be reached right now (it may be starting, restarting "
    "or down). Try again in a moment; if it goes on, ask whoever runs this server to check it."
)


def grpc_message(err: grpc.aio.AioRpcError) -> str:
    """The message a person is shown for a gRPC error: the service's own words, except when
    the channel failed, whose details ("failed to connect to all addresses; last error: ...
    ipv4:10.0.0.5:50051 ...") help an operator, not the user: logged, and replaced."""
    details = err.details() or ""
    if err.code() == grpc.StatusCode.UNAVAILABLE and any(
        part in details.lower() for part in UNREACHABLE
    ):
        logger.warning("transcription service unreachable: %s", details)
        return UNREACHABLE_MESSAGE
    return details


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", f"{field}: {message}", field)


def hostname(authority: str) -> str:
    """The name part of a Host header or address, lower-case, without port or brackets."""
    name = authority.strip().lower()
    if name.startswith("["):
        return name[1 : name.find("]")] if "]" in name else name
    if name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The Host, Origin and proxy rules of one bridge, resolved once from its settings."""

    def __init__(self, settings: BridgeSettings) -> None:
        configured = {hostname(h) for h in settings.allowed_hosts}
        self.any_host = "*" in configured
        wildcard = settings.host in WILDCARD_HOSTS
        if configured:
            self.hosts = frozenset(configured)
        else:
            own = set() if wildcard else {hostname(settings.host)}
            self.hosts = frozenset(own | set(LOCAL_HOSTS))
        self.any_ip = wildcard and not configured
        self.origins = frozenset(settings.allowed_origins)
        self.proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        )

    def host_allowed(self, host: str) -> bool:
        name = hostname(host)
        return self.any_host or name in self.hosts or (self.any_ip and _is_ip(name))

    def from_trusted_proxy(self, request: web.Request) -> bool:
        if not self.proxies or request.remote is None:
            return False
        try:
            peer = ipaddress.ip_address(request.remote)
        except ValueError:
            return False
        return any(peer in net for net in self.proxies)

    def forwarded_https(self, request: web.Request) -> bool:
        """X-Forwarded-Proto says https, and the peer is a configured proxy (the last
        proxy's value counts: earlier ones are whatever the client sent)."""
        proto = request.headers.get("X-Forwarded-Proto", "")
        last = proto.split(",")[-1].strip().lower()
        return last == "https" and self.from_trusted_proxy(request)

    def origin_allowed(self, request: web.Request) -> bool:
        """No Origin (not a browser page), the page's own, or a configured one."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        return origin in self.origins or origin == f"{request.scheme}://{request.host}"


GUARD = web.AppKey("guard", Guard)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse unknown Host names (421) and foreign Origins on the API and socket (403);
    a trusted proxy's X-Forwarded-Proto: https makes the request count as HTTPS."""
    rules = request.app[GUARD]
    if not rules.host_allowed(request.host):
        raise ApiError(
            421,
            "MISDIRECTED_REQUEST",
            f"Host {request.host!r} is not served here (see --allowed-host)",
            "Host",
        )
    if request.scheme != "https" and rules.forwarded_https(request):
        request = request.clone(scheme="https")
    if (request.path.startswith("/api/") or request.path == "/ws") and not rules.origin_allowed(
        request
    ):
        raise ApiError(403, "PERMISSION_DENIED", "origin not allowed", "Origin")
    return await handler(request)


def _harden(request: web.Request, headers: Any) -> None:
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Permissions-Policy"] = "microphone=(self)"
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")  # private transcripts


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Strict headers on every response; refusals and gRPC errors become JSON errors."""
    try:
        resp = await handler(request)
    except ApiError as err:
        resp = err.response()
    except grpc.aio.AioRpcError as err:
        resp = web.json_response(
            {"error": {"code": err.code().name, "message": grpc_message(err)}},
            status=HTTP_STATUS.get(err.code(), 502),
        )
    except web.HTTPException as exc:  # aiohttp's own (404, 405, 413, 416)
        if exc.status < 400 or not request.path.startswith("/api/"):
            _harden(request, exc.headers)  # the page and redirects: as aiohttp made them
            raise
        resp = _api_refusal(request, exc)
    _harden(request, resp.headers)
    return resp


def _api_refusal(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's plain-text refusal as the API's JSON error shape, its headers kept
    (Allow, Content-Range), so the page can show the message."""
    code = HTTP_CODES.get(exc.status, (exc.reason or "error").upper().replace(" ", "_"))
    if exc.status == 404:
        message = f"no API resource at {request.path}"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:
        message = exc.text or exc.reason or f"HTTP {exc.status}"
        message = message.removeprefix(f"{exc.status}: ")
    resp = ApiError(exc.status, code, message).response()
    for name in ("Allow", "Content-Range"):
        if name in exc.headers:
            resp.headers[name] = exc.headers[name]
    return resp


def server_ssl_context(settings: BridgeSettings) -> ssl.SSLContext | None:
    """The HTTPS context from --tls-cert/--tls-key, or None for plain HTTP."""
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return ctx
