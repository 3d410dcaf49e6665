"""Storage failing mid-stream: transcription goes on, writes are retried and land."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from service.domain import Segment, TranscriptMeta, TranscriptStatus, Word
from service.storage.sqlite import SQLiteTranscriptStore
from service.storage.writer import SegmentWriter


class Outage(SQLiteTranscriptStore):
    """A real SQLite store whose writes fail while `down` is set (fault injection)."""

    down = False
    failures = 0

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        if self.down:
            self.failures += 1
            raise OSError("disk unavailable")
        await super().append_segments(owner, transcript_id, segments, epoch)


def seg(i: int) -> Segment:
    w = Word(f"word{i}", i, i + 0.5, 0.9)
    return Segment(i, i, i + 0.5, w.text, (w,), 0.9)


async def test_writes_retry_until_storage_returns(tmp_path: Path) -> None:
    store = Outage(tmp_path / "t.db")  # open() is typed as returning the base store
    await store.open()
    now = datetime.now(UTC)
    await store.create_transcript(
        TranscriptMeta("t1", "me", now, TranscriptStatus.LIVE, "en", "tiny.en")
    )
    retried: list[int] = []
    writer = SegmentWriter(
        store, "me", "t1", retry_base_s=0.05, retry_max_s=0.2, on_retry=lambda: retried.append(1)
    )
    assert await writer.write(seg(0))  # healthy: durable before it is shown
    store.down = True
    stored = [await writer.write(seg(i), wait_s=0.3) for i in (1, 2, 3)]
    # Each write returned while storage was still down (transcription did not stall until
    # it came back: that is the condition, not a wall-clock bound), saying it is not stored.
    assert stored == [False, False, False] and store.down
    assert store.failures >= 2
    assert len(retried) == store.failures  # metrics see the outage while it lasts
    store.down = False
    unsaved = await writer.close(TranscriptStatus.COMPLETE, now, 4.0)
    assert unsaved == []
    segs = await store.get_segments("me", "t1")
    assert [s.index for s in segs] == [0, 1, 2, 3]  # nothing lost, in order
    meta = await store.get_transcript("me", "t1")
    assert meta.status is TranscriptStatus.COMPLETE and meta.keywords
    await store.close()


async def test_storage_that_never_returns_reports_unsaved(tmp_path: Path) -> None:
    store = Outage(tmp_path / "t.db")
    await store.open()
    now = datetime.now(UTC)
    await store.create_transcript(
        TranscriptMeta("t2", "me", now, TranscriptStatus.LIVE, "en", "tiny.en")
    )
    writer = SegmentWriter(
        store, "me", "t2", retry_base_s=0.05, retry_max_s=0.1, close_timeout_s=0.5
    )
    store.down = True
    assert not await writer.write(seg(0), wait_s=0.1)
    assert await writer.close(TranscriptStatus.COMPLETE, now, 1.0) == [0]
    await store.close()


class Held(SQLiteTranscriptStore):
    """A real SQLite store whose writes wait for `gate`; `entered` tells a write began."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().append_segments(owner, transcript_id, segments, epoch)


async def test_a_revision_is_durable_only_once_it_is_stored(tmp_path: Path) -> None:
    """A revision has the index of a stored segment; its write waits for the revision."""
    store = Held(tmp_path / "t.db")
    await store.open()
    now = datetime.now(UTC)
    await store.create_transcript(
        TranscriptMeta("t3", "me", now, TranscriptStatus.LIVE, "en", "tiny.en")
    )
    writer = SegmentWriter(store, "me", "t3")
    assert await writer.write(seg(0))
    store.gate.clear()
    store.entered.clear()
    revision = replace(seg(0), text="word0 revised")
    waiting = asyncio.create_task(writer.write(revision, wait_s=60))
    await store.entered.wait()  # the revision is being written, not yet stored
    assert not waiting.done()
    assert writer.unsaved == [0]
    store.gate.set()
    assert await waiting
    assert [s.text for s in await store.get_segments("me", "t3")] == ["word0 revised"]
    assert writer.unsaved == []

    store.gate.clear()  # not stored in time: False, and reported once per index
    assert not await writer.write(replace(seg(0), text="again"), wait_s=0.05)
    assert not await writer.write(seg(1), wait_s=0.05)
    assert not await writer.write(replace(seg(0), text="word0 final"), wait_s=0.05)
    assert writer.unsaved == [0, 1]
    store.gate.set()
    assert await writer.close(TranscriptStatus.COMPLETE, now, 2.0) == []
    segs = await store.get_segments("me", "t3")
    assert [(s.index, s.text) for s in segs] == [(0, "word0 final"), (1, "word1")]
    assert (await store.get_transcript("me", "t3")).segment_count == 2
    await store.close()
