"""The second pass: each complete sentence decoded again, with the sentences just before
it as acoustic context, and its changed segments sent as revisions; and the word
alignment that tells which new words stand for which segment. Imports the job types,
the filters, the word helpers and the history.

Agreement hears a sentence that starts the buffer without what came before it ("not
with standing"); the second pass hears it as offline Whisper does, and closes the gap to
offline accuracy (docs/benchmarks.md, 1 Dec 2026).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from service.domain import Word
from service.engine import DecodeResult
from service.policy.config import PolicyConfig
from service.policy.filters import UNSURE_LOGPROB, heard, looped
from service.policy.jobs import DecodeJob, JobKind, ResultUpdate, RevisionTarget
from service.policy.window import CONTEXT_CHARS, History
from service.policy.words import ends_sentence, instant, normalize, text_of
from service.text import join_words

REVISE_CONTEXT_S = 3.0
"""Revised sentences starting this close before a sentence are decoded with it (3 s beat
5 s on the long recordings: 3.40 % vs 3.83 % WER in replay)."""
REVISE_MAX_WINDOW_S = 20.0
"""Longest second-pass decode (its cost grows with its length); a sentence that does not
fit stands as the first pass heard it."""
REVISE_MAX_UNIT_S = 15.0
"""A sentence still open after this long is revised as it is."""
REVISE_MIN_SIMILARITY = 0.6
"""A revision this unlike the first pass (difflib ratio of the letters) is a
misalignment, not a correction: the first pass is kept."""
REVISE_TAIL_LOSS = 3
"""A second pass without this many of the sentence's last words or more stopped early
(the decoder ended its text before the speech did): not a correction, the first pass is
kept. Seen on Japanese with Whisper base, "…ことに商店を" for the first pass's
"…ことに招点を当てています" (policy_sim, FLEURS ja: CER 5.0 % first pass, 26.7 % with that
revision); a real correction rarely drops three words at a sentence's end."""
REVISE_END_SLACK_S = 0.1
"""A revised word starting this long after the sentence's last word ended belongs to the
next sentence."""
LEAD_IN_S = 0.3
"""Audio before the first word that the second pass hears (word start times are loose)."""
REVISED_KEPT = 8
"""Revised sentences kept as possible context; older ones become prompt text."""

Unit = tuple[ResultUpdate, ...]  # the final segments of one sentence


def fill_empty(segments: list[list[Word]]) -> bool:
    """Give a segment left without words (its words merged into a neighbour's: "not with" |
    "standing" heard as "notwithstanding") a word of a neighbour that has two or more, so
    that no stored segment becomes empty; False when that is not possible."""
    for i, words in enumerate(segments):
        if words:
            continue
        # Merged words are given to the first segment of the stretch: the previous one first.
        if i > 0 and len(segments[i - 1]) > 1:
            words.insert(0, segments[i - 1].pop())
        elif i + 1 < len(segments) and len(segments[i + 1]) > 1:
            words.append(segments[i + 1].pop(0))
        else:
            return False
    return True


