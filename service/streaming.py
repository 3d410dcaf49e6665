"""The streaming policy: from a growing audio buffer to stable, final text.

Pure logic, no gRPC and no model: the session feeds it audio with Silero
speech probabilities, asks it which decode to run next, runs that decode on the
engine and hands the result back. Unit-testable with recorded engine output.

How text becomes stable (LocalAgreement-2, as in whisper_streaming):
- the buffer is re-decoded every `min_step_s` of new audio while there is
  speech; the longest common prefix of two consecutive hypotheses is
  *committed* (it never changes again);
- committed words are sent as a *final* result at once (`final_on_commit`, the
  default: lowest latency), or else when they end a sentence; when the speaker
  pauses for the endpointing silence the rest of the utterance is decoded once
  more, with the final beam, and made final; an utterance that reaches its
  maximum length without agreement is cut at a word boundary;
- the buffer keeps final words until a sentence ends (Whisper hears whole
  phrases) and is trimmed there, or at the last final word once it nears
  `max_buffer_s`, so a decode never covers more than that and the cost of a
  second of audio does not grow with the length of the session; final text
  before the buffer primes the decoder as its prompt;
- only audio with speech is decoded, and words lying outside detected speech or
  in a decode Whisper itself marks as no-speech are dropped: silence and noise
  produce no text.
"""

from __future__ import annotations

import enum
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.config import Settings
from service.domain import Word
from service.engine import DecodeRequest, DecodeResult

SAMPLE_RATE = 16000
FRAME = 512
FRAME_S = FRAME / SAMPLE_RATE
REPEAT_WORDS = 4  # an immediate repeat this long of committed words is dropped
LOOP_RUN = 3  # this many zero-length words in a row: the decoder is looping past the speech
CONTEXT_CHARS = 200  # final text before the buffer handed to the engine (it keeps 32 tokens)
BEHIND_STEPS = 3  # decode every 3 steps' worth of audio while a backlog is queued
_SENTENCE_END = re.compile(r"[.?!…]['\")\]]*$")
_NORM = re.compile(r"[^\w']+")


def compression_ratio(text: str) -> float:
    """gzip ratio of the text; Whisper's loop detector (> 2.4 means repetition)."""
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


def _instant(word: Word) -> bool:
    """A zero-length word: the aligner found no audio for it."""
    return word.end - word.start < 0.02


def normalize(word: str) -> str:
    """Comparison key of a word: lower case without punctuation."""
    return _NORM.sub("", word.lower())


@dataclass(frozen=True)
class PolicyConfig:
    """Tuning of one stream's policy (built from settings and the stream config)."""

    min_step_s: float = 1.0
    shared_step_s: float = 0.5
    """Step while other streams share the model."""
    max_buffer_s: float = 15.0
    shared_max_buffer_s: float = 9.0
    """The same while other streams share the model: one long buffer pads the whole
    batch's encoder input to its length, and every stream waits for that batch."""
    silence_s: float = 0.5
    max_utterance_s: float = 12.0
    vad_threshold: float = 0.5
    interim_beam: int = 1
    final_beam: int = 5
    shared_beam: int = 1
    """Beam of every decode while other streams share the model: a wider beam, or one
    differing from the batch's, costs every stream in the batch."""
    preroll_s: float = 0.4
    min_speech_s: float = 0.25
    prompt: str = ""
    hotwords: str = ""
    commit_margin_s: float = 0.3
    """Agreed words ending closer than this to the buffer's end wait for the next decode."""
    final_on_commit: bool = True
    """Make words final as soon as two decodes agree (lowest latency); False waits for
    a sentence end, a pause or the maximum utterance length."""


def policy_config(
    settings: Settings,
    silence_s: float | None = None,
    max_utterance_s: float | None = None,
    prompt: str = "",
    hotwords: str = "",
) -> PolicyConfig:
    """A stream's policy from the server's settings and what the stream's config overrides
    (the servicer and the replay benchmark build it the same way)."""
    m, st = settings.model, settings.streaming
    return PolicyConfig(
        min_step_s=st.min_step_s,
        shared_step_s=st.shared_step_s,
        max_buffer_s=st.max_buffer_s,
        shared_max_buffer_s=st.shared_max_buffer_s,
        silence_s=st.default_silence_s if silence_s is None else silence_s,
        max_utterance_s=st.default_max_utterance_s if max_utterance_s is None else max_utterance_s,
        vad_threshold=st.vad_threshold,
        commit_margin_s=st.commit_margin_s,
        interim_beam=m.beam_size,
        final_beam=m.final_beam_size,
        shared_beam=m.shared_beam_size,
        prompt=prompt,
        hotwords=hotwords,
    )


