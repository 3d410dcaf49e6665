"""One live writer per transcript: a lease with an epoch, taken in storage.

A stream that writes a transcript first takes its lease: a conditional write that
succeeds only if the transcript is not complete and no unexpired lease is held, and
that sets the status LIVE, adds one to the transcript's `epoch` and sets the lease's
expiry. Every later write of that stream (segments, the recording's MIME type, the
final status) carries the epoch and is refused with LeaseLostError once another
stream has taken a newer one, so a stale writer's late retries cannot overwrite the
newer stream's segments. The holder renews the lease while its stream lives and
releases it when the stream (and the storing of its last results) ends; a server that
dies stops renewing, and its leases expire after `lease_s` (30 s by default).

A diarized stream's renewals also carry its speaker tracker's state (LeaseKeeper says
why there), so a stream that resumes the transcript after its server died continues
the labels: the same voice keeps its label.

Expiry compares wall clocks (`time.time()`) of the servers sharing the store, so
their clocks must agree to well within the lease duration (NTP does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.errors import AbortedError

if TYPE_CHECKING:
    from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
STATE_READ_S = 1.0
"""Longest wait of a renewal for the speaker state (LeaseKeeper): the tracker's executor
may be busy, and the lease must not wait for it."""
RELEASE_S = 5.0
"""Longest wait for storage to release a lease: a hung store must not hold up a stream's
end or the server's shutdown (the lease then expires on its own)."""


@dataclass(frozen=True)
class Lease:
    """The right to write one transcript, until `expires_at` unless renewed."""

    transcript_id: str
    epoch: int
    expires_at: float
    """Unix time (the store's servers' wall clock)."""


class TranscriptBusyError(AbortedError):
    """Another stream holds the transcript's lease."""


class LeaseLostError(AbortedError):
    """A write carried an epoch older than the transcript's: another stream took it over."""


def busy_message(transcript_id: str, remaining_s: float) -> str:
    return (
        f"transcript {transcript_id} is being written by another stream; retry after it "
        f"ends (its lease ends with it, or expires within {max(0.0, remaining_s):.0f} s "
        "if its server stopped)"
    )


def complete_message(transcript_id: str) -> str:
    return (
        f"transcript {transcript_id} is complete and cannot be resumed; "
        "start a new transcript instead"
    )


def lost_message(transcript_id: str, epoch: int) -> str:
    return (
        f"transcript {transcript_id} was taken over by another stream (this writer's epoch "
        f"{epoch} is stale); this stream's writes are refused"
    )


def new_holder() -> str:
    """Who holds a lease (logs and diagnostics): host, process and stream."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Renews one stream's lease until released; notices when it was taken over.

    With `speaker_state` (a diarized stream: LiveSpeakers.state), each renewal also stores
    the tracker's state when it changed since the last one stored, in the same fenced
    write. That is the cheapest sound moment: no request of its own (the renewal is made
    anyway, every lease_s / 3), fenced by the epoch like every write of the stream, and a
    server that dies loses at most lease_s / 3 of what the voices learnt (a voice first
    heard in those seconds is new again to the resuming stream). The state is the voices'
    centroids without the windows' history (~1.4 KB a voice, at most 8: 11.6 KB for 8
    voices and an hour, whatever the length; tests/service/test_speakers_crash.py), well inside
    DynamoDB's 400 KB item; its items are billed by size, so unchanged states are not
    sent again. Reading it waits for the tracker's executor, bounded (STATE_READ_S) so a
    busy executor delays no renewal: that renewal then goes without it. The stream's end
    stores the final (re-clustered) state itself: `stop_speaker_state` first."""

    def __init__(
        self,
        store: TranscriptStore,
        owner: str,
        lease: Lease,
        lease_s: float,
        speaker_state: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self._store = store
        self._owner = owner
        self.lease = lease
        self._lease_s = lease_s
        self.lost = asyncio.Event()
        """Set once storage refused a renewal or a write of this epoch."""
        self._task: asyncio.Task[None] | None = None
        self._speaker_state = speaker_state
        self._stored_state = ""
        """The speaker state the last renewal stored (or the stream started from)."""
        self._renewing = asyncio.Lock()
        """Held by a renewal from reading the state until its write returned."""

    def start(self, stored_state: str = "") -> None:
        """Start renewing; `stored_state` is the speaker state already in storage."""
        self._stored_state = stored_state
        self._task = asyncio.create_task(self._renew(), name="lease-renewal")

    def mark_lost(self) -> None:
        if not self.lost.is_set():
            logger.warning("transcript %s: lease lost", self.lease.transcript_id)
        self.lost.set()

    async def stop_speaker_state(self) -> None:
        """Renewals carry no speaker state from now on; returns once none carrying one is
        in flight, so the end-of-stream state written next is not overwritten by an older."""
        self._speaker_state = None
        async with self._renewing:
            pass

    async def _state_to_store(self) -> str | None:
        read = self._speaker_state
        if read is None:
            return None
        try:
            async with asyncio.timeout(STATE_READ_S):
                state = await read()
        except TimeoutError:
            return None
        return None if state is None or state == self._stored_state else state

    async def _renew(self) -> None:
        # A third of the lease between renewals: two may fail (storage blips) before it expires.
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                async with self._renewing:
                    state = await self._state_to_store()
                    self.lease = await self._store.renew_lease(
                        self._owner,
                        self.lease.transcript_id,
                        self.lease.epoch,
                        self._lease_s,
                        speaker_state=state,
                    )
                    if state is not None:
                        self._stored_state = state
            except asyncio.CancelledError:
                raise
            except LeaseLostError:
                self.mark_lost()
                return
            except Exception as exc:  # storage down: the writer retries, so does this
                logger.warning(
                    "transcript %s: renewing the lease failed (%s); it expires in %.0f s",
                    self.lease.transcript_id,
                    exc,
                    self.lease.expires_at - time.time(),
                )

    async def release(self, timeout_s: float = RELEASE_S) -> None:
        """Stop renewing and give the lease up (a no-op if another stream took it); gives
        up after timeout_s, leaving the lease to expire."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.lost.is_set():
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._store.release_lease(
                    self._owner, self.lease.transcript_id, self.lease.epoch
                )
        except Exception as exc:  # it expires on its own (TimeoutError included)
            logger.warning(
                "transcript %s: releasing the lease failed (%s); it expires within %.0f s",
                self.lease.transcript_id,
                exc,
                self.lease.expires_at - time.time(),
            )
