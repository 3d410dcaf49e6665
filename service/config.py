"""One frozen settings object, built once in main() from flags and environment.

Each setting is declared once below with `setting()` (service/settings_spec.py): type,
default, allowed range, help and names. Its flag is `--<field-name>` unless given, its
environment variable `TRANSCRIBE_<FLAG>` (dashes become underscores); an explicit flag
wins over the environment, which wins over the default. `--help`, the start-up checks
and the README's settings table (scripts/gen_settings_doc.py) all come from these
declarations. Nothing reads configuration anywhere else: constructors receive the part
of `Settings` they need.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from service import settings_spec

# The decode settings live in config_decode (this file stays readable); re-exported here,
# where every other module reads its settings from.
from service.config_decode import COMPUTE_TYPES as COMPUTE_TYPES
from service.config_decode import MAX_WINDOW_S as MAX_WINDOW_S
from service.config_decode import PER_MODEL as PER_MODEL
from service.config_decode import ModelSettings as ModelSettings
from service.config_decode import StreamingSettings as StreamingSettings
from service.config_decode import bundled_model_path as bundled_model_path
from service.settings_spec import given_field, setting

ENV_PREFIX = "TRANSCRIBE_"
PROG = "transcribe-server"
DESCRIPTION = "Live speech transcription gRPC server (faster-whisper)."


@dataclass(frozen=True)
class StorageSettings:
    """Where transcripts and recordings are kept."""

    backend: str = setting(
        "sqlite", flag="storage", choices=("sqlite", "dynamodb"), help="transcript store"
    )
    """sqlite (embedded default) or dynamodb."""
    data_dir: Path = setting(  # noqa: RUF009 - setting() is a dataclasses.field
        Path("data"), metavar="DIR", help="directory of the SQLite database and the recordings"
    )
    dynamodb_endpoint: str = setting(
        "",
        metavar="URL",
        help="DynamoDB endpoint URL, e.g. http://127.0.0.1:8000 (empty: AWS's default)",
    )
    dynamodb_region: str = setting("us-east-1", help="AWS region of the DynamoDB tables")
    dynamodb_table_prefix: str = setting("transcribe", help="prefix of the DynamoDB table names")
    dynamodb_create_tables: bool = setting(
        False, help="create the DynamoDB tables on start when they are missing"
    )
    lease_s: float = setting(
        30.0,
        ge=2,
        flag="lease-seconds",
        metavar="SECONDS",
        help="a transcript's writer lease: renewed while its stream lives, released when it "
        "ends; a server that dies blocks resuming its transcripts this long",
    )


@dataclass(frozen=True)
class LimitSettings:
    """Limits protecting the service; each refusal is RESOURCE_EXHAUSTED."""

    max_streams: int = setting(16, ge=1, help="concurrent streams; the next one is refused at once")
    max_stream_s: float = setting(
        4 * 3600.0,
        gt=0,
        flag="max-stream-seconds",
        metavar="SECONDS",
        help="longest audio one stream may send (4 h)",
    )
    max_message_bytes: int = setting(
        4 * 1024 * 1024,
        ge=1,
        le=256 * 1024 * 1024,
        metavar="BYTES",
        help="largest gRPC message accepted (4 MiB; the transport's cap is 4x this and "
        "must stay under 2 GiB)",
    )
    idle_timeout_s: float = setting(
        60.0,
        gt=0,
        flag="idle-timeout",
        metavar="SECONDS",
        help="a stream that sends no audio for this long is closed",
    )
    max_page_size: int = setting(100, ge=1, help="most transcripts or hits per List/Search page")
    live_max_speed: float = setting(
        2.0,
        ge=1,
        help="streams with config.live (the page, `transcribe stream --realtime`) may send "
        "audio at most this many times real time ...",
    )
    live_burst_s: float = setting(
        60.0,
        ge=0,
        flag="live-burst",
        metavar="SECONDS",
        help="... after this much audio at once (a reconnecting page sends what it buffered)",
    )


@dataclass(frozen=True)
class RefineSettings:
    """Refinement: every stored transcript decoded again, whole, at the lowest priority."""

    enabled: bool = setting(
        True,
        flag="refine",
        help="re-decode each transcript's recording after its stream ends (beam 5, full "
        "context, nice 19) and store the improved text",
    )
    model: str = setting(
        "best",
        flag="refine-model",
        choices=("best", "same"),
        help="best: refine with the most accurate loaded model that knows the transcript's "
        "language (base refines tiny.en transcripts when both are loaded); same: with the "
        "model that made it",
    )
    """Offline on dev, base makes 27-44 % fewer word errors than tiny.en (refine/choice.py);
    `same` saves base's ~3x CPU per refined minute and its second copy in memory."""
    max_s: float = setting(
        4 * 3600.0,
        gt=0,
        flag="refine-max-seconds",
        metavar="SECONDS",
        help="longest recording refined; longer ones are marked FAILED with the reason",
    )
    lease_s: float = setting(
        60.0,
        ge=5,
        flag="refine-lease-seconds",
        metavar="SECONDS",
        help="a refinement job's claim, renewed while it runs; a dead server's job is "
        "taken over after this",
    )
    poll_s: float = setting(
        30.0,
        gt=0,
        flag="refine-poll-seconds",
        metavar="SECONDS",
        help="how often the store is asked for jobs nobody runs (after a restart or a "
        "replica's death)",
    )
    cpu_threads: int = setting(
        2, ge=1, flag="refine-threads", help="CTranslate2 threads of the refinement model"
    )
    max_upload_bytes: int = setting(
        2 * 1024**3,
        ge=1,
        metavar="BYTES",
        help="largest file UploadRecording accepts (2 GiB)",
    )
    upload_idle_timeout_s: float = setting(
        60.0,
        gt=0,
        flag="upload-idle-timeout",
        metavar="SECONDS",
        help="an upload that sends nothing for this long is ended (DEADLINE_EXCEEDED) "
        "and nothing of it is kept",
    )


