"""Readable text from a transcript's finals: paragraphs by speaker turn, pause and length.

Live finals are short (one to a few words each while someone speaks quickly), so a
transcript printed one final per line is hard to read (97 lines for 76 s of speech).
`paragraphs()` joins consecutive segments into one paragraph until the speaker changes,
a pause of `PAUSE_S` or more, or a sentence ends after `MAX_WORDS` words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clients.python.models import Segment

PAUSE_S = 2.0
"""A silence this long starts a new paragraph (a turn or a new topic more often than not)."""
MAX_WORDS = 80
"""A paragraph ends at the first sentence end after this many words."""


@dataclass(frozen=True)
class Paragraph:
    start: float
    end: float
    speaker: str
    text: str


def paragraphs(segments: Sequence[Segment]) -> list[Paragraph]:
    out: list[Paragraph] = []
    parts: list[Segment] = []

    def close() -> None:
        if parts:
            text = " ".join(s.text.strip() for s in parts if s.text.strip())
            out.append(Paragraph(parts[0].start, parts[-1].end, parts[0].speaker, text))
            parts.clear()

    for seg in sorted(segments, key=lambda s: s.index):
        if parts:
            prev = parts[-1]
            words = sum(len(s.text.split()) for s in parts)
            sentence_end = prev.text.rstrip().endswith((".", "?", "!", "。", "？", "！"))
            if (
                seg.speaker != prev.speaker
                or seg.start - prev.end >= PAUSE_S
                or (sentence_end and words >= MAX_WORDS)
            ):
                close()
        parts.append(seg)
    close()
    return out
