"""SQLite transcript store: the embedded default.

One connection used from one dedicated thread (SQLite is fast enough that a
single writer keeps up with many streams, and it keeps the event loop free).
WAL mode lets readers proceed while a stream writes. Segment text is indexed
with FTS5 (one row per segment, its window: see query.window, as the tokens of
query.tokenize, which DynamoDB's index shares); user queries are turned into
quoted FTS5 terms, never passed raw. A replaced segment's row and the
next segment's row are rewritten in the same transaction as the segment.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from service.domain import Refinement, SearchHit, Segment, TranscriptMeta, TranscriptStatus, Word
from service.errors import NotFoundError, UnavailableError
from service.storage import sqlite_refine
from service.storage.lease import Lease
from service.storage.query import (
    decode_page_token,
    encode_page_token,
    locate,
    parse_query,
    tokenize,
    transcript_hit,
    window,
)
from service.storage.sqlite_lease import acquire, fence, release, renew, transaction
from service.threads import named_executor

T = TypeVar("T")

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
)


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _meta(row: sqlite3.Row) -> TranscriptMeta:
    created = _dt(row["created_at"])
    assert created is not None
    return TranscriptMeta(
        id=row["id"],
        owner=row["owner"],
        created_at=created,
        status=TranscriptStatus(row["status"]),
        language=row["language"],
        model=row["model"],
        title=row["title"],
        tags=tuple(json.loads(row["tags"])),
        ended_at=_dt(row["ended_at"]),
        duration_s=row["duration_s"],
        keywords=tuple(json.loads(row["keywords"])),
        speaker_names=dict(json.loads(row["speaker_names"])),
        segment_count=row["segment_count"],
        recording_mime_type=row["recording_mime"],
        refinement=sqlite_refine.refinement(row),
        speaker_state=row["speaker_state"] if "speaker_state" in row.keys() else "",
    )


def _words_json(words: Sequence[Word]) -> str:
    return json.dumps([[w.text, w.start, w.end, w.probability] for w in words])


def _words(raw: str) -> tuple[Word, ...]:
    return tuple(Word(str(t), float(s), float(e), float(p)) for t, s, e, p in json.loads(raw))


def _index(conn: sqlite3.Connection, rowid: int, indexed: str) -> None:
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

    if current():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if current():  # another process rebuilt it while this one waited for the lock
            conn.execute("COMMIT")
            return
        conn.execute("DROP TABLE IF EXISTS segments_fts")
        conn.execute(FTS)
        rows = conn.execute(
            "SELECT s.rowid, s.text, p.text AS p_text FROM segments s LEFT JOIN segments p"
            " ON p.transcript_id = s.transcript_id AND p.idx = s.idx - 1"
        ).fetchall()
        for r in rows:
            _index(conn, r["rowid"], window(r["p_text"] or "", r["text"])[0])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# SQLite errors that mean "the database cannot be used right now", not "bad request".
UNAVAILABLE_MARKERS = ("locked", "readonly", "read-only", "disk I/O", "unable to open", "full")


class SQLiteTranscriptStore:
    """TranscriptStore on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = named_executor(1, "sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> SQLiteTranscriptStore:
        await self._run(self._open)
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(SCHEMA)
        have = {r["name"] for r in conn.execute("PRAGMA table_info(transcripts)")}
        for name, decl in ADDED_COLUMNS:
            if name not in have:  # a database made before the column existed
                conn.execute(f"ALTER TABLE transcripts ADD COLUMN {name} {decl}")
        conn.execute(sqlite_refine.INDEX)
        _ensure_fts(conn)
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            if any(s in str(exc) for s in UNAVAILABLE_MARKERS):
                raise UnavailableError(
                    f"transcript storage is unavailable ({exc}); retry shortly"
                ) from exc
            raise

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "store not opened"
        return self._conn

    def _owned(self, owner: str, transcript_id: str) -> sqlite3.Row:
        row = self.conn.execute(
            "SELECT * FROM transcripts WHERE id = ? AND owner = ?", (transcript_id, owner)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"transcript {transcript_id!r} not found")
        return row  # type: ignore[no-any-return]

    def _fence(self, transcript_id: str, epoch: int | None) -> None:
        fence(self.conn, transcript_id, epoch)

    def _transaction(self, fn: Callable[[], T]) -> T:
        return transaction(self.conn, fn)

    # ---- the writer lease -----------------------------------------------
    async def acquire_lease(
        self, owner: str, transcript_id: str, holder: str, lease_s: float
    ) -> Lease:
        def do() -> Lease:
            return acquire(self.conn, self._owned(owner, transcript_id), holder, lease_s)

        return await self._run(self._transaction, do)

    async def renew_lease(
        self, owner: str, transcript_id: str, epoch: int, lease_s: float
    ) -> Lease:
        def do() -> Lease:
            self._owned(owner, transcript_id)
            return renew(self.conn, transcript_id, epoch, lease_s)

        return await self._run(self._transaction, do)

    async def release_lease(self, owner: str, transcript_id: str, epoch: int) -> None:
        def do() -> None:
            self._owned(owner, transcript_id)
            release(self.conn, transcript_id, epoch)

        await self._run(do)

    # ---- writes ---------------------------------------------------------
    async def create_transcript(self, meta: TranscriptMeta) -> None:
        def do() -> None:
            self.conn.execute(
                "INSERT INTO transcripts (id, owner, created_at, ended_at, duration_s, language,"
                " model, status, title, tags, keywords, speaker_names, segment_count,"
                " recording_mime) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    meta.id,
                    meta.owner,
                    _ts(meta.created_at),
                    _ts(meta.ended_at),
                    meta.duration_s,
                    meta.language,
                    meta.model,
                    meta.status.value,
                    meta.title,
                    json.dumps(list(meta.tags)),
                    json.dumps(list(meta.keywords)),
                    json.dumps(meta.speaker_names),
                    meta.segment_count,
                    meta.recording_mime_type,
                ),
            )

        await self._run(do)

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        latest = {s.index: s for s in segments}  # a later revision in the batch wins

        def do() -> None:
            conn = self.conn
            self._owned(owner, transcript_id)
            if not latest:
                return
            # The batch's indexes and their neighbours: a segment's indexed window holds the
            # previous segment's text, so a replacement changes the next one's window too.
            around = set(latest) | {i - 1 for i in latest} | {i + 1 for i in latest}
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._fence(transcript_id, epoch)
                stored = {
                    r["idx"]: r
                    for r in conn.execute(
                        "SELECT rowid, idx, text FROM segments WHERE transcript_id = ?"
                        " AND idx IN (SELECT value FROM json_each(?))",
                        (transcript_id, json.dumps(sorted(around))),
                    )
                }
                rowids = {i: r["rowid"] for i, r in stored.items()}
                before = {i: r["text"] for i, r in stored.items()}
                texts = dict(before)
                for seg in sorted(latest.values(), key=lambda s: s.index):
                    values = (
                        seg.start,
                        seg.end,
                        seg.text,
                        seg.confidence,
                        seg.speaker_label,
                        _words_json(seg.words),
                    )
                    if seg.index in stored:
                        conn.execute(
                            "UPDATE segments SET start_s = ?, end_s = ?, text = ?, confidence = ?,"
                            " speaker = ?, words = ? WHERE rowid = ?",
                            (*values, rowids[seg.index]),
                        )
                    else:
                        cur = conn.execute(
                            "INSERT INTO segments (start_s, end_s, text, confidence, speaker,"
                            " words, transcript_id, idx) VALUES (?,?,?,?,?,?,?,?)",
                            (*values, transcript_id, seg.index),
                        )
                        rowids[seg.index] = cur.lastrowid
                    texts[seg.index] = seg.text
                # A stored segment after one whose text changed gets a new window as well.
                nexts = {
                    i + 1
                    for i, s in latest.items()
                    if i + 1 in stored and i + 1 not in latest and before.get(i) != s.text
                }
                for i in sorted(set(latest) | nexts):
                    if i in stored:
                        conn.execute("DELETE FROM segments_fts WHERE rowid = ?", (rowids[i],))
                    indexed, _ = window(texts.get(i - 1, ""), texts[i])
                    _index(conn, rowids[i], indexed)
                conn.execute(
                    "UPDATE transcripts SET segment_count ="
                    " (SELECT COUNT(*) FROM segments WHERE transcript_id = ?),"
                    " duration_s = MAX(duration_s, ?) WHERE id = ?",
                    (transcript_id, max(s.end for s in latest.values()), transcript_id),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(do)

    async def finish_transcript(
        self,
        owner: str,
        transcript_id: str,
        status: TranscriptStatus,
        ended_at: datetime,
        duration_s: float,
        keywords: Sequence[str],
        epoch: int | None = None,
        speaker_state: str | None = None,
    ) -> None:
        def do() -> None:
            self._owned(owner, transcript_id)
            self._fence(transcript_id, epoch)
            self.conn.execute(
                "UPDATE transcripts SET status = ?, ended_at = ?, duration_s = MAX(duration_s, ?),"
                " keywords = ?, lease_until = CASE WHEN ? THEN 0 ELSE lease_until END,"
                " speaker_state = COALESCE(?, speaker_state) WHERE id = ?",
                (
                    status.value,
                    _ts(ended_at),
                    duration_s,
                    json.dumps(list(keywords)),
                    epoch is not None,
                    speaker_state,
                    transcript_id,
                ),
            )

        await self._run(self._transaction, do)

    async def set_recording(
        self, owner: str, transcript_id: str, mime_type: str, epoch: int | None = None
    ) -> None:
        def do() -> None:
            self._owned(owner, transcript_id)
            self._fence(transcript_id, epoch)
            self.conn.execute(
                "UPDATE transcripts SET recording_mime = ? WHERE id = ?", (mime_type, transcript_id)
            )

        await self._run(self._transaction, do)

    async def update_transcript(
        self,
        owner: str,
        transcript_id: str,
        *,
        title: str | None = None,
        tags: Sequence[str] | None = None,
        speaker_names: dict[str, str] | None = None,
        language: str | None = None,
    ) -> TranscriptMeta:
        def do() -> TranscriptMeta:
            self._owned(owner, transcript_id)
            if title is not None:
                self.conn.execute(
                    "UPDATE transcripts SET title = ? WHERE id = ?", (title, transcript_id)
                )
            if tags is not None:
                self.conn.execute(
                    "UPDATE transcripts SET tags = ? WHERE id = ?",
                    (json.dumps(list(tags)), transcript_id),
                )
            if speaker_names is not None:
                self.conn.execute(
                    "UPDATE transcripts SET speaker_names = ? WHERE id = ?",
                    (json.dumps(speaker_names), transcript_id),
                )
            if language is not None:
                self.conn.execute(
                    "UPDATE transcripts SET language = ? WHERE id = ?", (language, transcript_id)
                )
            return _meta(self._owned(owner, transcript_id))

        return await self._run(do)

    async def delete_transcript(self, owner: str, transcript_id: str) -> None:
        def do() -> None:
            conn = self.conn
            self._owned(owner, transcript_id)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM segments_fts WHERE rowid IN"
                    " (SELECT rowid FROM segments WHERE transcript_id = ?)",
                    (transcript_id,),
                )
                conn.execute("DELETE FROM segments WHERE transcript_id = ?", (transcript_id,))
                conn.execute("DELETE FROM transcripts WHERE id = ?", (transcript_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(do)

    # ---- reads ----------------------------------------------------------
    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta:
        return await self._run(lambda: _meta(self._owned(owner, transcript_id)))

    async def get_segments(self, owner: str, transcript_id: str) -> list[Segment]:
        def do() -> list[Segment]:
            self._owned(owner, transcript_id)
            rows = self.conn.execute(
                "SELECT * FROM segments WHERE transcript_id = ? ORDER BY idx", (transcript_id,)
            ).fetchall()
            return [
                Segment(
                    index=r["idx"],
                    start=r["start_s"],
                    end=r["end_s"],
                    text=r["text"],
                    words=_words(r["words"]),
                    confidence=r["confidence"],
                    speaker_label=r["speaker"],
                )
                for r in rows
            ]

        return await self._run(do)

    async def list_transcripts(
        self,
        owner: str,
        page_size: int,
        page_token: str,
        tags: Sequence[str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[TranscriptMeta], str]:
        where = ["owner = ?"]
        args: list[Any] = [owner]
        if page_token:
            state = decode_page_token(page_token, {"c": (int, float), "i": (str,)})
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [state.get("c"), state.get("c"), state.get("i")]
        for tag in tags:
            where.append("EXISTS (SELECT 1 FROM json_each(transcripts.tags) WHERE value = ?)")
            args.append(tag)
        if created_after is not None:
            where.append("created_at >= ?")
            args.append(_ts(created_after))
        if created_before is not None:
            where.append("created_at < ?")
            args.append(_ts(created_before))
        sql = (
            f"SELECT * FROM transcripts WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        )

        def do() -> tuple[list[TranscriptMeta], str]:
            rows = self.conn.execute(sql, [*args, page_size + 1]).fetchall()
            metas = [_meta(r) for r in rows[:page_size]]
            token = ""
            if len(rows) > page_size:
                last = rows[page_size - 1]
                token = encode_page_token({"c": last["created_at"], "i": last["id"]})
            return metas, token

        return await self._run(do)

    async def search(
        self, owner: str, query: str, page_size: int, page_token: str
    ) -> tuple[list[SearchHit], str]:
        parsed = parse_query(query)
        match = " ".join('"' + " ".join(term) + '"' for term in parsed.terms)
        offset = 0
        if page_token:
            raw = decode_page_token(page_token, {"o": (int,)}).get("o", 0)
            offset = raw if isinstance(raw, int) and raw >= 0 else 0

        def do() -> tuple[list[SearchHit], str]:
            found, token = segment_hits()
            return ([] if page_token else title_hits()) + found, token

        def title_hits() -> list[SearchHit]:
            """Transcripts by title and tags (first page only, not counted in page_size)."""
            hits: list[SearchHit] = []
            rows = self.conn.execute(
                "SELECT * FROM transcripts WHERE owner = ? AND (title != '' OR tags != '[]')"
                " ORDER BY created_at DESC, id",
                (owner,),
            )
            for r in rows:
                hit = transcript_hit(_meta(r), parsed)
                if hit is not None:
                    hits.append(hit)
                    if len(hits) == page_size:
                        break
            return hits

        def segment_hits() -> tuple[list[SearchHit], str]:
            hits: list[SearchHit] = []
            pos = offset
            while len(hits) < page_size:
                rows = self.conn.execute(
                    "SELECT s.transcript_id, t.title, s.idx, s.start_s, s.text, t.created_at,"
                    " s.words, p.start_s AS p_start, p.text AS p_text, p.words AS p_words"
                    " FROM segments_fts f JOIN segments s ON s.rowid = f.rowid"
                    " JOIN transcripts t ON t.id = s.transcript_id"
                    " LEFT JOIN segments p ON p.transcript_id = s.transcript_id"
                    " AND p.idx = s.idx - 1"
                    " WHERE segments_fts MATCH ? AND t.owner = ?"
                    " ORDER BY t.created_at DESC, s.transcript_id, s.idx LIMIT ? OFFSET ?",
                    (match, owner, page_size * 2, pos),
                ).fetchall()
                for r in rows:
                    pos += 1
                    found = locate(r["p_text"] or "", r["text"], parsed)
                    if found is None:
                        continue
                    created = _dt(r["created_at"])
                    assert created is not None
                    words = _words(r["p_words"]) if r["p_words"] else ()
                    words += _words(r["words"])
                    start = r["p_start"] if found.in_previous else r["start_s"]
                    if found.word < len(words):  # where the matched words are spoken
                        start = words[found.word].start
                    hits.append(
                        SearchHit(
                            transcript_id=r["transcript_id"],
                            transcript_title=r["title"],
                            segment_index=r["idx"] - 1 if found.in_previous else r["idx"],
                            start=start,
                            snippet=found.snippet,
                            highlights=found.highlights,
                            created_at=created,
                        )
                    )
                    if len(hits) == page_size:
                        break
                if len(rows) < page_size * 2 and len(hits) < page_size:
                    return hits, ""
            more = self.conn.execute(
                "SELECT 1 FROM segments_fts f JOIN segments s ON s.rowid = f.rowid"
                " JOIN transcripts t ON t.id = s.transcript_id"
                " WHERE segments_fts MATCH ? AND t.owner = ? LIMIT 1 OFFSET ?",
                (match, owner, pos),
            ).fetchone()
            return hits, encode_page_token({"o": pos}) if more else ""

        return await self._run(do)

    async def close(self) -> None:
        def do() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(do)
        self._executor.shutdown(wait=True)

    # ---- refinement jobs (service/refine) --------------------------------
    async def set_refinement(self, owner: str, transcript_id: str, value: Refinement) -> None:
        await self._run(sqlite_refine.set_refinement, self.conn, owner, transcript_id, value)

    async def claim_refinement(
        self, owner: str, transcript_id: str, worker: str, lease_s: float
    ) -> bool:
        return await self._run(
            sqlite_refine.claim, self.conn, owner, transcript_id, worker, lease_s
        )

    async def pending_refinements(self, limit: int) -> list[tuple[str, str]]:
        return await self._run(sqlite_refine.pending, self.conn, limit)
