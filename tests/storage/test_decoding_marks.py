"""What the store keeps about how a transcript was decoded, on both backends (SQLite and
a real DynamoDB Local): each segment's `decoding` (first pass, second pass, refined),
which refinement reads to keep a second pass's text, and the transcript's
`language_detected`, which makes refinement check a detected language again. Both are
stored, so any replica and a restarted server see them; an SQLite file made before
either existed is migrated on open and reads as first pass / not detected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from service.domain import Decoding
from service.storage.base import TranscriptStore
from service.storage.sqlite import SQLiteTranscriptStore
from tests.storage import test_store_contract
from tests.storage.test_store_contract import meta, seg

store = test_store_contract.store  # the same fixture: every backend


async def test_each_segment_keeps_how_it_was_decoded(store: TranscriptStore) -> None:
    await store.create_transcript(meta("k1"))
    await store.append_segments(
        "alice", "k1", [seg(0, "Hello world.", 0.5), seg(1, "How are yo?", 2.0)]
    )
    assert [s.decoding for s in await store.get_segments("alice", "k1")] == [
        Decoding.FIRST_PASS,
        Decoding.FIRST_PASS,
    ]
    # The second pass revises segment 1; refinement later rewrites segment 0.
    second = dataclasses.replace(seg(1, "How are you?", 2.0), decoding=Decoding.SECOND_PASS)
    await store.append_segments("alice", "k1", [second])
    refined = dataclasses.replace(seg(0, "Hello, world.", 0.5), decoding=Decoding.REFINED)
    await store.append_segments("alice", "k1", [refined])
    got = await store.get_segments("alice", "k1")
    assert [(s.text, s.decoding) for s in got] == [
        ("Hello, world.", Decoding.REFINED),
        ("How are you?", Decoding.SECOND_PASS),
    ]
    # A later write of an index without the mark (a relabel) stores what it says.
    await store.append_segments("alice", "k1", [seg(1, "How are you?", 2.0)])
    assert (await store.get_segments("alice", "k1"))[1].decoding is Decoding.FIRST_PASS


async def test_a_detected_language_is_marked_so(store: TranscriptStore) -> None:
    await store.create_transcript(dataclasses.replace(meta("d1"), language="", model="base"))
    await store.create_transcript(dataclasses.replace(meta("g1"), language="es", model="base"))
    assert not (await store.get_transcript("alice", "d1")).language_detected
    updated = await store.update_transcript("alice", "d1", language="de", language_detected=True)
    got = await store.get_transcript("alice", "d1")
    assert (updated.language_detected, got.language_detected, got.language) == (True, True, "de")
    # Other updates leave it; a given language is never marked.
    await store.update_transcript("alice", "d1", title="Besprechung", language="fr")
    assert (await store.get_transcript("alice", "d1")).language_detected
    assert not (await store.get_transcript("alice", "g1")).language_detected
    listed = {m.id: m.language_detected for m in (await store.list_transcripts("alice", 10, ""))[0]}
    assert listed == {"d1": True, "g1": False}
    # Created detected (an upload whose language a refinement detected is stored so too).
    await store.create_transcript(
        dataclasses.replace(meta("u1"), language="de", language_detected=True)
    )
    assert (await store.get_transcript("alice", "u1")).language_detected


async def test_an_older_sqlite_file_gains_both_columns_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    s = await SQLiteTranscriptStore(path).open()
    await s.create_transcript(meta("o1"))
    await s.append_segments("alice", "o1", [seg(0, "Stored before the marks.", 0.5)])
    # What the previous version made: neither column.
    s.conn.execute("ALTER TABLE segments DROP COLUMN decoding")
    s.conn.execute("ALTER TABLE transcripts DROP COLUMN language_detected")
    await s.close()
    s = await SQLiteTranscriptStore(path).open()
    try:
        assert (await s.get_segments("alice", "o1"))[0].decoding is Decoding.FIRST_PASS
        assert not (await s.get_transcript("alice", "o1")).language_detected
        second = dataclasses.replace(seg(1, "Revised later.", 3.0), decoding=Decoding.SECOND_PASS)
        await s.append_segments("alice", "o1", [second])
        await s.update_transcript("alice", "o1", language_detected=True)
        assert (await s.get_segments("alice", "o1"))[1].decoding is Decoding.SECOND_PASS
        assert (await s.get_transcript("alice", "o1")).language_detected
    finally:
        await s.close()