@dataclass(frozen=True)
class Settings:
    """Everything the server needs, passed down from main()."""

    host: str = setting(
        "127.0.0.1", help="address to listen on (0.0.0.0 for all interfaces; needs keys)"
    )
    port: int = setting(50051, ge=0, le=65535, help="gRPC port (0 picks a free one)")
    model: ModelSettings = field(default_factory=ModelSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)
    grace_s: float = setting(
        10.0,
        ge=0,
        flag="grace",
        metavar="SECONDS",
        help="seconds active streams get to finish on SIGTERM",
    )
    api_keys_file: str = setting(
        "",
        metavar="FILE",
        help="file of principal:key lines (keys may be sha256:<hex>); every call then "
        "needs a valid key",
    )
    api_keys: str = setting("", help="the same entries comma-separated, e.g. for containers")
    metrics_port: int = setting(
        0, ge=0, le=65535, help="port of the Prometheus /metrics endpoint (0 = off)"
    )
    tls_cert: str = setting(
        "", metavar="FILE", help="PEM certificate chain; with --tls-key the port speaks TLS"
    )
    tls_key: str = setting("", metavar="FILE", help="PEM private key of --tls-cert")
    auth: str = setting(
        "auto",
        choices=("auto", "api-key", "none"),
        help="auto: api-key when keys are given, none on localhost, refused otherwise",
    )
    log_level: str = setting(
        "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), help="log level"
    )
    log_format: str = setting(
        "text",
        choices=("text", "json"),
        help="json: one object per line with transcript_id and principal fields",
    )
    malloc_arenas: int = setting(
        2, ge=0, help="glibc heap arenas (0: glibc's default, up to 8 per core)"
    )
    """Each arena keeps half-used pages that trimming cannot return: after bursts of 8
    streams (benchmarks/rss_cycles.py) the server sat ~90-105 MB above its warmed-up size
    with glibc's default, 30-60 with 2."""
    given: frozenset[str] = given_field()
    """Flags set on the command line or in the environment: those win over a catalogue
    model's own defaults (service/models.py); a default left alone yields to them."""


def build_parser() -> argparse.ArgumentParser:
    """The server's command line; every flag also reads TRANSCRIBE_<FLAG>."""
    return settings_spec.build_parser(Settings, ENV_PREFIX, PROG, DESCRIPTION)


def build_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Parse flags and environment into a Settings object; an invalid value exits with
    status 2 and a line naming its flag, its variable, the value and what is allowed."""
    environ = os.environ if environ is None else environ
    settings = settings_spec.load(
        Settings, argv, environ, prefix=ENV_PREFIX, prog=PROG, description=DESCRIPTION
    )
    from service.models import model_overrides  # models.py imports this module

    try:
        model_overrides(settings.model.overrides)
    except ValueError as exc:
        build_parser().exit(2, f"{PROG}: error: --model-overrides: {exc}\n")
    return settings


def settings_table() -> str:
    """The README's settings table (scripts/gen_settings_doc.py writes it there)."""
    return settings_spec.markdown_table(Settings, ENV_PREFIX)
