"""Speaker data in both backends: segment labels, the tracker's state written with the
lease's renewals and at a stream's end under its lease epoch, and names from remembered
voices written only where a label is still unnamed (SQLite and a real DynamoDB Local)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from service.domain import TranscriptStatus
from service.errors import NotFoundError
from service.storage.base import TranscriptStore
from service.storage.lease import LeaseLostError
from tests.storage.test_store_contract import T0, meta, seg, store

__all__ = ["store"]  # the contract's fixture: every test runs on both backends


async def test_segment_speaker_labels_are_stored_and_replaced_by_a_revision(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(meta("s1"))
    a = dataclasses.replace(seg(0, "Shall we start?", 0.5), speaker_label="S1")
    b = dataclasses.replace(seg(1, "Yes, go ahead.", 2.0), speaker_label="S1")
    await store.append_segments("alice", "s1", [a, b])
    await store.append_segments("alice", "s1", [dataclasses.replace(b, speaker_label="S2")])
    got = await store.get_segments("alice", "s1")
    assert [s.speaker_label for s in got] == ["S1", "S2"]


async def test_speaker_state_is_written_at_the_end_fenced_and_kept_when_not_given(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(meta("s2"))
    assert (await store.get_transcript("alice", "s2")).speaker_state == ""
    lease = await store.acquire_lease("alice", "s2", "server-a", 30.0)
    state = '{"clusterer":{"speakers":[]},"starts":"","ends":""}' + " " * 3000
    await store.finish_transcript(
        "alice", "s2", TranscriptStatus.INTERRUPTED, T0, 1.0, [], epoch=lease.epoch,
        speaker_state=state,
    )  # fmt: skip
    assert (await store.get_transcript("alice", "s2")).speaker_state == state
    second = await store.acquire_lease("alice", "s2", "server-b", 30.0)
    with pytest.raises(LeaseLostError):  # a stale stream cannot overwrite the voices
        await store.finish_transcript(
            "alice", "s2", TranscriptStatus.INTERRUPTED, T0, 1.0, [], epoch=lease.epoch,
            speaker_state="stale",
        )  # fmt: skip
    await store.finish_transcript(  # a stream without diarization leaves the state alone
        "alice", "s2", TranscriptStatus.COMPLETE, T0, 2.0, [], epoch=second.epoch
    )
    assert (await store.get_transcript("alice", "s2")).speaker_state == state


async def test_speaker_state_is_written_with_a_renewal_fenced_and_kept_when_not_given(
    store: TranscriptStore,
) -> None:
    """A live stream stores its voices as it renews its lease (LeaseKeeper), so a server
    that dies leaves them for the stream that resumes the transcript."""
    await store.create_transcript(meta("s5"))
    lease = await store.acquire_lease("alice", "s5", "server-a", 30.0)
    state = '{"clusterer":{"speakers":[]},"starts":"","ends":""}' + " " * 12000
    renewed = await store.renew_lease("alice", "s5", lease.epoch, 30.0, speaker_state=state)
    assert renewed.expires_at >= lease.expires_at
    got = await store.get_transcript("alice", "s5")
    assert (got.speaker_state, got.status) == (state, TranscriptStatus.LIVE)
    await store.renew_lease("alice", "s5", lease.epoch, 30.0)  # no state: kept
    assert (await store.get_transcript("alice", "s5")).speaker_state == state
    await store.release_lease("alice", "s5", lease.epoch)  # as if it had expired
    second = await store.acquire_lease("alice", "s5", "server-b", 30.0)
    with pytest.raises(LeaseLostError):  # the dead server's late renewal stores nothing
        await store.renew_lease("alice", "s5", lease.epoch, 30.0, speaker_state="stale")
    assert (await store.get_transcript("alice", "s5")).speaker_state == state
    await store.renew_lease("alice", "s5", second.epoch, 30.0, speaker_state="newer")
    assert (await store.get_transcript("alice", "s5")).speaker_state == "newer"
    with pytest.raises(NotFoundError):  # another principal's transcript
        await store.renew_lease("mallory", "s5", second.epoch, 30.0, speaker_state="x")
    assert (await store.get_transcript("alice", "s5")).speaker_state == "newer"


async def test_naming_unnamed_speakers_sets_only_labels_unnamed_at_the_write(
    store: TranscriptStore,
) -> None:
    await store.create_transcript(meta("s3"))
    await store.update_transcript("alice", "s3", speaker_names={"S1": "Robert", "S2": ""})
    got = await store.name_unnamed_speakers(
        "alice", "s3", {"S1": "Alice", "S2": "Bob", "S3": "Carol"}
    )
    # S1 keeps its name; S2 ("": unnamed again) and S3 (absent) are named.
    assert got == {"S1": "Robert", "S2": "Bob", "S3": "Carol"}
    assert (await store.get_transcript("alice", "s3")).speaker_names == got
    with pytest.raises(NotFoundError):  # another principal's transcript
        await store.name_unnamed_speakers("mallory", "s3", {"S4": "Dan"})


async def test_a_rename_landing_between_the_read_and_the_write_wins(
    store: TranscriptStore,
) -> None:
    """The race LiveNames had: it reads the names (S1 unnamed), a user renames S1, then
    it writes the remembered voice's name. The conditional write keeps the user's name;
    the map written whole (update_transcript, as before) would have lost it."""
    await store.create_transcript(meta("s4"))
    read = (await store.get_transcript("alice", "s4")).speaker_names  # LiveNames' read
    assert "S1" not in read
    await store.update_transcript("alice", "s4", speaker_names={"S1": "Carol"})  # the user
    got = await store.name_unnamed_speakers("alice", "s4", {"S1": "Alice", "S2": "Bob"})
    assert got == {"S1": "Carol", "S2": "Bob"}
    # Truly concurrent (DynamoDB's store runs calls on 8 threads): whichever write lands
    # first, the user's name is what stays.
    for n in range(5):
        await store.update_transcript("alice", "s4", speaker_names={"S1": ""})
        await asyncio.gather(
            store.name_unnamed_speakers("alice", "s4", {"S1": "Alice"}),
            store.update_transcript("alice", "s4", speaker_names={"S1": f"Carol {n}"}),
        )
        assert (await store.get_transcript("alice", "s4")).speaker_names == {"S1": f"Carol {n}"}
