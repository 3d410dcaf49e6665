"""Speaker labels on multi-speaker mixes: error rate live and after the end-of-stream pass.

    nice python -m benchmarks.diarization_bench --out benchmarks/results/diarization.json

Mixes of 2, 3 and 4 of the dev speakers (../shared/speech/dev) are built here,
seeded: turns of 3-20 s (consecutive utterances of one speaker joined and cut), a
speaker never following themself, half the turns followed by a 0.2-1 s pause and
half by none. The dev utterances are split in two halves (even and odd positions per
speaker): thresholds were tuned on mixes of half A and are confirmed on half B; both
are reported. The real AMI meeting excerpt (../shared/speech/conversation, RTTM) is
scored too.

The tracker gets each mix in 100 ms chunks, as a stream's audio arrives, but as fast
as it can take them (no gRPC and no clock yet: the session integration comes later).
"Live" labels are read 1 s after each 50 ms frame's end (about when its final is
sent); "settled" ones when all audio is in; "corrected" ones after `finish()`.

Scoring, per frame of 50 ms of reference speech, 0.25 s collar around each reference
boundary excluded: a frame is wrong when its label, under the best one-to-one map of
labels to speakers, is not a speaker talking then (or is empty). That is the DER of a
system without false alarms (the tracker labels speech only); in AMI overlaps one of
the speakers counts as right. A change is found when the labels change within ±1 s
of a reference speaker change.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from service.speakers.embedder import SpeakerEmbedder, shared_embedder
from service.speakers.tracker import SpeakerTracker

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
FRAME_S = 0.05
COLLAR_S = 0.25
LIVE_DELAY_S = 1.0
CHUNK_S = 0.1
Audio = npt.NDArray[np.float32]


@dataclass
class Mix:
    name: str
    audio: Audio
    turns: list[tuple[float, float, str]]  # (start, end, speaker), may overlap (AMI)
    speakers: int


@dataclass
class Score:
    frames: int = 0
    wrong: dict[str, int] = field(default_factory=dict)


def load(path: Path) -> Audio:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


def dev_pools(speech: Path, half: str) -> dict[str, list[Path]]:
    """Speaker -> that half's utterances (A: even positions, B: odd)."""
    pools: dict[str, list[Path]] = {}
    for line in (speech / "dev" / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        pools.setdefault(str(entry["speaker"]), []).append(speech / "dev" / entry["wav"])
    first = 0 if half == "A" else 1
    return {s: sorted(p)[first::2] for s, p in pools.items()}


def build_mix(rng: random.Random, pools: dict[str, list[Path]], n: int, name: str) -> Mix:
    speakers = rng.sample(sorted(pools), n)
    cursor = {s: rng.randrange(len(pools[s])) for s in speakers}
    parts: list[Audio] = []
    turns: list[tuple[float, float, str]] = []
    t, prev = 0.0, ""
    order = list(speakers)  # every speaker speaks early on, then at random
    while t < 80 or len(turns) < 2 * n:
        spk = order.pop(0) if order else rng.choice([s for s in speakers if s != prev])
        want = rng.uniform(3, 20)
        pieces: list[Audio] = []
        while sum(len(p) for p in pieces) < want * SR:
            pieces.append(load(pools[spk][cursor[spk] % len(pools[spk])]))
            cursor[spk] += 1
        turn = np.concatenate(pieces)[: int(want * SR)]
        turns.append((t, t + len(turn) / SR, spk))
        parts.append(turn)
        t += len(turn) / SR
        pause = rng.uniform(0.2, 1.0) if rng.random() < 0.5 else 0.0
        parts.append(np.zeros(int(pause * SR), dtype=np.float32))
        t += int(pause * SR) / SR
        prev = spk
    return Mix(name, np.concatenate(parts), turns, n)


def ami(speech: Path) -> Mix:
    folder = speech / "conversation"
    turns = []
    for line in (folder / "ami_excerpt_mixture.rttm").read_text().splitlines():
        f = line.split()
        turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return Mix("ami", load(folder / "ami_excerpt_mixture.flac"), turns, 4)


class CachedEmbedder(SpeakerEmbedder):
    """The shared embedder, remembering results, so a threshold sweep embeds once;
    with `path`, also across runs (an .npz keyed by a hash of the model input)."""

    def __init__(self, path: Path | None = None) -> None:
        self._inner: SpeakerEmbedder | None = None
        self._path = path
        self._cache: dict[str, Audio] = {}
        if path is not None and path.exists():
            with np.load(path) as saved:
                self._cache = {k: saved[k] for k in saved.files}
        self._loaded = len(self._cache)

    def embed_features(self, feats: Audio) -> Audio:
        key = hashlib.sha1(np.ascontiguousarray(feats).tobytes()).hexdigest()
        if key not in self._cache:
            if self._inner is None:
                self._inner = shared_embedder()
            self._cache[key] = self._inner.embed_features(feats)
        return self._cache[key]

    def save(self) -> None:
        if self._path is not None and len(self._cache) > self._loaded:
            np.savez(self._path, **self._cache)  # type: ignore[arg-type]


def reference_frames(mix: Mix) -> list[tuple[float, set[str]]]:
    """(frame start, speakers) for scored frames: speech, outside the collars."""
    bounds = [b for s, e, _ in mix.turns for b in (s, e)]
    out = []
    for k in range(int(len(mix.audio) / SR / FRAME_S)):
        t = k * FRAME_S
        mid = t + FRAME_S / 2
        who = {spk for s, e, spk in mix.turns if s <= mid < e}
        if who and all(abs(mid - b) > COLLAR_S for b in bounds):
            out.append((t, who))
    return out


def error_rate(ref: list[tuple[float, set[str]]], hyp: list[str]) -> float:
    """Share of frames wrong under the best one-to-one map of labels to speakers."""
    labels = sorted({h for h in hyp if h})
    speakers = sorted({s for _, who in ref for s in who})
    hits = {(h, s): 0 for h in labels for s in speakers}  # frames where h is right as s
    for (_, who), h in zip(ref, hyp, strict=True):
        for s in who:
            if h:
                hits[(h, s)] += 1
    maps: list[dict[str, str]]
    if len(labels) >= len(speakers):
        maps = [
            dict(zip(p, speakers, strict=True))
            for p in itertools.permutations(labels, len(speakers))
        ]
    else:
        maps = [
            dict(zip(labels, p, strict=True)) for p in itertools.permutations(speakers, len(labels))
        ]
    right = max((sum(hits[(h, s)] for h, s in m.items()) for m in maps), default=0)
    return 1.0 - right / max(len(ref), 1)


def change_points(turns: list[tuple[float, float, str]]) -> list[float]:
    ordered = sorted(turns)
    return [b[0] for a, b in itertools.pairwise(ordered) if a[2] != b[2] and b[0] >= a[1] - 0.5]


def run_mix(
    mix: Mix,
    embedder: SpeakerEmbedder,
    max_speakers: int,
    thresholds: tuple[float, float, float, float, float],
) -> dict[str, Any]:
    from service.speakers.config import diarization_settings

    tracker = SpeakerTracker(
        diarization_settings(True, 0, max_speakers),
        embedder=embedder,
        threshold=thresholds[0],
        recluster_threshold=thresholds[1],
        first_pass_threshold=thresholds[2],
        margin=thresholds[3],
        merge=thresholds[4],
    )
    ref = reference_frames(mix)
    live: list[str] = []
    chunk = int(CHUNK_S * SR)
    cpu = time.process_time()
    for i in range(0, len(mix.audio), chunk):
        tracker.push(mix.audio[i : i + chunk], i / SR)
        now = (i + chunk) / SR
        while len(live) < len(ref) and ref[len(live)][0] + FRAME_S + LIVE_DELAY_S <= now:
            t = ref[len(live)][0]
            live.append(tracker.label_for(t, t + FRAME_S))
    cpu_push = time.process_time() - cpu
    end = len(mix.audio) / SR
    live += [tracker.label_for(t, t + FRAME_S) for t, _ in ref[len(live) :]]
    settled = [tracker.label_for(t, t + FRAME_S) for t, _ in ref]
    settled_count = tracker.speaker_count()
    live_turns = [t for t, _ in tracker.turns_between(0, end)]
    cpu = time.process_time()
    tracker.finish()
    cpu_finish = time.process_time() - cpu
    final = [tracker.label_for(t, t + FRAME_S) for t, _ in ref]
    true_changes = change_points(mix.turns)
    found = sum(any(abs(h - c) <= 1.0 for h in live_turns) for c in true_changes)
    false = sum(all(abs(h - c) > 1.0 for c in true_changes) for h in live_turns)
    return {
        "mix": mix.name,
        "speakers": mix.speakers,
        "duration_s": round(end, 2),
        "turns": len(mix.turns),
        "der_live": round(error_rate(ref, live), 4),
        "der_settled": round(error_rate(ref, settled), 4),
        "der_corrected": round(error_rate(ref, final), 4),
        "count_settled": settled_count,
        "count_corrected": tracker.speaker_count(),
        "changes": len(true_changes),
        "changes_found_1s": found,
        "extra_changes": false,
        "cpu_push_s": round(cpu_push, 3),
        "cpu_finish_s": round(cpu_finish, 3),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    audio = sum(r["duration_s"] for r in rows)
    out: dict[str, Any] = {"mixes": len(rows), "audio_s": round(audio, 1)}
    for key in ("der_live", "der_settled", "der_corrected"):
        weights = [r["duration_s"] for r in rows]
        out[key] = round(float(np.average([r[key] for r in rows], weights=weights)), 4)
        out[key + "_worst"] = max(r[key] for r in rows)
    out["count_exact_settled"] = round(
        float(np.mean([r["count_settled"] == r["speakers"] for r in rows])), 3
    )
    out["count_exact_corrected"] = round(
        float(np.mean([r["count_corrected"] == r["speakers"] for r in rows])), 3
    )
    changes = sum(r["changes"] for r in rows)
    out["changes_found_1s"] = round(sum(r["changes_found_1s"] for r in rows) / changes, 3)
    out["extra_changes_per_min"] = round(sum(r["extra_changes"] for r in rows) / audio * 60, 2)
    out["cpu_s_per_audio_s"] = round(sum(r["cpu_push_s"] for r in rows) / audio, 4)
    out["finish_cpu_s_max"] = max(r["cpu_finish_s"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mixes", type=int, default=4, help="mixes per speaker count per half")
    parser.add_argument("--halves", default="AB", help="A (tuning), B (confirmation) or AB")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--threshold", type=float, nargs="*", help="online thresholds to sweep")
    parser.add_argument("--recluster-threshold", type=float, nargs="*", help="sweep these too")
    parser.add_argument("--first-pass-threshold", type=float, nargs="*", help="and these")
    parser.add_argument("--margin", type=float, nargs="*", help="and these")
    parser.add_argument("--min-share", type=float, nargs="*", help="and these")
    parser.add_argument("--merge", type=float, nargs="*", help="live merge thresholds (2: off)")
    parser.add_argument(
        "--hide-tentative",
        action="store_true",
        help="label a tentative change with the previous voice (the rule before 2 Dec 2026)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache", type=Path, help="keep voice prints here (.npz) across runs")
    parser.add_argument("--only", nargs="*", help="run only these mixes (names, or ami)")
    parser.add_argument(
        "--int16", action="store_true", help="quantise the audio as LINEAR16 (the API's path)"
    )
    parser.add_argument(
        "--speech", type=Path, default=ROOT.parent / "shared" / "speech", help="../shared/speech"
    )
    args = parser.parse_args()
    from service.speakers import clustering, recluster
    from service.speakers import tracker as tracker_module

    tracker_module.SHOW_TENTATIVE = not args.hide_tentative

    embedder = CachedEmbedder(args.cache)
    mixes: dict[str, list[Mix]] = {}
    for half in args.halves:
        rng = random.Random(f"{args.seed}-{half}")
        pools = dev_pools(args.speech, half)
        mixes[half] = [
            build_mix(rng, pools, n, f"{half}-{n}spk-{k}")
            for n in (2, 3, 4)
            for k in range(args.mixes)
        ]
    mixes["AMI"] = [ami(args.speech)]
    if args.only:
        mixes = {h: [m for m in g if m.name in args.only] for h, g in mixes.items()}
        mixes = {h: g for h, g in mixes.items() if g}
    if args.int16:
        for group in mixes.values():
            for m in group:
                m.audio = ((m.audio.clip(-1, 1) * 32767).astype(np.int16) / 32768).astype(
                    np.float32
                )
    results: dict[str, Any] = {"command": "python -m benchmarks.diarization_bench", "runs": []}
    grid = itertools.product(
        args.threshold or [clustering.SIMILARITY_THRESHOLD],
        args.recluster_threshold or [recluster.RECLUSTER_THRESHOLD],
        args.first_pass_threshold or [recluster.FIRST_PASS_THRESHOLD],
        args.margin or [clustering.TYPICAL_MARGIN],
        args.min_share or [recluster.MIN_CLUSTER_SHARE],
        args.merge or [clustering.MERGE_THRESHOLD],
    )
    for th, rth, jth, margin, share, merge in grid:
        recluster.MIN_CLUSTER_SHARE = share
        run: dict[str, Any] = {
            "threshold": th,
            "recluster_threshold": rth,
            "first_pass_threshold": jth,
            "margin": margin,
            "min_cluster_share": share,
            "merge_threshold": merge,
            "show_tentative": tracker_module.SHOW_TENTATIVE,
            "sets": {},
        }
        for name, group in mixes.items():
            rows = [run_mix(m, embedder, 8, (th, rth, jth, margin, merge)) for m in group]
            by_n = {
                f"{n}spk": summarise([r for r in rows if r["speakers"] == n])
                for n in sorted({r["speakers"] for r in rows})
            }
            run["sets"][name] = {"summary": summarise(rows), "by_speakers": by_n, "mixes": rows}
            print(
                th,
                rth,
                jth,
                margin,
                share,
                merge,
                name,
                json.dumps(run["sets"][name]["summary"]),
                flush=True,
            )
            for n, summ in by_n.items():
                print("   ", n, json.dumps(summ), flush=True)
        results["runs"].append(run)
        embedder.save()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