class JobKind(enum.Enum):
    """Why a decode runs; decides how its result is committed."""

    INTERIM = "interim"
    CUT = "cut"
    FINAL = "final"


@dataclass(frozen=True)
class DecodeJob:
    """A decode the policy wants: the buffer's audio and where it sits in time."""

    kind: JobKind
    audio: npt.NDArray[np.float32]
    start_s: float
    end_s: float
    beam_size: int
    prompt: str
    context: str
    hotwords: str

    def request(self) -> DecodeRequest:
        """What the engine is asked to decode."""
        return DecodeRequest(
            audio=np.ascontiguousarray(self.audio),
            prompt=self.prompt,
            context=self.context,
            hotwords=self.hotwords,
            beam_size=self.beam_size,
        )


@dataclass(frozen=True)
class SpeechEvent:
    """Speech began or ended at `offset_s`."""

    begin: bool
    offset_s: float


@dataclass(frozen=True)
class ResultUpdate:
    """An interim or final result to send."""

    words: tuple[Word, ...]
    is_final: bool
    stability: float
    segment_index: int = -1

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def start_s(self) -> float:
        return self.words[0].start if self.words else 0.0

    @property
    def end_s(self) -> float:
        return self.words[-1].end if self.words else 0.0


class StreamingPolicy:
    """Per-stream state: audio buffer, VAD state machine, committed and tentative words."""

    def __init__(
        self, cfg: PolicyConfig, start_offset_s: float = 0.0, first_segment_index: int = 0
    ) -> None:
        self.cfg = cfg
        self._origin = start_offset_s
        self._audio = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute sample index (stream clock) of _audio[0]
        self._total = 0  # samples received
        self._flags: list[bool] = []  # speech flag per frame, absolute frame index
        self._in_speech = False
        self._run = 0  # consecutive frames contradicting the current state
        self._run_start = 0
        self._utterance = False  # speech seen since the last final
        self._endpoint = False
        self._last_decode_total = 0
        self._committed: list[Word] = []
        self._tentative: list[Word] = []
        self._last_committed_end = start_offset_s
        self._context = ""  # final text before the buffer: the decoder's prompt
        self._final_in_buffer: list[Word] = []
        self._recent: list[Word] = []  # last committed words, to drop repeats at the seam
        self._next_index = first_segment_index
        self._last_interim = ""
        self._shared = False  # other streams share the model (set by each next_job)

    # ---- audio in -------------------------------------------------------
    @property
    def origin_s(self) -> float:
        """Where this stream's audio starts on the transcript's clock (non-zero when resumed)."""
        return self._origin

    @property
    def received_s(self) -> float:
        return self._total / SAMPLE_RATE

    def _t(self, sample: int) -> float:
        return self._origin + sample / SAMPLE_RATE

    def push(self, samples: npt.NDArray[np.float32], probs: Sequence[float]) -> list[SpeechEvent]:
        """Add audio and the speech probabilities of the frames it completed."""
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        self._total += len(samples)
        events: list[SpeechEvent] = []
        min_speech = max(1, round(self.cfg.min_speech_s / FRAME_S))
        silence = max(1, round(self.cfg.silence_s / FRAME_S))
        for p in probs:
            frame = len(self._flags)
            if self._in_speech:
                speech = p >= self.cfg.vad_threshold - 0.15
            else:
                speech = p >= self.cfg.vad_threshold
            self._flags.append(speech)
            if speech != self._in_speech:
                if self._run == 0:
                    self._run_start = frame
                self._run += 1
            else:
                self._run = 0
            if not self._in_speech and self._run >= min_speech:
                self._in_speech, self._run = True, 0
                self._utterance = True
                self._endpoint = False
                events.append(SpeechEvent(True, self._t(self._run_start * FRAME)))
            elif self._in_speech and self._run >= silence:
                self._in_speech, self._run = False, 0
                self._endpoint = True
                events.append(SpeechEvent(False, self._t(self._run_start * FRAME)))
        if not self._utterance and not self._in_speech and not self._committed:
            self._trim_idle()
        return events

    def _trim_idle(self) -> None:
        """Between utterances keep only a pre-roll, so onsets are not clipped."""
        keep = round((self.cfg.preroll_s + self.cfg.min_speech_s) * SAMPLE_RATE)
        if len(self._audio) > keep:
            self._trim(self._total - keep)

    def _drop_before(self, sample: int) -> None:
        sample = min(max(sample, self._buf_start), self._total)
        self._audio = self._audio[sample - self._buf_start :]
        self._buf_start = sample

    # ---- decisions ------------------------------------------------------
    def _buffer_s(self) -> float:
        return len(self._audio) / SAMPLE_RATE

    def _max_buffer_s(self) -> float:
        return self.cfg.shared_max_buffer_s if self._shared else self.cfg.max_buffer_s

    def next_job(self, caught_up: bool = True, shared: bool = False) -> DecodeJob | None:
        """The decode to run now, if any. `caught_up` is False while a backlog is queued;
        `shared` is True while other streams use the model too."""
        self._shared = shared
        if self._endpoint and self._utterance:
            return self._job(JobKind.FINAL)
        if self._endpoint:  # speech ended without anything to finalize
            self._endpoint = False
            return None
        if not self._utterance:
            return None
        if self._buffer_s() >= min(self.cfg.max_utterance_s, self._max_buffer_s()):
            return self._job(JobKind.CUT)
        new_s = (self._total - self._last_decode_total) / SAMPLE_RATE
        # Behind (audio queued, e.g. under load or a file sent fast): decode less often
        # rather than not at all, so agreement keeps working instead of only cuts.
        step = self.cfg.shared_step_s if shared else self.cfg.min_step_s
        if not caught_up:
            step *= BEHIND_STEPS
        if new_s >= step:
            return self._job(JobKind.INTERIM)
        return None

    def finish_job(self, shared: bool = False) -> DecodeJob | None:
        """The last decode when the client half-closes: everything left becomes final."""
        self._shared = shared
        if self._utterance or self._committed or self._tentative:
            return self._job(JobKind.FINAL)
        return None

    def _job(self, kind: JobKind) -> DecodeJob:
        self._last_decode_total = self._total
        # While streams share the model every decode takes the shared beam: another width
        # needs a generate call of its own, which every stream in the batch waits for.
        if self._shared:
            beam = self.cfg.shared_beam
        else:
            beam = self.cfg.final_beam if kind is JobKind.FINAL else self.cfg.interim_beam
        return DecodeJob(
            kind=kind,
            audio=self._audio.copy(),
            start_s=self._t(self._buf_start),
            end_s=self._t(self._total),
            beam_size=beam,
            prompt=self.cfg.prompt,
            context=self._context[-CONTEXT_CHARS:],
            hotwords=self.cfg.hotwords,
        )

    # ---- results in -----------------------------------------------------
    def _has_speech(self, start: float, end: float) -> bool:
        a = max(0, int((start - self._origin - 0.3) / FRAME_S))
        b = min(len(self._flags), int((end - self._origin + 0.3) / FRAME_S) + 1)
        return any(self._flags[a:b])

    def _clean(self, job: DecodeJob, result: DecodeResult) -> list[Word]:
        """Absolute-time words of a decode, minus hallucinations and already committed words."""
        # Whisper's own silence rule, a little stricter: a decode it is unsure of and that
        # looks like no speech is the classic "Thanks for watching." on a pause.
        if result.avg_logprob < -1.0 and result.no_speech_prob > 0.3:
            return []
        # A final decode of what is left after the committed words, that no interim
        # decode heard words in and that the model is unsure of, re-hears the tail of
        # the last word ("Psalm 55." then "Five, five.").
        pending = self._committed or self._tentative
        if job.kind is JobKind.FINAL and not pending and result.avg_logprob < -1.0:
            return []
        words = [
            Word(w.text, job.start_s + w.start, job.start_s + w.end, w.probability)
            for w in result.words
        ]
        # Zero-length words are the aligner's sign of text the model invented past the
        # speech: piled up at the very end of the audio ("Thank you."), or a run of them
        # where the speech stops, saying the whole buffer again. Cut there, keeping the
        # real words before (judged on the whole text, the loop dropped them as well, and
        # a final decode that looped lost its utterance).
        for i in range(len(words) - LOOP_RUN + 1):
            if all(_instant(w) for w in words[i : i + LOOP_RUN]):
                words = words[:i]
                break
        words = [w for w in words if self._has_speech(w.start, w.end)]
        words = [w for w in words if not (_instant(w) and w.start >= job.end_s - 0.05)]
        # Whisper's loop detector, on what is left (a loop spread over the speech).
        if compression_ratio(" ".join(w.text for w in words)) > 2.4:
            return []
        words = [w for w in words if w.start >= self._last_committed_end - 0.1]
        tail = [normalize(w.text) for w in self._recent]
        if not words:
            return words
        # Words starting where the committed ones ended and repeating them are the seam
        # of two decodes. Later in time a short repeat may be real speech ("no, no"),
        # but 4 or more words said again at once are Whisper looping over its prompt
        # (seen on the long recordings: "Became lawless in the extreme." twice).
        at_seam = words[0].start <= self._last_committed_end + 0.25
        for n in range(min(len(tail), len(words)), 0, -1):
            if tail[-n:] == [normalize(w.text) for w in words[:n]]:
                if at_seam or n >= REPEAT_WORDS:
                    words = words[n:]
                break
        return words

    def on_result(self, job: DecodeJob, result: DecodeResult) -> list[ResultUpdate]:
        """Commit what the decode confirms; return results to send (finals first)."""
        words = self._clean(job, result)
        updates: list[ResultUpdate] = []
        if job.kind is JobKind.FINAL:
            self._commit(words)
            updates += self._finalize(len(self._committed))
            self._tentative = []
            self._utterance = self._in_speech
            self._endpoint = False
            self._trim(round((job.end_s - self._origin) * SAMPLE_RATE) - self._keep())
            return updates
        agreed = 0
        while agreed < min(len(words), len(self._tentative)) and normalize(
            words[agreed].text
        ) == normalize(self._tentative[agreed].text):
            agreed += 1
        # A word ending right at the buffer's end may be cut off mid-way: wait for more audio.
        while agreed and words[agreed - 1].end > job.end_s - self.cfg.commit_margin_s:
            agreed -= 1
        if job.kind is JobKind.CUT:
            # Too long without a pause or agreement: what ends well before the end is kept.
            safe = sum(1 for w in words if w.end <= job.end_s - 1.0)
            agreed = max(agreed, safe)
        self._commit(words[:agreed])
        self._tentative = words[agreed:]
        if self.cfg.final_on_commit or job.kind is JobKind.CUT:
            updates += self._finalize(len(self._committed))
        else:
            last_end = max(
                (i + 1 for i, w in enumerate(self._committed) if _SENTENCE_END.search(w.text)),
                default=0,
            )
            updates += self._finalize(last_end)
        self._trim_after_finals(force=job.kind is JobKind.CUT)
        interim = self._committed + self._tentative
        text = " ".join(w.text for w in interim)
        if interim and text != self._last_interim:
            self._last_interim = text
            stability = 0.05 + 0.85 * len(self._committed) / len(interim)
            updates.append(ResultUpdate(tuple(interim), False, round(stability, 2)))
        return updates

    def _keep(self) -> int:
        return round(self.cfg.preroll_s * SAMPLE_RATE) if not self._in_speech else 0

    def _commit(self, words: Sequence[Word]) -> None:
        self._committed.extend(words)
        self._recent = (self._recent + list(words))[-5:]
        if words:
            self._last_committed_end = words[-1].end

    def _finalize(self, count: int) -> list[ResultUpdate]:
        """Make the first `count` committed words one final result."""
        if count <= 0:
            return []
        seg, self._committed = tuple(self._committed[:count]), self._committed[count:]
        update = ResultUpdate(seg, True, 0.0, self._next_index)
        self._next_index += 1
        self._final_in_buffer.extend(seg)
        self._last_interim = ""
        return [update]

    def _trim_after_finals(self, force: bool = False) -> None:
        """Drop decoded audio at a sentence end, or at any final word once the buffer is long.

        The buffer keeps final words until a sentence ends so that Whisper always
        hears whole phrases; trimming at every final would leave it fragments.
        """
        finals = self._final_in_buffer
        if not finals:
            return
        cut_word = next(
            (w for w in reversed(finals) if _SENTENCE_END.search(w.text)),
            finals[-1]
            if force or self._buffer_s() > self._max_buffer_s() - self.cfg.min_step_s
            else None,
        )
        if cut_word is not None:
            self._trim(round((cut_word.end - self._origin) * SAMPLE_RATE))

    def _trim(self, sample: int) -> None:
        """Drop audio before `sample`; final words before it become prompt context."""
        pending = self._committed or self._tentative
        if pending:
            sample = min(sample, round((pending[0].start - self._origin) * SAMPLE_RATE))
        self._drop_before(sample)
        t = self._t(self._buf_start)
        gone = [w for w in self._final_in_buffer if w.end <= t + 1e-6]
        self._final_in_buffer = [w for w in self._final_in_buffer if w.end > t + 1e-6]
        if gone:
            text = " ".join(w.text for w in gone)
            self._context = (self._context + " " + text).strip()[-CONTEXT_CHARS:]
