"""The streaming policy: from a growing audio buffer to stable, final text.

Pure logic, no gRPC and no model: the session feeds it audio with Silero
speech probabilities, asks it which decode to run next, runs that decode on the
engine and hands the result back. Unit-testable with recorded engine output.

How text becomes stable (LocalAgreement-2, as in whisper_streaming):
- the buffer is re-decoded every `min_step_s` of new audio while there is
  speech; the longest common prefix of two consecutive hypotheses is
  *committed* (the first pass never changes it again);
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
  produce no text;
- once a sentence is complete (its final words end it, or the speaker paused)
  it is decoded once more, with the sentences starting up to 3 s before it as
  acoustic context and the final beam, and every segment of it whose text
  changes is sent again as a revision (`revise`, on when the stream enables
  revisions; only while the stream has the model to itself and is caught up).
  Agreement hears a sentence that starts the buffer without what came before
  it ("not with standing"); the second pass hears it as offline Whisper does,
  and closes the gap to offline accuracy.
"""

from __future__ import annotations

import difflib
import enum
import re
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.config import Settings
from service.domain import Word
from service.engine import DecodeRequest, DecodeResult

FRAME = 512
FRAME_S = FRAME / SAMPLE_RATE
REPEAT_WORDS = 4  # an immediate repeat this long of committed words is dropped
LOOP_RUN = 3  # this many zero-length words in a row: the decoder is looping past the speech
CONTEXT_CHARS = 200  # final text before the buffer handed to the engine (it keeps 32 tokens)
BEHIND_STEPS = 3  # decode every 3 steps' worth of audio while a backlog is queued
HISTORY_S = 30.0  # audio kept for revisions (Whisper's window)
REVISE_CONTEXT_S = 3.0  # earlier sentences starting this close before one are its context
REVISE_MAX_WINDOW_S = 20.0  # longest second-pass decode (its cost grows with its length)
REVISE_MAX_UNIT_S = 15.0  # a sentence still open after this long is revised as it is
REVISE_MIN_SIMILARITY = 0.6  # a revision this unlike the first pass is a misalignment: kept
REVISE_END_SLACK_S = 0.1  # a revised word starting this long after the sentence: the next one's
LOOP_RATIO = 2.4  # Whisper's loop detector: text that compresses better than this repeats itself
UNSURE_LOGPROB = -1.0  # Whisper's threshold: a decode below this average log-prob is unsure
_SENTENCE_END = re.compile(r"[.?!…]['\")\]]*$")
_NORM = re.compile(r"[^\w']+")


def compression_ratio(text: str) -> float:
    """gzip ratio of the text; Whisper's loop detector (> LOOP_RATIO means repetition)."""
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


def _instant(word: Word) -> bool:
    """A zero-length word: the aligner found no audio for it."""
    return word.end - word.start < 0.02


def normalize(word: str) -> str:
    """Comparison key of a word: lower case without punctuation."""
    return _NORM.sub("", word.lower())


def _looped(words: Sequence[Word]) -> bool:
    return compression_ratio(" ".join(w.text for w in words)) > LOOP_RATIO


def _heard(job: DecodeJob, result: DecodeResult) -> list[Word]:
    """A decode's words in stream time, without what the model invented past the speech:
    zero-length words are the aligner's sign of it, piled up at the very end of the audio
    ("Thank you."), or a run of them where the speech stops, saying the whole buffer again.
    Cut there, keeping the real words before (judged on the whole text, the loop dropped
    them as well, and a final decode that looped lost its utterance)."""
    words = [
        Word(w.text, job.start_s + w.start, job.start_s + w.end, w.probability)
        for w in result.words
    ]
    return [w for w in cut_loop(words) if not (_instant(w) and w.start >= job.end_s - 0.05)]


def cut_loop(words: list[Word]) -> list[Word]:
    """The words before a run of zero-length ones: the aligner's sign of text the model
    invented past the speech, saying the whole buffer again where the speech stops."""
    for i in range(len(words) - LOOP_RUN + 1):
        if all(_instant(w) for w in words[i : i + LOOP_RUN]):
            return words[:i]
    return words


