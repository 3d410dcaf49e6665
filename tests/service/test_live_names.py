"""`LiveNames` (service/speakers/live_names.py) on a real SQLite store with voice prints
from the real embedder (the A-B-A mix's speakers, test_voices.state): a speaker is named
once heard long enough, a user's name is never replaced, the end-of-stream pass names
whom the live checks did not, and each voice names one speaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from service.domain import TranscriptMeta, TranscriptStatus, Voice
from service.speakers.clustering import Speaker
from service.speakers.live_names import RECHECK_WINDOWS, LiveNames
from service.speakers.voices import MIN_WINDOWS, Heard, speakers_of
from service.storage.sqlite import SQLiteTranscriptStore
from tests.service.test_voices import state

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OWNER = "alice"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteTranscriptStore]:
    s = await SQLiteTranscriptStore(tmp_path / "t.db").open()
    heard = speakers_of(await asyncio.to_thread(state))
    for label, name in (("S1", "Alice"), ("S2", "Bob")):
        emb = heard[label].centroid.astype("<f4").tobytes()
        await s.put_voice(OWNER, Voice(name, emb, heard[label].windows, "m1", label, T0))
    await s.create_transcript(TranscriptMeta("m2", OWNER, T0, TranscriptStatus.LIVE, "en", "x"))
    yield s
    await s.close()


def heard_as(label: str, voice: str, windows: int) -> Speaker:
    """A live speaker `label` with the voice of the first meeting's `voice` ("S1", "S2")."""
    h: Heard = speakers_of(state())[voice]
    return Speaker(label, h.centroid * windows, windows)


async def test_a_speaker_is_named_once_heard_long_enough_and_stored(
    store: SQLiteTranscriptStore,
) -> None:
    live = await LiveNames.open(store, OWNER, "m2")
    assert await live.check([heard_as("S1", "S2", MIN_WINDOWS - 1)]) is None  # too short
    assert await live.check([heard_as("S1", "S2", MIN_WINDOWS)]) == {"S1": "Bob"}
    assert (await store.get_transcript(OWNER, "m2")).speaker_names == {"S1": "Bob"}
    # Bob is used: another speaker with a voice like his is not named Bob too.
    both = [heard_as("S1", "S2", 20), heard_as("S3", "S2", 20)]
    assert await live.check(both) is None
    names = await live.check([*both, heard_as("S2", "S1", 20)])
    assert names == {"S1": "Bob", "S2": "Alice"}
    assert await live.check([heard_as("S4", "S1", 40)]) is None  # every voice used


async def test_a_name_the_user_gave_meanwhile_is_kept(store: SQLiteTranscriptStore) -> None:
    live = await LiveNames.open(store, OWNER, "m2")
    await store.update_transcript(OWNER, "m2", speaker_names={"S1": "Robert"})
    assert await live.check([heard_as("S1", "S2", 10)]) is None
    assert (await store.get_transcript(OWNER, "m2")).speaker_names == {"S1": "Robert"}
    assert await live.finish([heard_as("S1", "S2", 30)]) is None


def stranger(windows: int) -> Speaker:
    """A voice unlike either remembered one."""
    other = np.random.default_rng(0).standard_normal(len(speakers_of(state())["S1"].centroid))
    return Speaker("S1", other, windows)


async def test_a_speaker_is_matched_again_as_more_is_heard_and_at_the_end(
    store: SQLiteTranscriptStore,
) -> None:
    live = await LiveNames.open(store, OWNER, "m2")
    assert await live.check([stranger(MIN_WINDOWS)]) is None
    # It now sounds like Alice, but with fewer than RECHECK_WINDOWS new windows it is
    # not matched again yet; the end-of-stream pass matches it whatever its count.
    soon = MIN_WINDOWS + RECHECK_WINDOWS - 1
    assert await live.check([heard_as("S1", "S1", soon)]) is None
    assert await live.finish([heard_as("S1", "S1", soon)]) == {"S1": "Alice"}


async def test_a_speaker_matched_again_later_is_named(store: SQLiteTranscriptStore) -> None:
    live = await LiveNames.open(store, OWNER, "m2")
    assert await live.check([stranger(MIN_WINDOWS)]) is None
    later = MIN_WINDOWS + RECHECK_WINDOWS
    assert await live.check([heard_as("S1", "S1", later)]) == {"S1": "Alice"}


class RenameAfterRead(SQLiteTranscriptStore):
    """A store on which a user's rename lands right after each read of the transcript:
    between LiveNames' re-read of the names and its write."""

    def __init__(self, inner: SQLiteTranscriptStore, names: dict[str, str]) -> None:
        self.__dict__.update(inner.__dict__)
        self._user_names = names

    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta:
        meta = await super().get_transcript(owner, transcript_id)
        await self.update_transcript(owner, transcript_id, speaker_names=self._user_names)
        return meta


async def test_a_rename_between_the_read_and_the_write_is_not_overwritten(
    store: SQLiteTranscriptStore,
) -> None:
    live = await LiveNames.open(store, OWNER, "m2")
    live._store = RenameAfterRead(store, {"S1": "Robert"})
    # S1 sounds like Bob; the user names it Robert after LiveNames read it unnamed. The
    # write is conditional: Robert stays, and the map sent says so.
    assert await live.check([heard_as("S1", "S2", 10)]) == {"S1": "Robert"}
    assert (await store.get_transcript(OWNER, "m2")).speaker_names == {"S1": "Robert"}
    assert live.names == {"S1": "Robert"}
