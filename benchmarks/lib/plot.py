"""Latency-over-time plots (PNG, matplotlib's Agg backend) for the stream benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.lib.analysis import rolling_median


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]  # (session seconds, final latency)


@dataclass
class Panel:
    title: str
    series: list[Series]
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (seconds, CPU-s/audio-s)


def plot_latency(path: Path, panels: Sequence[Panel], window: int = 15) -> None:
    """One row per panel: each word's final latency against where it ends in the session,
    as points, with a rolling median line per stream; the server's CPU per audio second
    over the session on a second axis when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False, sharex=False
    )
    longest = max((p[0] for panel in panels for s in panel.series for p in s.points), default=0)
    unit, div = ("minutes", 60.0) if longest > 180 else ("seconds", 1.0)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, s in enumerate(panel.series):
            pts = sorted(s.points)
            if not pts:
                continue
            xs = [p[0] / div for p in pts]
            ys = [p[1] for p in pts]
            c = colors[i % len(colors)]
            ax.scatter(xs, ys, s=6, alpha=0.35, color=c)
            ax.plot(xs, rolling_median(ys, window), color=c, lw=1.5, label=s.label)
        ax.axhline(3.0, color="grey", ls=":", lw=1)
        ax.set_title(panel.title, fontsize=10)
        ax.set_ylabel("final-word latency (s)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if panel.cpu:
            ax2 = ax.twinx()
            ax2.step(
                [t / div for t, _ in panel.cpu],
                [c for _, c in panel.cpu],
                where="post",
                color="black",
                lw=1,
                alpha=0.6,
                label="server CPU-s per audio-s",
            )
            ax2.set_ylabel("server CPU-s / audio-s")
            ax2.set_ylim(bottom=0)
            ax2.legend(loc="upper right", fontsize=8)
        if len(panel.series) <= 10:
            ax.legend(loc="upper left", fontsize=8, ncols=min(5, max(1, len(panel.series))))
    axes[-1, 0].set_xlabel(f"time in the session ({unit}; where the word ends in the audio)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
