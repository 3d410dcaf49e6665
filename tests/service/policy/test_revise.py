"""The second pass on its own: the word alignment, segments left empty, and the queue of
sentences waiting (with skipped ones), without the rest of the policy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.engine import DecodeResult
from service.policy import JobKind, PolicyConfig, ResultUpdate
from service.policy.revise import REVISE_MAX_WINDOW_S, SecondPass, align_revision, fill_empty
from service.policy.window import History


def segment(index: int, *said: tuple[str, float, float]) -> ResultUpdate:
    return ResultUpdate(tuple(Word(t, s, e, 0.9) for t, s, e in said), True, 0.0, index)


def history(seconds: float) -> History:
    h = History()
    h.append(np.zeros(round(seconds * SAMPLE_RATE), np.float32))
    return h


def test_a_long_sentence_is_matched_to_its_revision() -> None:
    """Over 200 characters difflib's autojunk ignores common letters: a long sentence must
    still match its second pass that changes one word."""
    text = (
        "I offered the money to my master but he bade me keep it and with it I bought a piece "
        "of horse flesh and afterwards he asked me to make a cap for his boy for which he "
        "invited me to dinner and I went and he gave me a pancake about as big as two fingers "
        "it was made of parched wheat beaten and fried in bears grease but I thought never "
        "tasted pleasanter meat in my life"
    ).split()
    first = [Word(t, i * 0.3, i * 0.3 + 0.25, 0.9) for i, t in enumerate(text)]
    second = [Word("bid" if w.text == "bade" else w.text, w.start, w.end, 0.9) for w in first]
    assert len("".join(text)) > 200
    matched = align_revision([], first, second)
    assert matched is not None
    assert [w.text for w, _ in matched] == [w.text for w in second]
    assert [k for _, k in matched] == list(range(len(first)))


def test_the_next_sentences_first_word_is_not_taken_into_the_revision() -> None:
    """The window runs past the sentence: "It" of the next sentence matches the first pass's
    last word "it" by text, but starts after the sentence ended."""
    first = [
        Word(t, i * 0.3, i * 0.3 + 0.25, 0.9) for i, t in enumerate("He said no to it.".split())
    ]
    second = [
        Word(t, s, e, 0.9)
        for t, s, e in [
            ("He", 0.0, 0.25), ("said", 0.3, 0.55), ("no", 0.6, 0.85), ("to", 0.9, 1.15),
            ("that.", 1.2, 1.45), ("It", 1.8, 1.95), ("was", 2.0, 2.2), ("late.", 2.25, 2.6),
        ]
    ]  # fmt: skip
    matched = align_revision([], first, second)
    assert matched is not None
    assert [w.text for w, _ in matched] == ["He", "said", "no", "to", "that."]


def test_the_context_sentences_are_matched_but_not_returned() -> None:
    context = [Word("Keep", 0.4, 0.7, 0.9), Word("safe.", 0.8, 1.6, 0.9)]
    first = [Word(t, 2.9 + i * 0.3, 3.1 + i * 0.3, 0.9) for i, t in enumerate(["Not", "with"])]
    decoded = [*context, Word("Notwith.", 2.9, 3.4, 0.9)]
    matched = align_revision(context, first, decoded)
    assert matched is not None and [(w.text, k) for w, k in matched] == [("Notwith.", 0)]
    assert align_revision(context, first, [Word("Something", 0, 1, 0.9)]) is None


def test_an_empty_segment_takes_a_word_of_a_neighbour_with_two() -> None:
    a, b, c = (Word(t, 0, 1, 0.9) for t in "abc")
    segments: list[list[Word]] = [[a, b], [], [c]]
    assert fill_empty(segments) and segments == [[a], [b], [c]]
    segments = [[], [a, b]]
    assert fill_empty(segments) and segments == [[a], [b]]
    assert not fill_empty([[a], [], [b]])


def test_a_sentence_waits_until_it_ends_then_its_job_changes_nothing_until_started(
    cfg: PolicyConfig,
) -> None:
    sp = SecondPass()
    sp.add_final(segment(0, ("Keep", 0.4, 0.7)), history_start_s=0.0)
    assert sp.waiting == 0  # no sentence end yet
    sp.add_final(segment(1, ("it", 0.8, 0.9), ("safe.", 1.0, 1.6)), history_start_s=0.0)
    assert sp.waiting == 1
    h = history(3.0)
    cfg = replace(cfg, final_beam=2, revise_beam=5)  # base's: the second pass has its own
    job = sp.job(h, 3.0, cfg)
    again = sp.job(h, 3.0, cfg)
    assert job is not None and again is not None and job.target == again.target
    assert job.kind is JobKind.REVISE and job.beam_size == 5
    assert job.target is not None and [u.segment_index for u in job.target.unit] == [0, 1]
    assert sp.waiting == 1
    sp.start(job.target)
    assert sp.waiting == 0 and sp.job(h, 3.0, cfg) is None
    with pytest.raises(ValueError):
        sp.start(job.target)  # no longer waiting
    decoded = (Word("Keep", 0.4, 0.7, 0.9), Word("it", 0.8, 0.9, 0.9), Word("safe!", 1.0, 1.6, 0.9))
    ups = sp.on_result(job, job.target, DecodeResult(decoded, 0.01, -0.2))
    assert [(u.text, u.segment_index, u.revision) for u in ups] == [("it safe!", 1, 1)]


def test_a_sentence_too_long_for_a_second_pass_is_skipped_when_the_next_one_starts(
    cfg: PolicyConfig,
) -> None:
    sp = SecondPass()
    long = segment(0, *[(f"w{i}.", i * 0.5, i * 0.5 + 0.4) for i in range(2)])
    sp.close_unit(0.0)
    sp.add_final(long, 0.0)
    end_s = 0.0 + REVISE_MAX_WINDOW_S + 5.0  # the sentence and the end are 25 s apart
    late = segment(1, ("Late.", end_s - 1.0, end_s - 0.5))
    sp.add_final(late, 0.0)
    assert sp.waiting == 2
    job = sp.job(history(end_s), end_s, cfg)
    assert job is not None and job.target is not None
    assert job.target.unit == (late,) and job.target.skipped == ((long,),)
    assert sp.waiting == 2  # nothing changes until the job starts
    sp.start(job.target)
    assert sp.waiting == 0


def test_sentences_whose_audio_left_the_history_stand() -> None:
    sp = SecondPass()
    sp.add_final(segment(0, ("Old.", 1.0, 1.5)), history_start_s=0.0)
    sp.add_final(segment(1, ("New.", 40.0, 40.5)), history_start_s=0.0)
    sp.close_unit(history_start_s=10.0)
    assert sp.waiting == 1
