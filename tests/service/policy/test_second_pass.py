"""Second passes through the whole policy (scripted engine output, production configuration):
when a sentence is decoded again and which revisions it sends."""

from __future__ import annotations

from dataclasses import replace

from service.domain import Word
from service.engine import DecodeResult
from service.policy import (
    FRAME,
    SAMPLE_RATE,
    DecodeJob,
    JobKind,
    Policy,
    PolicyConfig,
    ResultUpdate,
)
from tests.service.policy.scripted import (
    answer,
    decode_next,
    push,
    rel,
    result,
    run,
    utterance,
)


def test_a_complete_sentence_is_decoded_again_after_the_one_before_and_changes_are_revisions(
    cfg: PolicyConfig,
) -> None:
    """The first pass heard "not with standing" without the sentence before it; the second
    pass hears both, and only the segment whose text changes is sent again."""
    p = Policy(cfg)
    first = utterance(p, 2.0, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe.", 1.0, 1.6))
    assert [(u.text, u.segment_index, u.revision) for u in first] == [("Keep it safe.", 0, 0)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE and job.beam_size == cfg.final_beam
    assert len(job.audio) == round((job.end_s - job.start_s) * SAMPLE_RATE)
    same = answer(p, job, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe.", 1.0, 1.6))
    assert same == []  # nothing changed: nothing sent
    assert p.next_job() is None
    second = utterance(
        p, 2.0, ("Yet", 2.9, 3.1), ("not", 3.2, 3.4), ("with", 3.4, 3.6), ("standing.", 3.6, 4.2)
    )
    assert [(u.text, u.segment_index) for u in second] == [("Yet not with standing.", 1)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    assert job.start_s <= 0.4  # the sentence before is in the window
    assert job.end_s == p.received_s
    revised = answer(
        p,
        job,
        ("Keep", 0.4, 0.7),
        ("it", 0.8, 0.9),
        ("safe.", 1.0, 1.6),
        ("Yet", 2.9, 3.1),
        ("notwithstanding.", 3.2, 4.2),
    )
    assert [(u.text, u.segment_index, u.revision, u.is_final) for u in revised] == [
        ("Yet notwithstanding.", 1, 1, True)
    ]
    assert revised[0].start_s == 2.9 and revised[0].end_s == 4.2
    assert p.next_job() is None


def test_a_sentence_in_several_segments_keeps_its_segments_when_revised(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)

    def finals(ups: list[ResultUpdate]) -> list[tuple[str, int]]:
        return [(u.text, u.segment_index) for u in ups if u.is_final]

    assert finals(decode_next(p, 1.0, ("Hello", 0.1, 0.4))) == []
    assert finals(decode_next(p, 1.0, ("Hello", 0.1, 0.4), ("word", 0.5, 0.8))) == [("Hello", 0)]
    ups = decode_next(p, 1.0, ("Hello", 0.1, 0.4), ("word", 0.5, 0.8), ("there.", 0.9, 1.2))
    assert finals(ups) == [("word", 1)]
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    assert finals(answer(p, job, ("there.", 0.9, 1.2))) == [("there.", 2)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    ups = answer(p, job, ("Hello,", 0.1, 0.4), ("world", 0.5, 0.8), ("there.", 0.9, 1.2))
    assert [(u.text, u.segment_index, u.revision) for u in ups] == [
        ("Hello,", 0, 1),
        ("world", 1, 1),
    ]


def test_a_second_pass_that_loops_is_unsure_or_unlike_the_sentence_changes_nothing(
    cfg: PolicyConfig,
) -> None:
    def after_one_sentence() -> tuple[Policy, DecodeJob]:
        p = Policy(cfg)
        utterance(p, 2.0, ("The", 0.4, 0.6), ("cap", 0.7, 1.0), ("fits.", 1.1, 1.6))
        job = p.next_job()
        assert job is not None and job.kind is JobKind.REVISE
        return p, job

    p, job = after_one_sentence()  # something else entirely: a misalignment, not a correction
    assert answer(p, job, ("Thank", 0.4, 0.9), ("you", 1.0, 1.2), ("all.", 1.2, 1.6)) == []
    p, job = after_one_sentence()  # the model unsure of the whole decode
    unsure = DecodeResult(tuple(Word(t, rel(job, s), rel(job, e), 0.3) for t, s, e in [
        ("The", 0.4, 0.6), ("cat", 0.7, 1.0), ("fits.", 1.1, 1.6)]), 0.01, -1.3)  # fmt: skip
    assert run(p, job, unsure) == []
    p, job = after_one_sentence()  # a loop past the speech, zero-length words
    end = job.end_s - 0.3
    looped = [("The", 0.4, 0.6), ("cat", 0.7, 1.0), ("fits.", 1.1, 1.6)]
    looped += [(w, end, end) for w in ("The", "cat", "fits.")] * 3
    assert [u.text for u in answer(p, job, *looped)] == ["The cat fits."]
    p, job = after_one_sentence()  # and one that only repeats what the first pass heard
    assert answer(p, job, ("The", 0.4, 0.6), ("cap", 0.7, 1.0), ("fits.", 1.1, 1.6)) == []


def test_the_end_of_a_stream_runs_its_final_decode_then_every_second_pass(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    push(p, 2.0, speech=True)
    p.finish()
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    assert [u.text for u in answer(p, job, ("Two", 2.8, 3.2))] == ["Two"]
    kinds = []
    while (job := p.next_job()) is not None:
        kinds.append(job.kind)
        answer(p, job)
    assert kinds == [JobKind.REVISE, JobKind.REVISE]  # "One." and "Two", each once


def test_no_second_pass_when_revisions_are_off(cfg: PolicyConfig) -> None:
    p = Policy(replace(cfg, revise=False))
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    assert p.next_job() is None
    p.finish()
    assert p.next_job() is None


def test_a_segment_whose_words_merge_into_a_neighbours_keeps_a_word_of_it(
    cfg: PolicyConfig,
) -> None:
    """ "not with" | "standing" heard as "notwithstanding": no segment may end up empty."""
    p = Policy(cfg)
    ups = decode_next(p, 1.0, ("Yet", 0.1, 0.3), ("not", 0.4, 0.6))
    ups += decode_next(p, 1.0, ("Yet", 0.1, 0.3), ("not", 0.4, 0.6), ("with", 0.6, 0.8))
    ups += decode_next(
        p, 1.0, ("not", 0.4, 0.6), ("with", 0.6, 0.8), ("standing", 0.8, 1.2), ("it", 1.3, 1.4)
    )
    assert [(u.text, u.segment_index) for u in ups if u.is_final] == [("Yet not", 0), ("with", 1)]
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    answer(p, job, ("standing", 0.8, 1.2), ("it", 1.3, 1.4), ("was.", 1.5, 1.8))
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    ups = answer(
        p,
        job,
        ("Yet", 0.1, 0.3),
        ("notwithstanding", 0.4, 1.2),
        ("it", 1.3, 1.4),
        ("was.", 1.5, 1.8),
    )
    assert [(u.segment_index, u.text) for u in ups] == [
        (0, "Yet"),
        (1, "notwithstanding"),
        (2, "it was."),
    ]


def test_no_second_pass_while_streams_share_the_model(cfg: PolicyConfig) -> None:
    """A second pass's long window would pad every stream's encoder input in a shared batch."""
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    assert p.next_job(shared=True) is None
    job = p.next_job(shared=False)  # alone again: the sentence gets its second pass
    assert job is not None and job.kind is JobKind.REVISE
    answer(p, job, ("One.", 0.4, 0.8))
    utterance(p, 2.0, ("Two.", 2.8, 3.2))
    p.finish()
    assert p.next_job(shared=True) is None  # ending under load: the first pass stands


def test_sentences_waiting_for_a_second_pass_stay_bounded_while_the_model_is_shared(
    cfg: PolicyConfig,
) -> None:
    """Ten minutes of sentences under load: those whose audio left the history are dropped."""
    p = Policy(cfg)
    for i in range(230):  # whole VAD frames, so that the frames keep pace with the audio
        push(p, 64 * FRAME / SAMPLE_RATE, speech=True)
        job = p.next_job(shared=True)
        assert job is not None and job.kind is JobKind.INTERIM
        run(p, job, result())
        push(p, 20 * FRAME / SAMPLE_RATE, speech=False)
        job = p.next_job(shared=True)
        assert job is not None and job.kind is JobKind.FINAL
        ups = answer(p, job, (f"Number {i}.", job.end_s - 2.2, job.end_s - 1.0))
        assert [u.text for u in ups] == [f"Number {i}."]
    assert p.second_pass.waiting <= 12  # 30 s of history / 2.7 s per sentence
    job = p.next_job(shared=False)  # alone again: only a recent sentence gets a second pass
    assert job is not None and job.kind is JobKind.REVISE
    assert job.end_s - job.start_s <= 20.0
