"""Remembered voices on SQLite: one row per (owner, name folded to lower case), holding
the voice print. Forgetting a voice deletes its row with `secure_delete` on (the freed
space is zeroed) and then checkpoints the WAL, so the print is gone from the files too,
not only from the table."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from service.domain import Voice
from service.errors import NotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS voices (
  owner TEXT NOT NULL,
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  embedding BLOB NOT NULL,
  windows INTEGER NOT NULL,
  transcript_id TEXT NOT NULL,
  speaker_label TEXT NOT NULL,
  updated_at REAL NOT NULL,
  PRIMARY KEY (owner, key)
)
"""


def voice_key(name: str) -> str:
    """Names are one voice whatever their case: "Alice" and "alice"."""
    return name.strip().casefold()


def put(conn: sqlite3.Connection, owner: str, voice: Voice) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO voices (owner, key, name, embedding, windows, transcript_id,"
        " speaker_label, updated_at) VALUES (?,?,?,?,?,?,?,?)",
        (
            owner,
            voice_key(voice.name),
            voice.name,
            voice.embedding,
            voice.windows,
            voice.transcript_id,
            voice.speaker_label,
            voice.updated_at.timestamp(),
        ),
    )


def list_voices(conn: sqlite3.Connection, owner: str) -> list[Voice]:
    rows = conn.execute("SELECT * FROM voices WHERE owner = ? ORDER BY key", (owner,))
    return [
        Voice(
            name=r["name"],
            embedding=bytes(r["embedding"]),
            windows=r["windows"],
            transcript_id=r["transcript_id"],
            speaker_label=r["speaker_label"],
            updated_at=datetime.fromtimestamp(r["updated_at"], UTC),
        )
        for r in rows
    ]


def delete(conn: sqlite3.Connection, owner: str, name: str) -> None:
    """Delete the voice and its print; NotFoundError if the owner has no such voice."""
    conn.execute("PRAGMA secure_delete = ON")
    try:
        cur = conn.execute(
            "DELETE FROM voices WHERE owner = ? AND key = ?", (owner, voice_key(name))
        )
    finally:
        conn.execute("PRAGMA secure_delete = OFF")
    if cur.rowcount == 0:
        raise NotFoundError(f"no voice named {name!r} is remembered")
    # The old page (with the print) stays in the WAL until a checkpoint copies the zeroed one.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
