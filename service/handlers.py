"""One way to wrap a gRPC method handler whatever its kind, for the server's interceptors.

Interceptors (API keys in service/auth.py, wire format in service/wire.py) must run
their check before every handler. Each used to rebuild handlers kind by kind, and
both returned client-streaming (stream_unary) handlers unwrapped: such an RPC would
have skipped authentication. Here every kind is wrapped the same way, and a handler
of a kind this module does not know is refused, never passed through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from service.errors import ServiceError, status_for

logger = logging.getLogger(__name__)
T = TypeVar("T")

UnaryCheck = Callable[[Any], Awaitable[None]]
"""Runs before a handler with one request; raises a ServiceError to refuse the call."""
StreamCheck = Callable[[AsyncIterator[Any]], Awaitable[AsyncIterator[Any]]]
"""Runs before a handler with a request stream; returns the stream the handler reads
(the same or a checking wrapper), or raises a ServiceError to refuse the call."""


async def _checked(check: Awaitable[T], context: grpc.aio.ServicerContext[Any, Any]) -> T:
    try:
        return await check
    except ServiceError as exc:
        code, message = status_for(exc)
        await context.abort(code, message)
        raise  # unreachable: abort raises


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: UnaryCheck,
    stream: StreamCheck,
    deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with `unary` or `stream` run first (in the call's context, so context
    variables they set are seen by the handler); `deserializer` replaces the handler's
    own when given. A kind of handler not known here is refused with INTERNAL."""
    h: Any = handler
    des = deserializer or h.request_deserializer
    ser = h.response_serializer
    kind = (bool(h.request_streaming), bool(h.response_streaming))
    if kind == (False, False) and h.unary_unary is not None:
        uu = h.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            await _checked(unary(request), context)
            return await uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, des, ser)
    if kind == (False, True) and h.unary_stream is not None:
        us = h.unary_stream  # an async generator function under grpc.aio

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await _checked(unary(request), context)
            async for item in us(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(unary_stream, des, ser)
    if kind == (True, False) and h.stream_unary is not None:
        su = h.stream_unary

        async def stream_unary(requests: Any, context: Any) -> Any:
            return await su(await _checked(stream(requests), context), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, des, ser)
    if kind == (True, True) and h.stream_stream is not None:
        ss = h.stream_stream

        async def stream_stream(requests: Any, context: Any) -> AsyncIterator[Any]:
            async for item in ss(await _checked(stream(requests), context), context):
                yield item

        return grpc.stream_stream_rpc_method_handler(stream_stream, des, ser)
    return _refused(kind)


def _refused(kind: tuple[bool, bool]) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that refuses every call: its kind could not be checked, so it is not run."""

    async def refuse(request: Any, context: Any) -> Any:
        logger.error("refused a call to a handler of unknown kind %s: it cannot be checked", kind)
        code, message = status_for(RuntimeError("unknown handler kind"))
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refuse)