def align_revision(
    context: Sequence[Word],
    first: Sequence[Word],
    decoded: Sequence[Word],
    whole: bool = False,
) -> list[tuple[Word, int]] | None:
    """The second pass's words that stand for a sentence, each with the index (in `first`)
    of the first-pass word it replaces; None when the two cannot be told apart safely.

    `decoded` covers the `context` sentences (already revised), then the sentence, then
    perhaps the start of the next one: the words are matched by text, not by time (the
    aligner's times at a window's edges are too loose to cut it by). With `whole` the
    audio holds the sentence and nothing else (a turn's pass), so every decoded word is
    its own, whatever the loose times at the decode's edges say.
    """
    p = [normalize(w.text) for w in (*context, *first)]
    r = [normalize(w.text) for w in decoded]
    b0, n = len(context), len(p)
    ops = difflib.SequenceMatcher(None, p, r, autojunk=False).get_opcodes()
    r0: int | None = None
    r1: int | None = None
    for tag, i1, i2, j1, j2 in ops:
        if r0 is None and (i1 <= b0 < i2 or i1 == b0 == i2):
            if tag == "equal":
                r0 = j1 + b0 - i1
            elif tag == "insert":  # words between context and sentence: before its first word
                r0 = j1 if whole else j1 + sum(1 for w in decoded[j1:j2] if w.end <= first[0].start)
            elif i1 == b0:
                r0 = j1
            else:
                return None  # the seam lies inside a stretch the two passes heard differently
        if i2 == n and tag != "insert":
            r1 = j2
        if tag == "insert" and i1 == n:  # after the sentence: only what ends by its end
            inside = sum(1 for w in decoded[j1:j2] if (w.start + w.end) / 2 <= first[-1].end)
            r1 = j2 if whole else j1 + inside
    # The window runs on past the sentence, and the next sentence's first word can match the
    # sentence's last one by text ("no to it." | "no to that. It was late."). The sentence's
    # end lies inside the window, where the aligner's times hold: a word starting after the
    # first pass's last word ended belongs to the next sentence (a zero-length word has no
    # time to go by: the aligner could not place it, as often at a sentence's end).
    while not whole and r0 is not None and r1 is not None and r1 - r0 > 1:
        last = decoded[r1 - 1]
        if instant(last) or last.start < first[-1].end + REVISE_END_SLACK_S:
            break
        r1 -= 1
    if r0 is None or r1 is None or r1 <= r0:
        return None
    tail = next((op for op in ops if op[0] != "insert" and op[2] == n), None)
    if tail is not None and tail[0] == "delete" and tail[2] - tail[1] >= REVISE_TAIL_LOSS:
        return None
    # autojunk off: on text over 200 characters it ignores common letters, and the ratio of
    # a long sentence to its own revision drops below any threshold.
    similar = difflib.SequenceMatcher(None, "".join(p[b0:]), "".join(r[r0:r1]), autojunk=False)
    if similar.ratio() < REVISE_MIN_SIMILARITY:
        return None
    out: list[tuple[Word, int]] = []
    for tag, i1, i2, j1, j2 in ops:
        for j in range(max(j1, r0), min(j2, r1)):
            if tag == "equal":
                i = i1 + j - j1
            elif tag == "replace":
                i = i1 + min(j - j1, i2 - i1 - 1)
            else:  # inserted: belongs with the word before it
                i = i1 - 1 if i1 > b0 else i1
            out.append((decoded[j], min(max(i - b0, 0), len(first) - 1)))
    return out


def as_revisions(
    unit: Sequence[ResultUpdate], matched: Sequence[tuple[Word, int]]
) -> list[ResultUpdate] | None:
    """The segments of `unit` whose text the matched words (each with the index of the
    word of `unit` it replaces) change, as revisions one higher than last sent; None when
    the words cannot give every segment one (the segments stand)."""
    owner: list[int] = []
    for i, u in enumerate(unit):
        owner.extend([i] * len(u.words))
    per_segment: list[list[Word]] = [[] for _ in unit]
    for word, k in matched:
        per_segment[owner[k]].append(word)
    if not fill_empty(per_segment):  # fewer words than segments
        return None
    return [
        ResultUpdate(tuple(words), True, 0.0, u.segment_index, revision=u.revision + 1)
        for u, words in zip(unit, per_segment, strict=True)
        if text_of(words) != u.text
    ]


def pass_revisions(
    job: DecodeJob,
    result: DecodeResult,
    context: Sequence[Word],
    unit: Sequence[ResultUpdate],
    whole: bool = False,
) -> tuple[list[ResultUpdate], list[Word]] | None:
    """What a second pass (a sentence's or, `whole`, a turn's) changes in `unit`: the
    revisions to send and the unit's words as the pass heard them; None when it changes
    nothing because it is unsure, loops, or cannot be matched to the unit word for word
    (see align_revision), so the unit stands as sent."""
    decoded = heard(job, result)
    if result.avg_logprob < UNSURE_LOGPROB or looped(decoded):
        return None
    first = [w for u in unit for w in u.words]
    matched = align_revision(context, first, decoded, whole=whole)
    updates = None if matched is None else as_revisions(unit, matched)
    if matched is None or updates is None:
        return None
    return updates, [w for w, _ in matched]


def revise_job(
    history: History,
    start_s: float,
    end_s: float,
    cfg: PolicyConfig,
    context: str,
    target: RevisionTarget,
) -> DecodeJob:
    """A second-pass decode (a sentence's or a turn's) of the history between two times,
    with `context` (its end) as the text before."""
    return DecodeJob(
        kind=JobKind.REVISE,
        audio=history.audio(start_s, end_s),
        start_s=start_s,
        end_s=end_s,
        beam_size=cfg.revise_beam,
        prompt=cfg.prompt,
        context=context[-CONTEXT_CHARS:],
        hotwords=cfg.hotwords,
        target=target,
    )


def _remembered(
    revised: list[list[Word]], revised_text: str, words: list[Word]
) -> tuple[list[list[Word]], str]:
    """`revised` and `revised_text` once `words` (a sentence as revised) are added."""
    if not words:
        return revised, revised_text
    revised = [*revised, words]
    while len(revised) > REVISED_KEPT:
        old = text_of(revised.pop(0))
        revised_text = join_words((revised_text, old))[-CONTEXT_CHARS:]
    return revised, revised_text


