"""Transcript metadata on SQLite: one row of the `transcripts` table per transcript, its
conversion to TranscriptMeta, the owner check every read and write starts with, and the
writes and reads of the metadata alone (segments: sqlite_segments.py).

Functions take the store's connection and run on its one thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from service.domain import TranscriptMeta, TranscriptStatus
from service.errors import NotFoundError
from service.storage import sqlite_refine
from service.storage.query import decode_page_token, encode_page_token
from service.storage.sqlite_lease import fence


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def meta(row: sqlite3.Row) -> TranscriptMeta:
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
        language_detected=bool(row["language_detected"]),
        speaker_state=row["speaker_state"] if "speaker_state" in row.keys() else "",
    )


def owned(conn: sqlite3.Connection, owner: str, transcript_id: str) -> sqlite3.Row:
    """The owner's transcript row; NotFoundError if missing or another owner's."""
    row = conn.execute(
        "SELECT * FROM transcripts WHERE id = ? AND owner = ?", (transcript_id, owner)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"transcript {transcript_id!r} not found")
    return row  # type: ignore[no-any-return]


def get(conn: sqlite3.Connection, owner: str, transcript_id: str) -> TranscriptMeta:
    return meta(owned(conn, owner, transcript_id))


def create(conn: sqlite3.Connection, m: TranscriptMeta) -> None:
    conn.execute(
        "INSERT INTO transcripts (id, owner, created_at, ended_at, duration_s, language,"
        " model, status, title, tags, keywords, speaker_names, segment_count,"
        " recording_mime, language_detected) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            m.id,
            m.owner,
            _ts(m.created_at),
            _ts(m.ended_at),
            m.duration_s,
            m.language,
            m.model,
            m.status.value,
            m.title,
            json.dumps(list(m.tags)),
            json.dumps(list(m.keywords)),
            json.dumps(m.speaker_names),
            m.segment_count,
            m.recording_mime_type,
            int(m.language_detected),
        ),
    )


def name_unnamed(
    conn: sqlite3.Connection, owner: str, transcript_id: str, names: Mapping[str, str]
) -> dict[str, str]:
    """TranscriptStore.name_unnamed_speakers: per label one UPDATE whose WHERE clause is
    the condition (the label absent or ""), atomic against every connection and process
    sharing the file; then the whole map."""
    owned(conn, owner, transcript_id)
    for label, name in names.items():
        if '"' in label:  # a JSON path cannot quote it; labels are S1, S2 ...
            raise ValueError(f"speaker label {label!r} contains a double quote")
        path = f'$."{label}"'
        conn.execute(
            "UPDATE transcripts SET speaker_names = json_set(speaker_names, ?, ?)"
            " WHERE id = ? AND owner = ? AND COALESCE(json_extract(speaker_names, ?), '') = ''",
            (path, name, transcript_id, owner, path),
        )
    return dict(json.loads(owned(conn, owner, transcript_id)["speaker_names"]))


def set_recording(
    conn: sqlite3.Connection, owner: str, transcript_id: str, mime_type: str, epoch: int | None
) -> None:
    """Inside a transaction, fenced by the writer's epoch."""
    owned(conn, owner, transcript_id)
    fence(conn, transcript_id, epoch)
    conn.execute(
        "UPDATE transcripts SET recording_mime = ? WHERE id = ?", (mime_type, transcript_id)
    )


def list_page(
    conn: sqlite3.Connection,
    owner: str,
    page_size: int,
    page_token: str,
    tags: Sequence[str],
    created_after: datetime | None,
    created_before: datetime | None,
) -> tuple[list[TranscriptMeta], str]:
    """A page of the owner's transcripts, newest first; the token is the last one's
    (created_at, id), so pages stay stable while transcripts are added."""
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
    rows = conn.execute(sql, [*args, page_size + 1]).fetchall()
    metas = [meta(r) for r in rows[:page_size]]
    token = ""
    if len(rows) > page_size:
        last = rows[page_size - 1]
        token = encode_page_token({"c": last["created_at"], "i": last["id"]})
    return metas, token
