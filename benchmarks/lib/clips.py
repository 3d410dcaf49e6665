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
from benchmarks.lib.whisper_models import english_only
from service.text import join_words

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
    language: str = "en"  # of the reference: how it is scored
    language_code: str = ""  # what the stream asks for ("" / "auto": detect)
    offline_language: str = ""  # what the offline pass detected (or was told)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def load_audio(path: Path) -> Audio:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


@dataclass
class OfflineResult:
    text: str
    word_ends: list[tuple[str, float]]
    language: str


class Offline:
    """The offline reference: the same model over each whole clip (beam 5, word
    timestamps), in the stream's language setting (None: the model detects it from the
    first 30 s), cached on disk by audio content, model and language."""

    def __init__(self, cache: bool = True, model: str = "tiny.en") -> None:
        from benchmarks.lib.whisper_models import model_key

        self.model = model or "tiny.en"
        self.model_path = model_key(self.model)
        self.cache = cache
        self._model: Any = None

    def __call__(self, audio: Audio) -> tuple[str, list[tuple[str, float]]]:
        r = self.transcribe(audio, "en")
        return r.text, r.word_ends

    def transcribe(self, audio: Audio, language: str | None) -> OfflineResult:
        salt = self.model_path if language == "en" else f"{self.model_path}|{language or 'auto'}"
        key = hashlib.sha1(audio.tobytes() + salt.encode()).hexdigest()
        path = CACHE_DIR / f"{key}.json"
        if self.cache and path.exists():
            data = json.loads(path.read_text())
            ends = [(w, e) for w, e in data["word_ends"]]
            return OfflineResult(data["text"], ends, data.get("language", "en"))
        if self._model is None:
            from benchmarks.lib.whisper_models import load

            self._model = load(self.model)
        segs, info = self._model.transcribe(
            audio, beam_size=5, language=language, word_timestamps=True
        )
        segs = list(segs)
        text = join_words(s.text.strip() for s in segs)
        ends = [(w.word.strip(), float(w.end)) for s in segs for w in (s.words or [])]
        if self.cache:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps({"text": text, "word_ends": ends, "language": info.language})
            )
        return OfflineResult(text, ends, str(info.language))


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_speakers(entries: list[dict[str, Any]], speakers: str) -> list[dict[str, Any]]:
    """Only the entries of these speakers (comma-separated; all if empty), e.g. dev's
    tuning half "4088,4406" or its confirmation half "5652,8226"."""
    keep = {s.strip() for s in speakers.split(",") if s.strip()}
    return [e for e in entries if not keep or str(e.get("speaker", "")) in keep]


def pick(entries: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """`limit` entries spread evenly over the manifest (all if 0)."""
    if limit:
        step = max(1, len(entries) // limit)
        entries = entries[::step][:limit]
    return entries


def load_clip(
    manifest: Path,
    entry: dict[str, Any],
    offline: Offline,
    max_seconds: float = 0.0,
    language_code: str = "",
) -> Clip:
    """A manifest entry with the offline pass of `offline`'s model in the stream's
    language setting: `language_code` ("" or "auto": detect, on a multilingual model)."""
    audio = load_audio(manifest.parent / entry["wav"])
    reference = entry.get("text", "")
    if max_seconds and len(audio) > max_seconds * SAMPLE_RATE:
        cut = trim_to_segments(entry.get("segments", []), max_seconds)
        if cut is None:  # no segments: cut the audio only (the reference no longer fits)
            audio, reference = audio[: int(max_seconds * SAMPLE_RATE)], ""
        else:
            audio, reference = audio[: int(cut[0] * SAMPLE_RATE)], cut[1]
    language = entry.get("language", "en")
    asked = language_code if language_code not in ("", "auto") else None
    if asked is None and english_only(offline.model):
        asked = "en"
    off = offline.transcribe(audio, asked and asked.split("-")[0])
    return Clip(
        entry["id"], audio, reference, off.text, off.word_ends,
        language=language, language_code=language_code, offline_language=off.language,
    )  # fmt: skip


def noise_clips(seconds: float, dbfs: float) -> list[Clip]:
    return [
        Clip("silence", np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32), kind="silence"),
        Clip(f"white noise {dbfs:g} dBFS", white_noise(seconds, dbfs), kind="noise"),
        Clip(f"pink noise {dbfs:g} dBFS", pink_noise(seconds, dbfs), kind="noise"),
    ]
