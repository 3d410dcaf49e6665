"""Putting the words of a whole-recording decode back into the live segments.

The live segments stay what clients know (their indexes, times and speaker labels);
only their words and text change. The refined words are aligned to the live words as
two sequences (difflib on case- and punctuation-folded text), so a refined word goes to
the segment of the live word it matches or replaces. Times alone are not enough: a live
segment can be one word long, and a refined word's timestamps, a few hundred ms off,
put its midpoint in the next segment, which left the one-word segment empty, so it kept
its live text and the word was stored twice (a 4.7-minute recording: "and and",
"politically politically", "entire entire"; stored WER 4.26 % against 3.48 % offline).

A refined word the live pass did not have goes to the nearer of the segments around it
in the sequence. Any refined word whose midpoint is more than `MAX_GAP_S` from the
segment the sequence gives it goes to the nearest segment by time, or is dropped if that
is too far as well: live segments exist only where the VAD heard speech, so a word
further away is what an offline decode tends to invent on long silences. A segment that
gets no refined word keeps its live text (the refined decode never deletes what the live
pass heard: a missed word there costs the same as a wrong one).

A segment in `keep` (one the live second pass decoded, refined by the same model: see
worker.py) takes part in the alignment as any other, so the refined words that match
or replace its words go to it, and are dropped there: it keeps its text, and its
neighbours get only their own words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from difflib import SequenceMatcher

from service.domain import Decoding, Segment, Word
from service.policy.words import text_of

MAX_GAP_S = 1.0
"""Farthest a new refined word's midpoint may be from a live segment and still belong to
it (the live policy's segment ends lag word ends by well under a second)."""

_NOT_WORD = re.compile(r"[^\w']+")


def _key(text: str) -> str:
    return _NOT_WORD.sub("", text.casefold())


def _gap(seg: Segment, mid: float) -> float:
    return 0.0 if seg.start <= mid <= seg.end else min(abs(mid - seg.start), abs(mid - seg.end))


def _nearest(segments: Sequence[Segment], candidates: set[int], word: Word) -> tuple[float, int]:
    """(gap, index) of the candidate segment nearest to the word's midpoint."""
    mid = (word.start + word.end) / 2
    return min((_gap(segments[j], mid), j) for j in candidates)


def align_to_segments(
    live: Sequence[Segment], words: Sequence[Word], keep: frozenset[int] = frozenset()
) -> list[Segment]:
    """The live segments (same order, indexes, times, labels) with the refined words,
    marked REFINED; those whose index is in `keep`, and those no refined word goes to, as
    they are."""
    ordered = sorted(live, key=lambda s: (s.start, s.index))
    if not ordered:
        return []
    # Segments stored without their words (text only) take part by time alone.
    live_words = [(j, w) for j, s in enumerate(ordered) for w in s.words]
    every = set(range(len(ordered)))
    owned: list[list[Word]] = [[] for _ in ordered]
    matcher = SequenceMatcher(
        None, [_key(w.text) for _, w in live_words], [_key(w.text) for w in words], autojunk=False
    )
    for op, i0, i1, j0, j1 in matcher.get_opcodes():
        for k, word in enumerate(words[j0:j1]):
            if op == "equal":  # the same word: the segment of the live word it matches
                near = {live_words[i0 + k][0]}
            elif op == "replace":  # in place of live words: among their segments
                near = {live_words[i][0] for i in range(i0, i1)}
            else:  # a word the live pass did not hear: beside its neighbours
                near = {live_words[i][0] for i in (i0 - 1, i0) if 0 <= i < len(live_words)}
            gap, j = _nearest(ordered, near or every, word)
            if gap > MAX_GAP_S:  # matched far from where it was heard: by time alone
                gap, j = _nearest(ordered, every, word)
            if gap <= MAX_GAP_S:
                owned[j].append(word)
    out: list[Segment] = []
    for seg, ws in zip(ordered, owned, strict=True):
        if not ws or seg.index in keep:
            out.append(seg)
            continue
        ws.sort(key=lambda w: w.start)
        confidence = sum(w.probability for w in ws) / len(ws)
        out.append(
            replace(
                seg,
                text=text_of(ws),
                words=tuple(ws),
                confidence=confidence,
                decoding=Decoding.REFINED,
            )
        )
    return sorted(out, key=lambda s: s.index)


def changed(before: Sequence[Segment], after: Sequence[Segment]) -> list[Segment]:
    """The segments of `after` whose text differs from the same index in `before`."""
    old = {s.index: s.text for s in before}
    return [s for s in after if old.get(s.index) != s.text]
