"""The rolling window and the history, on their own."""

from __future__ import annotations

import numpy as np

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.policy.window import CONTEXT_CHARS, History, Window


def ramp(seconds: float, start: int = 0) -> np.ndarray:
    """Audio whose every sample is its own index: slices show where they came from."""
    n = int(seconds * SAMPLE_RATE)
    return np.arange(start, start + n, dtype=np.float32)


def test_trim_drops_audio_and_moves_final_words_into_the_context() -> None:
    w = Window(origin_s=5.0)
    w.append(ramp(3.0))
    w.finals = [Word("Hello", 5.1, 5.5, 0.9), Word("there.", 5.6, 6.0, 0.9)]
    w.trim(w.sample(6.0))
    assert w.start == SAMPLE_RATE and w.start_s == 6.0 and w.end_s == 8.0
    assert w.audio[0] == SAMPLE_RATE and w.seconds == 2.0
    assert w.finals == [] and w.context == "Hello there."


def test_trim_never_drops_audio_of_a_pending_word_nor_runs_past_the_end() -> None:
    w = Window()
    w.append(ramp(3.0))
    w.trim(w.sample(2.5), hold_s=1.0)
    assert w.start_s == 1.0
    w.trim(w.sample(0.5))  # never backwards
    assert w.start_s == 1.0
    w.trim(w.sample(9.0))
    assert w.start == w.total and w.seconds == 0.0


def test_the_context_keeps_only_the_last_characters() -> None:
    w = Window()
    w.append(ramp(10.0))
    w.finals = [Word(f"word{i}", i * 0.05, i * 0.05 + 0.04, 0.9) for i in range(150)]
    w.trim(w.sample(8.0))
    assert len(w.context) == CONTEXT_CHARS and w.context.endswith("word149")


def test_the_audio_is_read_only() -> None:
    w = Window()
    w.append(ramp(1.0))
    assert not w.audio.flags.writeable
    copy = w.audio.copy()
    copy[0] = -1.0
    assert w.audio[0] == 0.0


def test_history_keeps_the_last_seconds_and_slices_by_stream_time() -> None:
    h = History(origin_s=2.0, seconds=3.0)
    for i in range(10):  # 10 chunks of 0.5 s
        h.append(ramp(0.5, start=i * SAMPLE_RATE // 2))
    assert 3.0 <= h.seconds < 3.5
    assert h.start_s == 2.0 + 10 * 0.5 - h.seconds
    audio = h.audio(6.0, 6.5)  # stream time 6.0 = sample 4 s after the origin
    assert len(audio) == SAMPLE_RATE // 2 and audio[0] == 4 * SAMPLE_RATE
    assert len(h.audio(0.0, 7.0)) == round(h.seconds * SAMPLE_RATE)  # only what is kept
    assert len(h.audio(6.5, 6.0)) == 0
