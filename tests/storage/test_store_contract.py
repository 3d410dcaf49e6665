"""One contract for every TranscriptStore backend: SQLite and a real DynamoDB Local."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from service.config import StorageSettings
from service.domain import Segment, TranscriptMeta, TranscriptStatus, Word
from service.errors import InvalidArgumentError, NotFoundError, status_for
from service.storage import dynamodb_segments
from service.storage.base import TranscriptStore
from service.storage.dynamodb import DynamoDBTranscriptStore
from service.storage.factory import open_store
from service.storage.lease import Lease, LeaseLostError, TranscriptBusyError
from service.storage.query import tokenize, window
from service.storage.sqlite import SQLiteTranscriptStore
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


async def test_a_detected_language_is_stored_once_known(store: TranscriptStore) -> None:
    """A stream on a multilingual model creates its transcript detecting (language "")
    and stores the language its first final fixed; other fields stay as they were."""
    await store.create_transcript(replace(meta("l1"), language="", model="base"))
    assert (await store.get_transcript("alice", "l1")).language == ""
    updated = await store.update_transcript("alice", "l1", language="de")
    got = await store.get_transcript("alice", "l1")
    assert (updated.language, got.language, got.model, got.title) == (
        "de", "de", "base", "Meeting l1",
    )  # fmt: skip
    await store.update_transcript("alice", "l1", title="Besprechung")
    assert (await store.get_transcript("alice", "l1")).language == "de"
    with pytest.raises(NotFoundError):
        await store.update_transcript("bob", "l1", language="fr")


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
    # mypy's strict equality misses pytest.Approx's __eq__ inside a tuple
    assert (h.segment_index, h.start) == (0, pytest.approx(1.9))  # type: ignore[comparison-overlap]
    assert [h.snippet[r.start : r.end] for r in h.highlights] == ["quarterly budget"]
    once, _ = await store.search("alice", "reviewed", 10, "")
    assert [(x.segment_index, x.snippet) for x in once] == [(0, "We reviewed the quarterly")]
    lunch, _ = await store.search("alice", "lunch", 10, "")
    assert [(x.segment_index, x.snippet) for x in lunch] == [(2, "Then lunch.")]
    await store.delete_transcript("alice", "w1")
    assert (await store.search("alice", "budget", 10, ""))[0] == []


# ---- replacing a segment by index (a revision after re-decoding the sentence) ----


async def indexed_windows(store: TranscriptStore, tid: str) -> dict[int, list[str]]:
    """What the search index holds for each segment of tid: its indexed window(s) (one per
    posting in DynamoDB, which must all agree) and, in SQLite, its FTS row."""
    if isinstance(store, SQLiteTranscriptStore):
        rows = store.conn.execute(
            "SELECT s.idx, f.text FROM segments_fts f JOIN segments s ON s.rowid = f.rowid"
            " WHERE s.transcript_id = ?",
            (tid,),
        ).fetchall()
        total = store.conn.execute("SELECT COUNT(*) FROM segments_fts").fetchone()[0]
        assert total == store.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        return {r["idx"]: [r["text"]] for r in rows}
    assert isinstance(store, DynamoDBTranscriptStore)
    out: dict[int, list[str]] = {}
    kwargs: dict[str, Any] = {}
    while True:
        resp = store.tables.index.scan(**kwargs)
        for item in resp["Items"]:
            if item["tid"] == tid:
                token = item["pk"].rsplit("#", 1)[1]
                indexed, _ = window(item["prev"], item["text"])
                assert token in tokenize(indexed), (token, indexed)
                out.setdefault(int(item["idx"]), []).append(indexed)
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


async def assert_index_exact(store: TranscriptStore, tid: str) -> None:
    """Every stored segment is indexed with exactly its current window, and nothing else is."""
    segs = await store.get_segments("alice", tid)
    texts = {s.index: s.text for s in segs}
    expected = {s.index: window(texts.get(s.index - 1, ""), s.text)[0] for s in segs}
    got = await indexed_windows(store, tid)
    if isinstance(store, DynamoDBTranscriptStore):  # one posting per distinct word
        assert {i: sorted(set(w)) for i, w in got.items()} == {i: [w] for i, w in expected.items()}
        assert {i: len(w) for i, w in got.items()} == {
            i: len(set(tokenize(w))) for i, w in expected.items()
        }
    else:
        assert got == {i: [w] for i, w in expected.items()}


async def found(store: TranscriptStore, query: str) -> list[tuple[str, int, str]]:
    hits, _ = await store.search("alice", query, 50, "")
    return [(h.transcript_id, h.segment_index, h.snippet) for h in hits]


async def test_replacing_a_segment_by_index(store: TranscriptStore) -> None:
    """A revision replaces the stored segment: text, words and times; the count and the
    duration stay; search finds the new words (also across both seams), not the old."""
    await store.create_transcript(meta("r1"))
    await store.append_segments(
        "alice",
        "r1",
        [seg(0, "We reviewed the quarterly", 1.0), seg(1, "budget today.", 3.0)],
    )
    await store.append_segments("alice", "r1", [seg(2, "Then lunch.", 5.0)])
    before = await store.get_transcript("alice", "r1")
    # mypy's strict equality misses pytest.Approx's __eq__ inside a tuple
    assert (before.segment_count, before.duration_s) == (3, pytest.approx(5.55))  # type: ignore[comparison-overlap]

    revised = seg(1, "forecast tomorrow morning.", 3.1)
    await store.append_segments("alice", "r1", [revised])

    segs = await store.get_segments("alice", "r1")
    assert [s.text for s in segs] == [
        "We reviewed the quarterly",
        "forecast tomorrow morning.",
        "Then lunch.",
    ]
    assert segs[1] == revised  # words, times and confidence too
    after = await store.get_transcript("alice", "r1")
    # mypy's strict equality misses pytest.Approx's __eq__ inside a tuple
    assert (after.segment_count, after.duration_s) == (3, pytest.approx(5.55))  # type: ignore[comparison-overlap]
    assert await found(store, "budget") == []
    assert await found(store, "today") == []
    assert await found(store, '"quarterly budget"') == []
    assert await found(store, '"today then"') == []
    assert await found(store, "forecast") == [("r1", 1, "forecast tomorrow morning.")]
    # The seam with the previous segment, found with the new text...
    seam, _ = await store.search("alice", '"quarterly forecast"', 10, "")
    # mypy's strict equality misses pytest.Approx's __eq__ inside a tuple
    assert [(h.segment_index, h.start) for h in seam] == [(0, pytest.approx(1.9))]  # type: ignore[comparison-overlap]
    # ...and the seam with the next one, whose indexed window starts with the new text.
    nxt, _ = await store.search("alice", '"morning then"', 10, "")
    assert [(h.segment_index, h.snippet) for h in nxt] == [
        (1, "forecast tomorrow morning. Then lunch.")
    ]
    assert nxt[0].start == pytest.approx(3.7)  # "morning", the revision's third word
    assert await found(store, "lunch") == [("r1", 2, "Then lunch.")]
    await assert_index_exact(store, "r1")
    await store.delete_transcript("alice", "r1")
    assert await found(store, "forecast") == [] and await found(store, "lunch") == []


async def test_a_batch_with_one_index_twice_keeps_the_later(store: TranscriptStore) -> None:
    await store.create_transcript(meta("r2"))
    await store.append_segments(
        "alice",
        "r2",
        [seg(0, "first draft", 0.0), seg(1, "of the plan", 1.0), seg(0, "second take", 0.2)],
    )
    segs = await store.get_segments("alice", "r2")
    assert [(s.index, s.text, s.start) for s in segs] == [
        (0, "second take", 0.2),
        (1, "of the plan", 1.0),
    ]
    assert (await store.get_transcript("alice", "r2")).segment_count == 2
    assert await found(store, "draft") == []
    assert await found(store, '"take of the plan"') == [("r2", 0, "second take of the plan")]
    await assert_index_exact(store, "r2")


async def test_retrying_a_replacement_is_idempotent(store: TranscriptStore) -> None:
    await store.create_transcript(meta("r3"))
    await store.append_segments(
        "alice", "r3", [seg(0, "alpha beta", 0.0), seg(1, "gamma delta", 1.0)]
    )
    batch = [seg(1, "gamma epsilon", 1.0), seg(2, "zeta", 2.0)]  # a revision and a new final
    await store.append_segments("alice", "r3", batch)
    state = (
        await store.get_segments("alice", "r3"),
        await store.get_transcript("alice", "r3"),
        await found(store, "epsilon"),
        await found(store, '"epsilon zeta"'),
    )
    await store.append_segments("alice", "r3", batch)  # the same batch, retried
    assert state == (
        await store.get_segments("alice", "r3"),
        await store.get_transcript("alice", "r3"),
        await found(store, "epsilon"),
        await found(store, '"epsilon zeta"'),
    )
    assert state[1].segment_count == 3 and await found(store, "delta") == []
    await assert_index_exact(store, "r3")


@pytest.mark.parametrize("fail_at", ["postings", "narrowing"])
async def test_dynamodb_replacement_failing_part_way_leaves_no_stale_postings(
    dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    """An attempt that stored the new items but not (all) their postings, retried with a
    batch that meanwhile gained a further revision: the index ends exact."""
    store = await open_store(
        StorageSettings(
            backend="dynamodb",
            dynamodb_endpoint=dynamodb_local.endpoint,
            dynamodb_table_prefix="p" + uuid.uuid4().hex[:8],
            dynamodb_create_tables=True,
        )
    )
    assert isinstance(store, DynamoDBTranscriptStore)
    await store.create_transcript(meta("f1"))
    await store.append_segments(
        "alice", "f1", [seg(0, "red green", 0.0), seg(1, "blue", 1.0), seg(2, "black", 2.0)]
    )
    first = [seg(1, "yellow orange", 1.0)]

    class Outage(Exception):
        pass

    def fail(*args: object, **kwargs: object) -> None:
        raise Outage

    if fail_at == "postings":
        monkeypatch.setattr(store.tables.index, "batch_writer", fail)
    else:
        original = dynamodb_segments.set_posted

        def set_posted(table: object, tid: str, index: int, tokens: set[str]) -> None:
            if index == 1 and "blue" not in tokens:  # narrowing segment 1 to its new words
                raise Outage
            original(table, tid, index, tokens)

        monkeypatch.setattr(dynamodb_segments, "set_posted", set_posted)
    with pytest.raises(Outage):
        await store.append_segments("alice", "f1", first)
    monkeypatch.undo()
    assert [s.text for s in await store.get_segments("alice", "f1")][1] == "yellow orange"
    await store.append_segments("alice", "f1", [*first, seg(1, "purple", 1.0)])
    assert [s.text for s in await store.get_segments("alice", "f1")] == [
        "red green",
        "purple",
        "black",
    ]
    assert (await store.get_transcript("alice", "f1")).segment_count == 3
    await assert_index_exact(store, "f1")
    for gone in ("blue", "yellow", "orange"):
        assert await found(store, gone) == []
    assert await found(store, '"purple black"') == [("f1", 1, "purple black")]
    await store.close()


# ---- one writer per transcript: the lease and its epoch fencing ---------------------------


async def test_a_held_lease_refuses_a_second_writer(store: TranscriptStore) -> None:
    await store.create_transcript(meta("l1"))
    lease = await store.acquire_lease("alice", "l1", "server-a", 30.0)
    assert lease.epoch == 1 and lease.expires_at > time.time() + 25
    with pytest.raises(TranscriptBusyError) as busy:
        await store.acquire_lease("alice", "l1", "server-b", 30.0)
    assert "transcript l1 is being written by another stream" in str(busy.value)
    assert status_for(busy.value)[0] == grpc.StatusCode.ABORTED
    with pytest.raises(NotFoundError):  # another owner learns nothing
        await store.acquire_lease("bob", "l1", "server-b", 30.0)
    with pytest.raises(NotFoundError):
        await store.acquire_lease("alice", "missing", "server-b", 30.0)
    await store.finish_transcript(
        "alice", "l1", TranscriptStatus.COMPLETE, T0, 1.0, [], epoch=lease.epoch
    )
    with pytest.raises(InvalidArgumentError, match="complete and cannot be resumed"):
        await store.acquire_lease("alice", "l1", "server-b", 30.0)


async def test_concurrent_acquires_admit_exactly_one(store: TranscriptStore) -> None:
    await store.create_transcript(meta("l2"))
    await store.finish_transcript("alice", "l2", TranscriptStatus.INTERRUPTED, T0, 0.0, [])
    tries = await asyncio.gather(
        *(store.acquire_lease("alice", "l2", f"s{i}", 30.0) for i in range(12)),
        return_exceptions=True,
    )
    won = [t for t in tries if isinstance(t, Lease)]
    assert len(won) == 1 and won[0].epoch == 1
    assert all(isinstance(t, TranscriptBusyError) for t in tries if t not in won)
    assert (await store.get_transcript("alice", "l2")).status is TranscriptStatus.LIVE


async def test_a_stale_writer_is_fenced_after_a_takeover(store: TranscriptStore) -> None:
    await store.create_transcript(meta("l3"))
    old = await store.acquire_lease("alice", "l3", "server-a", 30.0)
    await store.append_segments("alice", "l3", [seg(0, "first words", 0.0)], epoch=old.epoch)
    await store.renew_lease("alice", "l3", old.epoch, 30.0)
    # The old stream ends: finishing with its epoch releases the lease in the same write.
    await store.finish_transcript(
        "alice", "l3", TranscriptStatus.INTERRUPTED, T0, 1.0, [], epoch=old.epoch
    )
    new = await store.acquire_lease("alice", "l3", "server-b", 30.0)
    assert new.epoch == old.epoch + 1
    await store.append_segments("alice", "l3", [seg(1, "newer words", 2.0)], epoch=new.epoch)
    # The old writer's late retries: every write is refused, nothing is overwritten.
    for late in (
        store.append_segments("alice", "l3", [seg(1, "stale overwrite", 2.0)], epoch=old.epoch),
        store.append_segments("alice", "l3", [seg(2, "stale append", 4.0)], epoch=old.epoch),
        store.finish_transcript(
            "alice", "l3", TranscriptStatus.COMPLETE, T0, 9.0, [], epoch=old.epoch
        ),
        store.set_recording("alice", "l3", "audio/ogg", epoch=old.epoch),
        store.renew_lease("alice", "l3", old.epoch, 30.0),
    ):
        with pytest.raises(LeaseLostError):
            await late
    await store.release_lease("alice", "l3", old.epoch)  # a stale release changes nothing
    with pytest.raises(TranscriptBusyError):
        await store.acquire_lease("alice", "l3", "server-c", 30.0)
    got = await store.get_transcript("alice", "l3")
    assert got.status is TranscriptStatus.LIVE and got.segment_count == 2
    assert [s.text for s in await store.get_segments("alice", "l3")] == [
        "first words",
        "newer words",
    ]
    await store.release_lease("alice", "l3", new.epoch)  # the stream ended: free at once
    assert (await store.acquire_lease("alice", "l3", "server-c", 30.0)).epoch == new.epoch + 1


async def test_a_dead_servers_lease_expires(store: TranscriptStore) -> None:
    """A server that dies never releases: its lease blocks resuming until it expires."""
    await store.create_transcript(meta("l4"))
    dead = await store.acquire_lease("alice", "l4", "server-that-dies", 1.0)
    with pytest.raises(TranscriptBusyError):
        await store.acquire_lease("alice", "l4", "server-b", 30.0)
    for _ in range(100):  # bounded poll on the condition: ~1 s expected
        try:
            taken = await store.acquire_lease("alice", "l4", "server-b", 30.0)
            break
        except TranscriptBusyError:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the dead server's lease never expired")
    assert time.time() >= dead.expires_at and taken.epoch == dead.epoch + 1
