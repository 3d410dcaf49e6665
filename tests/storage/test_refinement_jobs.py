"""Refinement jobs in both stores: state round trip, one claim at a time, the queue."""

from __future__ import annotations

import asyncio

import pytest

from service.domain import Refinement, RefinementState
from service.errors import NotFoundError
from service.storage.base import TranscriptStore
from tests.storage.test_store_contract import meta, store

__all__ = ["store"]  # the parametrized fixture (SQLite and DynamoDB Local)

PENDING, RUNNING, DONE = RefinementState.PENDING, RefinementState.RUNNING, RefinementState.DONE


async def test_state_round_trips_and_is_scoped_to_the_owner(store: TranscriptStore) -> None:
    await store.create_transcript(meta("r1"))
    assert (await store.get_transcript("alice", "r1")).refinement == Refinement()
    await store.set_refinement("alice", "r1", Refinement(RUNNING, 0.25))
    assert (await store.get_transcript("alice", "r1")).refinement == Refinement(RUNNING, 0.25)
    failed = Refinement(RefinementState.FAILED, 0.0, "no recording")
    await store.set_refinement("alice", "r1", failed)
    assert (await store.get_transcript("alice", "r1")).refinement == failed
    with pytest.raises(NotFoundError):
        await store.set_refinement("bob", "r1", Refinement(PENDING))
    with pytest.raises(NotFoundError):
        await store.set_refinement("alice", "missing", Refinement(PENDING))


async def test_one_worker_holds_a_job_until_its_claim_expires(store: TranscriptStore) -> None:
    await store.create_transcript(meta("r2"))
    assert not await store.claim_refinement("alice", "r2", "w1", 30)  # not queued
    await store.set_refinement("alice", "r2", Refinement(PENDING))
    claims = await asyncio.gather(
        *(store.claim_refinement("alice", "r2", f"w{i}", 0.6) for i in range(6))
    )
    assert sum(claims) == 1
    winner = f"w{claims.index(True)}"
    assert await store.claim_refinement("alice", "r2", winner, 0.6)  # renewal
    other = "w9"
    assert not await store.claim_refinement("alice", "r2", other, 0.6)
    assert not await store.claim_refinement("bob", "r2", other, 0.6)  # another owner's
    await asyncio.sleep(0.8)  # the claim lapses (a worker that died)
    assert await store.claim_refinement("alice", "r2", other, 30)


async def test_the_queue_lists_pending_and_abandoned_jobs_only(store: TranscriptStore) -> None:
    for tid, minutes in (("q1", 0), ("q2", 1), ("q3", 2), ("q4", 3)):
        await store.create_transcript(meta(tid, minutes=minutes))
    await store.set_refinement("alice", "q1", Refinement(PENDING))
    await store.set_refinement("alice", "q2", Refinement(PENDING))
    await store.set_refinement("alice", "q3", Refinement(PENDING))
    assert await store.claim_refinement("alice", "q2", "w", 30)  # running, claim fresh
    assert await store.claim_refinement("alice", "q3", "w", 0.2)  # running, claim lapses
    await store.set_refinement("alice", "q1", Refinement(DONE, 1.0))  # finished
    await asyncio.sleep(0.4)
    assert sorted(await store.pending_refinements(10)) == [("alice", "q3")]
