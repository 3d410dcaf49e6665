"""Who is calling: API keys mapped to principals, checked by one server interceptor.

Keys live in a file, one `principal:key` or `principal:sha256:<hex digest>` per
line (`#` comments), and are held only as SHA-256 digests in memory. The
interceptor rejects calls without a valid `authorization: Bearer <key>` (or
`x-api-key`) with UNAUTHENTICATED, except health checks and reflection, and
runs the handler with the caller's principal in a context variable, so
`principal_of(context)` needs no lookup. With authentication off (local use)
every caller is the principal "local".
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from service.errors import UnauthenticatedError
from service.handlers import wrap_handler
from service.wire import drain

LOCAL_PRINCIPAL = "local"
_principal: contextvars.ContextVar[str] = contextvars.ContextVar(
    "principal", default=LOCAL_PRINCIPAL
)
EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def current_principal() -> str:
    """The principal of the call running in this context (for log records)."""
    return _principal.get()


def principal_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The principal of the current call (set by the interceptor; "local" without auth)."""
    del context
    return _principal.get()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(lines: list[str], source: str) -> dict[str, str]:
    """digest -> principal from `principal:key` / `principal:sha256:<hex>` entries;
    ValueError names the bad entry (never the key)."""
    keys: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        principal, sep, secret = line.partition(":")
        if not sep or not principal or not secret:
            raise ValueError(f"{source}:{n}: expected principal:key or principal:sha256:<hex>")
        if secret.startswith("sha256:"):
            keys[secret.removeprefix("sha256:").lower()] = principal
        else:
            keys[digest(secret)] = principal
    return keys


def load_keys(path: Path | None = None, inline: str = "") -> dict[str, str]:
    """Keys from a file (one entry per line, `#` comments) and/or a comma-separated
    string (the TRANSCRIBE_API_KEYS environment variable); at least one key."""
    keys: dict[str, str] = {}
    if path is not None:
        keys.update(parse_keys(path.read_text().splitlines(), str(path)))
    if inline:
        keys.update(parse_keys(inline.split(","), "--api-keys entry"))
    if not keys:
        raise ValueError(f"{path or '--api-keys'}: no API keys")
    return keys


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call and runs its handler as the key's principal."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = keys

    def _principal(self, metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
        md = {k.lower(): v for k, v in metadata}
        raw = md.get("authorization") or md.get("x-api-key")
        if not isinstance(raw, str):
            return None
        key = raw.removeprefix("Bearer ").strip()
        wanted = digest(key)
        for known, principal in self._keys.items():
            if hmac.compare_digest(known, wanted):
                return principal
        return None

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        principal = self._principal(tuple(handler_call_details.invocation_metadata or ()))
        return _wrap(handler, principal)


MESSAGE = "missing or invalid API key: send `authorization: Bearer <key>` metadata"


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any], principal: str | None
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, refusing unauthenticated callers and running as `principal`."""

    async def unary(request: Any) -> None:
        if principal is None:
            raise UnauthenticatedError(MESSAGE)
        _principal.set(principal)

    async def stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if principal is None:
            await drain(requests)  # refuse in the client's pause (see wire.drain)
            raise UnauthenticatedError(MESSAGE)
        _principal.set(principal)
        return requests

    return wrap_handler(handler, unary, stream)
