"""Word helpers every part of the policy shares: the comparison key, sentence ends and
zero-length words. Imports only the domain types and the text join rule."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from service.domain import Word
from service.text import join_words

INSTANT_S = 0.02
"""A word shorter than this is zero-length: the aligner found no audio for it (Whisper's
word timestamps come in 20 ms steps, so this is "no step at all")."""

SENTENCE_END = re.compile(r"[.?!…。！？．｡؟।]+[\"'”’»)\]）」』】〉》〕]*$")
"""A sentence-end mark, maybe inside closing quotes or brackets: Latin `. ? ! …`,
CJK full-width `。！？．` (and half-width `｡`), Arabic `؟`, Devanagari `।`; the closing
marks include the CJK ones (」』）】》) Whisper writes in Chinese and Japanese."""

_KEPT = frozenset("LMN")  # letters, combining marks, numbers


def normalize(word: str) -> str:
    """Comparison key of a word: case-folded, NFKC (full-width letters as ASCII), without
    punctuation and symbols; letters, combining marks (Thai, Devanagari vowel signs),
    digits and apostrophes of any script are kept. A word of punctuation alone keeps its
    marks, so that "、" and "。" are not one word to the commit logic."""
    text = unicodedata.normalize("NFKC", word).casefold().replace("’", "'")
    key = "".join(c for c in text if c in "'_" or unicodedata.category(c)[0] in _KEPT)
    return key or text.strip()


def sentence_ended(text: str) -> bool:
    """The text ends a sentence (its punctuation, maybe inside quotes or brackets)."""
    return SENTENCE_END.search(text.rstrip()) is not None


def ends_sentence(word: Word) -> bool:
    """The word closes a sentence (its punctuation, maybe inside quotes or brackets)."""
    return sentence_ended(word.text)


def instant(word: Word) -> bool:
    """A zero-length word: the aligner found no audio for it."""
    return word.end - word.start < INSTANT_S


def text_of(words: Iterable[Word]) -> str:
    """The words as one line of text: spaces between words, none between those of
    scripts written without them (service.text.join_words)."""
    return join_words(w.text for w in words)
