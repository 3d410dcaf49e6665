"""Refinement jobs on SQLite: columns `refine_state`, `refine_progress`, `refine_detail`
and the claim (`refine_worker`, `refine_until`) of the transcripts table. A claim is one
conditional UPDATE, so two servers sharing the file never refine one transcript at once."""

from __future__ import annotations

import sqlite3
import time

from service.domain import Refinement, RefinementState
from service.errors import NotFoundError

COLUMNS = (
    ("refine_state", "INTEGER NOT NULL DEFAULT 0"),
    ("refine_progress", "REAL NOT NULL DEFAULT 0"),
    ("refine_detail", "TEXT NOT NULL DEFAULT ''"),
    ("refine_worker", "TEXT NOT NULL DEFAULT ''"),
    ("refine_until", "REAL NOT NULL DEFAULT 0"),
)
INDEX = "CREATE INDEX IF NOT EXISTS transcripts_refine ON transcripts (refine_state, created_at)"
PENDING, RUNNING = RefinementState.PENDING.value, RefinementState.RUNNING.value


def refinement(row: sqlite3.Row) -> Refinement:
    return Refinement(
        RefinementState(row["refine_state"]), row["refine_progress"], row["refine_detail"]
    )


def set_refinement(conn: sqlite3.Connection, owner: str, tid: str, value: Refinement) -> None:
    cur = conn.execute(
        "UPDATE transcripts SET refine_state = ?, refine_progress = ?, refine_detail = ?"
        " WHERE id = ? AND owner = ?",
        (value.state.value, value.progress, value.detail, tid, owner),
    )
    if cur.rowcount == 0:
        raise NotFoundError(f"transcript {tid!r} not found")


def claim(conn: sqlite3.Connection, owner: str, tid: str, worker: str, lease_s: float) -> bool:
    now = time.time()
    cur = conn.execute(
        "UPDATE transcripts SET refine_state = ?, refine_worker = ?, refine_until = ?"
        " WHERE id = ? AND owner = ? AND (refine_state = ? OR (refine_state = ?"
        " AND (refine_until < ? OR refine_worker = ?)))",
        (RUNNING, worker, now + lease_s, tid, owner, PENDING, RUNNING, now, worker),
    )
    return cur.rowcount == 1


def pending(conn: sqlite3.Connection, limit: int) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT owner, id FROM transcripts WHERE refine_state = ?"
        " OR (refine_state = ? AND refine_until < ?) ORDER BY created_at LIMIT ?",
        (PENDING, RUNNING, time.time(), limit),
    ).fetchall()
    return [(r["owner"], r["id"]) for r in rows]
