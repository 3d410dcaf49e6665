"""The writer lease on SQLite (see service/storage/lease.py): columns `epoch`,
`lease_until` (Unix time, 0 = free) and `lease_holder` of the transcripts table, read
and changed inside BEGIN IMMEDIATE transactions, which SQLite serializes across
connections and processes sharing the file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from service.domain import TranscriptStatus
from service.errors import InvalidArgumentError
from service.storage.lease import (
    Lease,
    LeaseLostError,
    TranscriptBusyError,
    busy_message,
    complete_message,
    lost_message,
)

T = TypeVar("T")


def transaction(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
    """fn inside BEGIN IMMEDIATE: atomic against other connections and processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn()
        conn.execute("COMMIT")
        return out
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def fence(conn: sqlite3.Connection, transcript_id: str, epoch: int | None) -> None:
    """Inside a write transaction: refuse a writer whose epoch is no longer current."""
    if epoch is None:
        return
    row = conn.execute("SELECT epoch FROM transcripts WHERE id = ?", (transcript_id,)).fetchone()
    if row is None or row["epoch"] != epoch:
        raise LeaseLostError(lost_message(transcript_id, epoch))


def acquire(conn: sqlite3.Connection, row: sqlite3.Row, holder: str, lease_s: float) -> Lease:
    """Inside a transaction, given the owner's transcript row: take its lease."""
    tid, now = row["id"], time.time()
    if TranscriptStatus(row["status"]) is TranscriptStatus.COMPLETE:
        raise InvalidArgumentError(complete_message(tid))
    if row["lease_until"] > now:
        raise TranscriptBusyError(busy_message(tid, row["lease_until"] - now))
    until = now + lease_s
    conn.execute(
        "UPDATE transcripts SET status = ?, epoch = epoch + 1, lease_until = ?,"
        " lease_holder = ? WHERE id = ?",
        (TranscriptStatus.LIVE.value, until, holder, tid),
    )
    return Lease(tid, row["epoch"] + 1, until)


def renew(
    conn: sqlite3.Connection,
    transcript_id: str,
    epoch: int,
    lease_s: float,
    speaker_state: str | None = None,
) -> Lease:
    """Inside a transaction: extend the lease, and store the speaker state if given."""
    fence(conn, transcript_id, epoch)
    until = time.time() + lease_s
    conn.execute(
        "UPDATE transcripts SET lease_until = ?, speaker_state = COALESCE(?, speaker_state)"
        " WHERE id = ?",
        (until, speaker_state, transcript_id),
    )
    return Lease(transcript_id, epoch, until)


def release(conn: sqlite3.Connection, transcript_id: str, epoch: int) -> None:
    conn.execute(
        "UPDATE transcripts SET lease_until = 0 WHERE id = ? AND epoch = ?", (transcript_id, epoch)
    )
