"""The hallucination filters on their own, at their named thresholds."""

from __future__ import annotations

import numpy as np

from service.domain import Word
from service.engine import DecodeResult
from service.policy.filters import (
    LOOP_RATIO,
    LOOP_RUN,
    NO_SPEECH_PROB,
    REPEAT_WORDS,
    UNSURE_LOGPROB,
    clean,
    compression_ratio,
    cut_loop,
    drop_repeat,
    heard,
    silent,
)
from service.policy.jobs import DecodeJob, JobKind


def job(kind: JobKind = JobKind.INTERIM, start_s: float = 10.0, end_s: float = 13.0) -> DecodeJob:
    audio = np.zeros(round((end_s - start_s) * 16000), np.float32)
    return DecodeJob(kind, audio, start_s, end_s, 5, "", "", "")


def words(*said: tuple[str, float, float]) -> list[Word]:
    return [Word(t, s, e, 0.9) for t, s, e in said]


def test_the_silence_rule_needs_an_unsure_decode_and_a_no_speech_probability() -> None:
    unsure = UNSURE_LOGPROB - 0.1
    assert NO_SPEECH_PROB == 0.3  # stricter than Whisper's 0.6, see its docstring
    assert silent(DecodeResult((), NO_SPEECH_PROB + 0.01, unsure))
    assert silent(DecodeResult((), 0.5, unsure))  # would pass Whisper's own 0.6 rule
    assert not silent(DecodeResult((), NO_SPEECH_PROB, unsure))
    assert not silent(DecodeResult((), 0.95, UNSURE_LOGPROB))  # sure of itself: kept


def test_the_loop_detector_is_whispers() -> None:
    looped = "the cat sat on the mat " * 6
    assert compression_ratio(looped) > LOOP_RATIO
    assert compression_ratio("Ask not what your country can do for you.") < LOOP_RATIO


def test_a_run_of_zero_length_words_cuts_the_rest() -> None:
    real = words(("one", 0.0, 0.3), ("two", 0.4, 0.6))
    instant = words(*[("again", 0.6, 0.6)] * LOOP_RUN)
    assert cut_loop(real + instant + real) == real
    assert cut_loop(real + instant[:-1] + real) == real + instant[:-1] + real


def test_heard_words_are_on_the_stream_clock_without_an_invented_tail() -> None:
    j = job(start_s=10.0, end_s=13.0)
    result = DecodeResult(
        tuple(words(("Yes.", 0.5, 0.9), ("Thank", 2.98, 2.98), ("you.", 2.98, 2.99))), 0.01, -0.2
    )
    assert heard(j, result) == words(("Yes.", 10.5, 10.9))


def test_a_repeat_of_committed_words_at_the_seam_goes_a_short_later_one_stays() -> None:
    recent = words(("in", 1.0, 1.1), ("the", 1.2, 1.3), ("extreme.", 1.4, 1.9))
    at_seam = words(("the", 2.0, 2.1), ("extreme.", 2.2, 2.6), ("Then", 2.8, 3.0))
    assert [w.text for w in drop_repeat(at_seam, recent, 1.9)] == ["Then"]
    later = [Word(w.text, w.start + 5, w.end + 5, 0.9) for w in at_seam]
    assert drop_repeat(later, recent, 1.9) == later  # "the extreme." said again
    long_recent = words(*[(t, i * 0.2, i * 0.2 + 0.1) for i, t in enumerate("a b c d e".split())])
    long_repeat = words(
        *[(t, 9 + i * 0.2, 9.1 + i * 0.2) for i, t in enumerate("b c d e f".split())]
    )
    assert REPEAT_WORDS == 4
    assert [w.text for w in drop_repeat(long_repeat, long_recent, 0.9)] == ["f"]


def test_clean_drops_words_outside_speech_and_already_committed() -> None:
    j = job(start_s=0.0, end_s=4.0)
    result = DecodeResult(
        tuple(words(("old", 0.2, 0.5), ("new", 1.2, 1.5), ("ghost", 3.0, 3.4))), 0.01, -0.2
    )
    out = clean(
        j,
        result,
        pending=True,
        has_speech=lambda s, e: s < 2.0,
        committed_end=1.0,
        recent=words(("old", 0.2, 0.5)),
    )
    assert [w.text for w in out] == ["new"]


def test_an_unsure_final_decode_with_nothing_pending_adds_nothing() -> None:
    result = DecodeResult(tuple(words(("Five.", 0.2, 0.5))), 0.01, UNSURE_LOGPROB - 0.3)
    args = {"has_speech": lambda s, e: True, "committed_end": 0.0, "recent": []}
    final, interim = job(JobKind.FINAL, 0.0, 1.0), job(JobKind.INTERIM, 0.0, 1.0)
    assert clean(final, result, pending=False, **args) == []  # type: ignore[arg-type]
    assert len(clean(final, result, pending=True, **args)) == 1  # type: ignore[arg-type]
    assert len(clean(interim, result, pending=False, **args)) == 1  # type: ignore[arg-type]
