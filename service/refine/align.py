"""Putting the words of a whole-recording decode back into the live segments.

The live segments stay what clients know (their indexes, times and speaker labels);
only their words and text change. A refined word goes to the live segment whose time
span holds its midpoint, or else to the nearest segment within `MAX_GAP_S`: live
segments exist only where the VAD heard speech, so a word further from every segment
is what an offline decode tends to invent on long silences and is dropped. A segment
that gets no refined word keeps its live text (the refined decode never deletes what
the live pass heard: a missed word there costs the same as a wrong one).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace

from service.domain import Segment, Word
from service.policy.words import text_of

MAX_GAP_S = 1.0
"""Farthest a refined word's midpoint may be from a live segment and still belong to it
(the live policy's segment ends lag word ends by well under a second)."""


def _owner(segments: Sequence[Segment], starts: list[float], mid: float) -> int | None:
    """Index into `segments` of the segment a word with this midpoint belongs to."""
    i = bisect.bisect_right(starts, mid) - 1
    candidates = [j for j in (i, i + 1) if 0 <= j < len(segments)]
    best: tuple[float, int] | None = None
    for j in candidates:
        seg = segments[j]
        gap = 0.0 if seg.start <= mid <= seg.end else min(abs(mid - seg.start), abs(mid - seg.end))
        if gap <= MAX_GAP_S and (best is None or gap < best[0]):
            best = (gap, j)
    return None if best is None else best[1]


def align_to_segments(live: Sequence[Segment], words: Sequence[Word]) -> list[Segment]:
    """The live segments (same order, indexes, times, labels) with the refined words."""
    ordered = sorted(live, key=lambda s: (s.start, s.index))
    starts = [s.start for s in ordered]
    owned: list[list[Word]] = [[] for _ in ordered]
    for w in words:
        j = _owner(ordered, starts, (w.start + w.end) / 2)
        if j is not None:
            owned[j].append(w)
    out: list[Segment] = []
    for seg, ws in zip(ordered, owned, strict=True):
        if not ws:
            out.append(seg)
            continue
        confidence = sum(w.probability for w in ws) / len(ws)
        text = text_of(ws)
        out.append(replace(seg, text=text, words=tuple(ws), confidence=confidence))
    return sorted(out, key=lambda s: s.index)


def changed(before: Sequence[Segment], after: Sequence[Segment]) -> list[Segment]:
    """The segments of `after` whose text differs from the same index in `before`."""
    old = {s.index: s.text for s in before}
    return [s for s in after if old.get(s.index) != s.text]
