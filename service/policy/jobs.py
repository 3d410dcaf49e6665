"""What the policy hands out and gets back: the decodes it asks for and the results it
sends. Plain data; imports only the domain and engine request types and the word helpers."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.domain import Word
from service.engine import DecodeRequest
from service.policy.words import text_of


class JobKind(enum.Enum):
    """Why a decode runs; decides how its result is committed."""

    INTERIM = "interim"
    CUT = "cut"
    FINAL = "final"
    REVISE = "revise"


@dataclass(frozen=True)
class ResultUpdate:
    """An interim or final result to send."""

    words: tuple[Word, ...]
    is_final: bool
    stability: float
    segment_index: int = -1
    revision: int = 0
    """1 for a final segment sent again with the text of its sentence's second pass, one
    more each time it is sent again (its turn's pass, a corrected speaker label)."""
    speaker_label: str = ""
    """Who speaks ("S1"); set by the session when the stream labels speakers."""

    @property
    def text(self) -> str:
        return text_of(self.words)

    @property
    def start_s(self) -> float:
        return self.words[0].start if self.words else 0.0

    @property
    def end_s(self) -> float:
        return self.words[-1].end if self.words else 0.0


@dataclass(frozen=True)
class RevisionTarget:
    """What a second-pass decode is for: the sentence (its final segments), the revised
    sentences before it that the window also covers (matched by text, not revised again),
    and the sentences before it in the queue that were found too long for a second pass
    (they stand as they are once this decode starts)."""

    unit: tuple[ResultUpdate, ...]
    context: tuple[Word, ...]
    skipped: tuple[tuple[ResultUpdate, ...], ...] = ()
    turn: bool = False
    """A turn's pass (service/policy/turns.py): `unit` is the whole turn, as last sent,
    decoded as offline Whisper decodes a window."""


@dataclass(frozen=True)
class DecodeJob:
    """A decode the policy wants: the audio and where it sits in time."""

    kind: JobKind
    audio: npt.NDArray[np.float32]
    start_s: float
    end_s: float
    beam_size: int
    prompt: str
    context: str
    hotwords: str
    shared: bool = False
    """Asked for while other streams shared the model (the buffer's length limit is the
    shared one when its result is committed)."""
    target: RevisionTarget | None = None
    """The sentence a REVISE job decodes again (None for the first pass)."""

    def request(self) -> DecodeRequest:
        """What the engine is asked to decode."""
        return DecodeRequest(
            audio=np.ascontiguousarray(self.audio),
            prompt=self.prompt,
            context=self.context,
            hotwords=self.hotwords,
            beam_size=self.beam_size,
            whole=self.target is not None and self.target.turn,
        )
