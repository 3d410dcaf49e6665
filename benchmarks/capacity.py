"""Capacity: the largest number of concurrent real-time streams the service holds.

    python -m benchmarks.stream_bench --capacity --out benchmarks/results/capacity.json
    python -m benchmarks.stream_bench --capacity --capacity-ns 1,2 --capacity-seconds 30

Each stream plays `--capacity-seconds` (default 90) of speech: consecutive clips of the
manifest with 0.6 s of silence between them, every stream its own clips. For each N,
a fresh server; N streams start `--stagger` seconds apart and run concurrently at
real time. N holds when no stream fails, p90 final-word latency is at most 3 s over
the whole run, and the p90 of the words in the last third of the streams is at most
1 s above that of the first third (latency does not grow). The search doubles N from
1 while runs hold, then bisects between the largest N that held and the smallest that
failed (or tries exactly `--capacity-ns`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.lib.analysis import (
    GROWTH_LIMIT_S,
    P90_LIMIT_S,
    capacity_of,
    concatenate,
    next_capacity_n,
    verdict,
)
from benchmarks.lib.clips import Clip, Offline, by_speakers, load_clip, read_manifest
from benchmarks.lib.machine import machine_speed, speed_text
from benchmarks.lib.measure import measure, stream_model
from benchmarks.lib.server import git_version

if TYPE_CHECKING:
    from benchmarks.lib.plot import Panel


class StreamPool:
    """Long streams made of consecutive manifest clips; stream i is the same for every N."""

    def __init__(
        self,
        manifest: Path,
        seconds: float,
        cache: bool,
        model: str = "",
        language: str = "",
        speakers: str = "",
    ) -> None:
        self.manifest = manifest
        entries = [e for e in read_manifest(manifest) if "segments" not in e]
        self.entries = by_speakers(entries, speakers)
        if not self.entries:
            raise SystemExit(f"no clips of speakers {speakers!r} in {manifest}")
        self.seconds = seconds
        self.offline = Offline(cache, model)
        self.language = language
        self.streams: list[Clip] = []
        self._next = 0

    def _add(self) -> None:
        parts = []
        total = 0.0
        while total < self.seconds:
            e = self.entries[self._next % len(self.entries)]
            self._next += 1
            c = load_clip(self.manifest, e, self.offline, language_code=self.language)
            parts.append((c.id, c.audio, c.reference, c.offline_text, c.word_ends))
            total += c.duration_s + 0.6
        cat = concatenate(parts)
        i = len(self.streams)
        self.streams.append(
            Clip(f"s{i}:{parts[0][0]}+{len(parts) - 1}", cat.audio, cat.reference,
                 cat.offline_text, cat.word_ends, language_code=self.language)
        )  # fmt: skip

    def take(self, n: int) -> list[Clip]:
        while len(self.streams) < n:
            self._add()
        return self.streams[:n]


async def run_capacity(args: argparse.Namespace) -> dict[str, Any]:
    speed = await asyncio.to_thread(machine_speed)
    pool = StreamPool(
        Path(args.manifest), args.capacity_seconds, not args.no_cache, stream_model(args),
        args.language, args.speakers,
    )  # fmt: skip
    fixed = [int(x) for x in args.capacity_ns.split(",")] if args.capacity_ns else None
    held: dict[int, bool] = {}
    runs: list[dict[str, Any]] = []
    panels: list[tuple[int, Panel]] = []
    while True:
        if fixed is not None:
            n: int | None = fixed[len(runs)] if len(runs) < len(fixed) else None
        else:
            n = next_capacity_n(held, args.capacity_max)
        if n is None:
            break
        streams = await asyncio.to_thread(pool.take, n)
        load_at_start = round(os.getloadavg()[0], 2)
        result, timed, clip_runs = await measure(args, streams, [], n, label=f"N={n}")
        result["load_average_1min"] = [load_at_start, round(os.getloadavg()[0], 2)]
        ok, reason = verdict(
            result["final_latency_s"]["p90"],
            result["final_p90_first_third_s"],
            result["final_p90_last_third_s"],
            len(result["errors"]),
        )
        held[n] = ok
        result = {"n": n, "holds": ok, "verdict": reason, **result}
        runs.append(result)
        print(f"N={n}: {reason}", file=sys.stderr, flush=True)
        if args.plot:
            from benchmarks.lib.plot import Panel, Series

            series = [
                Series(r.id.split(":")[0], [(t.end_s, t.final_latency) for t in timed[r.id]])
                for r in clip_runs
            ]
            panels.append((n, Panel(f"N={n}: {reason}", series)))
    if args.plot and panels:
        from benchmarks.lib.plot import plot_latency

        await asyncio.to_thread(plot_latency, Path(args.plot), [p for _, p in sorted(panels)])
    return {
        "command": " ".join(["python -m benchmarks.stream_bench", *sys.argv[1:]]),
        "mode": "capacity",
        "manifest": args.manifest,
        "model": stream_model(args),
        "language_code": args.language,
        "speakers": args.speakers,
        "server_args": list(args.server_arg),
        "seconds_per_stream": args.capacity_seconds,
        "stagger_s": args.stagger,
        "pace": args.pace,
        "criteria": {
            "p90_final_latency_max_s": P90_LIMIT_S,
            "p90_growth_last_vs_first_third_max_s": GROWTH_LIMIT_S,
        },
        "service_version": git_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine_speed": speed,
        "capacity": capacity_of(held),
        "runs": sorted(runs, key=lambda r: int(r["n"])),
        **({"plot": args.plot} if args.plot and panels else {}),
    }


def capacity_markdown(c: dict[str, Any]) -> str:
    lines = [
        f"`{c['command']}`",
        "",
        f"Model {c.get('model', 'tiny.en')}, language {c.get('language_code') or 'auto'}"
        f"{', speakers ' + c['speakers'] if c.get('speakers') else ''}. "
        f"Capacity: **{c['capacity']} concurrent real-time "
        f"stream{'' if c['capacity'] == 1 else 's'}** "
        f"({c['seconds_per_stream']:g} s of speech each, starts {c['stagger_s']:g} s apart; "
        f"holds = p90 final latency ≤ {c['criteria']['p90_final_latency_max_s']:g} s and "
        f"last-third p90 ≤ first-third p90 + "
        f"{c['criteria']['p90_growth_last_vs_first_third_max_s']:g} s).",
        "",
        *([speed_text(c["machine_speed"]), ""] if c.get("machine_speed") else []),
        "| N | holds | WER stream / offline | interim median / p90 | final median / p90 / p99 "
        "| final p90 first / last third | CPU s per audio s | peak RSS | load 1 min start / end "
        "| verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in c["runs"]:
        i, f = r["interim_latency_s"], r["final_latency_s"]
        lines.append(
            f"| {r['n']} | {'yes' if r['holds'] else 'no'} | "
            f"{r['wer_streaming']:.1%} / {r['wer_offline']:.1%} | "
            f"{i['median']:.2f} / {i['p90']:.2f} s | "
            f"{f['median']:.2f} / {f['p90']:.2f} / {f['p99']:.2f} s | "
            f"{r['final_p90_first_third_s']:.2f} / {r['final_p90_last_third_s']:.2f} s | "
            f"{r['server_cpu_s_per_audio_s']} | {r['server_peak_rss_mb']} MB | "
            f"{' / '.join(str(x) for x in r.get('load_average_1min', ['?']))} | {r['verdict']} |"
        )
    if c.get("note"):
        lines += ["", f"Note: {c['note']}."]
    if c.get("plot"):
        lines += ["", f"![final-word latency over the run, per N]({Path(c['plot']).name})"]
    return "\n".join(lines)
