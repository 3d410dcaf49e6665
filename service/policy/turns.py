"""Turn passes: when the speaker's turn ends (a pause of TURN_PAUSE_S, or the stream's
end), the whole turn, if it lasted at most TURN_MAX_S, is decoded once more as offline
Whisper decodes a window (service/engine.py `_decode_whole`), and its segments whose
text that changes are sent as revisions. Imports the job types and the second pass's
alignment and job.

Why: the second pass hears one sentence with a few seconds before it. Where a reader
pauses inside a sentence, the pause makes a final and the words after it are decoded
without those before ("Die sedimente Influssfatellen." for "die Sedimente im Fluss
verteilen"), and neither pass hears the turn as offline Whisper does, whole. A turn's
pass does, once, after the turn: Google's two-pass recognisers rescore at the end of an
utterance for the same reason. It runs where a second pass runs, after the turn's
sentences had theirs, and only while the stream has the model to itself.
"""

from __future__ import annotations

from service.engine import DecodeResult
from service.policy.config import PolicyConfig
from service.policy.jobs import DecodeJob, ResultUpdate, RevisionTarget
from service.policy.revise import LEAD_IN_S, pass_revisions, revise_job
from service.policy.window import CONTEXT_CHARS, History
from service.policy.words import text_of
from service.text import join_words

TURN_PAUSE_S = 3.0
"""Silence after a final that ends the turn. Readers pause 0.5-2 s inside a sentence
(FLEURS), and word times at a decode's edge are loose: at 2 s a FLEURS utterance was cut
in two turns, each decoded without the other. Each pass encodes a 30 s window whatever
the turn's length, so fewer, longer turns also cost less."""
TURN_MAX_S = 23.5
"""Longest turn decoded whole: with its lead-in (TURN_LEAD_S) and the silence after it (up
to TURN_PAUSE_S) it stays inside Whisper's 30 s window. Speech that runs on longer
without a pause gets no turn pass (its sentences stand as their second passes left
them): cut without a pause, a turn's edges fall inside words. Replay of long/ with
tiny.en (3 readers, 874 s) when such speech was cut into 23.5 s turns and each decoded
whole: 5.41 % WER against 4.95 % for the first pass alone (offline 3.83 %)."""
TURN_HISTORY_S = 40.0
"""Audio a stream with turn passes keeps (30 s without): a turn's pass starts after the
pause that ends it, and after its sentences' second passes."""
TURN_LEAD_S = 3.0
"""Audio before the turn's first word that its pass hears, at most: the silence since
the turn before (or the stream's start), as offline Whisper hears the silence before
speech in its window."""

Turn = tuple[ResultUpdate, ...]  # the final segments of one turn, as last sent


