"""LiveSpeakers' bookkeeping (a scripted tracker, no model): where finals split, labels on
results, and the end-of-stream corrections sent as revisions one higher than last sent."""

from __future__ import annotations

import numpy as np

from service.domain import Word
from service.policy import ResultUpdate
from service.speakers.config import DiarizationSettings
from service.speakers.live import LiveSpeakers
from service.speakers.tracker import LabelSpan, SpeakerTracker


class Scripted(SpeakerTracker):
    """Labels by time: S1 before `turn`, S2 after; `finish` moves the turn."""

    def __init__(self, turn: float, corrected_turn: float) -> None:
        super().__init__(DiarizationSettings(enabled=True))
        self.turn, self.corrected = turn, corrected_turn
        self.pushed: list[float] = []

    def push(self, audio: object, start_s: float) -> list[LabelSpan]:
        self.pushed.append(start_s)
        return []

    def label_for(self, start_s: float, end_s: float) -> str:
        return "S1" if (start_s + end_s) / 2 < self.turn else "S2"

    def turns_between(self, start_s: float, end_s: float) -> list[tuple[float, str]]:
        return [(self.turn, "S2")] if start_s < self.turn < end_s else []

    def finish(self) -> list[LabelSpan]:
        self.turn = self.corrected
        return []


def final(index: int, *said: tuple[str, float, float], revision: int = 0) -> ResultUpdate:
    words = tuple(Word(t, s, e, 0.9) for t, s, e in said)
    return ResultUpdate(words, True, 0.0, index, revision)


async def test_split_points_labels_and_corrections_as_revisions() -> None:
    tracker = Scripted(turn=2.0, corrected_turn=3.5)
    live = LiveSpeakers(DiarizationSettings(enabled=True), None, tracker=tracker)
    await live.push(np.zeros(1600, np.float32), 0.0)
    assert tracker.pushed == [0.0]
    words = final(0, ("a", 0.0, 0.5), ("b", 1.0, 1.8), ("c", 2.2, 2.6), ("d", 3.0, 3.3)).words
    assert live.split_points(words) == [2]
    first = live.label(final(0, ("a", 0.0, 0.5), ("b", 1.0, 1.8)))
    second = live.label(final(1, ("c", 2.2, 2.6), ("d", 3.0, 3.3)))
    third = live.label(final(2, ("e", 4.0, 4.5)))
    assert [u.speaker_label for u in (first, second, third)] == ["S1", "S2", "S2"]
    # A second pass's revision keeps its segment's label, even if its words stretch.
    revised = live.label(final(1, ("see", 2.2, 2.6), ("d", 1.0, 5.0), revision=1))
    assert (revised.speaker_label, revised.revision) == ("S2", 1)
    assert live.label(ResultUpdate(words[2:], False, 0.5)).speaker_label == "S2"  # interim
    # The re-clustering moves the turn to 3.5 s: segment 1 (2.2-3.3) becomes S1.
    corrections = await live.finish()
    assert [(u.segment_index, u.revision, u.speaker_label, u.text) for u in corrections] == [
        (1, 2, "S1", "see d")
    ]
    assert await live.state()  # the tracker's small state, for the next stream
