"""Accuracy, latency and cost of live transcription, measured through the real gRPC API.

    python -m benchmarks.stream_bench --manifest ../shared/speech/dev/manifest.jsonl --limit 20
    python -m benchmarks.stream_bench --streams 4 --limit 8          # concurrent streams
    python -m benchmarks.stream_bench --quick                        # < 1 minute, for development
    python -m benchmarks.stream_bench --silence-noise --no-speech    # words on silence and noise
    python -m benchmarks.stream_bench --manifest ../shared/speech/long/manifest.jsonl \\
        --limit 1 --max-seconds 300 --plot long.png                  # per-minute report + plot
    python -m benchmarks.stream_bench --capacity                     # largest N that holds
    python -m benchmarks.stream_bench --models tiny.en,base --model base --language en \
        --speakers 4088,4406 --limit 10                              # another model

Starts its own transcribe-server (so it can read that process's CPU time and
peak RSS from /proc), streams each clip as LINEAR16 in 100 ms messages at
real-time pace (`--pace`), N streams at once with staggered starts, and records
every response's arrival time. Definitions follow ../shared/DESIGN-NOTES.md:
WER through Whisper's English normalizer and jiwer (corpus level); a word's
latency is the arrival of the first response containing it (interim) or of its
final result, minus the time the word ends in the audio, taken from an offline
word-timestamp pass of the same model over the whole clip (cached under
~/.cache/live-transcribe-bench, keyed by the audio and the model).

The server's CPU time is sampled every `--sample-every` seconds: sessions of a
minute or more get a per-minute table (final-word latency and server CPU per
audio second for each minute). `--silence-noise` also streams digital silence,
white and pink noise and counts the words the service emits on them (should be
none). `--capacity` (benchmarks/capacity.py) raises the number of concurrent
streams until p90 final latency exceeds 3 s or grows over the run.
`--profile FILE` runs the server under py-spy and breaks its time down by stage
(benchmarks/profile_breakdown.py).
`--models` loads these catalogue models in the server, `--model` chooses one per stream
(default: the first of `--models`, else the server's default, tiny.en) and `--language`
sets the streams' `language_code` ("" / "auto": detect, on a multilingual model); the
offline reference is then that model's, in that language setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from benchmarks.lib.clips import (
    DEFAULT_MANIFEST,
    FALLBACK_MANIFEST,
    Clip,
    Offline,
    by_speakers,
    load_clip,
    noise_clips,
    pick,
    read_manifest,
)
from benchmarks.lib.machine import machine_speed, speed_text
from benchmarks.lib.measure import measure, stream_model
from benchmarks.lib.server import git_version


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    speed = await asyncio.to_thread(machine_speed)
    manifest = Path(args.manifest)
    speech: list[Clip] = []
    if not args.no_speech:
        entries = await asyncio.to_thread(read_manifest, manifest)
        entries = by_speakers(entries, args.speakers)
        entries = pick([e for e in entries if not args.long_only or "segments" in e], args.limit)
        offline = Offline(not args.no_cache, stream_model(args))
        for e in entries:
            speech.append(
                await asyncio.to_thread(
                    load_clip, manifest, e, offline, args.max_seconds, args.language
                )
            )
    noise = noise_clips(args.noise_seconds, args.noise_dbfs) if args.silence_noise else []
    result, timed, runs = await measure(args, speech, noise, args.streams)
    if args.plot and runs:
        from benchmarks.lib.plot import Panel, Series, plot_latency

        cpu = [
            ((row["minute"] - 1) * 60.0, row["server_cpu_s_per_audio_s"])
            for row in result.get("per_minute", [])
            if "server_cpu_s_per_audio_s" in row
        ]
        if cpu:
            end = max(r.start_s + r.duration_s / args.pace for r in runs) - runs[0].start_s
            cpu.append((end, cpu[-1][1]))
        series = [Series(r.id, [(t.end_s, t.final_latency) for t in timed[r.id]]) for r in runs]
        title = f"{manifest.parent.name}: {len(runs)} clip(s), {args.streams} stream(s) at a time"
        await asyncio.to_thread(plot_latency, Path(args.plot), [Panel(title, series, cpu)])
        result["plot"] = args.plot
    return {
        "command": " ".join(["python -m benchmarks.stream_bench", *sys.argv[1:]]),
        "manifest": str(manifest) if speech else None,
        "streams": args.streams,
        "pace": args.pace,
        "model": stream_model(args),
        "language_code": args.language,
        "service_version": git_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine_speed": speed,
        **result,
    }


def load_text(r: dict[str, Any]) -> str:
    """The machine's load around the run (it is shared: latency depends on it)."""
    start = ", ".join(str(x) for x in r.get("load_average_at_start", [])) or "?"
    end = ", ".join(str(x) for x in r["load_average_at_end"])
    return f"load average (1, 5, 15 min) {start} at the start, {end} at the end"


