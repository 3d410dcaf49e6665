"""Clips to stream: manifests, audio, and the offline reference of the same model."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.lib.analysis import SAMPLE_RATE, pink_noise, trim_to_segments, white_noise

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFEST = ROOT.parent / "shared" / "speech" / "dev" / "manifest.jsonl"
FALLBACK_MANIFEST = ROOT / "tests" / "data" / "manifest.jsonl"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "live-transcribe-bench"
)

Audio = npt.NDArray[np.float32]


@dataclass
class Clip:
    """What one stream plays, with its reference and offline word end times."""

    id: str
    audio: Audio
    reference: str = ""
    offline_text: str = ""
    word_ends: list[tuple[str, float]] = field(default_factory=list)
    kind: str = "speech"  # speech | silence | noise

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def load_audio(path: Path) -> Audio:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


class Offline:
    """The offline reference: the same model over each whole clip (beam 5, word
    timestamps), cached on disk by audio content and model."""

    def __init__(self, cache: bool = True) -> None:
        from service.config import bundled_model_path

        self.model_path = str(bundled_model_path())
        self.cache = cache
        self._model: Any = None

    def __call__(self, audio: Audio) -> tuple[str, list[tuple[str, float]]]:
        key = hashlib.sha1(audio.tobytes() + self.model_path.encode()).hexdigest()
        path = CACHE_DIR / f"{key}.json"
        if self.cache and path.exists():
            data = json.loads(path.read_text())
            return data["text"], [(w, e) for w, e in data["word_ends"]]
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(
                self.model_path, device="cpu", compute_type="int8", cpu_threads=2
            )
        segs, _ = self._model.transcribe(audio, beam_size=5, language="en", word_timestamps=True)
        segs = list(segs)
        text = " ".join(s.text.strip() for s in segs)
        ends = [(w.word.strip(), float(w.end)) for s in segs for w in (s.words or [])]
        if self.cache:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"text": text, "word_ends": ends}))
        return text, ends


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pick(entries: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """`limit` entries spread evenly over the manifest (all if 0)."""
    if limit:
        step = max(1, len(entries) // limit)
        entries = entries[::step][:limit]
    return entries


def load_clip(
    manifest: Path, entry: dict[str, Any], offline: Offline, max_seconds: float = 0.0
) -> Clip:
    audio = load_audio(manifest.parent / entry["wav"])
    reference = entry.get("text", "")
    if max_seconds and len(audio) > max_seconds * SAMPLE_RATE:
        cut = trim_to_segments(entry.get("segments", []), max_seconds)
        if cut is None:  # no segments: cut the audio only (the reference no longer fits)
            audio, reference = audio[: int(max_seconds * SAMPLE_RATE)], ""
        else:
            audio, reference = audio[: int(cut[0] * SAMPLE_RATE)], cut[1]
    text, ends = offline(audio)
    return Clip(entry["id"], audio, reference, text, ends)


def noise_clips(seconds: float, dbfs: float) -> list[Clip]:
    return [
        Clip("silence", np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32), kind="silence"),
        Clip(f"white noise {dbfs:g} dBFS", white_noise(seconds, dbfs), kind="noise"),
        Clip(f"pink noise {dbfs:g} dBFS", pink_noise(seconds, dbfs), kind="noise"),
    ]
