"""Text of any language from words: where a space goes between two words.

Whisper writes Chinese and Japanese without spaces and its aligner cuts them into
words of one or a few characters; joining those with spaces ("我 们 今 天") would
change the text a user reads, copies and searches. The rule looks at the characters
on both sides of the seam, not at a language code, so that mixed text ("用 Python 写")
and a stored transcript read back without its language come out the same.
"""

from __future__ import annotations

from collections.abc import Iterable

NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
"""Languages written without spaces between words: faster-whisper's own list (its
tokenizer splits their words at characters instead of spaces)."""

_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation (。、「」)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31FF),  # Bopomofo, Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # full-width forms (，！？ and full-width letters)
    (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
)


def no_space_char(ch: str) -> bool:
    """A character of a script written without spaces between words."""
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _NO_SPACE_RANGES)


def join_words(words: Iterable[str]) -> str:
    """Words as one line: single spaces, none where both sides are of a script written
    without spaces (CJK, kana, Thai, full-width punctuation)."""
    out: list[str] = []
    for word in words:
        if not word:
            continue
        if out and not (no_space_char(out[-1][-1]) and no_space_char(word[0])):
            out.append(" ")
        out.append(word)
    return "".join(out)
