"""Languages through the real gRPC API: detection, accuracy against offline, latency.

    python -m benchmarks.language_bench                       # every utterance, auto, 1 stream
    python -m benchmarks.language_bench --streams 2 --out benchmarks/results/languages-auto.json
    python -m benchmarks.language_bench --forced              # language_code = the row's language
    python -m benchmarks.language_bench --languages de,ja --speed 2   # a quick look

Starts its own transcribe-server with `--models` (default "base"), streams every
utterance of a manifest with a `language` per row (default ../shared/speech/multilingual)
as LINEAR16 in 100 ms messages at `--speed` x real time, `--streams` at a time, with
`model` (default base) and `language_code` "auto" (detect) or, with `--forced`, the row's
language. Per language it reports: the detected language's accuracy (the language of the
last final result, what the stream settled on, and how often its first final's was
right; over all utterances and over those of 5 s or more, issue 20's target
>= 95 %) and what was detected instead; streaming WER (CER for ja and zh, written without
spaces) against offline WER of the same model in the same language setting (faster-whisper
transcribe of the whole clip, beam 5, language None = its own detection, or forced); final
latency median / p90 (benchmarks/lib: a word's, or for ja/zh a character's, final arrival
minus its end in the offline word timestamps). Non-English text is scored with a plain
Unicode normaliser (benchmarks/lib/scoring.py), English with Whisper's English normalizer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from benchmarks.lib.analysis import word_timings
from benchmarks.lib.client import ClipRun
from benchmarks.lib.clips import ROOT, Clip, Offline, load_clip, read_manifest
from benchmarks.lib.measure import measure
from benchmarks.lib.scoring import (
    DETECTION_MIN_S,
    Utterance,
    detected_language,
    error_rate,
    per_language,
    primary,
    quantiles,
    tokenizer,
)
from benchmarks.lib.server import git_version
from benchmarks.stream_bench import load_text, write

DEFAULT_MANIFEST = ROOT.parent / "shared" / "speech" / "multilingual" / "manifest.jsonl"


def load_clips(args: argparse.Namespace) -> list[Clip]:
    """The manifest's utterances (optionally some languages, `--limit` per language) with
    the offline pass of the model in the run's language setting."""
    manifest = Path(args.manifest)
    keep = {primary(x) for x in args.languages.split(",") if x.strip()}
    entries = [e for e in read_manifest(manifest) if not keep or primary(e["language"]) in keep]
    if args.limit:
        seen: dict[str, int] = {}
        kept = []
        for e in entries:
            seen[e["language"]] = seen.get(e["language"], 0) + 1
            if seen[e["language"]] <= args.limit:
                kept.append(e)
        entries = kept
    offline = Offline(not args.no_cache, args.model)
    return [
        load_clip(manifest, e, offline, language_code=e["language"] if args.forced else "auto")
        for e in entries
    ]


def settled_language(responses: list[tuple[float, Any]]) -> str:
    """The language a stream settled on: that of its last final result (a detecting
    stream fixes its language only once the evidence is clear, service/stream_language.py,
    so its first finals may carry a guess it later corrects), else `detected_language`."""
    last = ""
    for _, resp in responses:
        for r in resp.results:
            if r.is_final and r.language_code:
                last = primary(r.language_code)
    return last or detected_language(responses)


def halves(utts: list[Utterance]) -> dict[str, Any]:
    """Per language on each half of the manifest, as `policy_sim --half` splits it (every
    second utterance of each language in manifest order: tune the 1st, 3rd ...; confirm
    the 2nd, 4th ...), so that API runs compare with the replays half by half."""
    seen: dict[str, int] = {}
    split: dict[str, list[Utterance]] = {"tune": [], "confirm": []}
    for u in utts:
        n = seen[u.language] = seen.get(u.language, -1) + 1
        split["tune" if n % 2 == 0 else "confirm"].append(u)
    return {half: per_language(us)["languages"] for half, us in split.items() if us}


def utterances(runs: list[ClipRun], clips: dict[str, Clip]) -> list[Utterance]:
    out = []
    for r in runs:
        c = clips[r.id]
        timed = word_timings(r.responses, c.word_ends, tokenizer(c.language))
        out.append(
            Utterance(
                r.id, c.language, c.duration_s, c.reference, r.final_text, c.offline_text,
                detected=settled_language(r.responses),
                offline_detected=primary(c.offline_language),
                final_latencies=[t.final_latency for t in timed],
                error=r.error,
            )
        )  # fmt: skip
    return out


def settled_after_end(run: ClipRun) -> float | None:
    """Seconds from the end of the clip's audio to its last final or revision: when its
    text stops changing (a turn's pass comes after the turn's end)."""
    times = [t for t, resp in run.responses if any(r.is_final for r in resp.results)]
    return round(max(times) - run.duration_s, 2) if times else None


