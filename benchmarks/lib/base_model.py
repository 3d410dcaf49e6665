"""Multilingual Whisper base for `policy_sim`: the service's engine and catalogue entry
(service/models.py) with the language forced, and the same model's offline baseline."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.lib.clips import CACHE_DIR
from benchmarks.lib.whisper_models import load
from service.config import ModelSettings
from service.engine import DecodeRequest, DecodeResult, WhisperEngine
from service.models import resolve


class LanguageEngine(WhisperEngine):
    """The service's engine on Whisper base, every request decoded in one given language."""

    def __init__(self, settings: ModelSettings, language: str) -> None:
        super().__init__(settings, resolve("base"))
        self.language = language

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        return super().decode_batch([replace(r, language=self.language) for r in requests])


class OfflineBase:
    """The offline baseline of the same model: each whole clip, beam 5, in the clip's
    language, with word end times; cached on disk by audio and language."""

    def __init__(self) -> None:
        self._model: Any = None

    def __call__(
        self, audio: npt.NDArray[np.float32], language: str
    ) -> tuple[str, list[tuple[str, float]]]:
        from service.text import join_words

        key = hashlib.sha1(audio.tobytes() + f"base|{language}".encode()).hexdigest()
        path = CACHE_DIR / f"{key}.json"
        if path.exists():
            data = json.loads(path.read_text())
            return data["text"], [(w, e) for w, e in data["word_ends"]]
        if self._model is None:
            self._model = load("base", cpu_threads=2)
        segs = list(
            self._model.transcribe(audio, beam_size=5, language=language, word_timestamps=True)[0]
        )
        text = join_words(s.text.strip() for s in segs)
        ends = [(w.word.strip(), float(w.end)) for s in segs for w in (s.words or [])]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"text": text, "word_ends": ends}, ensure_ascii=False))
        return text, ends