def _fill_empty(segments: list[list[Word]]) -> bool:
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
    context: Sequence[Word], first: Sequence[Word], decoded: Sequence[Word]
) -> list[tuple[Word, int]] | None:
    """The second pass's words that stand for a sentence, each with the index (in `first`)
    of the first-pass word it replaces; None when the two cannot be told apart safely.

    `decoded` covers the `context` sentences (already revised), then the sentence, then
    perhaps the start of the next one: the words are matched by text, not by time (the
    aligner's times at a window's edges are too loose to cut it by).
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
                r0 = j1 + sum(1 for w in decoded[j1:j2] if w.end <= first[0].start)
            elif i1 == b0:
                r0 = j1
            else:
                return None  # the seam lies inside a stretch the two passes heard differently
        if i2 == n and tag != "insert":
            r1 = j2
        if tag == "insert" and i1 == n:  # after the sentence: only what ends by its end
            r1 = j1 + sum(1 for w in decoded[j1:j2] if (w.start + w.end) / 2 <= first[-1].end)
    # The window runs on past the sentence, and the next sentence's first word can match the
    # sentence's last one by text ("no to it." | "no to that. It was late."). The sentence's
    # end lies inside the window, where the aligner's times hold: a word starting after the
    # first pass's last word ended belongs to the next sentence (a zero-length word has no
    # time to go by: the aligner could not place it, as often at a sentence's end).
    while r0 is not None and r1 is not None and r1 - r0 > 1:
        last = decoded[r1 - 1]
        if _instant(last) or last.start < first[-1].end + REVISE_END_SLACK_S:
            break
        r1 -= 1
    if r0 is None or r1 is None or r1 <= r0:
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
    revise: bool = True
    """Decode each complete sentence again with the one before it and send the segments
    whose text changes as revisions."""


def policy_config(
    settings: Settings,
    silence_s: float | None = None,
    max_utterance_s: float | None = None,
    prompt: str = "",
    hotwords: str = "",
    revisions: bool = True,
) -> PolicyConfig:
    """A stream's policy from the server's settings and what the stream's config overrides
    (the servicer and the replay benchmark build it the same way). Second passes run when
    the server allows them and the stream asked for `revisions`."""
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
        revise=st.revise and revisions,
    )


class JobKind(enum.Enum):
    """Why a decode runs; decides how its result is committed."""

    INTERIM = "interim"
    CUT = "cut"
    FINAL = "final"
    REVISE = "revise"


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
    revision: int = 0
    """1 for a final segment sent again with the text of the second pass."""

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
        self._finishing = False
        # Second pass (cfg.revise): recent audio, the final segments of the sentence being
        # spoken, complete sentences waiting, and the last revised ones (the next's context).
        self._history: deque[npt.NDArray[np.float32]] = deque()
        self._hist_len = 0
        self._hist_start = 0  # absolute sample index of the history's first sample
        self._unit: list[ResultUpdate] = []
        self._to_revise: list[tuple[ResultUpdate, ...]] = []
        self._revising: tuple[tuple[ResultUpdate, ...], list[Word]] | None = None
        self._revised: list[list[Word]] = []
        self._revised_text = ""

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
        samples = samples.astype(np.float32, copy=False)
        self._audio = np.concatenate([self._audio, samples])
        self._total += len(samples)
        if self.cfg.revise:
            self._keep_history(samples)
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

    def _keep_history(self, samples: npt.NDArray[np.float32]) -> None:
        self._history.append(samples)
        self._hist_len += len(samples)
        limit = round(HISTORY_S * SAMPLE_RATE)
        while self._hist_len - len(self._history[0]) >= limit:
            old = self._history.popleft()
            self._hist_len -= len(old)
            self._hist_start += len(old)

    def _history_audio(self, start_s: float, end_s: float) -> npt.NDArray[np.float32]:
        audio = np.concatenate(list(self._history)) if self._history else np.zeros(0, np.float32)
        a = round((start_s - self._origin) * SAMPLE_RATE) - self._hist_start
        b = round((end_s - self._origin) * SAMPLE_RATE) - self._hist_start
        return audio[max(0, a) : max(0, b)]

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
        `shared` is True while other streams use the model too. A second pass waits while
        the stream is behind, has speech to decode (finals first) or shares the model: a
        window of up to 20 s in a shared batch pads every stream's encoder input to its
        length (8 streams: p90 final latency 2.4 -> 3.4 s with second passes shared)."""
        self._shared = shared
        job = self._speech_job(caught_up, shared)
        if job is None and caught_up and not shared:
            job = self._revise_job()
        return job

    def _speech_job(self, caught_up: bool, shared: bool) -> DecodeJob | None:
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
        """The decodes left when the client half-closes: everything left becomes final,
        then every complete sentence gets its second pass. Call until it returns None."""
        self._shared = shared
        if not self._finishing:
            self._finishing = True
            if self._utterance or self._committed or self._tentative:
                return self._job(JobKind.FINAL)
        self._close_unit()
        if shared:  # under load the first pass stands (see next_job)
            self._to_revise.clear()
            return None
        return self._revise_job()

    def _revise_job(self) -> DecodeJob | None:
        """The second pass of the oldest complete sentence: its audio and that of the
        revised sentences starting up to REVISE_CONTEXT_S before it, which the decoder
        hears first (what the first pass lacked), with the revised text before as prompt."""
        while self._to_revise:
            unit = self._to_revise.pop(0)
            start, end_s = unit[0].start_s, self._t(self._total)
            hist_start = self._t(self._hist_start)
            ctx = 0
            while (
                ctx < len(self._revised)
                and start - self._revised[-1 - ctx][0].start <= REVISE_CONTEXT_S
                and end_s - self._revised[-1 - ctx][0].start < REVISE_MAX_WINDOW_S - 0.3
            ):
                ctx += 1
            context = self._revised[len(self._revised) - ctx :]
            first_s = context[0][0].start if context else start
            before = self._revised[: len(self._revised) - ctx]
            window_s = max(first_s - 0.3, before[-1][-1].end if before else 0.0, hist_start)
            if first_s < hist_start or end_s - window_s > REVISE_MAX_WINDOW_S:
                self._remember([w for u in unit for w in u.words])  # too long: kept as is
                continue
            text = " ".join(w.text for words in before for w in words)
            self._revising = (unit, [w for words in context for w in words])
            return DecodeJob(
                kind=JobKind.REVISE,
                audio=self._history_audio(window_s, end_s),
                start_s=window_s,
                end_s=end_s,
                beam_size=self.cfg.final_beam,
                prompt=self.cfg.prompt,
                context=(self._revised_text + " " + text).strip()[-CONTEXT_CHARS:],
                hotwords=self.cfg.hotwords,
            )
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
        if result.avg_logprob < UNSURE_LOGPROB and result.no_speech_prob > 0.3:
            return []
        # A final decode of what is left after the committed words, that no interim
        # decode heard words in and that the model is unsure of, re-hears the tail of
        # the last word ("Psalm 55." then "Five, five.").
        pending = self._committed or self._tentative
        if job.kind is JobKind.FINAL and not pending and result.avg_logprob < UNSURE_LOGPROB:
            return []
        words = [w for w in _heard(job, result) if self._has_speech(w.start, w.end)]
        # Whisper's loop detector, on what is left (a loop spread over the speech).
        if _looped(words):
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
        if job.kind is JobKind.REVISE:
            return self._on_revision(job, result)
        words = self._clean(job, result)
        updates: list[ResultUpdate] = []
        if job.kind is JobKind.FINAL:
            self._commit(words)
            updates += self._finalize(len(self._committed))
            self._close_unit()
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
        if self.cfg.revise:
            self._unit.append(update)
            if _SENTENCE_END.search(seg[-1].text) or (
                seg[-1].end - self._unit[0].start_s > REVISE_MAX_UNIT_S
            ):
                self._close_unit()
        return [update]

    # ---- second pass ----------------------------------------------------
    def _close_unit(self) -> None:
        if self._unit:
            self._to_revise.append(tuple(self._unit))
            self._unit = []
        # Sentences whose audio left the history can no longer get a second pass (a stream
        # sharing the model skips them): they stand, and the queue stays bounded.
        hist_start = self._t(self._hist_start)
        while self._to_revise and self._to_revise[0][0].start_s < hist_start:
            self._remember([w for u in self._to_revise.pop(0) for w in u.words])

    def _remember(self, words: list[Word]) -> None:
        """A sentence as revised: context of the next second pass."""
        if not words:
            return
        self._revised.append(words)
        while len(self._revised) > 8:
            old = " ".join(w.text for w in self._revised.pop(0))
            self._revised_text = (self._revised_text + " " + old).strip()[-CONTEXT_CHARS:]

    def _on_revision(self, job: DecodeJob, result: DecodeResult) -> list[ResultUpdate]:
        """The segments of the sentence whose text the second pass changes, as revisions.

        A second pass that is unsure, loops, or cannot be matched to the sentence word for
        word (see align_revision) changes nothing: the first pass stands.
        """
        assert self._revising is not None
        unit, context = self._revising
        self._revising = None
        first = [w for u in unit for w in u.words]
        decoded = _heard(job, result)
        matched = None
        if result.avg_logprob >= UNSURE_LOGPROB and not _looped(decoded):
            matched = align_revision(context, first, decoded)
        if matched is None:
            self._remember(first)
            return []
        owner: list[int] = []
        for i, u in enumerate(unit):
            owner.extend([i] * len(u.words))
        per_segment: list[list[Word]] = [[] for _ in unit]
        for word, k in matched:
            per_segment[owner[k]].append(word)
        if not _fill_empty(per_segment):  # fewer words than segments: keep the first pass
            self._remember(first)
            return []
        self._remember([w for w, _ in matched])
        return [
            ResultUpdate(tuple(words), True, 0.0, u.segment_index, revision=1)
            for u, words in zip(unit, per_segment, strict=True)
            if " ".join(w.text for w in words) != u.text
        ]

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