def _lat(d: dict[str, float], keys: tuple[str, ...] = ("median", "p90")) -> str:
    return " / ".join(f"{d[k]:.2f}" for k in keys) + " s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def speech_table(r: dict[str, Any]) -> list[str]:
    return [
        "| streams | clips | audio | WER stream | WER offline | interim median / p90 "
        "| final median / p90 / p99 | p90 first / last third | CPU s per audio s | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {r['streams']} | {r['clips']} | {r['audio_seconds']:.0f} s | "
        f"{_pct(r['wer_streaming'])} | {_pct(r['wer_offline'])} | {_lat(r['interim_latency_s'])} | "
        f"{_lat(r['final_latency_s'], ('median', 'p90', 'p99'))} | "
        f"{r['final_p90_first_third_s']:.2f} / {r['final_p90_last_third_s']:.2f} s | "
        f"{r['server_cpu_s_per_audio_s']} | {r['server_peak_rss_mb']} MB |",
    ]


def minute_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| minute | words | final median / p90 | audio | server CPU s | CPU s per audio s "
        "| CPU s by thread |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in rows:
        threads = ", ".join(f"{k} {v:g}" for k, v in m.get("server_cpu_s_by_thread", {}).items())
        out.append(
            f"| {m['minute']} | {m['words']} | {m['final_median_s']:.2f} / "
            f"{m['final_p90_s']:.2f} s | {m['audio_s']:.0f} s | {m.get('server_cpu_s', '-')} | "
            f"{m.get('server_cpu_s_per_audio_s', '-')} | {threads or '-'} |"
        )
    return out


def noise_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| input | seconds | words in finals | most words in an interim | final texts |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n in rows:
        texts = "; ".join(n["final_texts"])[:120] or "-"
        err = f" (error {n['error']})" if n["error"] else ""
        out.append(
            f"| {n['input']}{err} | {n['seconds']:g} | {n['final_words']} | "
            f"{n['interim_max_words']} | {texts} |"
        )
    return out


