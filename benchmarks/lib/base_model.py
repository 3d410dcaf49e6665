"""Multilingual Whisper base for `policy_sim`: the service's engine and catalogue entry
(service/models.py) with the language forced (its offline baseline is lib/clips.Offline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

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
