"""The soak's result (benchmarks/soak.py): the JSON report with its pass/fail checks (no
errors, every final stored, RSS flat after warm-up, counts back once the streams end) and
its Markdown summary."""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from benchmarks.lib.analysis import pct

if TYPE_CHECKING:
    from benchmarks.soak import Soak


def report(
    args: argparse.Namespace,
    soak: Soak,
    fresh: dict[str, float],
    base: dict[str, float],
    after: dict[str, float],
    storage: dict[str, Any],
    server_log: dict[str, Any],
    ids: list[str],
    streams_ended: float,
    start_env: dict[str, Any],
    end_env: dict[str, Any],
) -> dict[str, Any]:
    samples = soak.samples
    rss = [s["rss_mb"] for s in samples]
    q = max(1, len(rss) // 4)
    second, last = rss[q : 2 * q] or rss, rss[-q:]
    growth = statistics.median(last) - statistics.median(second)
    audio_s = sum(s.audio_s for s in soak.streams)
    cpu = after["cpu_s"] - base["cpu_s"]
    lags = [x for s in soak.streams for x in s.final_lags]
    by_quarter = []
    for k in range(4):
        lo, hi = k * args.minutes * 15, (k + 1) * args.minutes * 15
        qs = [x for s in soak.streams if lo <= s.started < hi for x in s.final_lags]
        by_quarter.append({"median": pct(qs, 50), "p90": pct(qs, 90), "n": len(qs)})
    counters = {k: v for k, v in after.items() if k.startswith(("refused_", "ended_"))}
    server_errors = {
        "storage_write_errors": after.get("storage_write_errors", 0),
        "finals_sent_before_stored": after.get("finals_sent_before_stored", 0),
        "refused": sum(v for k, v in counters.items() if k.startswith("refused_")),
    }
    others = [s["cores_other"] for s in samples if "cores_other" in s]
    checks = {
        "no_client_errors": not soak.errors,
        "no_server_errors": not any(server_errors.values()),
        "no_error_log_records": server_log["error_count"] == 0,
        "every_final_stored": not storage["problems"]
        and storage["finals_stored_match"] == storage["finals_received"],
        "rss_flat": growth <= args.rss_tolerance_mb,
        "fds_back": after["fds"] <= base["fds"],
        "threads_back": after["threads"] <= base["threads"],
        "tasks_back": after.get("tasks", 0) <= base.get("tasks", 0),
        "no_active_streams": after.get("active_streams", 0) == 0,
    }
    keep = ("rss_mb", "fds", "threads", "py_threads", "tasks", "active_streams", "cpu_s")
    return {
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "recordings": ids,
        "streams": args.streams,
        "minutes": args.minutes,
        "search_rate_per_s": args.search_rate,
        "drop_fraction": args.drop_fraction,
        "seed": args.seed,
        "streams_run": len(soak.streams),
        "streams_clean": sum(s.mode == "clean" for s in soak.streams),
        "streams_dropped": sum(s.mode == "drop" for s in soak.streams),
        "last_stream_ended_s": streams_ended,
        "audio_streamed_min": round(audio_s / 60, 1),
        "calls": soak.calls,
        "call_latency_ms": {"median": pct(soak.call_ms, 50), "p99": pct(soak.call_ms, 99)},
        "search_hits": soak.search_hits,
        "client_errors": soak.errors[:50],
        "client_error_count": len(soak.errors),
        "server_errors": server_errors,
        "server_stream_counters": counters,
        "server_log": server_log,
        "storage": storage,
        "final_lag_s": {"median": pct(lags, 50), "p90": pct(lags, 90), "p99": pct(lags, 99)},
        "final_lag_s_by_quarter": by_quarter,
        "server_cpu_s_per_audio_s": round(cpu / audio_s, 3) if audio_s else None,
        "cores_other_median": round(statistics.median(others), 2) if others else None,
        "rss_mb": {
            "start": fresh["rss_mb"],
            "after_warmup": base["rss_mb"],
            "second_quarter_median": round(statistics.median(second), 1),
            "last_quarter_median": round(statistics.median(last), 1),
            "growth_mb": round(growth, 1),
            "peak": max(rss),
            "end": after["rss_mb"],
        },
        "start": {k: fresh[k] for k in keep if k in fresh},
        "before": {k: base[k] for k in keep if k in base},
        "after": {k: after[k] for k in (*keep, "settle_s") if k in after},
        "thread_names": {
            "before": server_log.pop("thread_names_before"),
            "after": server_log.pop("thread_names_after"),
        },
        "checks": checks,
        "passed": all(checks.values()),
        "machine_at_start": start_env,
        "machine_at_end": end_env,
        "streams_log": [
            {k: v for k, v in asdict(s).items() if k not in ("finals", "final_lags")}
            | {"finals": len(s.finals)}
            for s in soak.streams
        ],
        "samples": samples,
    }


def markdown(r: dict[str, Any]) -> str:
    b, a, st, m = r["before"], r["after"], r["storage"], r["rss_mb"]
    lines = [
        f"`{r['command']}` ({', '.join(r['recordings'])})",
        "",
        f"**{'PASS' if r['passed'] else 'FAIL'}**: {r['streams']} concurrent real-time streams "
        f"for {r['minutes']:g} min: {r['streams_run']} streams ({r['streams_clean']} "
        f"half-closed, {r['streams_dropped']} dropped mid-stream), "
        f"{r['audio_streamed_min']} min of audio; {sum(r['calls'].values())} unary calls "
        f"({', '.join(f'{v} {k}' for k, v in sorted(r['calls'].items()))}; median "
        f"{r['call_latency_ms']['median']} ms, p99 {r['call_latency_ms']['p99']} ms).",
        "",
        f"- errors: {r['client_error_count']} client-side (statuses other than OK / the "
        f"CANCELLED of dropped streams); server: {r['server_errors']}; ERROR log records: "
        f"{r['server_log']['error_count']}"
        + "".join(
            f"\n  - `{e.splitlines()[0]}`: {e.strip().splitlines()[-1]}"
            for e in r["server_log"]["errors"][:5]
        ),
        f"- storage: {st['finals_stored_match']} of {st['finals_received']} finals received "
        f"found stored with the same index and text, in {st['streams']} transcripts; "
        f"{len(st['problems'])} problems",
        f"- RSS: start {m['start']} MB, after warm-up {m['after_warmup']} MB, median of 2nd "
        f"quarter {m['second_quarter_median']} MB, of last quarter {m['last_quarter_median']} MB "
        f"(growth {m['growth_mb']} MB), peak {m['peak']} MB, end {m['end']} MB",
        f"- final results arrived {r['final_lag_s']['median']} s (median) / "
        f"{r['final_lag_s']['p90']} s (p90) after their audio ended; by quarter p90 "
        + ", ".join(f"{x['p90']}" for x in r["final_lag_s_by_quarter"])
        + f" s; server {r['server_cpu_s_per_audio_s']} CPU s per audio s",
        f"- other processes used a median {r['cores_other_median']} cores of 2; load average "
        f"at start {r['machine_at_start']['loadavg'][0]:.2f}, at end "
        f"{r['machine_at_end']['loadavg'][0]:.2f}",
        "",
        "| | fresh server | after warm-up (before) | after all streams ended |",
        "| --- | --- | --- | --- |",
    ]
    s = r["start"]
    rows = (
        ("rss_mb", "RSS MB"),
        ("fds", "open fds"),
        ("threads", "threads"),
        ("tasks", "event-loop tasks"),
        ("active_streams", "active streams"),
    )
    for key, name in rows:
        lines.append(
            f"| {name} | {s.get(key, 'n/a')} | {b.get(key, 'n/a')} | {a.get(key, 'n/a')} |"
        )
    tb, ta = r["thread_names"]["before"], r["thread_names"]["after"]
    changed = {k: (tb.get(k, 0), ta.get(k, 0)) for k in {*tb, *ta} if tb.get(k) != ta.get(k)}
    lines += [
        f"\nSettled {a.get('settle_s', '?')} s after the last stream ended. Threads whose "
        "count changed, by kernel name (before -> after): "
        + (", ".join(f"{k} {x} -> {y}" for k, (x, y) in sorted(changed.items())) or "none"),
        "",
        "| minute | RSS MB | fds | threads | tasks | active streams | server cores | other cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    shown = -1
    for x in r["samples"]:
        if int(x["t"] // 60) != shown:
            shown = int(x["t"] // 60)
            lines.append(
                f"| {x['t'] / 60:.1f} | {x['rss_mb']:.0f} | {x['fds']:.0f} | {x['threads']:.0f} "
                f"| {x.get('tasks', float('nan')):.0f} | {x.get('active_streams', 0):.0f} "
                f"| {x.get('cores_server', '')} | {x.get('cores_other', '')} |"
            )
    lines += [
        "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items()),
    ]
    if r["client_errors"] or r["storage"]["problems"]:
        lines += ["", "Problems:", *(f"- {e}" for e in r["client_errors"][:10])]
        lines += [f"- {p}" for p in r["storage"]["problems"][:10]]
    return "\n".join(lines) + "\n"
