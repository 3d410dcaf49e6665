"""One place for how a client talks to the server: TLS, the API key, retries, keepalive.

Every call made on a channel from `connect()` carries the same credentials and policy, so
the streaming helper, the transcript helpers, the CLI and hand-written stubs all agree.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

import grpc

_SERVICE = "transcribe.v1.TranscriptService"
# Calls that are safe to send twice. DeleteTranscript is not among them: a retry of a
# delete that went through would report NOT_FOUND for a call that succeeded.
_IDEMPOTENT = [
    "ListTranscripts",
    "GetTranscript",
    "SearchTranscripts",
    "ExportTranscript",
    "ListVoices",
]
_RETRY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# gRPC retries these itself, with exponential backoff and jitter; UpdateTranscript sets
# fields to given values, so sending it twice is harmless. Unary calls get a deadline;
# GetRecording (a download of any size) and the live stream do not.
# round_robin: a target with several addresses (`ipv4:a:50051,b:50051`, or a DNS name such
# as a Kubernetes headless Service) gets a connection to each, and each call goes to the
# next ready one. gRPC's default, pick_first, would send every stream to the first address,
# and a stream refused there (at its limit) would be retried on the same replica.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": _SERVICE, "method": m} for m in _IDEMPOTENT],
                "timeout": "30s",
                "retryPolicy": _RETRY,
            },
            {
                "name": [{"service": _SERVICE, "method": "UpdateTranscript"}],
                "timeout": "30s",
                "retryPolicy": _RETRY,
            },
            {"name": [{"service": _SERVICE, "method": "DeleteTranscript"}], "timeout": "30s"},
            {"name": [{"service": _SERVICE, "method": "GetRecording"}], "retryPolicy": _RETRY},
        ],
    }
)
# Pings find a dead connection (a NAT or proxy that dropped it) during a quiet stream. A
# server with gRPC's default policy strikes pings closer than 5 minutes while it sends
# nothing and drops the connection at the third strike; gRPC's client sends at most two
# pings until the server sends something (grpc.http2.max_pings_without_data), so this
# never gets there.
DEFAULT_KEEPALIVE_S = 60


def channel_options(keepalive_s: int = DEFAULT_KEEPALIVE_S) -> list[tuple[str, Any]]:
    """The channel arguments `connect()` uses, for callers that build their own channel."""
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", keepalive_s * 1000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 2),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.primary_user_agent", "transcribe-python"),
    ]


Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]


class _Bearer:
    """Adds `authorization: Bearer <key>` to a call's metadata.

    Interceptors rather than call credentials, because gRPC refuses call credentials on
    a plaintext channel and a local server with keys is plaintext. grpc.aio files each
    interceptor under one call type only, hence one small class per type.
    """

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
        metadata.add(*self._header)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._with_key(client_call_details), request)


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._with_key(client_call_details), request)


class _StreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._with_key(client_call_details), request_iterator)


class _StreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._with_key(client_call_details), request_iterator)


def checked_api_key(api_key: str) -> str:
    """The key without surrounding whitespace (the newline of a key file); ValueError for
    a key a header cannot carry, which gRPC would only report, cryptically, at the first
    call."""
    key = api_key.strip()
    if not all(" " <= c <= "~" for c in key):
        raise ValueError("the API key has characters other than printable ASCII")
    return key


def api_key_interceptors(api_key: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that send `api_key` with every call, for a channel built by hand."""
    key = checked_api_key(api_key)
    return [cls(key) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def connect(
    target: str,
    *,
    api_key: str = "",
    tls: bool = False,
    root_certificates: bytes | None = None,
    keepalive_s: int = DEFAULT_KEEPALIVE_S,
) -> grpc.aio.Channel:
    """An asyncio channel to `target` ("host:port") with the client policy set.

    `target` may name several servers: `ipv4:10.0.0.1:50051,10.0.0.2:50051`, or a DNS
    name with several addresses (`dns:///transcribe-server:50051`); calls are spread
    over them round robin, and a stream a server refuses goes to the next one.

    `tls` verifies the server against `root_certificates` (PEM; the system roots when
    None). `api_key` is sent as `authorization: Bearer <key>` on every call. Unary calls
    time out after 30 s and are retried with backoff while the server is UNAVAILABLE.
    Use as `async with connect(...) as channel:` so the channel is closed.
    """
    options = channel_options(keepalive_s)
    interceptors = api_key_interceptors(api_key) if api_key else None
    if tls:
        creds = grpc.ssl_channel_credentials(root_certificates)
        return grpc.aio.secure_channel(target, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
