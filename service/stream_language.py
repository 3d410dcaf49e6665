"""A stream's language: detected per decode until the evidence is clear, then fixed.

While a multilingual model detects, every decode runs the detector on its own audio.
Each decode's guess counts with its probability times the seconds of speech it heard,
and results carry the language with the most evidence so far (`leading`). At each
final result the evidence is weighed: the language is fixed when it is clear (its
margin, below), or at the latest at the `BOUND_FINALS`-th final, the best so far.
Once fixed every later decode is forced to it (no switching mid-transcript, no
detection cost). Until then the transcript stores the leading language whenever it
changes at a final, so it always holds the best guess so far.

Evidence rather than one decode's guess: a first final can come from a decode of a
second of speech padded with silence, whose guess is weak (German played into
Chromium's fake microphone was fixed as English that way). A margin rather than the
first final: FLEURS French taken for Breton and Portuguese for English at their first
finals (docs/benchmarks.md, issue 20) were weak guesses. The margin is conservative:
the detector reports only its top language per decode, so the probability it did not
give its top language is counted for the runner-up.

A transcript whose language a stream detected is stored so (`language_detected`, with
the language, in one write), so that its refinement, which hears the whole recording,
may correct the language: on any replica, and after a restart.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)

CLEAR_MARGIN = 0.5
"""The leading language's evidence minus the runner-up's (with every decode's unassigned
probability counted for it), as a share of all the speech seconds weighed: 0.5 is what
decodes that all name the same language at 0.75 give."""
MIN_SPEECH_S = 2.0
"""Seconds of speech (summed over decodes) before any evidence counts as clear."""
BOUND_FINALS = 3
"""The final at which the best guess is fixed even if not clear: three sentences (the
FLEURS utterances end within one to three) of detecting cost each decode a detection
(~0.04 s) and may write a sentence in another language than the next; after that,
more of the same evidence rarely changes the answer, and refinement can still correct
the stored language from the whole recording."""


class LanguageState(enum.Enum):
    """Whether the stream's language is still being detected."""

    DETECTING = "detecting"
    FIXED = "fixed"


class StreamLanguage:
    """The language of one stream's decodes and results."""

    def __init__(self, language: str) -> None:
        """`language` "" detects (multilingual models only); a code fixes it now."""
        self._fixed = language
        self.state = LanguageState.FIXED if language else LanguageState.DETECTING
        self.clear = bool(language)
        """Fixed on clear evidence (or given); False while detecting or if fixed at the bound."""
        self._evidence: dict[str, float] = {}
        self._speech_s = 0.0
        self._finals = 0
        self._stored = language
        """What the transcript holds (the caller stores what `on_result` says to)."""

    def heard(self, decoded: str, probability: float, seconds: float) -> None:
        """A decode that heard `seconds` of speech (its words' span; 0 on silence, which
        counts for nothing) detected `decoded` with `probability`."""
        if self.state is LanguageState.DETECTING and decoded and seconds > 0:
            weight = max(probability, 0.01) * seconds
            self._evidence[decoded] = self._evidence.get(decoded, 0.0) + weight
            self._speech_s += seconds

    @property
    def language(self) -> str:
        """What results carry: the fixed language, else the leading one so far."""
        return self._fixed or self.leading

    @property
    def leading(self) -> str:
        """The language with the most evidence so far ("" before any decode)."""
        return max(self._evidence, key=self._evidence.__getitem__, default="")

    @property
    def margin(self) -> float:
        """How far the leading language is ahead, as a share of the speech weighed (0..1):
        its evidence minus the runner-up's and minus the probability no decode gave its top
        language (which might all be the runner-up's)."""
        if self._speech_s <= 0:
            return 0.0
        ranked = sorted(self._evidence.values(), reverse=True)
        unassigned = self._speech_s - sum(ranked)
        second = ranked[1] if len(ranked) > 1 else 0.0
        return max(0.0, (ranked[0] - second - unassigned) / self._speech_s)

    @property
    def forced(self) -> str:
        """What a decode request asks for: the fixed language, or "" (detect)."""
        return self._fixed if self.state is LanguageState.FIXED else ""

    def on_result(self, is_final: bool) -> tuple[str, bool]:
        """The language of a result, and whether the caller stores it with the transcript
        now (a final that fixed the language or changed the leading one)."""
        if self.state is LanguageState.FIXED and self._fixed == self._stored:
            return self._fixed, False
        if not is_final:
            return self.leading, False
        if self.state is LanguageState.DETECTING:
            self._finals += 1
            self.clear = self._speech_s >= MIN_SPEECH_S and self.margin >= CLEAR_MARGIN
            if self.clear or self._finals >= BOUND_FINALS:
                self._fixed, self.state = self.leading, LanguageState.FIXED
                logger.info(
                    "language %s fixed at final %d (%s; margin %.2f over %.1f s of speech)",
                    self._fixed, self._finals, "clear" if self.clear else "best so far",
                    self.margin, self._speech_s,
                )  # fmt: skip
        language = self.language
        store = bool(language) and language != self._stored
        self._stored = language
        return language, store


async def store_language(
    store: TranscriptStore, owner: str, transcript_id: str, language: str
) -> None:
    """Store the language a stream detected with the transcript, marked as detected (its
    refinement checks it on the whole recording). A failure leaves the previous one there
    (the transcript's refinement detects it again) and the stream goes on."""
    logger.info("transcript %s: language %s", transcript_id, language)
    try:
        await store.update_transcript(
            owner, transcript_id, language=language, language_detected=True
        )
    except Exception as exc:
        logger.warning("transcript %s: language not stored: %s", transcript_id, exc)
