"""The streaming policy of one stream: from a growing audio buffer to stable, final text.

Pure logic, no gRPC and no model: the session feeds it audio with Silero speech
probabilities (`push`), asks which decode to run next (`next_job`, which changes
nothing), says when it starts one (`job_started`), and hands the engine's result back
(`on_result`); `finish` when the client half-closes. Unit-testable with recorded engine
output.

How text becomes stable:
- the buffer is re-decoded every `min_step_s` of new audio while there is speech; words
  two consecutive decodes agree on are committed and sent as final at once (commit.py);
- when the speaker pauses for the endpointing silence the rest of the utterance is
  decoded once more, with the final beam, and made final; an utterance that reaches its
  maximum length without agreement is cut at a word boundary;
- the buffer keeps final words until a sentence ends and is trimmed there, or at the last
  final word once it nears `max_buffer_s` (window.py);
- only audio with speech is decoded, and words outside detected speech or in a decode
  Whisper itself marks as no-speech are dropped (speech.py, filters.py);
- once a sentence is complete it is decoded once more with the sentences just before it,
  and its changed segments are sent as revisions (revise.py), only while the stream has
  the model to itself and is caught up; with `revise_turns`, once a turn ends (a long
  pause, the stream's end) the whole turn is decoded once more as offline Whisper would,
  after its sentences' passes, and sent as revisions again (turns.py).

The state machine has two axes, each an enum: the stream's `Phase` (is an utterance open,
has the speaker paused, has the client half-closed) and what is `Decoding` (nothing, a
first-pass decode, a second pass, or both). By default one decode of a stream is in
flight at a time: `next_job` offers none while one is. With `beside` (a lone stream on a
model with a worker to spare) a second pass may run beside the first passes, which then
go on instead of waiting for it; still never more than one first pass and one second
pass at once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.engine import DecodeResult
from service.policy.commit import Agreement
from service.policy.config import PolicyConfig
from service.policy.filters import clean
from service.policy.jobs import DecodeJob, JobKind, ResultUpdate
from service.policy.revise import SecondPass
from service.policy.speech import SpeechEvent, SpeechGate
from service.policy.turns import TURN_HISTORY_S, TurnPass
from service.policy.window import CONTEXT_CHARS, History, Window
from service.policy.words import ends_sentence

Splitter = Callable[[Sequence[Word]], list[int]]
"""Where a final's words must be split (indexes of the words that start a new final):
the session's speaker turns, so that no final spans a change of speaker."""

BEHIND_STEPS = 3
"""While a backlog is queued (under load, or a file sent fast) decode every 3 steps'
worth of audio: less often rather than not at all, so agreement keeps working instead of
only cuts."""


class Phase(enum.Enum):
    """Where the stream stands; decides which first-pass decode `next_job` offers.

    QUIET --speech begins--> SPEAKING --endpoint silence--> PAUSED --final result-->
    QUIET (or SPEAKING when speech already began again); speech beginning in PAUSED goes
    back to SPEAKING. `finish` leads from any of them to ENDING when words are pending
    (its final result leads on to ENDED), else straight to ENDED.
    """

    QUIET = "quiet"
    """No utterance open: nothing to decode (a second pass may run)."""
    SPEAKING = "speaking"
    """An utterance is open: an interim decode every step, a cut when it grows too long."""
    PAUSED = "paused"
    """The speaker paused for the endpointing silence: the utterance's final decode is due."""
    ENDING = "ending"
    """The client half-closed with words pending: the last final decode is due."""
    ENDED = "ended"
    """The client half-closed and everything is final: only second passes remain."""


class Decoding(enum.Enum):
    """The decode of this stream in flight (`job_started` to `on_result`)."""

    NONE = "none"
    FIRST_PASS = "first_pass"
    SECOND_PASS = "second_pass"
    BOTH = "both"
    """A first pass beside a second pass (only when `next_job` was asked with `beside`)."""

    @property
    def first_pass(self) -> bool:
        return self in (Decoding.FIRST_PASS, Decoding.BOTH)

    @property
    def second_pass(self) -> bool:
        return self in (Decoding.SECOND_PASS, Decoding.BOTH)


