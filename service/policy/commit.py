"""Agreement and commit (LocalAgreement-2, as in whisper_streaming), and the segment
indexes of final results. Imports the job types and the word helpers.

The longest common prefix of two consecutive decodes is *committed*: the first pass
never changes it again, and it is sent as a final result at once. What the latest decode
heard after it is *tentative*, sent as an interim result.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.domain import Word
from service.policy.jobs import ResultUpdate
from service.policy.words import normalize, text_of
from service.text import no_space_char

RECENT_WORDS = 5
"""Committed words remembered to recognise a decode repeating them (filters.drop_repeat
looks for repeats of up to this many)."""
CUT_KEEP_S = 1.0
"""An utterance cut at its maximum length without agreement keeps the words that end at
least this long before the cut (far enough from the cut to be whole)."""
STABILITY_MIN, STABILITY_SPAN = 0.05, 0.85
"""An interim result's stability: 0.05 with nothing committed, up to 0.9 all committed."""


def piece(word: Word) -> bool:
    """A word of a script written without spaces (Chinese, Japanese, Thai): the aligner
    cuts those into pieces of one or a few characters, often part of a word, so that two
    decodes agree on a piece far more easily than on a whole word; the last pieces of a
    decode are its guess at a word still being said ("リベラルは" | "から" before "派から")."""
    return any(no_space_char(c) for c in word.text)


class Agreement:
    """Committed and tentative words of one stream, and the next segment's index."""

    def __init__(self, start_offset_s: float = 0.0, first_segment_index: int = 0) -> None:
        self.committed: list[Word] = []  # agreed, not yet sent as final
        self.tentative: list[Word] = []  # heard by the last decode only
        self.tentative_end = 0.0  # end of the audio the last decode heard
        self.recent: list[Word] = []  # last committed words, to drop repeats at the seam
        self.committed_end = start_offset_s  # end of the last committed word
        self.next_index = first_segment_index
        self._last_interim = ""

    @property
    def pending(self) -> list[Word]:
        """The words not yet final: the committed ones, else the tentative ones."""
        return self.committed or self.tentative

    def agreed(self, words: Sequence[Word], end_s: float, margin_s: float, cut: bool) -> int:
        """How many of a decode's first words to commit: those it shares with the last
        decode, less any ending within `margin_s` of the audio's end (maybe cut off
        mid-way: they wait for more audio), and less any `piece` that ended within
        `margin_s` of the end of the last decode's audio: a piece both decodes heard as
        their last guess is no agreement (FLEURS ja, base: "はから" committed for
        "派から", "ジンブ" for "人物"); at a `cut`, at least those ending CUT_KEEP_S
        before it."""
        n = 0
        limit = min(len(words), len(self.tentative))
        while n < limit and normalize(words[n].text) == normalize(self.tentative[n].text):
            n += 1
        while n and (
            words[n - 1].end > end_s - margin_s
            or (piece(words[n - 1]) and self.tentative[n - 1].end > self.tentative_end - margin_s)
        ):
            n -= 1
        if cut:
            n = max(n, sum(1 for w in words if w.end <= end_s - CUT_KEEP_S))
        return n

    def hold(self, words: Sequence[Word], end_s: float) -> None:
        """The words a decode of audio up to `end_s` heard after those it committed."""
        self.tentative = list(words)
        self.tentative_end = end_s

    def commit(self, words: Sequence[Word]) -> None:
        self.committed.extend(words)
        self.recent = (self.recent + list(words))[-RECENT_WORDS:]
        if words:
            self.committed_end = words[-1].end

    def finalize(self, count: int) -> ResultUpdate | None:
        """The first `count` committed words as the next final segment."""
        if count <= 0:
            return None
        seg, self.committed = tuple(self.committed[:count]), self.committed[count:]
        update = ResultUpdate(seg, True, 0.0, self.next_index)
        self.next_index += 1
        self._last_interim = ""
        return update

    def interim(self) -> ResultUpdate | None:
        """The committed and tentative words as an interim result, unless already sent."""
        words = self.committed + self.tentative
        text = text_of(words)
        if not words or text == self._last_interim:
            return None
        self._last_interim = text
        stability = STABILITY_MIN + STABILITY_SPAN * len(self.committed) / len(words)
        return ResultUpdate(tuple(words), False, round(stability, 2))
