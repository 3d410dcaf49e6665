"""Refinement checks a language a stream detected on the whole recording.

A stream that detects its language fixes it from the seconds it has heard (FLEURS
Portuguese was taken for English that way); refinement hears the whole recording, so a
transcript whose detected language is wrong is refined in the right one and stores it.
A language the stream was given is never second-guessed. Real parts: base, SQLite, the
recording store, FLEURS German test speech.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.models import resolve
from service.recordings import RecordingStore
from service.refine.decoder import RefineDecoders, language_probabilities
from service.refine.worker import Refiner
from service.storage.base import TranscriptStore
from service.stream_language import store_language
from tests.helpers import decode_16k
from tests.multilingual import german_clip
from tests.service.refine.stored import OWNER, finished_transcript


@pytest.fixture(scope="module")
def decoders() -> RefineDecoders:
    """base's refinement decoder, loaded once for the module."""
    return RefineDecoders([resolve("base")], "int8", 2)


async def _german_transcript(
    store: TranscriptStore, recordings: RecordingStore, language: str
) -> str:
    """A finished transcript of the German clip made with base, stored with `language`."""
    clip = german_clip()
    return await finished_transcript(
        store, recordings, clip.path, language=language, model="base", duration_s=clip.duration_s
    )


async def test_a_wrongly_detected_language_is_corrected_by_refinement(
    store: TranscriptStore, decoders: RefineDecoders, tmp_path: Path
) -> None:
    recordings = RecordingStore(tmp_path / "recordings")
    refiner = Refiner(store, recordings, decoders)
    tid = await _german_transcript(store, recordings, "")
    await store_language(store, OWNER, tid, "en")  # what a stream that misheard stores
    meta = await store.get_transcript(OWNER, tid)
    assert (meta.language, meta.language_detected) == ("en", True)
    assert await refiner.refine(OWNER, tid)
    meta = await store.get_transcript(OWNER, tid)
    assert meta.language == "de"
    text = " ".join(s.text for s in await store.get_segments(OWNER, tid)).lower()
    # German words, not an English translation
    assert "sediment war nötig" in text and "lebensräume" in text, text


async def test_a_given_language_is_kept_by_refinement(
    store: TranscriptStore, decoders: RefineDecoders, tmp_path: Path
) -> None:
    recordings = RecordingStore(tmp_path / "recordings")
    refiner = Refiner(store, recordings, decoders)
    tid = await _german_transcript(store, recordings, "es")  # the client asked for Spanish
    assert not (await store.get_transcript(OWNER, tid)).language_detected
    assert await refiner.refine(OWNER, tid)
    assert (await store.get_transcript(OWNER, tid)).language == "es"


def test_the_whole_recordings_language_is_clear_on_german_speech(
    decoders: RefineDecoders,
) -> None:
    model = decoders.get("base")._load()
    probs = language_probabilities(model, decode_16k(german_clip().path))
    assert max(probs, key=probs.__getitem__) == "de" and probs["de"] > 0.8
