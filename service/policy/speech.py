"""The speech gate: Silero's per-frame speech probabilities in, speech begin/end events
out, with the stream clock they are measured on. Imports nothing of the policy.

The gate opens after `min_speech_s` of frames above the threshold and closes after
`silence_s` of frames below it (a lower threshold once open, as Silero's own iterator
does), so a cough does not start an utterance and a breath does not end one. It also
remembers which recent frames were speech: the hallucination filter drops words that lie
outside detected speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.audio import SAMPLE_RATE

FRAME = 512
"""Samples per Silero VAD frame (32 ms at 16 kHz)."""
FRAME_S = FRAME / SAMPLE_RATE

HYSTERESIS = 0.15
"""Once in speech, a frame stays speech down to `threshold - 0.15` (Silero's VADIterator
uses the same offset), so speech that dips for a frame is not cut."""
SPEECH_MARGIN_S = 0.3
"""A word counts as heard when there is speech within this much of it: Whisper's word
times are loose by about this much at the edges of speech."""
FORGET_SLACK_S = 1.0
"""Frames kept before the oldest time a word can still be checked at (slack for word
times the engine places slightly before a decode's audio)."""


@dataclass(frozen=True)
class SpeechEvent:
    """Speech began or ended at `offset_s`."""

    begin: bool
    offset_s: float


class SpeechGate:
    """Speech state of one stream, frame by frame on the stream clock."""

    def __init__(
        self, threshold: float, min_speech_s: float, silence_s: float, origin_s: float = 0.0
    ) -> None:
        self.threshold = threshold
        self._min_speech = max(1, round(min_speech_s / FRAME_S))
        self._silence = max(1, round(silence_s / FRAME_S))
        self._origin = origin_s
        self.in_speech = False
        self._run = 0  # consecutive frames contradicting the current state
        self._run_start = 0  # absolute frame index where that run began
        self._frames = 0  # frames seen
        self._flags: list[bool] = []  # speech flag per frame, from frame _first on
        self._first = 0

    @property
    def frames(self) -> int:
        """Frames seen since the stream started."""
        return self._frames

    @property
    def kept_frames(self) -> int:
        """Frames whose speech flag is still kept (bounded: see `forget_before`)."""
        return len(self._flags)

    def feed(self, probs: Sequence[float]) -> list[SpeechEvent]:
        """Take the speech probabilities of the next frames; the begin/end events they cause."""
        events: list[SpeechEvent] = []
        for p in probs:
            frame = self._frames
            if self.in_speech:
                speech = p >= self.threshold - HYSTERESIS
            else:
                speech = p >= self.threshold
            self._flags.append(speech)
            self._frames += 1
            if speech != self.in_speech:
                if self._run == 0:
                    self._run_start = frame
                self._run += 1
            else:
                self._run = 0
            if not self.in_speech and self._run >= self._min_speech:
                self.in_speech, self._run = True, 0
                events.append(SpeechEvent(True, self._at(self._run_start)))
            elif self.in_speech and self._run >= self._silence:
                self.in_speech, self._run = False, 0
                events.append(SpeechEvent(False, self._at(self._run_start)))
        return events

    def has_speech(self, start_s: float, end_s: float) -> bool:
        """Any speech frame within SPEECH_MARGIN_S of [start_s, end_s]."""
        a = max(self._first, int((start_s - self._origin - SPEECH_MARGIN_S) / FRAME_S))
        b = min(self._frames, int((end_s - self._origin + SPEECH_MARGIN_S) / FRAME_S) + 1)
        if b <= a:
            return False
        return any(self._flags[a - self._first : b - self._first])

    def forget_before(self, t_s: float) -> None:
        """Drop the flags no check of a word starting at or after `t_s` can look at (the
        policy checks only words of decodes of its buffer, which starts at `t_s`)."""
        keep = int((t_s - self._origin - SPEECH_MARGIN_S - FORGET_SLACK_S) / FRAME_S)
        drop = min(keep, self._frames) - self._first
        if drop > 0:
            del self._flags[:drop]
            self._first += drop

    def _at(self, frame: int) -> float:
        return self._origin + frame * FRAME / SAMPLE_RATE
