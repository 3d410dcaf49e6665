"""Plain, frozen results of the API, so callers never handle protobuf messages.

Times in the audio are float seconds; wall-clock times are timezone-aware datetimes.
`to_json()` gives the dict the CLI prints with `--json`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from transcribe.v1 import common_pb2, streaming_pb2, transcripts_pb2

ResultKind = Literal["session", "speech_begin", "speech_end", "interim", "final", "speaker_names"]
T = TypeVar("T")


def seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _time(t: Timestamp) -> datetime:
    return t.ToDatetime(tzinfo=UTC)


def to_json(value: Any) -> Any:
    """A dataclass (or list of them) as JSON-ready data: datetimes as ISO 8601, bytes as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    probability: float
    speaker: str = ""

    @classmethod
    def from_proto(cls, w: common_pb2.WordInfo) -> Word:
        return cls(
            w.word, seconds(w.start_offset), seconds(w.end_offset), w.probability, w.speaker_label
        )


@dataclass(frozen=True)
class Result:
    """One message of a live stream.

    `kind` says which: "session" (first; carries `transcript_id`), "speech_begin" /
    "speech_end" (voice activity at `start`), "interim" (text that may still change) or
    "final" (stored text; every word ends up in exactly one final segment). A final with
    `revision` > 0 is new text for a `segment_index` already sent (the server re-decoded
    the finished sentence with the audio before it; only when the stream asked for
    revisions): it replaces that segment, never adds to it. `FinalText` keeps the text that way.
    `speaker` is the speaker's label ("S1") when the stream asked for speaker labels;
    on an interim it is provisional, and a final whose label the server corrected at the
    stream's end comes again as a revision with the new label.
    "speaker_names" (a stream with `remember_voices`) carries in `speaker_names` the
    transcript's names for its labels so far, e.g. {"S1": "Alice"}, sent when a speaker
    was recognised as a remembered voice: show `speaker_names.get(speaker, speaker)`.
    """

    kind: ResultKind
    text: str = ""
    start: float = 0.0
    end: float = 0.0
    stability: float = 0.0
    confidence: float = 0.0
    segment_index: int = -1
    revision: int = 0
    words: tuple[Word, ...] = ()
    transcript_id: str = ""
    model: str = ""
    storage_pending: bool = False
    speaker: str = ""
    language_code: str = ""
    """The language of the text ("de"): on a session, the stream's language ("" while a
    multilingual model detects it); on results, from the first final on, the detected
    (or forced) one; an interim before it carries the model's current guess."""
    speaker_names: dict[str, str] = field(default_factory=dict)
    """Label -> name, the whole map (kind "speaker_names" only)."""

    @property
    def is_final(self) -> bool:
        return self.kind == "final"

    @classmethod
    def from_response(cls, resp: streaming_pb2.StreamingTranscribeResponse) -> list[Result]:
        """A response holds a session, an event or one result; all become Results, in order."""
        out = []
        if resp.HasField("session"):
            s = resp.session
            out.append(
                cls(
                    "session",
                    transcript_id=s.transcript_id,
                    model=s.model,
                    start=seconds(s.start_offset),
                    language_code=s.language_code,
                )
            )
        if resp.speech_event_type:
            begin = resp.speech_event_type == streaming_pb2.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_BEGIN
            at = seconds(resp.speech_event_offset)
            out.append(cls("speech_begin" if begin else "speech_end", start=at, end=at))
        if resp.speaker_names:
            out.append(cls("speaker_names", speaker_names=dict(resp.speaker_names)))
        for r in resp.results:
            alt = r.alternatives[0] if r.alternatives else common_pb2.TranscriptionAlternative()
            out.append(
                cls(
                    "final" if r.is_final else "interim",
                    text=alt.transcript,
                    start=seconds(r.result_start_offset),
                    end=seconds(r.result_end_offset),
                    stability=r.stability,
                    confidence=alt.confidence,
                    segment_index=r.segment_index if r.is_final else -1,
                    revision=r.revision if r.is_final else 0,
                    words=tuple(Word.from_proto(w) for w in alt.words),
                    storage_pending=r.storage_pending,
                    speaker=r.speaker_label,
                    language_code=r.language_code,
                )
            )
        return out


@dataclass(frozen=True)
class ModelInfo:
    """A model the server has loaded (ListModels): its catalogue name, for `model=`, and the
    languages it transcribes (BCP-47 primary subtags)."""

    name: str
    language_codes: tuple[str, ...]
    detects_language: bool
    is_default: bool
    description: str

    @classmethod
    def from_proto(cls, m: streaming_pb2.ModelInfo) -> ModelInfo:
        return cls(m.name, tuple(m.language_codes), m.detects_language, m.is_default, m.description)


