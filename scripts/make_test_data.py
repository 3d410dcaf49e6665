"""Copy the few LibriSpeech clips the tests use from ../shared/speech into tests/data,
and three short FLEURS clips (German, Spanish, Chinese) into tests/data/multilingual.

Run once by a maintainer; the outputs are committed so a clone needs nothing else.
Dev clips are copied as they are (FLAC). The long recording is re-encoded to
Ogg/Opus at 32 kbit/s to keep the repository small.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "speech"
OUT = ROOT / "tests" / "data"
DEV_IDS = ["4088-158077-0000", "4406-16882-0000", "5652-19215-0000", "8226-274369-0000"]
LONG_ID = "4088-158079-long"
MULTILINGUAL_IDS = ["fleurs_de_005", "fleurs_es_006", "fleurs_zh_1883_clip5"]
"""Short (6-14 s) clips of languages with and without spaces, for the multilingual model."""


def _entries(name: str) -> dict[str, dict[str, object]]:
    lines = (SHARED / name / "manifest.jsonl").read_text().splitlines()
    return {e["id"]: e for e in map(json.loads, lines)}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    dev = _entries("dev")
    ids = [i for i in DEV_IDS if i in dev]
    for prefix in ("4406", "5652", "8226"):  # fall back to the first clip of each speaker
        if not any(i.startswith(prefix) for i in ids):
            ids.append(next(i for i in dev if i.startswith(prefix)))
    manifest = []
    for i in ids:
        entry = dict(dev[i])
        shutil.copy(SHARED / "dev" / str(entry["wav"]), OUT / str(entry["wav"]))
        manifest.append(entry)
    long_entry = dict(_entries("long")[LONG_ID])
    src = SHARED / "long" / str(long_entry["wav"])
    dst = OUT / f"{LONG_ID}.ogg"
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        stream.bit_rate = 32000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    long_entry["wav"] = dst.name
    manifest.append(long_entry)
    with (OUT / "manifest.jsonl").open("w") as fh:
        for entry in manifest:
            fh.write(json.dumps(entry) + "\n")
    copy_multilingual()


def copy_multilingual() -> None:
    """The FLEURS clips as they are (FLAC), with their manifest rows (licence included)."""
    out = OUT / "multilingual"
    out.mkdir(exist_ok=True)
    entries = _entries("multilingual")
    with (out / "manifest.jsonl").open("w") as fh:
        for i in MULTILINGUAL_IDS:
            shutil.copy(SHARED / "multilingual" / str(entries[i]["wav"]), out)
            fh.write(json.dumps(entries[i], ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
