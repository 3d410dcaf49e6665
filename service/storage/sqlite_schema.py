"""The SQLite store's schema: tables, the columns added since the first version, and the
FTS5 search index, created or brought up to date when a store opens a file.

Segment text is indexed with FTS5 (one row per segment, its window: see query.window, as
the tokens of query.tokenize, which DynamoDB's index shares); user queries are turned into
quoted FTS5 terms, never passed raw (sqlite_search.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from service.storage import sqlite_refine, sqlite_voices
from service.storage.query import tokenize, window
from service.storage.sqlite_lease import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  created_at REAL NOT NULL,
  ended_at REAL,
  duration_s REAL NOT NULL DEFAULT 0,
  language TEXT NOT NULL,
  model TEXT NOT NULL,
  status INTEGER NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '[]',
  keywords TEXT NOT NULL DEFAULT '[]',
  speaker_names TEXT NOT NULL DEFAULT '{}',
  segment_count INTEGER NOT NULL DEFAULT 0,
  recording_mime TEXT NOT NULL DEFAULT '',
  epoch INTEGER NOT NULL DEFAULT 0,
  lease_until REAL NOT NULL DEFAULT 0,
  lease_holder TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS transcripts_owner_created ON transcripts (owner, created_at DESC, id);
CREATE TABLE IF NOT EXISTS segments (
  transcript_id TEXT NOT NULL REFERENCES transcripts(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  start_s REAL NOT NULL,
  end_s REAL NOT NULL,
  text TEXT NOT NULL,
  confidence REAL NOT NULL,
  speaker TEXT NOT NULL DEFAULT '',
  words TEXT NOT NULL,
  UNIQUE (transcript_id, idx)
);
"""
# The segment search index. `text` is the window as spoken (not indexed); `terms` is its
# tokens as query.tokenize folds them (accents, case, CJK character pairs), so the index
# and the query side share one tokenizer; unicode61 then only splits on the spaces.
FTS = (
    "CREATE VIRTUAL TABLE segments_fts USING fts5(text UNINDEXED, terms,"
    " tokenize = 'unicode61 remove_diacritics 2 categories ''L* N* Co M*''')"
)
# Columns added since the first schema: (name, declaration) for ALTER TABLE.
ADDED_COLUMNS = (
    ("epoch", "INTEGER NOT NULL DEFAULT 0"),
    ("lease_until", "REAL NOT NULL DEFAULT 0"),
    ("lease_holder", "TEXT NOT NULL DEFAULT ''"),
    *sqlite_refine.COLUMNS,
    ("speaker_state", "TEXT NOT NULL DEFAULT ''"),
    ("language_detected", "INTEGER NOT NULL DEFAULT 0"),
)
# The same for segments: `decoding` is domain.Decoding's number (0: first pass).
ADDED_SEGMENT_COLUMNS = (("decoding", "INTEGER NOT NULL DEFAULT 0"),)


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the database file with the schema current."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(SCHEMA)
    for table, columns in (("transcripts", ADDED_COLUMNS), ("segments", ADDED_SEGMENT_COLUMNS)):
        have = {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns:
            if name not in have:  # a database made before the column existed
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
    conn.execute(sqlite_refine.INDEX)
    conn.execute(sqlite_voices.SCHEMA)
    _ensure_fts(conn)
    return conn


def index_window(conn: sqlite3.Connection, rowid: int, indexed: str) -> None:
    """Add the search row of one segment's window (query.window)."""
    conn.execute(
        "INSERT INTO segments_fts (rowid, text, terms) VALUES (?, ?, ?)",
        (rowid, indexed, " ".join(tokenize(indexed))),
    )


def _ensure_fts(conn: sqlite3.Connection) -> None:
    """Create the search index, or rebuild it when the database was made by a version
    that tokenized differently (plain unicode61 on the text: no accent folding, no CJK)."""

    def current() -> bool:
        sql = "SELECT sql FROM sqlite_master WHERE name = 'segments_fts'"
        row = conn.execute(sql).fetchone()
        return row is not None and row["sql"] == FTS

    def rebuild() -> None:
        if current():  # another process rebuilt it while this one waited for the lock
            return
        conn.execute("DROP TABLE IF EXISTS segments_fts")
        conn.execute(FTS)
        rows = conn.execute(
            "SELECT s.rowid, s.text, p.text AS p_text FROM segments s LEFT JOIN segments p"
            " ON p.transcript_id = s.transcript_id AND p.idx = s.idx - 1"
        ).fetchall()
        for r in rows:
            index_window(conn, r["rowid"], window(r["p_text"] or "", r["text"])[0])

    if not current():
        transaction(conn, rebuild)