class Policy:
    """One stream's policy: the speech gate, the window and its history, agreement, the
    second pass, and the phase machine deciding between them."""

    def __init__(
        self,
        cfg: PolicyConfig,
        start_offset_s: float = 0.0,
        first_segment_index: int = 0,
        splitter: Splitter | None = None,
    ) -> None:
        self.cfg = cfg
        self._splitter = splitter
        self._origin = start_offset_s
        self._phase = Phase.QUIET
        self._decoding = Decoding.NONE
        self._gate = SpeechGate(cfg.vad_threshold, cfg.min_speech_s, cfg.silence_s, start_offset_s)
        self._window = Window(start_offset_s)
        self._history = (
            History(start_offset_s, TURN_HISTORY_S) if cfg.revise_turns else History(start_offset_s)
        )
        self._agreement = Agreement(start_offset_s, first_segment_index)
        self._second = SecondPass()
        self._turns = TurnPass(start_offset_s) if cfg.revise and cfg.revise_turns else None
        self._last_decode_total = 0  # samples received when the last first pass started

    # ---- state, read-only ------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def decoding(self) -> Decoding:
        return self._decoding

    @property
    def origin_s(self) -> float:
        """Where this stream's audio starts on the transcript's clock (non-zero when resumed)."""
        return self._origin

    @property
    def received_s(self) -> float:
        return self._window.total / SAMPLE_RATE

    @property
    def window(self) -> Window:
        return self._window

    @property
    def gate(self) -> SpeechGate:
        return self._gate

    @property
    def second_pass(self) -> SecondPass:
        return self._second

    @property
    def turn_pass(self) -> TurnPass | None:
        return self._turns

    # ---- audio in --------------------------------------------------------
    def push(self, samples: npt.NDArray[np.float32], probs: Sequence[float]) -> list[SpeechEvent]:
        """Add audio and the speech probabilities of the frames it completed."""
        samples = samples.astype(np.float32, copy=False)
        self._window.append(samples)
        if self.cfg.revise:
            self._history.append(samples)
        events = self._gate.feed(probs)
        for event in events:
            self._on_speech(event.begin)
        if (
            self._phase is Phase.QUIET
            and not self._gate.in_speech
            and not self._agreement.committed
        ):
            self._trim_idle()
        if (
            self._turns is not None
            and self._phase is Phase.QUIET
            and not self._gate.in_speech
            and not self._agreement.pending
        ):
            self._turns.quiet(self._window.end_s)
        if not self._decoding.first_pass:  # words are checked only within the window
            self._gate.forget_before(self._window.start_s)
        return events

    def _on_speech(self, begin: bool) -> None:
        if self._phase in (Phase.ENDING, Phase.ENDED):
            return
        if begin:
            self._phase = Phase.SPEAKING
        elif self._phase is Phase.SPEAKING:
            self._phase = Phase.PAUSED

    def finish(self) -> None:
        """The client half-closed: everything left becomes final (the next job is the last
        final decode, if words are pending), then every complete sentence gets its second
        pass. Call `next_job` until it returns None."""
        if self._phase in (Phase.ENDING, Phase.ENDED):
            return
        if self._phase in (Phase.SPEAKING, Phase.PAUSED) or self._agreement.pending:
            self._phase = Phase.ENDING
        else:
            self._phase = Phase.ENDED
            self._second.close_unit(self._history.start_s)
            if self._turns is not None:
                self._turns.close(self._window.end_s)

    # ---- decisions (no side effects) ---------------------------------------
    def next_job(
        self, caught_up: bool = True, shared: bool = False, beside: bool = False
    ) -> DecodeJob | None:
        """The decode to run now, if any; changes nothing (see `job_started`).

        `caught_up` is False while a backlog is queued; `shared` is True while other
        streams use the model too. A second pass waits while the stream is behind, has
        speech to decode (finals first) or shares the model: a window of up to 20 s in a
        shared batch pads every stream's encoder input to its length (8 streams: p90 final
        latency 2.4 -> 3.4 s with second passes shared). After `finish`, under load, the
        first pass stands: no second passes.

        `beside`: the caller runs a second pass beside the first passes (on the model's
        other worker) instead of waiting for it, so a first pass is offered while a second
        pass is in flight and a second pass while a first pass is; with `revise_shared`
        also while the stream shares the model (the scheduler runs it in its slack, never
        in the streams' batches)."""
        if beside:
            return self._beside_job(caught_up, shared)
        if self._decoding is not Decoding.NONE:
            return None
        if self._phase is Phase.ENDING:
            return self._first_pass(JobKind.FINAL, shared)
        if self._phase is Phase.ENDED:
            return None if shared else self._second_pass_job(shared)
        job = self._speech_job(caught_up, shared)
        if job is None and caught_up and not shared:
            job = self._second_pass_job(shared)
        return job

    def _beside_job(self, caught_up: bool, shared: bool) -> DecodeJob | None:
        """`next_job` with `beside`: the first pass's job if one is due and none is in
        flight, else a second pass if none is in flight, on the same conditions."""
        if not self._decoding.first_pass:
            if self._phase is Phase.ENDING:
                return self._first_pass(JobKind.FINAL, shared)
            if self._phase is not Phase.ENDED and (job := self._speech_job(caught_up, shared)):
                return job
        if self._decoding.second_pass or (shared and not self.cfg.revise_shared):
            return None
        if caught_up or self._phase is Phase.ENDED:
            return self._second_pass_job(shared)
        return None

    def _max_buffer_s(self, shared: bool) -> float:
        return self.cfg.shared_max_buffer_s if shared else self.cfg.max_buffer_s

    def _speech_job(self, caught_up: bool, shared: bool) -> DecodeJob | None:
        if self._phase is Phase.PAUSED:
            return self._first_pass(JobKind.FINAL, shared)
        if self._phase is not Phase.SPEAKING:
            return None
        if self._window.seconds >= min(self.cfg.max_utterance_s, self._max_buffer_s(shared)):
            return self._first_pass(JobKind.CUT, shared)
        new_s = (self._window.total - self._last_decode_total) / SAMPLE_RATE
        step = self.cfg.shared_step_s if shared else self.cfg.min_step_s
        if not caught_up:
            step *= BEHIND_STEPS
        if new_s >= step:
            return self._first_pass(JobKind.INTERIM, shared)
        return None

    def _first_pass(self, kind: JobKind, shared: bool) -> DecodeJob:
        # While streams share the model every decode takes the shared beam: another width
        # needs a generate call of its own, which every stream in the batch waits for.
        if shared:
            beam = self.cfg.shared_beam
        else:
            beam = self.cfg.final_beam if kind is JobKind.FINAL else self.cfg.interim_beam
        return DecodeJob(
            kind=kind,
            audio=self._window.audio.copy(),
            start_s=self._window.start_s,
            end_s=self._window.end_s,
            beam_size=beam,
            prompt=self.cfg.prompt,
            context=self._window.context[-CONTEXT_CHARS:],
            hotwords=self.cfg.hotwords,
            shared=shared,
        )

    def _second_pass_job(self, shared: bool) -> DecodeJob | None:
        """A sentence's second pass, else (alone on the model) a complete turn's."""
        job = self._second.job(self._history, self._window.end_s, self.cfg)
        if job is None and self._turns is not None and not shared:
            job = self._turns.job(self._history, self._window.end_s, self.cfg)
        return job

    # ---- state changes ---------------------------------------------------
    def job_started(self, job: DecodeJob) -> None:
        """`job` (from `next_job`) is being decoded: until its result, no other job of its
        pass (and, unless it came from `next_job(beside=True)`, no job at all)."""
        if job.kind is JobKind.REVISE:
            if self._decoding.second_pass:
                raise ValueError("a second pass of this stream is already in flight")
            if job.target is None:
                raise ValueError("a second-pass job without its sentence")
            if job.target.turn:
                if self._turns is None:
                    raise ValueError("a turn's pass for a stream without turn passes")
                self._turns.start(job.target)
            else:
                self._second.start(job.target)
            both = self._decoding is Decoding.FIRST_PASS
            self._decoding = Decoding.BOTH if both else Decoding.SECOND_PASS
        else:
            if self._decoding.first_pass:
                raise ValueError("a first pass of this stream is already in flight")
            self._last_decode_total = self._window.sample(job.end_s)
            both = self._decoding is Decoding.SECOND_PASS
            self._decoding = Decoding.BOTH if both else Decoding.FIRST_PASS

    def on_result(self, job: DecodeJob, result: DecodeResult) -> list[ResultUpdate]:
        """Commit what the decode confirms; return results to send (finals first)."""
        revise = job.kind is JobKind.REVISE
        if not (self._decoding.second_pass if revise else self._decoding.first_pass):
            raise ValueError(f"result of a {job.kind.value} decode that was not started")
        if self._decoding is Decoding.BOTH:  # the other pass is still in flight
            self._decoding = Decoding.FIRST_PASS if revise else Decoding.SECOND_PASS
        else:
            self._decoding = Decoding.NONE
        if revise:
            if job.target is None:
                raise ValueError("a second-pass job without its sentence")
            if job.target.turn and self._turns is not None:  # job_started checked it
                return self._turns.on_result(job, job.target, result)
            updates = self._second.on_result(job, job.target, result)
            if self._turns is not None:
                for update in updates:
                    self._turns.revised(update)
            return updates
        a = self._agreement
        words = clean(
            job,
            result,
            pending=bool(a.pending),
            has_speech=self._gate.has_speech,
            committed_end=a.committed_end,
            recent=a.recent,
        )
        if job.kind is JobKind.FINAL:
            a.commit(words)
            updates = self._finalize(len(a.committed))
            self._second.close_unit(self._history.start_s)
            a.tentative = []
            if self._phase is Phase.ENDING:
                self._phase = Phase.ENDED
                if self._turns is not None:
                    self._turns.close(self._window.end_s)
            else:
                self._phase = Phase.SPEAKING if self._gate.in_speech else Phase.QUIET
            self._trim(self._window.sample(job.end_s) - self._keep())
            return updates
        agreed = a.agreed(words, job.end_s, self.cfg.commit_margin_s, job.kind is JobKind.CUT)
        a.commit(words[:agreed])
        a.hold(words[agreed:], job.end_s)
        updates = self._finalize(len(a.committed))
        self._trim_after_finals(force=job.kind is JobKind.CUT, shared=job.shared)
        interim = a.interim()
        if interim is not None:
            updates.append(interim)
        return updates

    def _finalize(self, count: int) -> list[ResultUpdate]:
        """Make the first `count` committed words final: one result, or one per piece
        between the splitter's cuts (consecutive segment indexes)."""
        cuts: list[int] = []
        if self._splitter is not None and count > 1:
            cuts = sorted(
                {c for c in self._splitter(self._agreement.committed[:count]) if 0 < c < count}
            )
        updates: list[ResultUpdate] = []
        for a, b in zip([0, *cuts], [*cuts, count], strict=True):
            update = self._agreement.finalize(b - a)
            if update is None:
                continue
            self._window.finals.extend(update.words)
            if self.cfg.revise:
                self._second.add_final(update, self._history.start_s)
            if self._turns is not None:
                self._turns.add_final(update)
                self._turns.drop_before(self._history.start_s)
            updates.append(update)
        return updates

    def _keep(self) -> int:
        """Samples kept before the end of a final decode: a pre-roll, unless in speech."""
        return round(self.cfg.preroll_s * SAMPLE_RATE) if not self._gate.in_speech else 0

    def _trim_idle(self) -> None:
        """Between utterances keep only a pre-roll, so onsets are not clipped."""
        keep = round((self.cfg.preroll_s + self.cfg.min_speech_s) * SAMPLE_RATE)
        if len(self._window.audio) > keep:
            self._trim(self._window.total - keep)

    def _trim_after_finals(self, force: bool, shared: bool) -> None:
        """Drop decoded audio at a sentence end, or at any final word once the buffer is long.

        The buffer keeps final words until a sentence ends so that Whisper always
        hears whole phrases; trimming at every final would leave it fragments.
        """
        finals = self._window.finals
        if not finals:
            return
        long = self._window.seconds > self._max_buffer_s(shared) - self.cfg.min_step_s
        cut_word = next(
            (w for w in reversed(finals) if ends_sentence(w)),
            finals[-1] if force or long else None,
        )
        if cut_word is not None:
            self._trim(self._window.sample(cut_word.end))

    def _trim(self, sample: int) -> None:
        """Drop audio before `sample`, but not of words still pending."""
        pending = self._agreement.pending
        self._window.trim(sample, pending[0].start if pending else None)
