"""Domain types shared by the engine, the streaming policy and storage.

They are plain frozen dataclasses so that the pure parts (policy, storage) never
depend on protobuf; servicer modules translate them to and from the API.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Word:
    """A recognised word; times are seconds on the transcript's audio clock."""

    text: str
    start: float
    end: float
    probability: float


class Decoding(enum.Enum):
    """How a stored segment's text was decoded (stored as these numbers)."""

    FIRST_PASS = 0
    """The live decode that made it final (absent from older stores: this)."""
    SECOND_PASS = 1
    """The live second pass: its sentence heard again, whole, with beam 5 and the
    sentences before it, as an offline decode hears it."""
    REFINED = 2
    """Refinement's decode of the whole recording."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A final piece of a transcript; changes at most once, when its sentence is revised."""

    index: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    confidence: float
    speaker_label: str = ""
    decoding: Decoding = Decoding.FIRST_PASS
    """Which decode its text is from: refinement by the stream's own model keeps a
    second pass's text (service/refine/worker.py)."""


class TranscriptStatus(enum.Enum):
    """Lifecycle of a stored transcript (values match the proto enum numbers)."""

    LIVE = 1
    COMPLETE = 2
    INTERRUPTED = 3


class RefinementState(enum.Enum):
    """Where a transcript is in its refinement (values match the proto enum numbers)."""

    NONE = 0
    """Not queued: a transcript still being recorded, or one stored before refinement."""
    PENDING = 1
    RUNNING = 2
    DONE = 3
    FAILED = 4
    """Not retried; the transcript's refinement_detail says why (too long, no recording)."""


@dataclass(frozen=True, slots=True)
class Refinement:
    """A transcript's refinement as stored: state, progress 0..1, and why it failed."""

    state: RefinementState = RefinementState.NONE
    progress: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TranscriptMeta:
    """Everything stored about a transcript except its segments."""

    id: str
    owner: str
    created_at: datetime
    status: TranscriptStatus
    language: str
    model: str
    title: str = ""
    tags: tuple[str, ...] = ()
    ended_at: datetime | None = None
    duration_s: float = 0.0
    keywords: tuple[str, ...] = ()
    speaker_names: dict[str, str] = field(default_factory=dict)
    segment_count: int = 0
    recording_mime_type: str = ""
    refinement: Refinement = Refinement()
    language_detected: bool = False
    """The language was detected (a stream or refinement with language auto), not given:
    refinement then checks it again on the whole recording."""
    speaker_state: str = ""
    """What the speaker tracker needs to keep labels across streams (JSON, a few KB;
    empty when the transcript was never diarized). Not part of the API."""


@dataclass(frozen=True, slots=True)
class TextRange:
    """[start, end) in code points of a snippet."""

    start: int
    end: int


class SearchHitKind(enum.Enum):
    """What a search hit matched (values match the proto enum numbers)."""

    SEGMENT = 1
    TRANSCRIPT = 2
    """The title and tags: people look a meeting up by what they called it."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One segment, or one transcript's title and tags, that matched a search query."""

    transcript_id: str
    transcript_title: str
    segment_index: int
    start: float
    snippet: str
    highlights: tuple[TextRange, ...]
    created_at: datetime
    kind: SearchHitKind = SearchHitKind.SEGMENT
    speaker_label: str = ""
    """Who spoke the matching segment ("S2"); empty without speaker labels."""
    speaker_name: str = ""
    """The transcript's name for that label ("Alice"); empty when not named."""


@dataclass(frozen=True, slots=True)
class Voice:
    """A speaker's voice remembered for a principal, under the name the user gave it."""

    name: str
    embedding: bytes
    """The voice print: a unit-length centroid, float32 little-endian (a few hundred
    numbers, not audio: no words can be recovered from it)."""
    windows: int
    """How many 1.3 s windows of speech the centroid averages."""
    transcript_id: str
    """The transcript where it was named."""
    speaker_label: str
    """That transcript's label for it ("S2")."""
    updated_at: datetime
