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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.errors import AbortedError

if TYPE_CHECKING:
    from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
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
    """Renews one stream's lease until released; notices when it was taken over."""

    def __init__(self, store: TranscriptStore, owner: str, lease: Lease, lease_s: float) -> None:
        self._store = store
        self._owner = owner
        self.lease = lease
        self._lease_s = lease_s
        self.lost = asyncio.Event()
        """Set once storage refused a renewal or a write of this epoch."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew(), name="lease-renewal")

    def mark_lost(self) -> None:
        if not self.lost.is_set():
            logger.warning("transcript %s: lease lost", self.lease.transcript_id)
        self.lost.set()

    async def _renew(self) -> None:
        # A third of the lease between renewals: two may fail (storage blips) before it expires.
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                self.lease = await self._store.renew_lease(
                    self._owner, self.lease.transcript_id, self.lease.epoch, self._lease_s
                )
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
