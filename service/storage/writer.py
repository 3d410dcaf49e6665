"""Per-stream segment writer: batched, retried, never stalling transcription.

The session hands each final segment, and each revision of one (same index, new
text), to `write` and waits a short while for that write to be durable, so that in
the normal case a final shown to the user is already stored. If storage is
failing, `write` returns False at once (after `wait_s` for the write that finds
out) and the writer keeps retrying in the background with exponential backoff;
`close` flushes for a bounded time and reports what could not be stored.

Every write carries the stream's lease epoch: once storage refuses it (another stream
took the transcript over), retrying is pointless, so the writer stops and reports
`lost`; what it had not stored is reported unsaved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from service.domain import Segment, TranscriptStatus
from service.keywords import extract_keywords
from service.storage.base import TranscriptStore
from service.storage.lease import LeaseLostError

logger = logging.getLogger(__name__)


class SegmentWriter:
    """Writes one transcript's segments in order, in batches, with retries.

    Durability is tracked per write, not per index: a revision of a stored index is
    durable only once the revision itself is stored."""

    def __init__(
        self,
        store: TranscriptStore,
        owner: str,
        transcript_id: str,
        *,
        retry_base_s: float = 0.1,
        retry_max_s: float = 5.0,
        close_timeout_s: float = 30.0,
        on_retry: Callable[[], None] | None = None,
        epoch: int | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.transcript_id = transcript_id
        self._pending: list[tuple[int, Segment]] = []
        """Queued writes with their sequence numbers, oldest first."""
        self._next_seq = 0
        self._stored_seq = -1
        """Every write with a sequence number up to this one is stored."""
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._retry_base = retry_base_s
        self._retry_max = retry_max_s
        self.close_timeout_s = close_timeout_s
        self.errors = 0
        self.retries = 0
        self._on_retry = on_retry
        """Called at each failed write (metrics see an outage while it happens)."""
        self._failing = False
        """The last attempt to store failed and no attempt has succeeded since."""
        self.epoch = epoch
        """The lease epoch every write carries (None: unfenced)."""
        self.lost = False
        """Storage refused this epoch: nothing more is written."""
        self._on_lost = on_lost

    async def write(self, segment: Segment, wait_s: float = 2.0) -> bool:
        """Queue a segment (new or a revision); True once this write is durable, False if
        not within wait_s (or at once while storage is failing: the last attempt failed
        and none succeeded since)."""
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append((seq, segment))
        if self.lost:
            return False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_loop(), name="segment-writer")
        async with self._changed:
            self._changed.notify_all()
        if self._failing:
            # Storage is known to be down: waiting would stall the stream by wait_s for
            # every final of the outage (the session waits here before it goes on).
            return False
        return await self._wait_stored(seq, wait_s)

    async def _wait_stored(self, seq: int, wait_s: float) -> bool:
        try:
            async with asyncio.timeout(wait_s):
                async with self._changed:
                    await self._changed.wait_for(lambda: self._stored_seq >= seq or self.lost)
            return self._stored_seq >= seq
        except TimeoutError:
            return False

    async def _flush_loop(self) -> None:
        delay = self._retry_base
        while self._pending:
            batch = list(self._pending)
            try:
                # In queue order: of two writes of one index in a batch, the store keeps the later.
                segments = [s for _, s in batch]
                await self.store.append_segments(
                    self.owner, self.transcript_id, segments, epoch=self.epoch
                )
            except asyncio.CancelledError:
                raise
            except LeaseLostError as exc:
                self._lose(exc)
                async with self._changed:
                    self._changed.notify_all()
                return
            except Exception as exc:
                self._failing = True
                self.errors += 1
                self.retries += 1
                if self._on_retry is not None:
                    self._on_retry()
                logger.warning(
                    "transcript %s: storing %d segment(s) failed (%s); retrying in %.1f s",
                    self.transcript_id,
                    len(batch),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            delay = self._retry_base
            self._failing = False
            del self._pending[: len(batch)]
            async with self._changed:
                self._stored_seq = batch[-1][0]
                self._changed.notify_all()

    def _lose(self, exc: LeaseLostError) -> None:
        logger.warning("transcript %s: %s", self.transcript_id, exc)
        self.lost = True
        self._failing = True  # writes return at once from now on
        if self._on_lost is not None:
            self._on_lost()

    @property
    def unsaved(self) -> list[int]:
        """Indexes with a write not yet stored (a new final or a revision), sorted."""
        return sorted({s.index for _, s in self._pending})

    async def flush(self, timeout_s: float) -> list[int]:
        """Wait up to timeout_s for every queued segment to be stored; the unsaved indices."""
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                pass
        return self.unsaved

    async def close(
        self,
        status: TranscriptStatus,
        ended_at: datetime,
        duration_s: float,
        speaker_state: str | None = None,
    ) -> list[int]:
        """Flush (bounded), then record status, duration, keywords and the speaker state
        (None: unchanged). Returns unsaved indices."""
        deadline = time.monotonic() + self.close_timeout_s
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.close_timeout_s)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            except asyncio.CancelledError:  # the caller gave up: so do the retries
                self._task.cancel()
                raise
        delay = self._retry_base
        while not self.lost:
            try:
                # Keywords cover the whole transcript, including parts of earlier streams.
                segments = await self.store.get_segments(self.owner, self.transcript_id)
                texts = [s.text for s in segments]
                await self.store.finish_transcript(
                    self.owner,
                    self.transcript_id,
                    status,
                    ended_at,
                    duration_s,
                    extract_keywords(texts),
                    epoch=self.epoch,
                    speaker_state=speaker_state,
                )
                break
            except asyncio.CancelledError:
                raise
            except LeaseLostError as exc:
                self._lose(exc)
                break
            except Exception as exc:
                self.errors += 1
                if self._on_retry is not None:
                    self._on_retry()
                if time.monotonic() + delay > deadline:
                    logger.error("transcript %s: could not be closed: %s", self.transcript_id, exc)
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
        return self.unsaved
