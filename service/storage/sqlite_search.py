"""Segment search on SQLite: the FTS5 index narrows to segment windows, then each row
is checked (query.locate) and, when a speaker is asked for, filtered by who spoke the
matching segment (speaker_filter). Pages are offsets into the FTS result; a page token
is given only when another hit exists, found by reading one hit ahead. The first page
also lists the transcripts whose title or tags match (query.transcript_hit).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from service.domain import SearchHit
from service.storage.query import (
    SearchQuery,
    encode_page_token,
    locate,
    transcript_hit,
)
from service.storage.speaker_filter import name_of, speaker_matches
from service.storage.sqlite_transcripts import meta

_ROWS = (
    "SELECT s.transcript_id, t.title, s.idx, s.start_s, s.text, t.created_at, s.words,"
    " s.speaker, t.speaker_names, p.start_s AS p_start, p.text AS p_text, p.words AS p_words,"
    " p.speaker AS p_speaker"
    " FROM segments_fts f JOIN segments s ON s.rowid = f.rowid"
    " JOIN transcripts t ON t.id = s.transcript_id"
    " LEFT JOIN segments p ON p.transcript_id = s.transcript_id AND p.idx = s.idx - 1"
    " WHERE segments_fts MATCH ? AND t.owner = ?"
    " ORDER BY t.created_at DESC, s.transcript_id, s.idx LIMIT ? OFFSET ?"
)


def _starts(raw: str | None) -> list[float]:
    return [float(w[1]) for w in json.loads(raw)] if raw else []


def _hit(row: sqlite3.Row, parsed: SearchQuery, speaker: str) -> SearchHit | None:
    found = locate(row["p_text"] or "", row["text"], parsed)
    if found is None:
        return None
    names: dict[str, str] = json.loads(row["speaker_names"])
    label = (row["p_speaker"] or "") if found.in_previous else row["speaker"]
    if not speaker_matches(label, names, speaker):
        return None
    starts = _starts(row["p_words"]) + _starts(row["words"])
    start = row["p_start"] if found.in_previous else row["start_s"]
    if found.word < len(starts):  # where the matched words are spoken
        start = starts[found.word]
    return SearchHit(
        transcript_id=row["transcript_id"],
        transcript_title=row["title"],
        segment_index=row["idx"] - 1 if found.in_previous else row["idx"],
        start=start,
        snippet=found.snippet,
        highlights=found.highlights,
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        speaker_label=label,
        speaker_name=name_of(label, names),
    )


def segment_hits(
    conn: sqlite3.Connection,
    owner: str,
    parsed: SearchQuery,
    page_size: int,
    offset: int,
    speaker: str = "",
) -> tuple[list[SearchHit], str]:
    """A page of segment hits from `offset` and the token of the next page ("" if none)."""
    match = " ".join('"' + " ".join(term) + '"' for term in parsed.terms)
    hits: list[tuple[SearchHit, int]] = []  # each with the offset just past its row
    pos = offset
    batch = page_size * 2
    while True:
        rows = conn.execute(_ROWS, (match, owner, batch, pos)).fetchall()
        for r in rows:
            pos += 1
            hit = _hit(r, parsed, speaker)
            if hit is None:
                continue
            hits.append((hit, pos))
            if len(hits) > page_size:  # one hit past the page: there is a next page
                return [h for h, _ in hits[:page_size]], encode_page_token(
                    {"o": hits[page_size - 1][1]}
                )
        if len(rows) < batch:
            return [h for h, _ in hits], ""


def title_hits(
    conn: sqlite3.Connection, owner: str, parsed: SearchQuery, page_size: int
) -> list[SearchHit]:
    """Transcripts by title and tags (first page only, not counted in page_size)."""
    hits: list[SearchHit] = []
    rows = conn.execute(
        "SELECT * FROM transcripts WHERE owner = ? AND (title != '' OR tags != '[]')"
        " ORDER BY created_at DESC, id",
        (owner,),
    )
    for r in rows:
        hit = transcript_hit(meta(r), parsed)
        if hit is not None:
            hits.append(hit)
            if len(hits) == page_size:
                break
    return hits
