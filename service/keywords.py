"""Keywords of a transcript: its most frequent content words (no extra dependency)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves one upon said shall may might must us let yes oh well like get got
    go going know think see come came made make much many even still yet thus""".split()
)


def extract_keywords(texts: Iterable[str], limit: int = 10) -> list[str]:
    """The `limit` most frequent non-stop-words of at least 4 letters, most frequent first."""
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for text in texts:
        for m in _WORD.finditer(text.lower()):
            word = m.group().strip("'-")
            if len(word) < 4 or word in STOP_WORDS:
                continue
            counts[word] += 1
            first_seen.setdefault(word, len(first_seen))
    ranked = sorted(counts, key=lambda w: (-counts[w], first_seen[w]))
    return ranked[:limit]
