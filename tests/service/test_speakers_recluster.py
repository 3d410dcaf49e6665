"""The end-of-stream correction on stored voice prints of a real mix (four dev speakers,
int16 audio as through the API): the number of voices must not hinge on one first
pass landing a hair's breadth either side of the merge threshold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from service.speakers import recluster

DATA = Path(__file__).resolve().parents[1] / "data" / "speakers"


def load(mix: str = "B-4spk-3") -> tuple[npt.NDArray[np.float32], list[str], list[str]]:
    with np.load(DATA / f"{mix}-int16.npz") as saved:
        emb = saved["embeddings"].astype(np.float32)
        return emb, [str(s) for s in saved["online"]], [str(s) for s in saved["speakers"]]


def wrong_share(labels: list[str], speakers: list[str]) -> float:
    """Share of speech windows whose label is not their speaker's, under a greedy
    one-to-one map of labels to speakers (most windows in common first)."""
    counts = Counter((s, lb) for s, lb in zip(speakers, labels, strict=True) if s != "?")
    right, mapped_speakers, mapped_labels = 0, set(), set()
    for (spk, label), n in counts.most_common():
        if spk not in mapped_speakers and label not in mapped_labels:
            mapped_speakers.add(spk)
            mapped_labels.add(label)
            right += n
    return 1.0 - right / sum(counts.values())


def test_the_number_of_voices_is_agreed_over_several_first_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emb, online, speakers = load()
    labels, _ = recluster.recluster(emb, online, min_speakers=0, max_speakers=8, next_number=9)
    assert len(set(labels)) == 4, Counter(labels)
    assert wrong_share(labels, speakers) < 0.02
    # The tuned first pass alone splits 4088 in two clusters whose windows average
    # 0.549 with each other against RECLUSTER_THRESHOLD 0.55: a fifth voice.
    monkeypatch.setattr(recluster, "CONSENSUS", False)
    alone, _ = recluster.recluster(emb, online, min_speakers=0, max_speakers=8, next_number=9)
    assert len(set(alone)) == 5


def test_the_agreed_count_stays_within_the_stated_bounds() -> None:
    emb, online, _ = load()
    for lo, hi in ((0, 3), (5, 8), (2, 2)):
        labels, _ = recluster.recluster(
            emb, online, min_speakers=lo, max_speakers=hi, next_number=9
        )
        assert max(lo, 1) <= len(set(labels)) <= hi, (lo, hi, Counter(labels))


def test_a_small_split_off_part_of_a_voice_is_absorbed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A-4spk-3: 10 of 4088's windows (6 % of the mix) average 0.51 with the rest of
    # 4088, short of RECLUSTER_THRESHOLD: kept apart they were a fifth voice.
    emb, online, speakers = load("A-4spk-3")
    labels, _ = recluster.recluster(emb, online, min_speakers=0, max_speakers=8, next_number=9)
    assert len(set(labels)) == 4, Counter(labels)
    assert wrong_share(labels, speakers) < 0.03
    monkeypatch.setattr(recluster, "SMALL_SHARE", 0.0)
    kept, _ = recluster.recluster(emb, online, min_speakers=0, max_speakers=8, next_number=9)
    assert len(set(kept)) == 5
