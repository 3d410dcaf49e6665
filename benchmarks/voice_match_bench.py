"""Remembered voices: how alike the voice prints of the same and of different speakers are.

    nice python -m benchmarks.voice_match_bench

A voice print is what service/speakers/voices.py stores and compares: the centroid of a
speaker's windows after the tracker's end-of-stream pass. Here one print per group of
3 consecutive dev utterances of one speaker (8 groups of each of the 4 speakers, 30-40 s
each) and one per long/ recording (its first 40 s: another chapter, as another meeting
would be). Every pair of prints is scored by cosine similarity; the output gives the
distributions and, per threshold, the share of same-speaker pairs missed and of
different-speaker pairs taken for the same voice. voices.MATCH_THRESHOLD comes from it.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.speakers import voices
from service.speakers.tracker import SpeakerTracker

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
Vector = npt.NDArray[np.float64]


def decode_file(path: Path) -> npt.NDArray[np.float32]:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


def voice_print(audio: npt.NDArray[np.float32]) -> Vector:
    """The centroid of the speaker heard most, as a finished stream stores it."""
    tracker = SpeakerTracker()
    for i in range(0, len(audio), SR // 10):
        tracker.push(audio[i : i + SR // 10], i / SR)
    tracker.finish()
    heard = voices.speakers_of(tracker.state_json(history=False))
    return max(heard.values(), key=lambda h: h.windows).centroid


def prints(speech: Path) -> list[tuple[str, str, Vector]]:
    rows = [json.loads(x) for x in (speech / "dev" / "manifest.jsonl").read_text().splitlines()]
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["speaker"], []).append(r)
    out: list[tuple[str, str, Vector]] = []
    for spk, rs in sorted(by.items()):
        rs.sort(key=lambda r: r["id"])
        for g in range(len(rs) // 3):
            parts = [decode_file(speech / "dev" / r["wav"]) for r in rs[3 * g : 3 * g + 3]]
            out.append((spk, "dev", voice_print(np.concatenate(parts))))
    for line in (speech / "long" / "manifest.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append(
            (r["speaker"], "long", voice_print(decode_file(speech / "long" / r["wav"])[: 40 * SR]))
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "speech")
    args = parser.parse_args()
    groups = prints(args.speech)
    same: list[float] = []
    cross: list[float] = []
    diff: list[float] = []
    for (s1, k1, c1), (s2, k2, c2) in itertools.combinations(groups, 2):
        sim = float(c1 @ c2)
        (same if s1 == s2 else diff).append(sim)
        if s1 == s2 and k1 != k2:
            cross.append(sim)
    s, c, d = np.array(same), np.array(cross), np.array(diff)
    print(f"{len(groups)} prints; same speaker {len(s)} pairs:", end=" ")
    print(f"min {s.min():.3f}, median {np.median(s):.3f}")
    print(f"  of them across chapters {len(c)}: min {c.min():.3f}, median {np.median(c):.3f}")
    print(f"different speakers {len(d)} pairs: median {np.median(d):.3f}, max {d.max():.3f}")
    for th in (0.6, 0.65, 0.7, 0.75, 0.8):
        missed, taken = np.mean(s < th), np.mean(d >= th)
        print(f"threshold {th:.2f}: same missed {missed:5.1%}, different taken {taken:5.1%}")


if __name__ == "__main__":
    main()
