"""A stream's language: detected per decode until its first final, then fixed.

While a multilingual model detects, every decode runs the detector on its own audio.
Each decode's guess counts with its probability times the seconds of speech it heard,
and results carry the language with the most evidence so far. The first final result
fixes that language: every later decode is forced to it (no switching mid-transcript,
and no detection cost), and the transcript stores it. Evidence rather than the last
decode's guess: a first final can come from a decode of a second of speech padded
with silence, whose guess is weak (German played into Chromium's fake microphone was
fixed as English that way, from a decode that began before the speech).
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)


class LanguageState(enum.Enum):
    """Whether the stream's language is still being detected."""

    DETECTING = "detecting"
    FIXED = "fixed"


class StreamLanguage:
    """The language of one stream's decodes and results."""

    def __init__(self, language: str) -> None:
        """`language` "" detects (multilingual models only); a code fixes it now."""
        self.language = language
        self.state = LanguageState.FIXED if language else LanguageState.DETECTING
        self._evidence: dict[str, float] = {}

    def heard(self, decoded: str, probability: float, seconds: float) -> None:
        """A decode that heard `seconds` of speech (its words' span; 0 on silence, which
        counts for nothing) detected `decoded` with `probability`."""
        if self.state is LanguageState.DETECTING and decoded and seconds > 0:
            weight = max(probability, 0.01) * seconds
            self._evidence[decoded] = self._evidence.get(decoded, 0.0) + weight

    @property
    def leading(self) -> str:
        """The language with the most evidence so far ("" before any decode)."""
        return max(self._evidence, key=self._evidence.__getitem__, default="")

    @property
    def forced(self) -> str:
        """What a decode request asks for: the fixed language, or "" (detect)."""
        return self.language if self.state is LanguageState.FIXED else ""

    def on_result(self, is_final: bool) -> tuple[str, bool]:
        """The language of a result, and whether this result fixed it (the caller
        stores it then)."""
        if self.state is LanguageState.FIXED:
            return self.language, False
        if not is_final:
            return self.leading, False
        self.language, self.state = self.leading, LanguageState.FIXED
        return self.language, True


async def store_language(
    store: TranscriptStore, owner: str, transcript_id: str, language: str
) -> None:
    """Store the language a stream fixed with the transcript. A failure leaves "" there
    (the transcript's refinement detects it again) and the stream goes on."""
    logger.info("transcript %s: language %s", transcript_id, language)
    try:
        await store.update_transcript(owner, transcript_id, language=language)
    except Exception as exc:
        logger.warning("transcript %s: language not stored: %s", transcript_id, exc)
