"""A lone stream's second pass beside its first passes (`next_job(beside=True)`): the
first pass goes on while a second pass is in flight, never more than one of each, and
streams sharing the model get no second pass (unless `revise_shared`). Scripted engine
output, production configuration."""

from __future__ import annotations

import dataclasses

import pytest

from service.policy import DecodeJob, Decoding, JobKind, Phase, Policy, PolicyConfig
from tests.service.policy.scripted import answer, decoding, phase, push, result, run, utterance


def two_sentences(cfg: PolicyConfig) -> Policy:
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    utterance(p, 2.0, ("Two.", 2.9, 3.3))
    assert p.second_pass.waiting == 2
    return p


def next_of(p: Policy, kind: JobKind, **kw: bool) -> DecodeJob:
    job = p.next_job(beside=True, **kw)
    assert job is not None and job.kind is kind, job
    return job


def test_the_first_pass_goes_on_while_a_second_pass_runs(cfg: PolicyConfig) -> None:
    p = two_sentences(cfg)
    revise = next_of(p, JobKind.REVISE)
    p.job_started(revise)
    assert decoding(p) is Decoding.SECOND_PASS
    assert p.next_job(beside=True) is None  # nothing to decode yet, one second pass at a time
    assert p.next_job() is None  # without beside: nothing while a decode is in flight
    push(p, 1.0, speech=True)  # speech goes on while the second pass runs
    interim = next_of(p, JobKind.INTERIM)
    p.job_started(interim)
    assert decoding(p) is Decoding.BOTH
    assert p.next_job(beside=True) is None  # one first pass and one second pass at most
    with pytest.raises(ValueError):
        p.job_started(interim)
    assert p.on_result(interim, result()) == []
    assert decoding(p) is Decoding.SECOND_PASS
    push(p, 0.6, speech=False)
    final = next_of(p, JobKind.FINAL)
    answer(p, final, ("Three.", 4.5, 5.0))
    assert decoding(p) is Decoding.SECOND_PASS
    p.on_result(revise, result())  # lands after the first pass went on
    assert decoding(p) is Decoding.NONE
    assert next_of(p, JobKind.REVISE).target is not None  # then "Two."


def test_a_second_pass_starts_while_a_first_pass_runs(cfg: PolicyConfig) -> None:
    """Its result may land first; the first pass's result is committed as usual."""
    p = two_sentences(cfg)
    push(p, 1.0, speech=True)
    interim = next_of(p, JobKind.INTERIM)  # speech first
    p.job_started(interim)
    assert p.next_job() is None
    revise = next_of(p, JobKind.REVISE)
    p.job_started(revise)
    assert decoding(p) is Decoding.BOTH
    p.on_result(revise, result())
    assert decoding(p) is Decoding.FIRST_PASS
    with pytest.raises(ValueError):
        p.on_result(revise, result())  # its result was taken
    p.on_result(interim, result())
    assert decoding(p) is Decoding.NONE


def test_no_second_pass_while_shared_or_behind(cfg: PolicyConfig) -> None:
    """Without `revise_shared` (base's default) a shared stream gets no second pass."""
    p = two_sentences(dataclasses.replace(cfg, revise_shared=False))
    assert p.next_job(shared=True, beside=True) is None
    assert p.next_job(caught_up=False, beside=True) is None
    assert p.next_job(beside=True) is not None


def test_with_revise_shared_a_shared_stream_gets_its_second_pass_beside(
    cfg: PolicyConfig,
) -> None:
    """`--revise-shared`: beside the first passes (the scheduler runs it in its slack),
    still not while the stream is behind, and never inline, where it would hold the
    stream's first passes back."""
    p = two_sentences(dataclasses.replace(cfg, revise_shared=True))
    assert p.next_job(shared=True, caught_up=False, beside=True) is None
    assert p.next_job(shared=True) is None
    next_of(p, JobKind.REVISE, shared=True)


def test_after_the_end_second_passes_wait_for_each_other(cfg: PolicyConfig) -> None:
    """Once the stream has ended there is no first pass to go on with: each sentence's
    second pass in turn, and none at all while draining (the loop then asks as shared,
    not beside)."""
    p = two_sentences(cfg)
    p.finish()
    assert p.phase is Phase.ENDED
    assert p.next_job(shared=True) is None
    one = next_of(p, JobKind.REVISE, caught_up=False)
    p.job_started(one)
    assert p.next_job(beside=True) is None
    p.on_result(one, result())
    two = next_of(p, JobKind.REVISE)
    run(p, two, result())
    assert p.next_job(beside=True) is None


def test_the_last_final_runs_beside_a_second_pass(cfg: PolicyConfig) -> None:
    p = two_sentences(cfg)
    revise = next_of(p, JobKind.REVISE)
    p.job_started(revise)
    push(p, 1.0, speech=True)
    p.finish()
    assert phase(p) is Phase.ENDING
    final = next_of(p, JobKind.FINAL)
    answer(p, final, ("Three.", 4.5, 5.0))
    assert phase(p) is Phase.ENDED
    p.on_result(revise, result())
    assert next_of(p, JobKind.REVISE).target is not None
