"""Cut the long recordings into N pieces, so that N concurrent streams can each play long speech.

    python -m benchmarks.piece_manifest --pieces 8 --out /tmp/long-pieces-8
    python -m benchmarks.stream_bench --manifest /tmp/long-pieces-8/manifest.jsonl \\
        --limit 8 --streams 8 --out benchmarks/results/long-8streams.json

long/ has three recordings (4.7, 6.0 and 9.4 min), too few for 8 or 12 streams of it at
once. Each recording gets a share of the N pieces in proportion to its length (largest
remainder, at least one), and is cut into that many pieces of about equal length at the
boundaries of its segments (the LibriSpeech utterances it is made of), in the silence
between two of them, so every piece's reference text is exact. Writes 16 kHz mono WAVs
and a manifest.jsonl (speaker, text, segments relative to the piece) beside them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lib.clips import ROOT, load_audio, read_manifest

DEFAULT = ROOT.parent / "shared" / "speech" / "long" / "manifest.jsonl"
RATE = 16000


def shares(durations: list[float], n: int) -> list[int]:
    """How many pieces each recording gets: proportional to its length, at least one."""
    if n < len(durations):
        raise SystemExit(f"--pieces must be at least {len(durations)} (one per recording)")
    exact = [d * n / sum(durations) for d in durations]
    out = [max(1, int(x)) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    for i in by_remainder[: n - sum(out)]:
        out[i] += 1
    return out


def cut_points(segments: list[dict[str, Any]], k: int) -> list[int]:
    """Indexes of the segments that start pieces 2..k: the boundary nearest each equal share."""
    total = segments[-1]["end_s"]
    starts = [s["start_s"] for s in segments]
    cuts: list[int] = []
    for j in range(1, k):
        target = total * j / k
        i = min(range(1, len(starts)), key=lambda i: abs(starts[i] - target))
        if cuts and i <= cuts[-1]:
            i = cuts[-1] + 1
        cuts.append(i)
    return cuts


def piece(
    entry: dict[str, Any], audio: np.ndarray, segs: list[dict[str, Any]], nxt: float | None
) -> tuple[dict[str, Any], np.ndarray]:
    """One piece: from its first segment's start to halfway into the silence after its last."""
    start = segs[0]["start_s"]
    end = segs[-1]["end_s"] if nxt is None else (segs[-1]["end_s"] + nxt) / 2
    clip = audio[int(start * RATE) : int(end * RATE)]
    rel = [
        dict(s, start_s=round(s["start_s"] - start, 3), end_s=round(s["end_s"] - start, 3))
        for s in segs
    ]
    meta = {
        "id": f"{entry['id']}-{segs[0]['id'].rsplit('-', 1)[-1]}",
        "text": " ".join(s["text"] for s in segs),
        "duration_s": round(len(clip) / RATE, 2),
        "speaker": entry.get("speaker", ""),
        "segments": rel,
        "source": entry["id"],
        "license": entry.get("license", "CC BY 4.0 (LibriSpeech, Panayotov et al. 2015)"),
    }
    return meta, clip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=str(DEFAULT))
    p.add_argument("--pieces", type=int, required=True)
    p.add_argument("--out", required=True, help="directory for the WAVs and manifest")
    args = p.parse_args()
    manifest = Path(args.manifest)
    entries = [e for e in read_manifest(manifest) if e.get("segments")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    counts = shares([e["duration_s"] for e in entries], args.pieces)
    for entry, k in zip(entries, counts, strict=True):
        audio = load_audio(manifest.parent / entry["wav"])
        segs = entry["segments"]
        bounds = [0, *cut_points(segs, k), len(segs)]
        for a, b in itertools.pairwise(bounds):
            nxt = segs[b]["start_s"] if b < len(segs) else None
            meta, clip = piece(entry, audio, segs[a:b], nxt)
            meta["wav"] = f"{meta['id']}.wav"
            with wave.open(str(out / meta["wav"]), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes((np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes())
            lines.append(json.dumps(meta))
            print(f"{meta['id']}: {meta['duration_s']:.1f} s, {b - a} segments")
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