class TurnPass:
    """The turn being spoken (its finals as last sent), the turns waiting for their pass,
    and the text before them (the next pass's previous text)."""

    def __init__(self, origin_s: float = 0.0) -> None:
        self._open: list[ResultUpdate] = []
        self._closed: list[tuple[Turn, float, float]] = []  # complete turns, their audio
        self._text = ""
        self._origin_s = origin_s
        self._too_long = False  # the speech since the last pause is longer than TURN_MAX_S
        self._last_end_s: float | None = None  # where the last final ended
        self._last_stop_s = origin_s  # where the last complete turn's audio ends

    @property
    def waiting(self) -> int:
        """Complete turns waiting for their pass."""
        return len(self._closed)

    def add_final(self, update: ResultUpdate) -> None:
        """A final of the stream; one that starts TURN_PAUSE_S after the turn's last word
        starts a new turn, one that would make the turn longer than TURN_MAX_S makes it
        too long for a pass."""
        last_end = self._open[-1].end_s if self._open else self._last_end_s
        if last_end is not None and update.start_s - last_end >= TURN_PAUSE_S:
            self.close(update.start_s - LEAD_IN_S)
        self._last_end_s = update.end_s
        if self._open and update.end_s - self._open[0].start_s > TURN_MAX_S:
            self._too_long = True  # it stands: the next pass's previous text
            self._remember(tuple(self._open))
            self._open = []
        if self._too_long:
            self._remember((update,))
        else:
            self._open.append(update)

    def drop_before(self, history_start_s: float) -> None:
        """Turns whose audio left the history stand as they are: the queue stays bounded
        while streams share the model (no turn passes then)."""
        while self._closed and self._closed[0][1] < history_start_s:
            self._remember(self._closed.pop(0)[0])

    def revised(self, update: ResultUpdate) -> None:
        """A segment sent again (its sentence's second pass): its turn holds the new words."""
        for i, u in enumerate(self._open):
            if u.segment_index == update.segment_index:
                self._open[i] = update
                return
        for k, (turn, start_s, stop_s) in enumerate(self._closed):
            for i, u in enumerate(turn):
                if u.segment_index == update.segment_index:
                    self._closed[k] = ((*turn[:i], update, *turn[i + 1 :]), start_s, stop_s)
                    return

    def quiet(self, now_s: float) -> None:
        """Nothing is being said at `now_s`: the turn ends once TURN_PAUSE_S passed."""
        if self._last_end_s is not None and now_s - self._last_end_s >= TURN_PAUSE_S:
            self.close(now_s)

    def close(self, stop_s: float) -> None:
        """The turn ends (a pause, the stream's end); its audio runs to `stop_s`, where
        nothing more of it was said: word ends at a decode's edge are too loose to cut
        it by (a pass cut at the last word's end heard "ein Pub" of "ein Publikum")."""
        if self._too_long:  # no pass: it stood, and the next turn starts after it
            self._too_long = False
            self._last_stop_s = stop_s
        if self._open:
            stop_s = min(stop_s, self._open[-1].end_s + TURN_PAUSE_S)
            start_s = max(self._open[0].start_s - TURN_LEAD_S, self._last_stop_s)
            start_s = max(min(start_s, self._open[0].start_s - LEAD_IN_S), self._origin_s)
            self._closed.append((tuple(self._open), start_s, stop_s))
            self._last_stop_s = stop_s
            self._open = []

    def job(self, history: History, end_s: float, cfg: PolicyConfig) -> DecodeJob | None:
        """The pass of the oldest complete turn whose audio is still in the history (no
        state changes: `start` applies it); turns before it that left the history stand
        as they are."""
        skipped: list[Turn] = []
        for turn, start_s, stop_s in self._closed:
            if start_s < history.start_s:
                skipped.append(turn)
                continue
            stop_s = min(stop_s, end_s)
            before = join_words((self._text, *(u.text for t in skipped for u in t)))
            target = RevisionTarget(unit=turn, context=(), skipped=tuple(skipped), turn=True)
            return revise_job(history, start_s, stop_s, cfg, before, target)
        return None

    def start(self, target: RevisionTarget) -> None:
        """A pass from `job` starts: its turn, and the skipped ones before it, leave the
        queue (the skipped ones stand as they are)."""
        turns = [*target.skipped, target.unit]
        if len(self._closed) < len(turns) or any(
            a is not b for (a, _, _), b in zip(self._closed, turns, strict=False)
        ):
            raise ValueError("turn pass started for turns no longer waiting")
        del self._closed[: len(turns)]
        for turn in target.skipped:
            self._remember(turn)

    def on_result(
        self, job: DecodeJob, target: RevisionTarget, result: DecodeResult
    ) -> list[ResultUpdate]:
        """The turn's segments whose text the pass changes, as revisions. A pass that is
        unsure, loops, or cannot be matched to the turn word for word changes nothing."""
        # Every word decoded is the turn's: its audio ends where nothing more was said.
        revised = pass_revisions(job, result, (), target.unit, whole=True)
        if revised is None:
            self._remember(target.unit)
            return []
        updates, words = revised
        self._text = join_words((self._text, text_of(words)))[-CONTEXT_CHARS:]
        return updates

    def _remember(self, turn: Turn) -> None:
        self._text = join_words((self._text, *(u.text for u in turn)))[-CONTEXT_CHARS:]