def first_pass(runs: list[ClipRun], clips: dict[str, Clip]) -> dict[str, float | None]:
    """Per language, the error rate of the finals as first sent (before any revision)."""
    by: dict[str, tuple[list[str], list[str]]] = {}
    for r in runs:
        refs, hyps = by.setdefault(clips[r.id].language, ([], []))
        refs.append(r.reference)
        hyps.append(r.first_pass_text)
    return {lang: error_rate(refs, hyps, lang) for lang, (refs, hyps) in sorted(by.items())}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    clips = await asyncio.to_thread(load_clips, args)
    args.pace = args.speed
    result, _, runs = await measure(args, clips, [], args.streams, label="languages")
    utts = utterances(runs, {c.id: c for c in clips})
    order = {c.id: i for i, c in enumerate(clips)}  # the manifest's
    first_final = {r.id: detected_language(r.responses) for r in runs}
    settled = {r.id: settled_after_end(r) for r in runs}
    first_texts = {r.id: r.first_pass_text for r in runs}
    return {
        "command": " ".join(["python -m benchmarks.language_bench", *sys.argv[1:]]),
        "manifest": args.manifest,
        "model": args.model,
        "mode": "forced" if args.forced else "auto",
        "streams": args.streams,
        "speed": args.speed,
        "service_version": git_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        **per_language(utts),
        "halves": halves(sorted(utts, key=lambda u: order[u.id])),
        "first_final_right": sum(first_final[u.id] == primary(u.language) for u in utts),
        "first_pass": first_pass(runs, {c.id: c for c in clips}),
        "settled_after_end_s": quantiles([x for x in settled.values() if x is not None]),
        "session_models": result.get("session_models"),
        "server_cpu_s_per_audio_s": result.get("server_cpu_s_per_audio_s"),
        "server_peak_rss_mb": result.get("server_peak_rss_mb"),
        "wall_seconds": result.get("wall_seconds"),
        "server_log_errors": result.get("server_log_errors", []),
        "utterances": [
            {
                "id": u.id,
                "language": u.language,
                "duration_s": round(u.duration_s, 2),
                "detected": u.detected,
                "first_final_language": first_final[u.id],
                "offline_detected": u.offline_detected,
                "reference": u.reference,
                "streaming": u.streaming,
                "first_pass": first_texts[u.id],
                "settled_after_end_s": settled[u.id],
                "offline": u.offline,
                "error": u.error,
            }
            for u in utts
        ],
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _det(d: dict[str, Any]) -> str:
    return "-" if not d["n"] else f"{d['accuracy']:.0%} ({d['correct']}/{d['n']})"


def _lat(d: dict[str, Any]) -> str:
    return "-" if d["median"] is None else f"{d['median']:.2f} / {d['p90']:.2f} s"


def markdown(r: dict[str, Any]) -> str:
    a = r["all"]
    lines = [
        f"`{r['command']}`",
        "",
        f"Model {r['model']} (sessions: {', '.join(r['session_models'] or ['?'])}), "
        f"language {r['mode']}, {r['streams']} stream(s) at a time, "
        f"{r['speed']:g}x real time; server CPU {r['server_cpu_s_per_audio_s']} s per audio s, "
        f"peak RSS {r['server_peak_rss_mb']} MB; {load_text(r)}.",
        "",
        f"| language | utterances | audio | detected | detected (≥ {DETECTION_MIN_S:g} s) "
        "| detected instead | offline detected | metric | streaming | offline | gap (points) "
        "| final median / p90 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["languages"]:
        instead = ", ".join(f"{k} ×{v}" for k, v in x["detected_instead"].items()) or "-"
        gap = "-" if x["gap_points"] is None else f"{x['gap_points']:+.1f}"
        lines.append(
            f"| {x['language']} | {x['utterances']} | {x['audio_seconds']:.0f} s | "
            f"{_det(x['detection'])} | {_det(x['detection_5s'])} | {instead} | "
            f"{_pct(x['offline_detection_accuracy'])} | {x['metric']} | {_pct(x['streaming'])} | "
            f"{_pct(x['offline'])} | {gap} | {_lat(x['final_latency_s'])} |"
        )
    wrong = ", ".join(f"{k} ×{v}" for k, v in a["wrong_detections"].items()) or "-"
    lines.append(
        f"| **all** | {a['utterances']} | {a['audio_seconds']:.0f} s | {_det(a['detection'])} | "
        f"{_det(a['detection_5s'])} | {wrong} | | | | | | {_lat(a['final_latency_s'])} |"
    )
    lines += [
        "",
        f"Detected: the language of each stream's last final; its first final's was right "
        f"on {r['first_final_right']} of {a['utterances']}.",
    ]
    lines += ["", "| half | language | streaming | offline | gap (points) |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for half, rows in r.get("halves", {}).items():
        for x in rows:
            gap = "-" if x["gap_points"] is None else f"{x['gap_points']:+.1f}"
            lines.append(
                f"| {half} | {x['language']} | {_pct(x['streaming'])} | {_pct(x['offline'])} "
                f"| {gap} |"
            )
    errors = [e for x in r["languages"] for e in x["errors"]]
    if errors:
        lines += ["", "Errors: " + "; ".join(errors)]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="rows with `language`")
    p.add_argument("--languages", default="", help="only these languages, e.g. de,ja")
    p.add_argument("--limit", type=int, default=0, help="utterances per language (0: all)")
    p.add_argument("--models", default="base", help="server: load these catalogue models")
    p.add_argument("--model", default="base", help="stream: this model")
    p.add_argument("--forced", action="store_true", help="language_code = the row's language")
    p.add_argument("--streams", type=int, default=1, help="concurrent streams")
    p.add_argument("--speed", type=float, default=1.0, help="1.0 = real time")
    p.add_argument("--stagger", type=float, default=0.7, help="seconds between stream starts")
    p.add_argument("--sample-every", type=float, default=2.0, help="server CPU sampling (s)")
    p.add_argument("--server-arg", action="append", default=[], help="extra server option")
    p.add_argument("--no-cache", action="store_true", help="redo the offline reference pass")
    p.add_argument("--out", help="write JSON here (and .md beside it)")
    return p


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the server on timeout
    args = parser().parse_args()
    args.profile = None
    result = asyncio.run(run(args))
    write(result, markdown(result), args.out)


if __name__ == "__main__":
    main()
