"""A final never spans a change of speaker: the policy splits it where the session's
splitter says, into finals with consecutive segment indexes (scripted engine output)."""

from __future__ import annotations

from collections.abc import Sequence

from service.domain import Word
from service.policy import Policy, PolicyConfig
from tests.service.policy.scripted import utterance


def turn_at(t: float) -> object:
    """A splitter with one speaker change at stream time t."""

    def split(words: Sequence[Word]) -> list[int]:
        return [i for i, w in enumerate(words) if w.start >= t][:1]

    return split


def test_a_final_is_split_at_the_turn_into_consecutive_segments(cfg: PolicyConfig) -> None:
    p = Policy(cfg, 0.0, 5, splitter=turn_at(0.9))  # type: ignore[arg-type]
    ups = utterance(p, 1.5, ("yes", 0.1, 0.4), ("go", 0.5, 0.8), ("thanks", 0.9, 1.3))
    assert [(u.segment_index, u.text) for u in ups if u.is_final] == [(5, "yes go"), (6, "thanks")]
    ups = utterance(p, 1.0, ("next", 2.2, 2.6))
    assert [u.segment_index for u in ups if u.is_final] == [7]


def test_without_a_splitter_or_a_turn_the_final_is_one_segment(cfg: PolicyConfig) -> None:
    for p in (Policy(cfg), Policy(cfg, splitter=lambda words: [0, len(words), 99])):
        ups = utterance(p, 1.5, ("yes", 0.1, 0.4), ("go", 0.5, 0.8))
        assert [(u.segment_index, u.text) for u in ups if u.is_final] == [(0, "yes go")]
