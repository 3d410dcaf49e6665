"""The rolling window a decode covers, and the longer history second passes read.
Imports the stream clock (speech) and the word helpers.

The window keeps final words until their sentence ends (Whisper hears whole phrases),
and is trimmed there; what leaves it becomes the prompt context of the next decodes, so
the cost of a decode does not grow with the length of the session. The history keeps the
last HISTORY_S of audio whatever the window holds.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.policy.words import text_of
from service.text import join_words

CONTEXT_CHARS = 200
"""Final text before the window handed to the engine as context (it keeps 32 tokens of
it: about 150 characters of English, 30-35 of Chinese or Japanese, where Whisper base
spends about one token per character on the FLEURS references)."""
HISTORY_S = 30.0
"""Audio kept for second passes: Whisper's own window."""
EPS_S = 1e-6
"""Float slack when comparing a word's end with the window's start."""


class Window:
    """The audio buffer on the stream clock (absolute sample indices), the final words
    still in it, and the final text before it."""

    def __init__(self, origin_s: float = 0.0) -> None:
        self.origin_s = origin_s
        self._audio = np.zeros(0, dtype=np.float32)
        self.start = 0  # absolute sample index of the buffer's first sample
        self.total = 0  # samples received
        self.finals: list[Word] = []  # final words whose audio is still in the buffer
        self.context = ""  # final text before the buffer: the decoder's prompt

    def t(self, sample: int) -> float:
        """Stream time of an absolute sample index."""
        return self.origin_s + sample / SAMPLE_RATE

    def sample(self, t_s: float) -> int:
        """Absolute sample index of a stream time."""
        return round((t_s - self.origin_s) * SAMPLE_RATE)

    @property
    def start_s(self) -> float:
        return self.t(self.start)

    @property
    def end_s(self) -> float:
        return self.t(self.total)

    @property
    def seconds(self) -> float:
        """Length of the buffer."""
        return len(self._audio) / SAMPLE_RATE

    @property
    def audio(self) -> npt.NDArray[np.float32]:
        """The buffer (read-only view; copy it to keep it)."""
        view = self._audio.view()
        view.flags.writeable = False
        return view

    def append(self, samples: npt.NDArray[np.float32]) -> None:
        self._audio = np.concatenate([self._audio, samples])
        self.total += len(samples)

    def trim(self, sample: int, hold_s: float | None = None) -> None:
        """Drop audio before `sample`, but none from `hold_s` on (the first word still
        waiting to be final); final words before the new start become prompt context."""
        if hold_s is not None:
            sample = min(sample, self.sample(hold_s))
        sample = min(max(sample, self.start), self.total)
        self._audio = self._audio[sample - self.start :]
        self.start = sample
        t = self.start_s
        gone = [w for w in self.finals if w.end <= t + EPS_S]
        self.finals = [w for w in self.finals if w.end > t + EPS_S]
        if gone:
            self.context = join_words((self.context, text_of(gone)))[-CONTEXT_CHARS:]


class History:
    """The last HISTORY_S of audio, in the chunks it came in."""

    def __init__(self, origin_s: float = 0.0, seconds: float = HISTORY_S) -> None:
        self._origin = origin_s
        self._chunks: deque[npt.NDArray[np.float32]] = deque()
        self._len = 0
        self._start = 0  # absolute sample index of the history's first sample
        self._limit = round(seconds * SAMPLE_RATE)

    @property
    def start_s(self) -> float:
        """Stream time of the oldest sample kept."""
        return self._origin + self._start / SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return self._len / SAMPLE_RATE

    def append(self, samples: npt.NDArray[np.float32]) -> None:
        self._chunks.append(samples)
        self._len += len(samples)
        while self._len - len(self._chunks[0]) >= self._limit:
            old = self._chunks.popleft()
            self._len -= len(old)
            self._start += len(old)

    def audio(self, start_s: float, end_s: float) -> npt.NDArray[np.float32]:
        """The audio between two stream times (what of it is still kept)."""
        audio = np.concatenate(list(self._chunks)) if self._chunks else np.zeros(0, np.float32)
        a = round((start_s - self._origin) * SAMPLE_RATE) - self._start
        b = round((end_s - self._origin) * SAMPLE_RATE) - self._start
        return audio[max(0, a) : max(0, b)]
