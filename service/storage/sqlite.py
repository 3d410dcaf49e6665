"""SQLite transcript store: the embedded default.

One connection used from one dedicated thread (SQLite is fast enough that a
single writer keeps up with many streams, and it keeps the event loop free).
WAL mode lets readers proceed while a stream writes. This class is the async face
of the store: each method runs on that thread, mostly as one function of the module
that owns its concern. The schema and its FTS5 search index: sqlite_schema;
transcript metadata: sqlite_transcripts; segments and their index rows:
sqlite_segments; the writer lease: sqlite_lease; search: sqlite_search; refinement
jobs: sqlite_refine; remembered voices: sqlite_voices.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from service.domain import (
    Refinement,
    SearchHit,
    Segment,
    TranscriptMeta,
    TranscriptStatus,
    Voice,
)
from service.errors import UnavailableError
from service.storage import (
    sqlite_refine,
    sqlite_schema,
    sqlite_search,
    sqlite_segments,
    sqlite_transcripts,
    sqlite_voices,
)
from service.storage.lease import Lease
from service.storage.query import decode_page_token, parse_query
from service.storage.speaker_filter import check_speaker
from service.storage.sqlite_lease import acquire, fence, release, renew, transaction
from service.storage.sqlite_schema import FTS as FTS  # re-exported: tests check the index
from service.storage.sqlite_transcripts import owned
from service.threads import named_executor

T = TypeVar("T")

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
        self._conn = sqlite_schema.connect(self.path)

    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kw))
        except sqlite3.OperationalError as exc:
            if any(s in str(exc) for s in UNAVAILABLE_MARKERS):
                raise UnavailableError(
                    f"transcript storage is unavailable ({exc}); retry shortly"
                ) from exc
            raise

    async def _in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, *args) inside BEGIN IMMEDIATE, on the store's thread."""
        conn = self.conn
        return await self._run(transaction, conn, functools.partial(fn, conn, *args))

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "store not opened"
        return self._conn

    # ---- the writer lease -----------------------------------------------
    async def acquire_lease(
        self, owner: str, transcript_id: str, holder: str, lease_s: float
    ) -> Lease:
        def do(conn: sqlite3.Connection) -> Lease:
            return acquire(conn, owned(conn, owner, transcript_id), holder, lease_s)

        return await self._in_transaction(do)

    async def renew_lease(
        self,
        owner: str,
        transcript_id: str,
        epoch: int,
        lease_s: float,
        speaker_state: str | None = None,
    ) -> Lease:
        def do(conn: sqlite3.Connection) -> Lease:
            owned(conn, owner, transcript_id)
            return renew(conn, transcript_id, epoch, lease_s, speaker_state)

        return await self._in_transaction(do)

    async def release_lease(self, owner: str, transcript_id: str, epoch: int) -> None:
        def do(conn: sqlite3.Connection) -> None:
            owned(conn, owner, transcript_id)
            release(conn, transcript_id, epoch)

        await self._run(do, self.conn)

    # ---- writes ---------------------------------------------------------
    async def create_transcript(self, meta: TranscriptMeta) -> None:
        await self._run(sqlite_transcripts.create, self.conn, meta)

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        await self._run(sqlite_segments.append, self.conn, owner, transcript_id, segments, epoch)

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
        def do(conn: sqlite3.Connection) -> None:
            owned(conn, owner, transcript_id)
            fence(conn, transcript_id, epoch)
            conn.execute(
                "UPDATE transcripts SET status = ?, ended_at = ?, duration_s = MAX(duration_s, ?),"
                " keywords = ?, lease_until = CASE WHEN ? THEN 0 ELSE lease_until END,"
                " speaker_state = COALESCE(?, speaker_state) WHERE id = ?",
                (
                    status.value,
                    ended_at.timestamp(),
                    duration_s,
                    json.dumps(list(keywords)),
                    epoch is not None,
                    speaker_state,
                    transcript_id,
                ),
            )

        await self._in_transaction(do)

    async def set_recording(
        self, owner: str, transcript_id: str, mime_type: str, epoch: int | None = None
    ) -> None:
        await self._in_transaction(
            sqlite_transcripts.set_recording, owner, transcript_id, mime_type, epoch
        )

    async def update_transcript(
        self,
        owner: str,
        transcript_id: str,
        *,
        title: str | None = None,
        tags: Sequence[str] | None = None,
        speaker_names: dict[str, str] | None = None,
        language: str | None = None,
        language_detected: bool | None = None,
    ) -> TranscriptMeta:
        def do(conn: sqlite3.Connection) -> TranscriptMeta:
            owned(conn, owner, transcript_id)
            if title is not None:
                conn.execute(
                    "UPDATE transcripts SET title = ? WHERE id = ?", (title, transcript_id)
                )
            if tags is not None:
                conn.execute(
                    "UPDATE transcripts SET tags = ? WHERE id = ?",
                    (json.dumps(list(tags)), transcript_id),
                )
            if speaker_names is not None:
                conn.execute(
                    "UPDATE transcripts SET speaker_names = ? WHERE id = ?",
                    (json.dumps(speaker_names), transcript_id),
                )
            if language is not None:
                conn.execute(
                    "UPDATE transcripts SET language = ? WHERE id = ?", (language, transcript_id)
                )
            if language_detected is not None:
                conn.execute(
                    "UPDATE transcripts SET language_detected = ? WHERE id = ?",
                    (int(language_detected), transcript_id),
                )
            return sqlite_transcripts.get(conn, owner, transcript_id)

        return await self._run(do, self.conn)

    async def name_unnamed_speakers(
        self, owner: str, transcript_id: str, names: Mapping[str, str]
    ) -> dict[str, str]:
        return await self._run(
            sqlite_transcripts.name_unnamed, self.conn, owner, transcript_id, dict(names)
        )

    async def delete_transcript(self, owner: str, transcript_id: str) -> None:
        await self._run(sqlite_segments.delete_transcript, self.conn, owner, transcript_id)

    # ---- reads ----------------------------------------------------------
    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta:
        return await self._run(sqlite_transcripts.get, self.conn, owner, transcript_id)

    async def get_segments(self, owner: str, transcript_id: str) -> list[Segment]:
        return await self._run(sqlite_segments.get, self.conn, owner, transcript_id)

    async def list_transcripts(
        self,
        owner: str,
        page_size: int,
        page_token: str,
        tags: Sequence[str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[TranscriptMeta], str]:
        args = (owner, page_size, page_token, tags, created_after, created_before)
        return await self._run(sqlite_transcripts.list_page, self.conn, *args)

    async def search(
        self, owner: str, query: str, page_size: int, page_token: str, speaker: str = ""
    ) -> tuple[list[SearchHit], str]:
        parsed = parse_query(query)
        speaker = check_speaker(speaker)
        offset = 0
        if page_token:
            raw = decode_page_token(page_token, {"o": (int,)}).get("o", 0)
            offset = raw if isinstance(raw, int) and raw >= 0 else 0

        def do(conn: sqlite3.Connection) -> tuple[list[SearchHit], str]:
            found, token = sqlite_search.segment_hits(
                conn, owner, parsed, page_size, offset, speaker
            )
            if page_token or speaker:  # title hits: first page, and a title has no speaker
                return found, token
            return sqlite_search.title_hits(conn, owner, parsed, page_size) + found, token

        return await self._run(do, self.conn)

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

    # ---- remembered voices (service/speakers/voices.py) -------------------
    async def put_voice(self, owner: str, voice: Voice) -> None:
        await self._run(sqlite_voices.put, self.conn, owner, voice)

    async def list_voices(self, owner: str) -> list[Voice]:
        return await self._run(sqlite_voices.list_voices, self.conn, owner)

    async def delete_voice(self, owner: str, name: str) -> None:
        await self._run(sqlite_voices.delete, self.conn, owner, name)