class SecondPass:
    """Sentences of one stream on their way to a second pass: the final segments of the
    sentence being spoken, complete sentences waiting, and the last revised ones (the
    next one's context)."""

    def __init__(self) -> None:
        self._unit: list[ResultUpdate] = []
        self._queue: list[Unit] = []
        self._revised: list[list[Word]] = []
        self._revised_text = ""  # revised text older than _revised: prompt of a second pass

    @property
    def waiting(self) -> int:
        """Complete sentences waiting for their second pass."""
        return len(self._queue)

    def add_final(self, update: ResultUpdate, history_start_s: float) -> None:
        """A final segment of the sentence being spoken; a sentence end (or a sentence
        open for REVISE_MAX_UNIT_S) completes the sentence."""
        self._unit.append(update)
        last = update.words[-1]
        if ends_sentence(last) or last.end - self._unit[0].start_s > REVISE_MAX_UNIT_S:
            self.close_unit(history_start_s)

    def close_unit(self, history_start_s: float) -> None:
        """The sentence being spoken is complete (a sentence end, a pause, the stream's end)."""
        if self._unit:
            self._queue.append(tuple(self._unit))
            self._unit = []
        # Sentences whose audio left the history can no longer get a second pass (a stream
        # sharing the model skips them): they stand, and the queue stays bounded.
        while self._queue and self._queue[0][0].start_s < history_start_s:
            self._remember([w for u in self._queue.pop(0) for w in u.words])

    def job(self, history: History, end_s: float, cfg: PolicyConfig) -> DecodeJob | None:
        """The second pass of the oldest complete sentence that fits (no state changes:
        `start` applies it): its audio and that of the revised sentences starting up to
        REVISE_CONTEXT_S before it, which the decoder hears first (what the first pass
        lacked), with the revised text before as prompt. Sentences before it that do not
        fit the history or REVISE_MAX_WINDOW_S are skipped: they stand as they are."""
        revised, revised_text = self._revised, self._revised_text
        hist_start = history.start_s
        skipped: list[Unit] = []
        for unit in self._queue:
            start = unit[0].start_s
            ctx = 0
            while (
                ctx < len(revised)
                and start - revised[-1 - ctx][0].start <= REVISE_CONTEXT_S
                and end_s - revised[-1 - ctx][0].start < REVISE_MAX_WINDOW_S - LEAD_IN_S
            ):
                ctx += 1
            context = revised[len(revised) - ctx :]
            first_s = context[0][0].start if context else start
            before = revised[: len(revised) - ctx]
            window_s = max(first_s - LEAD_IN_S, before[-1][-1].end if before else 0.0, hist_start)
            if first_s < hist_start or end_s - window_s > REVISE_MAX_WINDOW_S:
                skipped.append(unit)  # too long: kept as is
                revised, revised_text = _remembered(
                    revised, revised_text, [w for u in unit for w in u.words]
                )
                continue
            text = text_of(w for words in before for w in words)
            target = RevisionTarget(
                unit=unit,
                context=tuple(w for words in context for w in words),
                skipped=tuple(skipped),
            )
            before_text = join_words((revised_text, text))
            return revise_job(history, window_s, end_s, cfg, before_text, target)
        return None

    def start(self, target: RevisionTarget) -> None:
        """A second pass from `job` starts: its sentence, and the skipped ones before it,
        leave the queue (the skipped ones stand as they are)."""
        units = [*target.skipped, target.unit]
        if len(self._queue) < len(units) or any(
            a is not b for a, b in zip(self._queue, units, strict=False)
        ):
            raise ValueError("second pass started for sentences no longer waiting")
        del self._queue[: len(units)]
        for unit in target.skipped:
            self._remember([w for u in unit for w in u.words])

    def on_result(
        self, job: DecodeJob, target: RevisionTarget, result: DecodeResult
    ) -> list[ResultUpdate]:
        """The segments of the sentence whose text the second pass changes, as revisions.

        A second pass that is unsure, loops, or cannot be matched to the sentence word for
        word (see align_revision) changes nothing: the first pass stands.
        """
        revised = pass_revisions(job, result, target.context, target.unit)
        if revised is None:
            self._remember([w for u in target.unit for w in u.words])
            return []
        updates, words = revised
        self._remember(words)
        return updates

    def _remember(self, words: list[Word]) -> None:
        """A sentence as revised: context of the next second pass."""
        self._revised, self._revised_text = _remembered(self._revised, self._revised_text, words)
