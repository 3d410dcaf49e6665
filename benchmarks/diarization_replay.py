"""Replay an API run's finals against the tracker offline: live labels as the API gives them.

    nice -n 19 python -m benchmarks.diarization_replay \
        --results benchmarks/results/diarization_api_4spk_final.json --cache /tmp/prints16.npz

`diarization_bench` reads a frame's live label 1 s after the frame; through the API a
final's label is the majority of the tracker's windows over the final's span at the
moment its decode returns, and a final is split where the tracker saw a change of
speaker by then. So a change confirmed a moment after a final was cut costs the whole
start of the new turn (A-4spk-3's 4088 -> 8226 change: 6.6 % live in one real-time run,
8.2 % in the next, from that one final).

This replays what a run of `diarization_api_bench` recorded for each final (start, end,
arrival in audio time) on the same mix, quantised to int16 as the API path is: the
audio goes to the tracker in 100 ms pushes, and each final is decided when the pushed
audio reaches its arrival less `--delay` (the decode's duration; `--delay` takes several
values to calibrate against the labels the run really sent). The final is split at the
tracker's changes inside it, each part labelled as the session labels a final, and
scored as the API bench scores (the same frames and collars): live, and corrected after
the end-of-stream pass. The split points of the run are kept, so a rule change that
would have moved the run's segment boundaries is seen only through the labels and
the splits it adds.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.diarization_api_bench import frame_labels, mixes_by_name
from benchmarks.diarization_bench import (
    ROOT,
    SR,
    CachedEmbedder,
    Mix,
    change_points,
    error_rate,
    reference_frames,
)
from service.speakers.config import diarization_settings
from service.speakers.tracker import SpeakerTracker

CHUNK_S = 0.1
Final = tuple[float, float, float]  # start, end, arrival (audio time)


def quantised_mixes(speech: Path, seed: int, names: list[str]) -> dict[str, Mix]:
    """The named mixes as the API bench builds them, quantised to int16 (the API's input)."""
    out = mixes_by_name(speech, seed, names)
    for m in out.values():
        m.audio = ((m.audio.clip(-1, 1) * 32767).astype(np.int16) / 32768).astype(np.float32)
    return out


def replay(
    mix: Mix, finals: list[Final], delay: float, embedder: CachedEmbedder
) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    """The run's finals, split and labelled as decided `delay` before their arrival:
    (live parts, the same parts after the end-of-stream correction)."""
    tracker = SpeakerTracker(diarization_settings(True, 0, 8), embedder=embedder)
    todo = sorted(finals, key=lambda f: f[2])
    parts: list[tuple[float, float, str]] = []
    chunk = int(CHUNK_S * SR)

    def decide(pushed_s: float) -> None:
        while todo and todo[0][2] - delay <= pushed_s:
            a, b, _ = todo.pop(0)
            cuts = [a, *[t for t, _ in tracker.turns_between(a, b)], b]
            parts.extend((x, y, tracker.label_for(x, y)) for x, y in itertools.pairwise(cuts))

    for i in range(0, len(mix.audio), chunk):
        decide(i / SR)
        tracker.push(mix.audio[i : i + chunk], i / SR)
    decide(float("inf"))
    tracker.finish()
    parts.sort()
    return parts, [(a, b, tracker.label_for(a, b)) for a, b, _ in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, nargs="+", required=True)
    parser.add_argument("--mix", nargs="*", help="only these mixes of the results")
    parser.add_argument("--delay", type=float, nargs="+", default=[0.3])
    parser.add_argument("--cache", type=Path, help="voice prints (.npz), as diarization_bench")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument(
        "--hide-tentative",
        action="store_true",
        help="label a tentative change with the previous voice (the rule before 2 Dec 2026)",
    )
    parser.add_argument("--lag", type=float, help="replace each arrival by the final's end + this")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from service.speakers import tracker as tracker_module

    tracker_module.SHOW_TENTATIVE = not args.hide_tentative
    rows_in = [
        (path.name, row)
        for path in args.results
        for row in json.loads(path.read_text())["mixes"]
        if not args.mix or row["mix"] in args.mix
    ]
    mixes = quantised_mixes(args.speech, args.seed, sorted({r["mix"] for _, r in rows_in}))
    embedder = CachedEmbedder(args.cache)
    out: list[dict[str, Any]] = []
    for source, row in rows_in:
        mix = mixes[row["mix"]]
        ref = reference_frames(mix)
        sent = [(a, b, lb) for a, b, _, lb, _ in row["finals"]]
        result: dict[str, Any] = {
            "mix": mix.name,
            "run": source,
            "api_live": round(error_rate(ref, frame_labels(ref, sent)), 4),
            "api_corrected": row["der_corrected"],
        }
        for delay in args.delay:
            finals = [
                (a, b, b + args.lag if args.lag is not None else t) for a, b, t, *_ in row["finals"]
            ]
            live, corrected = replay(mix, finals, delay, embedder)
            same = sum(
                any(x <= (a + b) / 2 <= y and lb == got for x, y, got in live) for a, b, lb in sent
            )
            true = change_points(mix.turns)
            seams = [(x[1] + y[0]) / 2 for x, y in itertools.pairwise(live) if x[2] != y[2]]
            result[f"delay {delay}"] = {
                "parts": len(live),
                "live_changes_found_1s": sum(any(abs(s - c) <= 1.0 for s in seams) for c in true),
                "live_extra_changes": sum(all(abs(s - c) > 1.0 for c in true) for s in seams),
                "live": round(error_rate(ref, frame_labels(ref, live)), 4),
                "corrected": round(error_rate(ref, frame_labels(ref, corrected)), 4),
                "labels_as_sent": round(same / max(len(sent), 1), 3),
            }
        print(json.dumps(result), flush=True)
        out.append(result)
    embedder.save()
    if args.out:
        args.out.write_text(
            json.dumps(
                {"command": "python -m benchmarks.diarization_replay", "rows": out}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
