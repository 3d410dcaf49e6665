"""Bridge settings: one frozen object built in main() from flags and environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"


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
    """Origins allowed to open the WebSocket and change data; empty = the bridge's own."""
    chunk_ms: int = 250
    """MediaRecorder timeslice the page uses."""
    max_buffered_chunks: int = 64
    """Audio chunks queued towards gRPC before the socket stops being read (back-pressure)."""
    static_dir: Path = field(default=STATIC_DIR)


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
        "e.g. TRANSCRIBE_BRIDGE_PORT.",
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
        "--chunk-ms", type=int, default=e("CHUNK_MS", d.chunk_ms), help="MediaRecorder timeslice"
    )
    a = p.parse_args(argv)
    origins = a.allowed_origin or [
        o for o in str(env.get("TRANSCRIBE_BRIDGE_ALLOWED_ORIGINS", "")).split(",") if o
    ]
    return BridgeSettings(
        host=a.host,
        port=int(a.port),
        grpc_target=a.grpc_target,
        grpc_ca_file=a.grpc_ca_file,
        allowed_origins=tuple(origins),
        chunk_ms=int(a.chunk_ms),
    )
