"""The policy's phase machine, driven with scripted engine output (no model), in the
production configuration: phases, jobs in flight, bounded state."""

from __future__ import annotations

import pytest

from service.policy import (
    FRAME,
    SAMPLE_RATE,
    Decoding,
    JobKind,
    Phase,
    Policy,
    PolicyConfig,
)
from tests.service.policy.scripted import (
    answer,
    decoding,
    phase,
    push,
    result,
    run,
    utterance,
)

# ---- the phase machine ---------------------------------------------------


def test_phases_follow_speech_pauses_and_the_end_of_the_stream(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    assert phase(p) is Phase.QUIET
    push(p, 1.0, speech=True)
    assert phase(p) is Phase.SPEAKING
    push(p, 0.6, speech=False)
    assert phase(p) is Phase.PAUSED
    push(p, 0.3, speech=True)  # speech again before the final decode: still one utterance
    assert phase(p) is Phase.SPEAKING
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    answer(p, job, ("Yes.", 0.2, 0.6))
    assert phase(p) is Phase.QUIET
    push(p, 1.0, speech=True)
    p.finish()
    assert phase(p) is Phase.ENDING  # an utterance is open: its final decode is due
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    answer(p, job)
    assert phase(p) is Phase.ENDED


def test_finishing_with_nothing_pending_goes_straight_to_ended(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 2.0, speech=False)
    p.finish()
    assert p.phase is Phase.ENDED and p.next_job() is None


def test_next_job_changes_nothing_job_started_does(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 1.0, speech=True)
    push(p, 0.6, speech=False)
    first, again = p.next_job(), p.next_job()
    assert first is not None and again is not None
    assert (first.kind, first.start_s, first.end_s) == (again.kind, again.start_s, again.end_s)
    assert p.phase is Phase.PAUSED and p.decoding is Decoding.NONE
    p.job_started(first)
    assert decoding(p) is Decoding.FIRST_PASS
    assert p.next_job() is None  # one decode of a stream at a time
    with pytest.raises(ValueError):
        p.job_started(again)
    p.on_result(first, result())
    assert decoding(p) is Decoding.NONE


def test_a_result_needs_its_job_started(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    with pytest.raises(ValueError):
        p.on_result(job, result())


def test_only_one_second_pass_is_in_flight(cfg: PolicyConfig) -> None:
    """Two complete sentences wait; while the first one's second pass runs, no job at all
    (the second pass of the next sentence waits for its result)."""
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    utterance(p, 2.0, ("Two.", 2.9, 3.3))
    assert p.second_pass.waiting == 2
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    p.job_started(job)
    assert p.decoding is Decoding.SECOND_PASS
    assert p.second_pass.waiting == 1
    assert p.next_job() is None
    push(p, 1.0, speech=True)  # speech goes on while the second pass runs
    assert p.next_job() is None
    p.on_result(job, result())
    job = p.next_job()
    assert job is not None and job.kind is JobKind.INTERIM  # speech first
    run(p, job, result())
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    run(p, job, result())
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE  # then "Two."


def test_speech_flags_stay_bounded_over_a_long_stream(cfg: PolicyConfig) -> None:
    """Ten minutes of speech and pauses: the gate keeps only the flags of the window."""
    p = Policy(cfg)
    for _ in range(120):
        push(p, 4.0, speech=True)
        job = p.next_job()
        assert job is not None
        run(p, job, result())
        push(p, 1.0, speech=False)
        while (job := p.next_job()) is not None:
            run(p, job, result())
    assert p.gate.frames > 18000
    assert p.gate.kept_frames * FRAME / SAMPLE_RATE < cfg.max_buffer_s + 2.0
