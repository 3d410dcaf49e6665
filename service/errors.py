"""Domain errors and the single table that maps them to gRPC status codes.

Code below the servicers raises these; only `status_for` turns them into gRPC
statuses, so every RPC reports the same situation the same way.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base of errors whose message is safe and useful to show to the caller."""


class InvalidArgumentError(ServiceError):
    """The request is malformed: bad config, bad field value, undecodable audio."""


class NotFoundError(ServiceError):
    """The transcript does not exist or belongs to another principal."""


class UnauthenticatedError(ServiceError):
    """Credentials are missing or wrong."""


class ResourceExhaustedError(ServiceError):
    """A configured limit was hit (streams, duration, message size, rate)."""


class UnavailableError(ServiceError):
    """A dependency (storage) could not be reached after retries."""


class EngineError(ServiceError):
    """The speech model failed on this stream's audio."""


_TABLE: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    EngineError: grpc.StatusCode.INTERNAL,
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the gRPC status code and caller-facing message for an exception."""
    for cls in type(exc).__mro__:
        code = _TABLE.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error; the server log has the details"
