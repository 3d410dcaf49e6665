"""Remembering voices (service/speakers/voices.py) on a real SQLite store with speaker
states from the real embedder: names given while a stream is live are remembered when
it ends (not those a resumed transcript had, nor one forgotten while live), a
corrected name replaces the voice it gave, the opt-in is required, and the
number of voices is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from service.domain import TranscriptMeta, TranscriptStatus, Voice
from service.errors import ResourceExhaustedError
from service.speakers import voices
from service.speakers.config import DiarizationSettings
from service.speakers.tracker import SpeakerTracker
from service.storage.sqlite import SQLiteTranscriptStore
from tests.service.test_speakers import feed, mix
from tests.service.test_speakers_api import ABA

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@cache
def state(remember: bool = True) -> str:
    """The stored speaker state of the A-B-A mix (S1 = 4088, S2 = 4406)."""
    tracker = SpeakerTracker(DiarizationSettings(enabled=True, remember_voices=remember))
    feed(tracker, mix(ABA)[0])
    tracker.finish()
    return tracker.state_json(history=False)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteTranscriptStore]:
    s = await SQLiteTranscriptStore(tmp_path / "t.db").open()
    yield s
    await s.close()


async def transcript(store: SQLiteTranscriptStore, tid: str, speaker_state: str) -> TranscriptMeta:
    meta = TranscriptMeta(tid, "alice", T0, TranscriptStatus.LIVE, "en", "tiny.en")
    await store.create_transcript(meta)
    await store.finish_transcript(
        "alice", tid, TranscriptStatus.COMPLETE, T0, 20.0, [], speaker_state=speaker_state
    )
    return await store.get_transcript("alice", tid)


def names(found: list[Voice]) -> list[tuple[str, str, str]]:
    return [(v.name, v.transcript_id, v.speaker_label) for v in found]


async def test_names_given_live_are_remembered_when_the_stream_ends(
    store: SQLiteTranscriptStore,
) -> None:
    await transcript(store, "m1", "")
    await store.update_transcript("alice", "m1", speaker_names={"S2": "Bob"})  # while live
    await voices.after_stream(store, "alice", "m1", state(), {})
    assert names(await store.list_voices("alice")) == [("Bob", "m1", "S2")]
    # The next meeting's S2 (the same audio here) is Bob; S1 stays unnamed.
    await transcript(store, "m2", "")
    await voices.after_stream(store, "alice", "m2", state(), {})
    assert (await store.get_transcript("alice", "m2")).speaker_names == {"S2": "Bob"}
    assert names(await store.list_voices("alice")) == [("Bob", "m1", "S2")]  # not replaced


async def test_a_forgotten_voice_is_not_remembered_again_when_its_transcript_is_resumed(
    store: SQLiteTranscriptStore,
) -> None:
    """Only names given while the stream was live are remembered at its end: not those
    the transcript had when it opened (a resume), nor one forgotten while it was live."""
    meta = await transcript(store, "m1", state())
    await voices.remember_named(store, "alice", meta, {"S1": "Alice", "S2": "Bob"})
    await store.update_transcript("alice", "m1", speaker_names={"S1": "Alice", "S2": "Bob"})
    await store.delete_voice("alice", "Alice")
    opened = {"S1": "Alice", "S2": "Bob"}
    await voices.after_stream(store, "alice", "m1", state(), opened)  # a resume ends
    assert names(await store.list_voices("alice")) == [("Bob", "m1", "S2")]
    # Named while live (Carol), then forgotten before the stream ended: forget wins.
    await store.update_transcript("alice", "m1", speaker_names={"S1": "Carol", "S2": "Bob"})
    await voices.after_stream(store, "alice", "m1", state(), opened, {"carol"})
    assert names(await store.list_voices("alice")) == [("Bob", "m1", "S2")]
    # Named Alice again while live: a new naming, remembered.
    await store.update_transcript("alice", "m1", speaker_names={"S1": "Alice", "S2": "Bob"})
    await voices.after_stream(store, "alice", "m1", state(), {"S1": "Carol", "S2": "Bob"})
    assert names(await store.list_voices("alice")) == [("Alice", "m1", "S1"), ("Bob", "m1", "S2")]


async def test_a_corrected_name_replaces_the_voice_it_gave(store: SQLiteTranscriptStore) -> None:
    meta = await transcript(store, "m1", state())
    await voices.remember_named(store, "alice", meta, {"S1": "Alice", "S2": "Bob"})
    await store.update_transcript("alice", "m1", speaker_names={"S1": "Alice", "S2": "Bob"})
    meta = await store.get_transcript("alice", "m1")
    await voices.remember_named(store, "alice", meta, {"S1": "Alice", "S2": "Robert"})
    got = await store.list_voices("alice")
    assert names(got) == [("Alice", "m1", "S1"), ("Robert", "m1", "S2")]
    s2 = voices.speakers_of(state())["S2"].centroid
    assert float(voices.print_of(got[1]) @ s2) == pytest.approx(1.0, abs=1e-5)


async def test_nothing_is_remembered_without_the_opt_in(store: SQLiteTranscriptStore) -> None:
    meta = await transcript(store, "m1", state(remember=False))
    await voices.remember_named(store, "alice", meta, {"S1": "Alice"})
    assert await store.list_voices("alice") == []


async def test_the_number_of_voices_is_bounded(store: SQLiteTranscriptStore) -> None:
    rng = np.random.default_rng(0)
    for i in range(voices.MAX_VOICES):
        v = rng.standard_normal(256).astype("<f4")
        await store.put_voice("alice", Voice(f"v{i}", v.tobytes(), 1, "old", "S1", T0))
    meta = await transcript(store, "m1", state())
    with pytest.raises(ResourceExhaustedError):
        await voices.remember_named(store, "alice", meta, {"S1": "Alice"})
    assert len(await store.list_voices("alice")) == voices.MAX_VOICES
    await voices.remember_named(store, "alice", meta, {"S1": "v3"})  # an existing name: fine
    by_name = {v.name: v for v in await store.list_voices("alice")}
    assert len(by_name) == voices.MAX_VOICES and by_name["v3"].transcript_id == "m1"


async def test_other_voices_are_not_named(store: SQLiteTranscriptStore) -> None:
    """Speakers 5652 and 8226 against the voices of 4088 (Alice) and 4406 (Bob)."""
    meta = await transcript(store, "m1", state())
    await voices.remember_named(store, "alice", meta, {"S1": "Alice", "S2": "Bob"})
    tracker = SpeakerTracker(DiarizationSettings(enabled=True, remember_voices=True))
    feed(tracker, mix([("5652", 0.0, 13.5, 0.5), ("8226", 0.0, 2.9, 1.0)])[0])
    tracker.finish()
    others = tracker.state_json(history=False)
    await transcript(store, "m2", "")
    await voices.after_stream(store, "alice", "m2", others, {})
    assert (await store.get_transcript("alice", "m2")).speaker_names == {}
    remembered = await store.list_voices("alice")
    best = max(
        float(h.centroid @ voices.print_of(v))
        for h in voices.speakers_of(others).values()
        for v in remembered
    )
    assert best < voices.MATCH_THRESHOLD
