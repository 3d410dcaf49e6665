"""The online clusterer's rules on made-up voice prints (unit vectors): exact geometry,
so each rule is tested at its edge without depending on the embedder."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.speakers.clustering import (
    ADAPT_MIN_WINDOWS,
    MERGE_MIN_WINDOWS,
    MERGE_THRESHOLD,
    NEAR_MISS,
    NEW_SPEAKER_WINDOWS,
    NO_MERGE,
    SIMILARITY_THRESHOLD,
    TYPICAL_MARGIN,
    YOUNG_THRESHOLD,
    OnlineClusterer,
)


def unit(cos: float) -> npt.NDArray[np.float32]:
    """A voice print at cosine `cos` from the first axis (in the plane of the first two)."""
    v = np.zeros(8, dtype=np.float32)
    v[0], v[1] = cos, np.sqrt(1.0 - cos**2)
    return v


def run(clusterer: OnlineClusterer, prints: list[npt.NDArray[np.float32]]) -> list[str]:
    for p in prints:
        clusterer.add(p)
    return clusterer.labels


def test_a_voice_split_in_two_live_is_merged_back_under_its_first_label() -> None:
    # S1: ten identical windows, so its typical similarity is 1.0 and a window at
    # 0.75 (< 1.0 - margin) starts a second voice, though the two are alike (0.75 >=
    # MERGE_THRESHOLD on average): one voice split in two, as a real voice sometimes is.
    assert MERGE_THRESHOLD <= 0.75
    same = [unit(1.0)] * 10 + [unit(0.75)] * (MERGE_MIN_WINDOWS + 2)
    split = run(OnlineClusterer(merge=NO_MERGE), same)
    assert split[-1] == "S2"  # without the merge the second half keeps a label of its own
    merged = OnlineClusterer()
    labels = run(merged, same)
    assert set(labels) == {"S1"}, labels
    assert [s.label for s in merged.speakers] == ["S1"]
    assert merged.speakers[0].count == len(same)
    # The merged voice keeps labelling: the next window of either half is S1.
    merged.add(unit(0.75))
    merged.add(unit(1.0))
    assert merged.labels[-2:] == ["S1", "S1"]


def test_two_different_voices_are_not_merged() -> None:
    # Two voices at 0.5 from each other (below MERGE_THRESHOLD) stay two.
    assert MERGE_THRESHOLD > 0.5
    prints = [unit(1.0)] * 10 + [unit(0.5)] * 10 + [unit(1.0)] * 4
    clusterer = OnlineClusterer()
    labels = run(clusterer, prints)
    assert labels[:10] == ["S1"] * 10
    assert labels[11:20] == ["S2"] * 9
    assert labels[-3:] == ["S1"] * 3
    assert len(clusterer.speakers) == 2


def test_a_merge_survives_the_state_round_trip() -> None:
    clusterer = OnlineClusterer()
    run(clusterer, [unit(1.0)] * 10 + [unit(0.75)] * (MERGE_MIN_WINDOWS + 2))
    again = OnlineClusterer.from_json(clusterer.to_json())
    assert again.merge == MERGE_THRESHOLD
    assert again.labels == clusterer.labels
    assert [s.label for s in again.speakers] == ["S1"]
    assert again.raw == clusterer.raw
    lean = OnlineClusterer.from_json(clusterer.to_json(history=False))
    assert lean.merge == MERGE_THRESHOLD


def axis(k: int, dim: int = 16) -> npt.NDArray[np.float32]:
    v = np.zeros(dim, dtype=np.float32)
    v[k] = 1.0
    return v


def test_a_new_voice_does_not_join_a_voice_heard_only_briefly() -> None:
    # S1 speaks a short first turn (5 windows: a young voice), S2 a turn, then a new
    # voice whose windows score 0.68 against S1's young centroid: above the plain
    # threshold but below YOUNG_THRESHOLD. It gets a label of its own (A-4spk-3:
    # 4406's first turn had joined 8226's 3.5 s first turn). Its windows average
    # 0.58 with S1's, below MERGE_THRESHOLD, so the live merge leaves it alone.
    a, b, c = 0.8, 0.6, 0.72
    first = [a * axis(0) + b * axis(2 + k) for k in range(ADAPT_MIN_WINDOWS - 1)]
    other = [axis(10)] * 8
    new = [c * axis(0) + np.sqrt(1 - c**2) * axis(1)] * 6
    clusterer = OnlineClusterer()
    labels = run(clusterer, [*first, *other, *new])
    s1 = clusterer.speakers[0]
    sim = float(s1.centroid() @ new[0])
    assert s1.count == len(first)
    assert SIMILARITY_THRESHOLD <= sim < YOUNG_THRESHOLD, sim
    assert a * c < MERGE_THRESHOLD
    assert labels[: len(first)] == ["S1"] * len(first)
    assert labels[len(first) + 1 : len(first) + len(other)] == ["S2"] * (len(other) - 1)
    assert labels[-4:] == ["S3"] * 4, labels
    # The rule is for another voice's turn only: a young voice's own turn goes on at
    # the plain threshold (the second window here scores 0.64 against the first).
    own = run(OnlineClusterer(), first)
    assert own == ["S1"] * len(first)


def voice(n: int, first: int = 0) -> list[npt.NDArray[np.float32]]:
    """`n` windows of one voice: 0.8 along the first axis, each with its own other
    axis (from 8 on), so windows score 0.64 with each other and the voice's typical
    similarity after 10 windows is 0.82 (its floor 0.62)."""
    return [0.8 * axis(0, 48) + 0.6 * axis(8 + first + k, 48) for k in range(n)]


def test_a_window_turned_away_by_a_young_voice_joins_the_next_most_similar() -> None:
    # S1 speaks, a young voice S2 (2 windows) cuts in, S1 goes on; then windows that
    # score 0.72 against young S2 (not the current voice: below YOUNG_THRESHOLD, turned
    # away) and 0.68 against S1 (above its floor). They are S1's. Without the fallback
    # they matched nobody and started a third voice (B-4spk-0: 8226's windows split off
    # in short-lived voices).
    young = 0.5 * axis(0, 48) + np.sqrt(0.75) * axis(2, 48)
    b = (0.72 - 0.5 * 0.7) / np.sqrt(0.75)
    window = 0.7 * axis(0, 48) + b * axis(2, 48) + np.sqrt(1 - 0.49 - b**2) * axis(3, 48)
    before = [*voice(10), young, young, *voice(4, 10)]
    clusterer = OnlineClusterer()
    run(clusterer, before)
    s1, s2 = clusterer.speakers
    to_s1, to_s2 = float(s1.centroid() @ window), float(s2.centroid() @ window)
    assert s1.typical_similarity() - TYPICAL_MARGIN < to_s1 < to_s2 < YOUNG_THRESHOLD
    prints = [*before, *[window] * 4]
    labels = run(clusterer, [window] * 4)
    assert labels[10:12] == ["S2", "S2"]
    assert labels[12:] == ["S1"] * 8, labels
    assert len(clusterer.speakers) == 2
    without = run(OnlineClusterer(fallback=False), prints)
    assert without[-1] == "S3", without


def test_near_misses_of_a_known_voice_need_a_window_more_to_start_a_new_one() -> None:
    # Two windows just below S1's floor and the plain threshold but near misses
    # (>= NEAR_MISS) in the middle of its turn are not a new voice when the next window
    # is S1 again (B-4spk-0: 8226's turns had lost 1-1.5 s each to such short-lived
    # voices).
    odd = 0.59 * axis(0, 48) + np.sqrt(1 - 0.59**2) * axis(2, 48)
    prints = [*voice(10), *[odd] * NEW_SPEAKER_WINDOWS, *voice(4, 10)]
    clusterer = OnlineClusterer()
    assert run(clusterer, prints) == ["S1"] * len(prints)
    assert len(clusterer.speakers) == 1
    sim = float(run_centroid(voice(10)) @ odd)
    assert NEAR_MISS <= sim < SIMILARITY_THRESHOLD, sim
    without = run(OnlineClusterer(near_miss=False), prints)
    assert without[10 : 10 + NEW_SPEAKER_WINDOWS] == ["S2"] * NEW_SPEAKER_WINDOWS, without
    # A voice that goes on is still a new voice, one window later.
    goes_on = run(OnlineClusterer(), [*voice(10), *[odd] * 6])
    assert goes_on[10:] == ["S2"] * 6, goes_on
    # Windows unlike every known voice start one after NEW_SPEAKER_WINDOWS, as before.
    far = [axis(5, 48)] * NEW_SPEAKER_WINDOWS + [axis(0, 48)]
    assert run(OnlineClusterer(), [*voice(10), *far])[10:12] == ["S2", "S2"]


def run_centroid(prints: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float64]:
    clusterer = OnlineClusterer()
    run(clusterer, prints)
    assert len(clusterer.speakers) == 1
    return clusterer.speakers[0].centroid()
