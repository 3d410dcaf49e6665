"""The machine-speed probe that every latency benchmark records runs the real engine."""

from __future__ import annotations

from benchmarks.lib.machine import REFERENCE_S, machine_speed, speed_text


def test_machine_speed_times_real_decodes() -> None:
    speed = machine_speed(repeat=1)
    assert speed["engine_round_s"] > 0.05  # four real 8 s decodes cannot be instant
    assert speed["slowdown_vs_30_nov"] == round(speed["engine_round_s"] / REFERENCE_S, 2)
    assert "4 tiny.en decodes" in speed_text(speed)
    assert speed["cpu"] in ("avx512_vnni", "avx512f", "avx2", "other")  # Linux: a real read
