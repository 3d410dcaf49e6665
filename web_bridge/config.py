"""Bridge settings: one frozen object built in main() from flags and environment.

Every setting is checked when the object is built (`__post_init__`), so a bad value
stops the bridge at start-up with a message naming the flag, never at the first request.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Listen addresses that only this machine can reach (the server's rule uses the same)."""
AUTH_MODES = ("auto", "api-key", "none")
MIN_SECRET_CHARS = 32


@dataclass(frozen=True)
class BridgeSettings:
    """Where the bridge listens, which service it relays to, whom it trusts."""

    host: str = "127.0.0.1"
    port: int = 8080
    grpc_target: str = "127.0.0.1:50051"
    """host:port of transcribe-server (several: `ipv4:host1:port,host2:port`)."""
    grpc_ca_file: str = ""
    """PEM CA certificate(s) of a TLS transcribe-server; empty = plaintext gRPC."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to open the WebSocket and call the API; the page's own always is."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header names the bridge answers (DNS rebinding guard); empty = the listen
    address plus localhost, 127.0.0.1 and [::1] (and any IP literal when listening on all
    interfaces: a rebinding attack needs a DNS name); `*` = any (a proxy checks Host)."""
    auth: str = "auto"
    """api-key: only signed-in browsers reach the service, and the service must require
    keys (checked at start); none: relay whatever the service allows (explicit opt-out);
    auto: none on a localhost address, api-key on any other (the server's rule)."""
    tls_cert: str = ""
    """PEM certificate chain; with tls_key the page is served over HTTPS and WSS."""
    tls_key: str = ""
    """PEM private key of tls_cert."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks of TLS-terminating proxies whose X-Forwarded-Proto is believed."""
    session_secret: str = field(default="", repr=False)
    """Key that seals session cookies; bridges sharing it accept each other's sessions.
    Empty = a random one per process: every browser must sign in again after a restart."""
    session_hours: float = 12.0
    """How long a sign-in lasts."""
    chunk_ms: int = 250
    """MediaRecorder timeslice the page uses."""
    max_buffered_chunks: int = 64
    """Audio chunks queued towards gRPC before the socket stops being read (back-pressure)."""
    max_buffered_bytes: int = 1024 * 1024
    """Audio bytes queued per socket towards gRPC before the socket stops being read."""
    max_upload_bytes: int = 1024 * 1024 * 1024
    """Largest recording /api/upload takes (1 GiB: hours of any compressed format); it is
    streamed to the service, never held in memory, so this bounds storage, not RAM."""
    heartbeat_s: float = 20.0
    """Seconds between WebSocket pings; a page that has not answered one within half of
    this is taken as gone and its stream cancelled. While the service is behind the
    socket is not read, and only the missing answer shows that a browser left."""
    static_dir: Path = field(default=STATIC_DIR)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port {self.port} is not a TCP port")
        if self.auth not in AUTH_MODES:
            raise ValueError(f"--auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"--trusted-proxy {proxy!r} is not an IP address or network"
                ) from None
        for name in self.allowed_hosts:
            if not name or any(c in name for c in "/ \t") or "://" in name:
                raise ValueError(f"--allowed-host {name!r} is not a host name")
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(f"--allowed-origin {origin!r} must look like https://host[:port]")
        if self.session_secret and len(self.session_secret) < MIN_SECRET_CHARS:
            raise ValueError(f"--session-secret needs at least {MIN_SECRET_CHARS} characters")
        if not self.session_hours > 0:
            raise ValueError("--session-hours must be positive")
        if self.chunk_ms <= 0 or self.max_buffered_chunks <= 0 or self.max_buffered_bytes <= 0:
            raise ValueError("--chunk-ms and the buffer limits must be positive")
        if self.max_upload_bytes <= 0:
            raise ValueError("--max-upload-bytes must be positive")
        if not 0 < self.heartbeat_s < math.inf:  # NaN and inf too
            raise ValueError("--heartbeat-seconds must be a positive number")

    @property
    def local(self) -> bool:
        """Listening where only this machine can connect."""
        return self.host in LOCAL_HOSTS

    @property
    def auth_mode(self) -> str:
        """api-key or none, `auto` resolved by the listen address."""
        if self.auth != "auto":
            return self.auth
        return "none" if self.local else "api-key"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_bridge_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> BridgeSettings:
    """Flags win over TRANSCRIBE_BRIDGE_* environment variables, which win over defaults."""
    env = os.environ if environ is None else environ
    d = BridgeSettings()
    p = argparse.ArgumentParser(
        prog="transcribe-bridge",
        description="Serves the live transcription page and relays browser audio to gRPC.",
        epilog="Each flag can also be set as TRANSCRIBE_BRIDGE_<FLAG>, "
        "e.g. TRANSCRIBE_BRIDGE_PORT; repeatable flags take a comma-separated list "
        "(TRANSCRIBE_BRIDGE_ALLOWED_HOSTS, _ALLOWED_ORIGINS, _TRUSTED_PROXIES).",
    )

    def e(name: str, default: object) -> object:
        return env.get("TRANSCRIBE_BRIDGE_" + name, default)

    p.add_argument("--host", default=e("HOST", d.host), help=f"address to listen on [{d.host}]")
    p.add_argument("--port", type=int, default=e("PORT", d.port), help=f"HTTP port [{d.port}]")
    p.add_argument(
        "--grpc-target",
        default=e("GRPC_TARGET", d.grpc_target),
        help=f"transcribe-server address [{d.grpc_target}]",
    )
    p.add_argument(
        "--grpc-ca-file",
        default=e("GRPC_CA_FILE", d.grpc_ca_file),
        help="PEM CA of a TLS transcribe-server (enables TLS towards it)",
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=None,
        help="an Origin allowed to connect (repeatable; default: the page's own origin)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        help="a Host name the bridge answers (repeatable; default: the listen address, "
        "localhost, 127.0.0.1, [::1]; '*' = any); other Host headers get 421",
    )
    p.add_argument(
        "--auth",
        default=e("AUTH", d.auth),
        help="api-key (sign-in required, the server must have keys), none (explicitly "
        f"unauthenticated), or auto (none on localhost, api-key otherwise) [{d.auth}]",
    )
    p.add_argument(
        "--tls-cert", default=e("TLS_CERT", d.tls_cert), help="PEM certificate chain (HTTPS)"
    )
    p.add_argument("--tls-key", default=e("TLS_KEY", d.tls_key), help="PEM private key")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=None,
        help="address or network of a TLS-terminating proxy whose X-Forwarded-Proto "
        "is believed (repeatable; default: none)",
    )
    p.add_argument(
        "--session-secret",
        default=e("SESSION_SECRET", d.session_secret),
        help=f"at least {MIN_SECRET_CHARS} characters sealing session cookies, shared by "
        "bridges behind one address; prefer the environment variable (default: random "
        "per process, so a restart signs everyone out)",
    )
    p.add_argument(
        "--session-hours",
        type=float,
        default=e("SESSION_HOURS", d.session_hours),
        help=f"how long a sign-in lasts [{d.session_hours}]",
    )
    p.add_argument(
        "--chunk-ms", type=int, default=e("CHUNK_MS", d.chunk_ms), help="MediaRecorder timeslice"
    )
    p.add_argument(
        "--max-buffered-bytes",
        type=int,
        default=e("MAX_BUFFERED_BYTES", d.max_buffered_bytes),
        help=f"audio bytes queued per socket before it stops being read [{d.max_buffered_bytes}]",
    )
    p.add_argument(
        "--max-upload-bytes",
        type=int,
        default=e("MAX_UPLOAD_BYTES", d.max_upload_bytes),
        help=f"largest recording the page may upload [{d.max_upload_bytes}]",
    )
    p.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=e("HEARTBEAT_SECONDS", d.heartbeat_s),
        help="seconds between WebSocket pings; a page that misses an answer for half of "
        f"this more is taken as gone and its stream cancelled [{d.heartbeat_s}]",
    )
    a = p.parse_args(argv)

    def listed(flag: list[str] | None, name: str) -> tuple[str, ...]:
        return tuple(flag or _list(str(env.get("TRANSCRIBE_BRIDGE_" + name, ""))))

    try:
        return BridgeSettings(
            host=a.host,
            port=int(a.port),
            grpc_target=a.grpc_target,
            grpc_ca_file=a.grpc_ca_file,
            allowed_origins=listed(a.allowed_origin, "ALLOWED_ORIGINS"),
            allowed_hosts=listed(a.allowed_host, "ALLOWED_HOSTS"),
            auth=str(a.auth),
            tls_cert=str(a.tls_cert),
            tls_key=str(a.tls_key),
            trusted_proxies=listed(a.trusted_proxy, "TRUSTED_PROXIES"),
            session_secret=str(a.session_secret),
            session_hours=float(a.session_hours),
            chunk_ms=int(a.chunk_ms),
            max_buffered_bytes=int(a.max_buffered_bytes),
            max_upload_bytes=int(a.max_upload_bytes),
            heartbeat_s=float(a.heartbeat_seconds),
        )
    except ValueError as exc:
        p.error(str(exc))
