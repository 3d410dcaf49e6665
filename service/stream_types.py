"""What a stream session takes and gives: its validated config, the process parts it
uses (`StreamDeps`), and its outputs. Plain types shared by the session
(service/session.py), its transcription loop (stream_loop.py), its ending
(stream_end.py) and the servicer; no behaviour.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

from service.audio import AudioFormat
from service.config import LimitSettings
from service.metrics import Metrics
from service.model_pool import Choice, ModelPool
from service.policy import PolicyConfig, ResultUpdate, SpeechEvent
from service.recordings import RecordingStore
from service.refine.worker import Refiner
from service.speakers.config import DiarizationSettings
from service.storage.base import TranscriptStore
from service.storage.lease import DEFAULT_LEASE_S
from service.stream_names import POLL_S
from service.vad import SileroVad

CLOSE_S = 30.0
"""Default bound on a stream's last writes after its call (StreamDeps.close_s); its lease's
release then takes at most RELEASE_S more (service.storage.lease)."""


@dataclass(frozen=True)
class StreamConfig:
    """A validated stream configuration (built by the servicer from the proto)."""

    audio: AudioFormat
    policy: PolicyConfig
    choice: Choice
    """The model and language, validated (a resume's: the model asked for, replaced by the
    transcript's stored ones when it is opened)."""
    model: str = ""
    """The model asked for ("" the server's default; a resumed transcript keeps its own)."""
    language: str = ""
    """The language asked for, a primary subtag ("" detects on a multilingual model)."""
    interim_results: bool = False
    word_offsets: bool = False
    voice_events: bool = False
    title: str = ""
    tags: tuple[str, ...] = ()
    resume_transcript_id: str = ""
    live: bool = False
    diarization: DiarizationSettings = field(default_factory=DiarizationSettings)


@dataclass(frozen=True)
class SessionStarted:
    transcript_id: str
    model: str
    start_offset_s: float
    first_segment_index: int
    language: str = ""
    """The stream's language, or "" while the model detects it."""


@dataclass(frozen=True)
class StoredResult:
    """A result to send; `stored` tells whether a final is durable yet."""

    update: ResultUpdate
    stored: bool = True
    language: str = ""
    """The language of its text (a detecting stream's interims: that decode's guess)."""


@dataclass(frozen=True)
class SpeakerNames:
    """The transcript's names for its speaker labels (the whole map), after a stream
    with `remember_voices` named a speaker after a remembered voice."""

    names: dict[str, str]


Output = SessionStarted | SpeechEvent | StoredResult | SpeakerNames


@dataclass
class StreamDeps:
    """The process's parts every session uses (no server-wide state: see service.registry)."""

    models: ModelPool
    """The loaded models, each with its scheduler; a stream decodes on the one it chose."""
    vad: SileroVad
    store: TranscriptStore
    recordings: RecordingStore
    limits: LimitSettings = field(default_factory=LimitSettings)
    lease_s: float = DEFAULT_LEASE_S
    """How long a transcript's writer lease lasts unless renewed (a dead server's streams
    block resuming their transcripts this long)."""
    end_flush_s: float = 10.0
    """At a stream's end, how long to wait for storage before telling the client what is
    not stored (the writer keeps retrying after the call)."""
    close_s: float = CLOSE_S
    """How long a stream's last writes (segments, recording, status) may go on after its
    call ended, however it ended; then they are given up and its lease released."""
    vad_executor: Executor | None = None
    """Threads of the VAD (None: the event loop's default executor). The server gives it
    named threads of its own, so per-thread CPU shows what the VAD costs."""
    metrics: Metrics = field(default_factory=Metrics)
    names_poll_s: float = POLL_S
    """How often a stream with speaker labels re-reads its transcript's names, for renames
    made through another server (service.stream_names)."""
    refiner: Refiner | None = None
    """Queues each transcript for refinement once its stream has stored everything
    (None: streams are not refined; see service.server.start_server)."""
