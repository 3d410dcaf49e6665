"""One contract for every TranscriptStore backend: SQLite and a real DynamoDB Local."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.config import StorageSettings
from service.domain import Segment, TranscriptMeta, TranscriptStatus, Word
from service.errors import InvalidArgumentError, NotFoundError
from service.storage.base import TranscriptStore
from service.storage.factory import open_store
from tests.dynamodb_local import DynamoDBLocal


@pytest.fixture(params=["sqlite", "dynamodb"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, dynamodb_local: DynamoDBLocal
) -> AsyncIterator[TranscriptStore]:
    if request.param == "sqlite":
        settings = StorageSettings(backend="sqlite", data_dir=tmp_path)
    else:
        settings = StorageSettings(
            backend="dynamodb",
            dynamodb_endpoint=dynamodb_local.endpoint,
            dynamodb_table_prefix="t" + uuid.uuid4().hex[:8],
            dynamodb_create_tables=True,
        )
    s = await open_store(settings)
    yield s
    await s.close()


T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def meta(
    tid: str, owner: str = "alice", minutes: int = 0, tags: tuple[str, ...] = ()
) -> TranscriptMeta:
    return TranscriptMeta(
        id=tid,
        owner=owner,
        created_at=T0 + timedelta(minutes=minutes),
        status=TranscriptStatus.LIVE,
        language="en",
        model="tiny.en",
        title=f"Meeting {tid}",
        tags=tags,
    )


def seg(index: int, text: str, start: float) -> Segment:
    words = tuple(
        Word(w, start + 0.3 * i, start + 0.3 * i + 0.25, 0.9) for i, w in enumerate(text.split())
    )
    return Segment(index, start, words[-1].end, text, words, 0.9)


async def test_create_append_get_and_finish(store: TranscriptStore) -> None:
    await store.create_transcript(meta("a1"))
    await store.append_segments(
        "alice", "a1", [seg(0, "Hello world.", 0.5), seg(1, "How are you?", 2.0)]
    )
    await store.append_segments("alice", "a1", [seg(1, "How are you?", 2.0)])  # a retried batch
    await store.append_segments("alice", "a1", [seg(2, "Fine, thanks.", 4.0)])
    got = await store.get_transcript("alice", "a1")
    assert got.segment_count == 3 and got.status is TranscriptStatus.LIVE
    segs = await store.get_segments("alice", "a1")
    assert [s.text for s in segs] == ["Hello world.", "How are you?", "Fine, thanks."]
    assert segs[1].words[0] == Word("How", 2.0, 2.25, 0.9)
    ended = T0 + timedelta(minutes=5)
    await store.finish_transcript("alice", "a1", TranscriptStatus.COMPLETE, ended, 5.0, ["hello"])
    done = await store.get_transcript("alice", "a1")
    assert done.status is TranscriptStatus.COMPLETE
    assert done.ended_at == ended and done.keywords == ("hello",)
    assert done.duration_s == pytest.approx(5.0)
    await store.set_recording("alice", "a1", "audio/webm")
    assert (await store.get_transcript("alice", "a1")).recording_mime_type == "audio/webm"


async def test_other_owners_get_not_found_everywhere(store: TranscriptStore) -> None:
    await store.create_transcript(meta("b1", owner="bob"))
    await store.append_segments("bob", "b1", [seg(0, "secret budget plans", 0.0)])
    for call in (
        store.get_transcript("alice", "b1"),
        store.get_segments("alice", "b1"),
        store.append_segments("alice", "b1", [seg(1, "x", 1.0)]),
        store.update_transcript("alice", "b1", title="mine"),
        store.delete_transcript("alice", "b1"),
        store.get_transcript("bob", "missing"),
    ):
        with pytest.raises(NotFoundError):
            await call
    listed, _ = await store.list_transcripts("alice", 50, "")
    assert "b1" not in [m.id for m in listed]
    hits, _ = await store.search("alice", "budget", 50, "")
    assert hits == []
    assert [h.transcript_id for h in (await store.search("bob", "budget", 50, ""))[0]] == ["b1"]


async def test_list_newest_first_filters_and_pages(store: TranscriptStore) -> None:
    for i in range(7):
        await store.create_transcript(
            meta(f"l{i}", minutes=i, tags=("even",) if i % 2 == 0 else ("odd",))
        )
    ids: list[str] = []
    token = ""
    while True:
        page, token = await store.list_transcripts("alice", 3, token)
        assert len(page) <= 3
        ids += [m.id for m in page]
        if not token:
            break
    assert ids == [f"l{i}" for i in range(6, -1, -1)]
    even, _ = await store.list_transcripts("alice", 50, "", tags=["even"])
    assert [m.id for m in even] == ["l6", "l4", "l2", "l0"]
    window, _ = await store.list_transcripts(
        "alice",
        50,
        "",
        created_after=T0 + timedelta(minutes=2),
        created_before=T0 + timedelta(minutes=5),
    )
    assert [m.id for m in window] == ["l4", "l3", "l2"]
    with pytest.raises(InvalidArgumentError):
        await store.list_transcripts("alice", 3, "not-a-token")


async def test_search_words_phrases_highlights_and_paging(store: TranscriptStore) -> None:
    await store.create_transcript(meta("s1", minutes=1))
    await store.create_transcript(meta("s2", minutes=2))
    await store.append_segments(
        "alice",
        "s1",
        [seg(0, "The quarterly budget is due.", 1.0), seg(1, "Budget review is quarterly.", 3.0)],
    )
    await store.append_segments("alice", "s2", [seg(0, "Our quarterly budget grew.", 7.5)])
    hits, _ = await store.search("alice", '"quarterly budget"', 50, "")
    assert [(h.transcript_id, h.segment_index) for h in hits] == [("s2", 0), ("s1", 0)]
    # The hit's time is when the phrase's first word is spoken ("quarterly", 2nd word).
    assert hits[0].start == pytest.approx(7.8) and hits[0].transcript_title == "Meeting s2"
    h = hits[1]
    assert [h.snippet[r.start : r.end] for r in h.highlights] == ["quarterly budget"]
    words, _ = await store.search("alice", "review QUARTERLY", 50, "")
    assert [(x.transcript_id, x.segment_index) for x in words] == [("s1", 1)]
    assert {words[0].snippet[r.start : r.end].lower() for r in words[0].highlights} == {
        "review",
        "quarterly",
    }
    page1, token = await store.search("alice", "budget", 2, "")
    page2, token2 = await store.search("alice", "budget", 2, token)
    assert len(page1) == 2 and len(page2) == 1 and token2 == ""
    assert {(x.transcript_id, x.segment_index) for x in page1 + page2} == {
        ("s1", 0),
        ("s1", 1),
        ("s2", 0),
    }
    for hostile in [
        'budget" OR "x',
        "budget*",
        "NEAR(budget due)",
        "'; DROP TABLE x; --",
        "due:budget",
    ]:
        found, _ = await store.search("alice", hostile, 50, "")
        assert all(x.transcript_id in {"s1", "s2"} for x in found)
    with pytest.raises(InvalidArgumentError):
        await store.search("alice", '"" !!', 10, "")


async def test_update_and_delete_remove_everything(store: TranscriptStore) -> None:
    await store.create_transcript(meta("d1"))
    await store.append_segments("alice", "d1", [seg(0, "zebra crossing ahead", 0.0)])
    updated = await store.update_transcript(
        "alice", "d1", title="Zoo", tags=["x", "y"], speaker_names={"spk1": "Dana"}
    )
    assert (updated.title, updated.tags, updated.speaker_names) == (
        "Zoo",
        ("x", "y"),
        {"spk1": "Dana"},
    )
    again = await store.update_transcript("alice", "d1", title="Zoo 2")
    assert again.tags == ("x", "y")  # untouched fields stay
    assert (await store.search("alice", "zebra", 10, ""))[0][0].transcript_title == "Zoo 2"
    await store.delete_transcript("alice", "d1")
    with pytest.raises(NotFoundError):
        await store.get_transcript("alice", "d1")
    assert (await store.search("alice", "zebra", 10, ""))[0] == []
    assert "d1" not in [m.id for m in (await store.list_transcripts("alice", 50, ""))[0]]


async def test_two_store_instances_share_dynamodb(dynamodb_local: DynamoDBLocal) -> None:
    """Two service processes on one table set see each other's writes (no local state)."""
    settings = StorageSettings(
        backend="dynamodb",
        dynamodb_endpoint=dynamodb_local.endpoint,
        dynamodb_table_prefix="shared" + uuid.uuid4().hex[:6],
        dynamodb_create_tables=True,
    )
    a, b = await open_store(settings), await open_store(settings)
    await a.create_transcript(meta("x1"))
    await a.append_segments("alice", "x1", [seg(0, "shared across instances", 0.0)])
    assert (await b.get_transcript("alice", "x1")).segment_count == 1
    assert [h.transcript_id for h in (await b.search("alice", "instances", 10, ""))[0]] == ["x1"]


