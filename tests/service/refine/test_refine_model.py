"""A more accurate loaded model refines a transcript another model made.

Real parts: tiny.en and base, SQLite, the recording store, LibriSpeech speech on which
the two differ (4406-16882-0000: tiny.en drops "the" of "the lord hereby", base keeps
it; beam 5, whole clip).
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
from service.refine.choice import refining_model
from service.refine.decoder import RefineDecoders
from service.refine.worker import Refiner
from service.storage.base import TranscriptStore
from service.storage.factory import open_store
from tests.helpers import clips, normalize

OWNER = "alice"
CLIP = "4406-16882-0000"


def test_the_most_accurate_loaded_model_that_knows_the_language_refines() -> None:
    both = ("tiny.en", "base")
    assert refining_model("tiny.en", "en", both, "best") == "base"
    assert refining_model("tiny.en", "en", both, "same") == "tiny.en"
    assert refining_model("tiny.en", "en", ("tiny.en",), "best") == "tiny.en"
    assert refining_model("base", "de", both, "best") == "base"  # never a less accurate one
    assert refining_model("base", "en", both, "best") == "base"
    assert refining_model("my-model", "en", both, "best") == "my-model"  # a directory


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TranscriptStore]:
    s = await open_store(StorageSettings(data_dir=tmp_path))
    yield s
    await s.close()


async def _refined_text(store: TranscriptStore, tmp_path: Path, choose: str) -> str:
    """Store a finished tiny.en transcript of CLIP with its recording, refine it with
    `choose`, and return the stored text, normalized."""
    tid = uuid.uuid4().hex
    clip = clips()[CLIP]
    await store.create_transcript(
        TranscriptMeta(tid, OWNER, datetime.now(UTC), TranscriptStatus.COMPLETE, "en",
                       "tiny.en", duration_s=clip.duration_s)
    )  # fmt: skip
    recordings = RecordingStore(tmp_path / "recordings")
    writer = recordings.open_writer(tid, "flac")
    await writer.write(clip.path.read_bytes())
    await writer.finish()
    await store.set_refinement(OWNER, tid, Refinement(RefinementState.PENDING))
    decoders = RefineDecoders([resolve("tiny.en"), resolve("base")], "int8", 2, choose)
    try:
        assert await Refiner(store, recordings, decoders).refine(OWNER, tid)
    finally:
        decoders.close()
    return normalize(" ".join(s.text for s in await store.get_segments(OWNER, tid)))


async def test_base_refines_a_tiny_en_transcript_when_loaded(
    store: TranscriptStore, tmp_path: Path
) -> None:
    text = await _refined_text(store, tmp_path, "best")
    assert "down the lord hereby" in text, text


async def test_same_keeps_the_transcript_on_its_own_model(
    store: TranscriptStore, tmp_path: Path
) -> None:
    text = await _refined_text(store, tmp_path, "same")
    assert "down lord hereby" in text, text