def profile_table(p: dict[str, Any]) -> list[str]:
    out = [
        f"Where the server's busy thread time went (py-spy, {p['busy_samples']} busy of "
        f"{p['samples']} samples, {p.get('busy_thread_seconds', '?')} busy thread-seconds; "
        "waiting and start-up excluded):",
        "",
        "| stage | share |",
        "| --- | --- |",
    ]
    out += [f"| {k} | {v:.1%} |" for k, v in p["shares"].items()]
    out += ["", "By thread: " + ", ".join(f"{k} {v:.0%}" for k, v in p["busy_by_thread"].items())]
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = [f"`{r['command']}`", ""]
    if r.get("model"):
        served = ", ".join(r.get("session_models") or ["?"])
        lines += [
            f"Model {r['model']} (sessions: {served}), "
            f"language {r.get('language_code') or 'auto'}; "
            f"{load_text(r)}.",
            "",
        ]
    if r.get("machine_speed"):
        lines += [speed_text(r["machine_speed"]), ""]
    if "clips" in r:
        lines += speech_table(r)
        if r.get("errors"):
            lines += ["", "Errors: " + "; ".join(r["errors"])]
    if r.get("per_minute"):
        lines += ["", "Per minute of session time:", "", *minute_table(r["per_minute"])]
    if r.get("silence_noise"):
        lines += ["", "Words emitted on silence and noise:", "", *noise_table(r["silence_noise"])]
    if r.get("profile"):
        lines += ["", *profile_table(r["profile"])]
    if r.get("plot"):
        lines += ["", f"![final-word latency over the session]({Path(r['plot']).name})"]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = DEFAULT_MANIFEST if DEFAULT_MANIFEST.exists() else FALLBACK_MANIFEST
    p.add_argument("--manifest", default=str(default), help="manifest.jsonl of clips")
    p.add_argument("--limit", type=int, default=0, help="clips to use, spread over the manifest")
    p.add_argument("--speakers", default="", help="only these speakers, e.g. 4088,4406")
    p.add_argument("--models", default="", help="server: load these catalogue models")
    p.add_argument("--model", default="", help="stream: this model (default: the first)")
    p.add_argument("--language", default="", help="stream: language_code ('' / auto: detect)")
    p.add_argument("--labels", action="store_true", help="stream: speaker labels on")
    p.add_argument("--max-seconds", type=float, default=0.0, help="cut longer clips (segments)")
    p.add_argument("--streams", type=int, default=1, help="concurrent streams")
    p.add_argument("--pace", type=float, default=1.0, help="1.0 = real time")
    p.add_argument("--stagger", type=float, default=0.7, help="seconds between stream starts")
    p.add_argument("--long-only", action="store_true", help="only entries with segments")
    p.add_argument("--quick", action="store_true", help="3 clips at 2x, silence and noise")
    p.add_argument("--silence-noise", action="store_true", help="also stream silence and noise")
    p.add_argument("--no-speech", action="store_true", help="no clips (with --silence-noise)")
    p.add_argument("--noise-seconds", type=float, default=20.0)
    p.add_argument("--noise-dbfs", type=float, default=-30.0, help="noise RMS level")
    p.add_argument("--sample-every", type=float, default=2.0, help="server CPU sampling (s)")
    p.add_argument("--plot", help="write a latency-over-time PNG here")
    p.add_argument("--profile", help="run the server under py-spy; raw stacks to this file")
    p.add_argument("--server-arg", action="append", default=[], help="extra server option")
    p.add_argument("--no-cache", action="store_true", help="redo the offline reference pass")
    p.add_argument("--out", help="write JSON here (and .md beside it)")
    cap = p.add_argument_group("capacity (benchmarks/capacity.py)")
    cap.add_argument("--capacity", action="store_true", help="find the largest N that holds")
    cap.add_argument("--capacity-seconds", type=float, default=90.0, help="audio per stream")
    cap.add_argument("--capacity-max", type=int, default=16, help="largest N to try")
    cap.add_argument("--capacity-ns", help="try exactly these N (comma-separated), no search")
    return p


def write(result: dict[str, Any], text: str, out: str | None) -> None:
    print(json.dumps(result, indent=2))
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        Path(out).with_suffix(".md").write_text(text + "\n")


def main() -> None:
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the server started here is stopped
    # too instead of being left running, orphaned, and skewing the next measurement.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = parser().parse_args()
    if args.capacity:
        from benchmarks.capacity import capacity_markdown, run_capacity

        cap = asyncio.run(run_capacity(args))
        write(cap, capacity_markdown(cap), args.out)
        return
    if args.quick:
        args.limit, args.pace, args.silence_noise = args.limit or 3, 2.0, True
    result = asyncio.run(run_bench(args))
    write(result, markdown(result), args.out)


if __name__ == "__main__":
    main()
