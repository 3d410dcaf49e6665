"""Search finds a meeting by its title and tags, on both backends (SQLite and a real
DynamoDB Local): people look meetings up by what they called them."""

from __future__ import annotations

from dataclasses import replace

from service.domain import SearchHit, SearchHitKind
from service.storage.base import TranscriptStore
from tests.storage import test_store_contract
from tests.storage.test_store_contract import meta, seg

store = test_store_contract.store  # the same fixture: every backend


def kinds(hits: list[SearchHit]) -> list[tuple[str, SearchHitKind]]:
    return [(h.transcript_id, h.kind) for h in hits]


async def test_title_and_tags_are_found_before_segments_newest_first(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(replace(meta("b1", minutes=1), title="Quarterly budget review"))
    await store.create_transcript(replace(meta("b2", minutes=2), title="Standup", tags=("budget",)))
    await store.create_transcript(replace(meta("b3", minutes=3), title="Other"))
    await store.append_segments("alice", "b3", [seg(0, "The budget is due.", 1.0)])
    await store.create_transcript(replace(meta("b4", owner="bob", minutes=4), title="Budget"))

    hits, token = await store.search("alice", "budget", 10, "")
    assert kinds(hits) == [
        ("b2", SearchHitKind.TRANSCRIPT),
        ("b1", SearchHitKind.TRANSCRIPT),
        ("b3", SearchHitKind.SEGMENT),
    ]
    assert token == ""
    by_tag, by_title = hits[0], hits[1]
    assert by_tag.snippet == "Standup #budget" and by_tag.transcript_title == "Standup"
    assert [by_tag.snippet[r.start : r.end] for r in by_tag.highlights] == ["budget"]
    assert [by_title.snippet[r.start : r.end] for r in by_title.highlights] == ["budget"]
    assert (by_title.segment_index, by_title.start) == (0, 0.0)
    assert by_title.created_at == meta("b1", minutes=1).created_at


async def test_every_term_must_be_in_the_title_and_tags_together(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(
        replace(meta("c1", minutes=1), title="Budget sync", tags=("team-a", "finance"))
    )
    await store.create_transcript(replace(meta("c2", minutes=2), title="Budget"))
    hits, _ = await store.search("alice", "budget finance", 10, "")
    assert kinds(hits) == [("c1", SearchHitKind.TRANSCRIPT)]
    hits, _ = await store.search("alice", '"budget sync"', 10, "")
    assert kinds(hits) == [("c1", SearchHitKind.TRANSCRIPT)]
    hits, _ = await store.search("alice", '"sync budget"', 10, "")
    assert hits == []


async def test_title_hits_are_on_the_first_page_only_and_follow_edits(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(replace(meta("d1", minutes=1), title="Roadmap"))
    await store.append_segments(
        "alice",
        "d1",
        [seg(0, "The roadmap first.", 1.0), seg(1, "Then the roadmap again.", 3.0)],
    )
    first, token = await store.search("alice", "roadmap", 1, "")
    # Not counted in page_size: the first page holds the title hit and one segment hit.
    assert kinds(first) == [("d1", SearchHitKind.TRANSCRIPT), ("d1", SearchHitKind.SEGMENT)]
    assert token
    second, token = await store.search("alice", "roadmap", 1, token)
    assert kinds(second) == [("d1", SearchHitKind.SEGMENT)]
    assert second[0].segment_index == 1

    await store.update_transcript("alice", "d1", title="Planning", tags=["q3"])
    hits, _ = await store.search("alice", "planning q3", 10, "")
    assert kinds(hits) == [("d1", SearchHitKind.TRANSCRIPT)]
    hits, _ = await store.search("alice", "roadmap", 10, "")
    assert all(h.kind is SearchHitKind.SEGMENT for h in hits) and len(hits) == 2

    await store.delete_transcript("alice", "d1")
    assert (await store.search("alice", "planning", 10, ""))[0] == []
