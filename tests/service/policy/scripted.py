"""Drive a Policy with scripted engine output (no model): speech flags stand for Silero's
probabilities, and word times are given on the stream clock."""

from __future__ import annotations

import numpy as np

from service.domain import Word
from service.engine import DecodeResult
from service.policy import (
    FRAME,
    SAMPLE_RATE,
    DecodeJob,
    Decoding,
    JobKind,
    Phase,
    Policy,
    ResultUpdate,
)
from service.policy.speech import SpeechEvent

Said = tuple[str, float, float]


def result(*words: Said, no_speech: float = 0.01) -> DecodeResult:
    """Engine output with word times relative to the job's audio start."""
    return DecodeResult(tuple(Word(t, s, e, 0.9) for t, s, e in words), no_speech, -0.2)


def push(policy: Policy, seconds: float, speech: bool) -> list[SpeechEvent]:
    n = int(seconds * SAMPLE_RATE)
    frames = n // FRAME
    return policy.push(np.zeros(n, np.float32), [0.9 if speech else 0.05] * frames)


def rel(job: DecodeJob, t: float) -> float:
    """Absolute stream time t relative to the job's audio."""
    return t - job.start_s


def run(policy: Policy, job: DecodeJob, decoded: DecodeResult) -> list[ResultUpdate]:
    """Start `job` and hand back what the engine `decoded`."""
    policy.job_started(job)
    return policy.on_result(job, decoded)


def answer(policy: Policy, job: DecodeJob, *words: Said) -> list[ResultUpdate]:
    """Run `job`; the engine hears `words` (stream times)."""
    return run(policy, job, result(*[(t, rel(job, s), rel(job, e)) for t, s, e in words]))


def decode_next(policy: Policy, seconds: float, *words: Said) -> list[ResultUpdate]:
    """`seconds` more speech, then the next decode answered with words at stream times."""
    push(policy, seconds, speech=True)
    job = policy.next_job()
    assert job is not None
    return answer(policy, job, *words)


def utterance(policy: Policy, seconds: float, *words: Said) -> list[ResultUpdate]:
    """`seconds` of speech then a pause; the pause's final decode hears `words`."""
    push(policy, seconds, speech=True)
    job = policy.next_job()
    assert job is not None and job.kind is JobKind.INTERIM
    assert run(policy, job, result()) == []
    push(policy, 0.6, speech=False)
    job = policy.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    return answer(policy, job, *words)


def phase(p: Policy) -> Phase:
    return p.phase  # a call, so that mypy does not narrow the property between steps


def decoding(p: Policy) -> Decoding:
    return p.decoding  # the same
