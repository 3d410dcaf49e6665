"""Build one long recording from the long manifest's recordings, for the 30-minute run.

    python -m benchmarks.long_manifest --minutes 30 --out /tmp/long30
    python -m benchmarks.stream_bench --manifest /tmp/long30/manifest.jsonl --limit 1 \\
        --plot benchmarks/results/long-30min.png --out benchmarks/results/long-30min.json

Plays the recordings of `--manifest` (default ../shared/speech/long) end to end, in
manifest order and again from the first, with 0.5 s of silence between them, until
the total reaches `--minutes` (whole recordings only, so the reference text stays
exact). Writes a 16 kHz mono WAV and a one-line manifest.jsonl beside it.
"""

from __future__ import annotations

import argparse
import json
import wave
from pathlib import Path

import numpy as np

from benchmarks.lib.clips import ROOT, load_audio, read_manifest

DEFAULT = ROOT.parent / "shared" / "speech" / "long" / "manifest.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=str(DEFAULT))
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--out", required=True, help="directory for the WAV and manifest")
    args = p.parse_args()
    manifest = Path(args.manifest)
    entries = read_manifest(manifest)
    gap = np.zeros(8000, dtype=np.float32)
    parts: list[np.ndarray] = []
    texts: list[str] = []
    ids: list[str] = []
    total = 0.0
    i = 0
    while total < args.minutes * 60:
        e = entries[i % len(entries)]
        audio = load_audio(manifest.parent / e["wav"])
        parts += [audio, gap]
        texts.append(e["text"])
        ids.append(e["id"])
        total += (len(audio) + len(gap)) / 16000
        i += 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2")
    with wave.open(str(out / "long.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    entry = {
        "id": f"long-{round(total / 60)}min",
        "wav": "long.wav",
        "text": " ".join(texts),
        "duration_s": round(total, 2),
        "parts": ids,
        "license": "CC BY 4.0 (LibriSpeech, Panayotov et al. 2015)",
    }
    (out / "manifest.jsonl").write_text(json.dumps(entry) + "\n")
    print(f"{out / 'manifest.jsonl'}: {total / 60:.1f} min from {', '.join(ids)}")


if __name__ == "__main__":
    main()
