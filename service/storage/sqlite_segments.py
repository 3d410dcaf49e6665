"""Final segments on SQLite: one row of `segments` per (transcript, index), its words as
compact JSON, and its row in the FTS5 index (sqlite_schema.py), which holds the segment's
window (the previous segment's text and its own: query.window). A replaced segment's row
and the next segment's row are rewritten in the same transaction as the segment, so
search finds the new text, never the old.

Functions take the store's connection and run on its one thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from service.domain import Decoding, Segment, Word
from service.storage.query import window
from service.storage.sqlite_lease import fence, transaction
from service.storage.sqlite_schema import index_window
from service.storage.sqlite_transcripts import owned


def _words_json(words: Sequence[Word]) -> str:
    return json.dumps([[w.text, w.start, w.end, w.probability] for w in words])


def _words(raw: str) -> tuple[Word, ...]:
    return tuple(Word(str(t), float(s), float(e), float(p)) for t, s, e, p in json.loads(raw))


def append(
    conn: sqlite3.Connection,
    owner: str,
    transcript_id: str,
    segments: Sequence[Segment],
    epoch: int | None,
) -> None:
    """Add or replace segments by index, their search rows and the transcript's count and
    duration, in one transaction fenced by the writer's epoch."""
    latest = {s.index: s for s in segments}  # a later revision in the batch wins
    owned(conn, owner, transcript_id)
    if not latest:
        return
    # The batch's indexes and their neighbours: a segment's indexed window holds the
    # previous segment's text, so a replacement changes the next one's window too.
    around = set(latest) | {i - 1 for i in latest} | {i + 1 for i in latest}

    def write() -> None:
        fence(conn, transcript_id, epoch)
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
                seg.decoding.value,
            )
            if seg.index in stored:
                conn.execute(
                    "UPDATE segments SET start_s = ?, end_s = ?, text = ?, confidence = ?,"
                    " speaker = ?, words = ?, decoding = ? WHERE rowid = ?",
                    (*values, rowids[seg.index]),
                )
            else:
                cur = conn.execute(
                    "INSERT INTO segments (start_s, end_s, text, confidence, speaker,"
                    " words, decoding, transcript_id, idx) VALUES (?,?,?,?,?,?,?,?,?)",
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
            index_window(conn, rowids[i], indexed)
        conn.execute(
            "UPDATE transcripts SET segment_count ="
            " (SELECT COUNT(*) FROM segments WHERE transcript_id = ?),"
            " duration_s = MAX(duration_s, ?) WHERE id = ?",
            (transcript_id, max(s.end for s in latest.values()), transcript_id),
        )

    transaction(conn, write)


def get(conn: sqlite3.Connection, owner: str, transcript_id: str) -> list[Segment]:
    """All segments of the owner's transcript, in index order."""
    owned(conn, owner, transcript_id)
    rows = conn.execute(
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
            decoding=Decoding(r["decoding"]),
        )
        for r in rows
    ]


def delete_transcript(conn: sqlite3.Connection, owner: str, transcript_id: str) -> None:
    """The transcript, its segments and their search rows, in one transaction."""
    owned(conn, owner, transcript_id)

    def delete() -> None:
        conn.execute(
            "DELETE FROM segments_fts WHERE rowid IN"
            " (SELECT rowid FROM segments WHERE transcript_id = ?)",
            (transcript_id,),
        )
        conn.execute("DELETE FROM segments WHERE transcript_id = ?", (transcript_id,))
        conn.execute("DELETE FROM transcripts WHERE id = ?", (transcript_id,))

    transaction(conn, delete)
