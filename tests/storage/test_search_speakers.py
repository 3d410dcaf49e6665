"""Search by speaker on both backends (SQLite and a real DynamoDB Local): hits say who
spoke (label and the transcript's name for it), and a search can be limited to one
speaker by label or by name, across transcripts whose labels differ."""

from __future__ import annotations

import dataclasses

import pytest

from service.domain import SearchHit, Segment
from service.errors import InvalidArgumentError
from service.storage.base import TranscriptStore
from service.storage.dynamodb import DynamoDBTranscriptStore
from tests.storage import test_store_contract
from tests.storage.test_store_contract import meta, seg

store = test_store_contract.store  # the same fixture: every backend


def said(index: int, text: str, start: float, label: str) -> Segment:
    return dataclasses.replace(seg(index, text, start), speaker_label=label)


def who(hits: list[SearchHit]) -> list[tuple[str, int, str, str]]:
    return [(h.transcript_id, h.segment_index, h.speaker_label, h.speaker_name) for h in hits]


async def two_meetings(store: TranscriptStore) -> None:
    """Alice is S1 in m1 and S2 in m2; Bob the other; m1 is the older."""
    await store.create_transcript(dataclasses.replace(meta("m1", minutes=1), title="Budget"))
    await store.append_segments(
        "alice",
        "m1",
        [
            said(0, "The budget is late.", 0.5, "S1"),
            said(1, "Why is the budget late?", 3.0, "S2"),
            said(2, "Nobody sent the budget.", 6.0, "S1"),
        ],
    )
    await store.create_transcript(meta("m2", minutes=2))
    await store.append_segments(
        "alice",
        "m2",
        [
            said(0, "Here is the budget now.", 0.5, "S1"),
            said(1, "Thanks for the budget.", 3.0, "S2"),
        ],
    )
    await store.update_transcript("alice", "m1", speaker_names={"S1": "Alice", "S2": "Bob"})
    await store.update_transcript("alice", "m2", speaker_names={"S1": "Bob", "S2": "Alice"})


async def test_hits_carry_the_speaker_label_and_name(store: TranscriptStore) -> None:
    await two_meetings(store)
    hits, _ = await store.search("alice", "budget", 10, "")
    segment_hits = [h for h in hits if h.kind.name == "SEGMENT"]
    assert who(segment_hits) == [
        ("m2", 0, "S1", "Bob"),
        ("m2", 1, "S2", "Alice"),
        ("m1", 0, "S1", "Alice"),
        ("m1", 1, "S2", "Bob"),
        ("m1", 2, "S1", "Alice"),
    ]


async def test_a_name_finds_its_segments_in_every_transcript_in_any_case(
    store: TranscriptStore,
) -> None:
    await two_meetings(store)
    hits, token = await store.search("alice", "budget", 10, "", speaker="alice")
    # No title hit (m1's title holds "budget"): a title has no speaker.
    assert who(hits) == [
        ("m2", 1, "S2", "Alice"),
        ("m1", 0, "S1", "Alice"),
        ("m1", 2, "S1", "Alice"),
    ]
    assert token == ""
    hits, _ = await store.search("alice", "budget", 10, "", speaker="  BOB ")
    assert who(hits) == [("m2", 0, "S1", "Bob"), ("m1", 1, "S2", "Bob")]


async def test_a_label_is_matched_exactly_and_pages_hold_only_that_speaker(
    store: TranscriptStore,
) -> None:
    await two_meetings(store)
    first, token = await store.search("alice", "budget", 2, "", speaker="S1")
    assert who(first) == [("m2", 0, "S1", "Bob"), ("m1", 0, "S1", "Alice")]
    assert token
    second, token = await store.search("alice", "budget", 2, token, speaker="S1")
    assert who(second) == [("m1", 2, "S1", "Alice")]
    assert token == ""
    assert (await store.search("alice", "budget", 10, "", speaker="s1"))[0] == []
    assert (await store.search("alice", "budget", 10, "", speaker="Carol"))[0] == []


async def test_a_rename_changes_what_a_name_finds(store: TranscriptStore) -> None:
    await two_meetings(store)
    await store.update_transcript("alice", "m2", speaker_names={"S1": "Robert"})
    hits, _ = await store.search("alice", "budget", 10, "", speaker="Bob")
    assert who(hits) == [("m1", 1, "S2", "Bob")]
    hits, _ = await store.search("alice", "budget", 10, "", speaker="Alice")
    assert who(hits) == [("m1", 0, "S1", "Alice"), ("m1", 2, "S1", "Alice")]


async def test_a_phrase_across_a_seam_belongs_to_the_earlier_segment_speaker(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(meta("p1"))
    await store.append_segments(
        "alice",
        "p1",
        [said(0, "We need the quarterly", 0.5, "S1"), said(1, "budget soon.", 2.0, "S2")],
    )
    hits, _ = await store.search("alice", '"quarterly budget"', 10, "", speaker="S1")
    assert who(hits) == [("p1", 0, "S1", "")]
    assert (await store.search("alice", '"quarterly budget"', 10, "", speaker="S2"))[0] == []


async def test_a_relabelled_segment_is_found_under_its_new_speaker(store: TranscriptStore) -> None:
    """The end-of-stream re-clustering sends revisions that change only the label."""
    await store.create_transcript(meta("r1"))
    await store.append_segments(
        "alice",
        "r1",
        [said(0, "Start the budget.", 0.5, "S1"), said(1, "The budget grows.", 3.0, "S1")],
    )
    await store.append_segments("alice", "r1", [said(1, "The budget grows.", 3.0, "S2")])
    hits, _ = await store.search("alice", "budget", 10, "", speaker="S2")
    assert who(hits) == [("r1", 1, "S2", "")]
    hits, _ = await store.search("alice", "budget", 10, "", speaker="S1")
    assert who(hits) == [("r1", 0, "S1", "")]


async def test_unlabelled_segments_never_match_a_speaker_and_long_filters_are_refused(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(meta("u1"))
    await store.append_segments("alice", "u1", [seg(0, "The budget.", 0.5)])
    assert who((await store.search("alice", "budget", 10, ""))[0]) == [("u1", 0, "", "")]
    assert (await store.search("alice", "budget", 10, "", speaker="S1"))[0] == []
    with pytest.raises(InvalidArgumentError, match="speaker"):
        await store.search("alice", "budget", 10, "", speaker="x" * 101)


@pytest.mark.parametrize("store", ["dynamodb"], indirect=True)  # SQLite: no postings
async def test_postings_written_before_they_carried_labels_still_filter(
    store: TranscriptStore,
) -> None:
    """DynamoDB: postings of an older version have no `spk`; labels come from the items."""
    assert isinstance(store, DynamoDBTranscriptStore)
    await two_meetings(store)
    table = store.tables.index
    for item in table.scan()["Items"]:
        table.update_item(
            Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="REMOVE spk, pspk"
        )
    assert all("spk" not in i for i in table.scan()["Items"])
    hits, _ = await store.search("alice", "budget", 10, "", speaker="Alice")
    assert who(hits) == [
        ("m2", 1, "S2", "Alice"),
        ("m1", 0, "S1", "Alice"),
        ("m1", 2, "S1", "Alice"),
    ]
