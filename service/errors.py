"""Domain errors and the single table that maps them to gRPC status codes.

Code below the servicers raises these; only `status_for` turns them into gRPC
statuses, so every RPC reports the same situation the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import grpc

P = ParamSpec("P")
R = TypeVar("R")


class ServiceError(Exception):
    """Base of errors whose message is safe and useful to show to the caller."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        """Short label for metrics (e.g. "idle"); the status code's name when empty."""


class InvalidArgumentError(ServiceError):
    """The request is malformed: bad config, bad field value, undecodable audio."""


class NotFoundError(ServiceError):
    """The transcript does not exist or belongs to another principal."""


class UnauthenticatedError(ServiceError):
    """Credentials are missing or wrong."""


class ResourceExhaustedError(ServiceError):
    """A configured limit was hit (streams, duration, message size, rate)."""


class AbortedError(ServiceError):
    """Another writer holds the transcript (or took it over); retry after it ends."""


class UnavailableError(ServiceError):
    """A dependency (storage) could not be reached after retries."""


class DeadlineExceededError(ServiceError):
    """The client took too long: e.g. an upload that stopped sending."""


class EngineError(ServiceError):
    """The speech model failed on this stream's audio."""


_TABLE: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    AbortedError: grpc.StatusCode.ABORTED,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    EngineError: grpc.StatusCode.INTERNAL,
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the gRPC status code and caller-facing message for an exception."""
    for cls in type(exc).__mro__:
        code = _TABLE.get(cls)
        if code is not None:
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error; the server log has the details"


def log_unexpected(logger: logging.Logger, exc: BaseException, what: str) -> None:
    """Log exceptions that are not ServiceErrors with their traceback (INTERNAL ones)."""
    if not isinstance(exc, ServiceError):
        logger.error("unexpected error in %s", what, exc_info=exc)


def grpc_errors(
    logger: logging.Logger,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorator for unary grpc.aio handlers: domain errors become statuses via `status_for`.

    The handler's last positional argument must be the ServicerContext.
    """

    def wrap(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            context = cast("grpc.aio.ServicerContext[Any, Any]", args[-1])
            try:
                return await fn(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                log_unexpected(logger, exc, fn.__qualname__)
                code, message = status_for(exc)
                await context.abort(code, message)
                raise  # unreachable: abort raises

        return handler

    return wrap
