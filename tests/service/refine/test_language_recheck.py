"""Refinement checks a language a stream detected on the whole recording.

A stream that detects its language fixes it from the seconds it has heard (FLEURS
Portuguese was taken for English that way); refinement hears the whole recording, so a
transcript whose detected language is wrong is refined in the right one and stores it.
A language the stream was given is never second-guessed. Real parts: base, SQLite, the
recording store, FLEURS German test speech.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.config import StorageSettings
from service.domain import Refinement, RefinementState, TranscriptMeta, TranscriptStatus
from service.models import resolve
from service.recordings import RecordingStore
from service.refine.decoder import RefineDecoders, language_probabilities
from service.refine.worker import Refiner
from service.storage.base import TranscriptStore
from service.storage.factory import open_store
from service.stream_language import store_language
from tests.helpers import decode_16k
from tests.multilingual import german_clip

OWNER = "alice"


@pytest.fixture(scope="module")
def decoders() -> RefineDecoders:
    """base's refinement decoder, loaded once for the module."""
    return RefineDecoders([resolve("base")], "int8", 2)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TranscriptStore]:
    s = await open_store(StorageSettings(data_dir=tmp_path))
    yield s
    await s.close()


async def _german_transcript(
    store: TranscriptStore, recordings: RecordingStore, language: str
) -> str:
    """A finished transcript of the German clip, stored with `language`, its recording
    stored, queued for refinement."""
    tid = uuid.uuid4().hex
    clip = german_clip()
    await store.create_transcript(
        TranscriptMeta(tid, OWNER, datetime.now(UTC), TranscriptStatus.COMPLETE, language, "base",
                       duration_s=clip.duration_s)
    )  # fmt: skip
    writer = recordings.open_writer(tid, "flac")
    await writer.write(clip.path.read_bytes())
    await writer.finish()
    await store.set_refinement(OWNER, tid, Refinement(RefinementState.PENDING))
    return tid


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
