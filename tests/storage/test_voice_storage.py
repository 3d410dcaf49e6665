"""Remembered voices on both backends (SQLite and a real DynamoDB Local): stored per
principal under a name in any case, replaced when named again, and deleted for good
when forgotten (nothing of the print reads back)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from service.domain import Voice
from service.errors import NotFoundError
from service.storage.base import TranscriptStore
from service.storage.dynamodb import DynamoDBTranscriptStore
from service.storage.sqlite import SQLiteTranscriptStore
from tests.storage import test_store_contract
from tests.storage.test_store_contract import T0

store = test_store_contract.store  # the same fixture: every backend


def voice(name: str, seed: int, tid: str = "m1", label: str = "S1") -> Voice:
    v = np.random.default_rng(seed).standard_normal(256).astype("<f4")
    v /= np.linalg.norm(v)
    return Voice(name, v.tobytes(), 40, tid, label, T0)


async def test_voices_are_per_principal_by_name_and_replaced_when_named_again(
    store: TranscriptStore,
) -> None:
    assert await store.list_voices("alice") == []
    await store.put_voice("alice", voice("Bob", 1))
    await store.put_voice("alice", voice("Carol", 2, label="S2"))
    await store.put_voice("mallory", voice("Bob", 3))
    got = await store.list_voices("alice")
    assert [(v.name, v.transcript_id, v.speaker_label, v.windows) for v in got] == [
        ("Bob", "m1", "S1", 40),
        ("Carol", "m1", "S2", 40),
    ]
    assert got[0] == voice("Bob", 1) and got[0].updated_at == T0
    await store.put_voice("alice", replace(voice("bob", 4, tid="m2"), windows=7))
    got = await store.list_voices("alice")
    assert [(v.name, v.transcript_id, v.windows) for v in got] == [
        ("bob", "m2", 7),
        ("Carol", "m1", 40),
    ]
    assert got[0].embedding == voice("bob", 4).embedding
    assert [v.name for v in await store.list_voices("mallory")] == ["Bob"]


async def test_forgetting_a_voice_deletes_its_print(store: TranscriptStore) -> None:
    await store.put_voice("alice", voice("Bob", 1))
    await store.put_voice("alice", voice("Carol", 2))
    with pytest.raises(NotFoundError):
        await store.delete_voice("mallory", "Bob")  # another principal's: not theirs
    await store.delete_voice("alice", "BOB")
    assert [v.name for v in await store.list_voices("alice")] == ["Carol"]
    with pytest.raises(NotFoundError):
        await store.delete_voice("alice", "Bob")
    # Nothing of the print is left in the storage itself, not only hidden from the API.
    gone = voice("Bob", 1).embedding
    if isinstance(store, SQLiteTranscriptStore):
        conn = sqlite3.connect(store.path)
        rows = conn.execute("SELECT embedding FROM voices").fetchall()
        conn.close()
        assert [bytes(r[0]) for r in rows] == [voice("Carol", 2).embedding]
        files = [p for p in store.path.parent.iterdir() if p.name.startswith(store.path.name)]
        assert all(gone not in p.read_bytes() for p in files)  # not in the db file, nor the WAL
        assert any(voice("Carol", 2).embedding in p.read_bytes() for p in files)
    else:
        assert isinstance(store, DynamoDBTranscriptStore)
        items = store.tables.main.scan()["Items"]
        prints = [bytes(i["embedding"]) for i in items if "embedding" in i]
        assert gone not in prints and prints == [voice("Carol", 2).embedding]
