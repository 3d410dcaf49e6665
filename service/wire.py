"""Requests that are not valid protobuf become INVALID_ARGUMENT, not INTERNAL/UNKNOWN.

gRPC deserializes a request before any handler runs; a message with a string field
that is not UTF-8, or with corrupt wire format, would otherwise surface as INTERNAL
(streams) or UNKNOWN (unary calls). This interceptor wraps every method's
deserializer so that such bytes become an `Undecodable` marker, which the wrapped
handler turns into INVALID_ARGUMENT with a message that says what was wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from service.errors import InvalidArgumentError
from service.handlers import wrap_handler

HINT = "check that strings are valid UTF-8 and the client uses the transcribe.v1 definitions"


class Undecodable:
    """Stands in for a request whose bytes did not parse."""

    def __init__(self, error: str) -> None:
        self.error = error


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, and anything a bad message may raise
            return Undecodable(str(exc))

    return deserialize


def _message(bad: Undecodable, where: str = "the request") -> str:
    return f"{where} is not a valid protobuf message ({bad.error}); {HINT}"


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    n = 0
    async for request in requests:
        n += 1
        if isinstance(request, Undecodable):
            raise InvalidArgumentError(_message(request, f"message {n} of the stream"))
        yield request


async def drain(
    requests: AsyncIterator[Any], gap_s: float = 0.05, total_s: float = 1.0, limit: int = 100
) -> None:
    """Before a stream is refused, read what the client is sending right now, until it
    pauses for `gap_s` or half-closes (bounded by `total_s` and `limit` messages).

    grpc's asyncio client reports INTERNAL "Internal error from Core" instead of the
    server's status when one of its writes is in flight as the status arrives
    (grpc/grpc#36066). A client refused at once (too many streams, bad credentials or
    config) is often still sending its first burst; refusing in the pause after it
    lets the client see the real status. A client that waits for an answer before
    sending audio (ours does) sends nothing, and is answered after `gap_s`.
    """
    it = aiter(requests)
    deadline = asyncio.get_running_loop().time() + total_s
    for _ in range(limit):
        wait = min(gap_s, deadline - asyncio.get_running_loop().time())
        if wait <= 0:
            return
        try:
            await asyncio.wait_for(anext(it), wait)
        except asyncio.CancelledError:
            raise
        except Exception:  # a pause, the end of the stream, or a failed stream
            return


class WireFormatInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler's request deserializer (see the module docstring)."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        des = handler.request_deserializer
        return wrap_handler(handler, _unary, _stream, _safe(des) if des is not None else None)


async def _unary(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise InvalidArgumentError(_message(request))


async def _stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    return _checked(requests)