async def test_phrase_across_two_final_results_is_found_once(store: TranscriptStore) -> None:
    """Live finals can split a sentence anywhere; a phrase across the seam is still found."""
    await store.create_transcript(meta("w1"))
    await store.append_segments("alice", "w1", [seg(0, "We reviewed the quarterly", 1.0)])
    await store.append_segments(
        "alice", "w1", [seg(1, "budget today.", 3.0), seg(2, "Then lunch.", 5.0)]
    )
    hits, _ = await store.search("alice", '"quarterly budget"', 10, "")
    assert len(hits) == 1
    h = hits[0]
    # The hit points at the segment where the phrase begins, at the time its first word is spoken.
    assert (h.segment_index, h.start) == (0, pytest.approx(1.9))
    assert [h.snippet[r.start : r.end] for r in h.highlights] == ["quarterly budget"]
    once, _ = await store.search("alice", "reviewed", 10, "")
    assert [(x.segment_index, x.snippet) for x in once] == [(0, "We reviewed the quarterly")]
    lunch, _ = await store.search("alice", "lunch", 10, "")
    assert [(x.segment_index, x.snippet) for x in lunch] == [(2, "Then lunch.")]
    await store.delete_transcript("alice", "w1")
    assert (await store.search("alice", "budget", 10, ""))[0] == []
