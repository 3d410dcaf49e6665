"""A more accurate loaded model refines a transcript another model made.

Real parts: tiny.en and base, SQLite, the recording store, LibriSpeech speech on which
the two differ (4406-16882-0000: tiny.en drops "the" of "the lord hereby" in most runs,
base keeps it; beam 5, whole clip).
"""

from __future__ import annotations

from pathlib import Path

from service.models import resolve
from service.recordings import RecordingStore
from service.refine.choice import refining_model
from service.refine.decoder import LowPriorityDecoder, RefineDecoders
from service.refine.worker import Refiner
from service.storage.base import TranscriptStore
from tests.helpers import clips, normalize
from tests.service.refine.stored import OWNER, finished_transcript

CLIP = "4406-16882-0000"


def test_the_most_accurate_loaded_model_that_knows_the_language_refines() -> None:
    both = {"tiny.en": ("en",), "base": ("en", "de")}
    assert refining_model("tiny.en", "en", both, "best") == "base"
    assert refining_model("tiny.en", "en", both, "same") == "tiny.en"
    assert refining_model("tiny.en", "en", {"tiny.en": ("en",)}, "best") == "tiny.en"
    assert refining_model("tiny.en", "en", {"tiny.en": ("en",), "base": ("de",)}, "best") == (
        "tiny.en"  # a more accurate model that does not transcribe the language
    )
    assert refining_model("base", "de", both, "best") == "base"  # never a less accurate one
    assert refining_model("base", "en", both, "best") == "base"
    assert refining_model("my-model", "en", both, "best") == "my-model"  # a directory


LANGUAGES = {"tiny.en": ("en",), "base": ("en", "de", "ja")}
"""What the server passes: each loaded model's languages (base's 99 cut to a few)."""


async def _refined(store: TranscriptStore, tmp_path: Path, choose: str) -> tuple[str, list[str]]:
    """Store a finished tiny.en transcript of CLIP with its recording, refine it with
    `choose`; the stored text, normalized, and the models whose decoders refined it."""
    clip = clips()[CLIP]
    recordings = RecordingStore(tmp_path / "recordings")
    tid = await finished_transcript(
        store, recordings, clip.path, language="en", model="tiny.en", duration_s=clip.duration_s
    )
    decoders = RefineDecoders([resolve("tiny.en"), resolve("base")], "int8", 2, choose, LANGUAGES)
    used: list[str] = []
    get = decoders.get

    def recorded(model: str) -> LowPriorityDecoder:  # the real decoder, its name noted
        used.append(model)
        return get(model)

    decoders.get = recorded  # type: ignore[method-assign]
    try:
        assert await Refiner(store, recordings, decoders).refine(OWNER, tid)
    finally:
        decoders.close()
    return normalize(" ".join(s.text for s in await store.get_segments(OWNER, tid))), used


async def test_base_refines_a_tiny_en_transcript_when_loaded(
    store: TranscriptStore, tmp_path: Path
) -> None:
    text, used = await _refined(store, tmp_path, "best")
    assert used == ["base"]
    assert "down the lord hereby" in text, text  # base's words, not tiny.en's


async def test_same_keeps_the_transcript_on_its_own_model(
    store: TranscriptStore, tmp_path: Path
) -> None:
    """tiny.en refines it. (Its text is no test of that: tiny.en drops the "the" of "down
    the lord hereby" in most runs, not all; a fresh-clone CI run kept it.)"""
    text, used = await _refined(store, tmp_path, "same")
    assert used == ["tiny.en"]
    assert text.startswith("belonging to our garrison"), text  # its text was stored
