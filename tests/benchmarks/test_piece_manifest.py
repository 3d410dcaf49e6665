"""benchmarks/piece_manifest: how the long recordings are shared out and where they are cut."""

from __future__ import annotations

import pytest

from benchmarks.piece_manifest import cut_points, shares


def test_pieces_follow_the_lengths_and_every_recording_gets_one() -> None:
    assert shares([282.7, 359.0, 563.3], 8) == [2, 2, 4]
    assert sum(shares([282.7, 359.0, 563.3], 12)) == 12
    assert shares([1000.0, 10.0], 2) == [1, 1]
    with pytest.raises(SystemExit, match="at least 3"):
        shares([1.0, 2.0, 3.0], 2)


def test_cuts_fall_on_the_segment_start_nearest_each_share() -> None:
    segs = [{"start_s": float(s), "end_s": s + 9.5} for s in range(0, 100, 10)]
    assert cut_points(segs, 2) == [5]  # 50 s of 99.5
    assert cut_points(segs, 4) == [2, 5, 7]
    few = [{"start_s": 0.0, "end_s": 1.0}, {"start_s": 1.0, "end_s": 2.0}]
    assert cut_points(few, 2) == [1]