@dataclass(frozen=True)
class Segment:
    """A final piece of a stored transcript."""

    index: int
    start: float
    end: float
    text: str
    confidence: float
    words: tuple[Word, ...] = ()
    speaker: str = ""

    @classmethod
    def from_proto(cls, s: transcripts_pb2.Segment) -> Segment:
        return cls(
            s.index, seconds(s.start_offset), seconds(s.end_offset), s.text, s.confidence,
            tuple(Word.from_proto(w) for w in s.words), s.speaker_label,
        )  # fmt: skip


_REFINEMENT = {
    transcripts_pb2.REFINEMENT_STATE_PENDING: "pending",
    transcripts_pb2.REFINEMENT_STATE_RUNNING: "running",
    transcripts_pb2.REFINEMENT_STATE_DONE: "done",
    transcripts_pb2.REFINEMENT_STATE_FAILED: "failed",
}
_STATUS = {
    transcripts_pb2.TRANSCRIPT_STATUS_LIVE: "live",
    transcripts_pb2.TRANSCRIPT_STATUS_COMPLETE: "complete",
    transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED: "interrupted",
}


@dataclass(frozen=True)
class Transcript:
    """A stored transcript; `segments` is filled by `get()` only."""

    id: str
    title: str
    tags: tuple[str, ...]
    status: str  # "live", "complete", "interrupted" (or "" if unknown to this client)
    created: datetime
    ended: datetime | None
    duration: float
    language_code: str
    model: str
    keywords: tuple[str, ...]
    speaker_names: dict[str, str]
    segment_count: int
    recording_mime_type: str
    segments: tuple[Segment, ...] = ()
    refinement: str = ""  # "", "pending", "running", "done" or "failed"
    refinement_progress: float = 0.0  # 0..1 while running
    refinement_detail: str = ""  # why it failed
    language_detected: bool = False  # language_code was detected, not given

    @classmethod
    def from_proto(cls, t: transcripts_pb2.Transcript) -> Transcript:
        return cls(
            id=t.id,
            title=t.title,
            tags=tuple(t.tags),
            status=_STATUS.get(t.status, ""),
            created=_time(t.create_time),
            ended=_time(t.end_time) if t.HasField("end_time") else None,
            duration=seconds(t.duration),
            language_code=t.language_code,
            model=t.model,
            keywords=tuple(t.keywords),
            speaker_names=dict(t.speaker_names),
            segment_count=t.segment_count,
            recording_mime_type=t.recording_mime_type,
            segments=tuple(Segment.from_proto(s) for s in t.segments),
            refinement=_REFINEMENT.get(t.refinement_state, ""),
            refinement_progress=t.refinement_progress,
            refinement_detail=t.refinement_detail,
            language_detected=t.language_detected,
        )


@dataclass(frozen=True)
class SearchHit:
    """A segment that matched; `highlights` are [start, end) code-point ranges in `snippet`.
    `speaker_label` ("S2") and `speaker_name` ("Alice") say who spoke it, where known."""

    transcript_id: str
    transcript_title: str
    segment_index: int
    start: float
    snippet: str
    highlights: tuple[tuple[int, int], ...]
    created: datetime
    speaker_label: str = ""
    speaker_name: str = ""

    @property
    def speaker(self) -> str:
        """The name if the speaker is named, else the label ("" when unlabelled)."""
        return self.speaker_name or self.speaker_label

    @classmethod
    def from_proto(cls, h: transcripts_pb2.SearchHit) -> SearchHit:
        return cls(
            h.transcript_id, h.transcript_title, h.segment_index, seconds(h.start_offset),
            h.snippet, tuple((r.start, r.end) for r in h.highlights), _time(h.create_time),
            h.speaker_label, h.speaker_name,
        )  # fmt: skip


@dataclass(frozen=True)
class Voice:
    """A voice remembered for the caller: named `name` as `speaker_label` of a transcript."""

    name: str
    transcript_id: str
    speaker_label: str
    updated: datetime

    @classmethod
    def from_proto(cls, v: transcripts_pb2.Voice) -> Voice:
        return cls(v.name, v.transcript_id, v.speaker_label, _time(v.update_time))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass `next_page_token` back for the next (empty: last page)."""

    items: tuple[T, ...]
    next_page_token: str


@dataclass(frozen=True)
class Export:
    content: bytes
    mime_type: str
    file_name: str


@dataclass(frozen=True)
class RecordingInfo:
    mime_type: str
    total_size: int
    duration: float
