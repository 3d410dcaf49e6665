"""Word helpers every part of the policy shares: the comparison key, sentence ends and
zero-length words. Imports only the domain types."""

from __future__ import annotations

import re
from collections.abc import Iterable

from service.domain import Word

INSTANT_S = 0.02
"""A word shorter than this is zero-length: the aligner found no audio for it (Whisper's
word timestamps come in 20 ms steps, so this is "no step at all")."""

_SENTENCE_END = re.compile(r"[.?!…]['\")\]]*$")
_NORM = re.compile(r"[^\w']+")


def normalize(word: str) -> str:
    """Comparison key of a word: lower case without punctuation."""
    return _NORM.sub("", word.lower())


def ends_sentence(word: Word) -> bool:
    """The word closes a sentence (its punctuation, maybe inside quotes or brackets)."""
    return _SENTENCE_END.search(word.text) is not None


def instant(word: Word) -> bool:
    """A zero-length word: the aligner found no audio for it."""
    return word.end - word.start < INSTANT_S


def text_of(words: Iterable[Word]) -> str:
    """The words as one line of text."""
    return " ".join(w.text for w in words)
