"""The stream registry: atomic admission that counts calls, drain, and memory release."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import pytest

from service.errors import ResourceExhaustedError, UnavailableError
from service.metrics import Metrics
from service.registry import ENDED_KEPT, DecodeStats, StreamRegistry, StreamSummary


def releases(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("transcribe_memory_releases_total") or 0.0


async def test_calls_at_the_same_instant_never_pass_the_limit() -> None:
    registry = StreamRegistry(16, Metrics())
    admitted, refused = 0, 0
    hold, answered = asyncio.Event(), asyncio.Event()

    async def call() -> None:
        nonlocal admitted, refused
        await asyncio.sleep(0)  # all 30 start together
        try:
            with registry.admit():
                admitted += 1
                if admitted + refused == 30:
                    answered.set()
                await hold.wait()  # awaits inside: the next calls are checked meanwhile
        except ResourceExhaustedError as exc:
            refused += 1
            if admitted + refused == 30:
                answered.set()
            assert "limit of 16 concurrent streams" in str(exc)

    calls = [asyncio.create_task(call()) for _ in range(30)]
    await answered.wait()
    assert (admitted, refused, registry.active) == (16, 14, 16)
    hold.set()
    await asyncio.gather(*calls)
    assert registry.active == 0


async def test_streams_are_counted_not_transcripts() -> None:
    registry = StreamRegistry(2, Metrics())
    with registry.admit() as a, registry.admit() as b:  # e.g. two calls on one transcript
        a.started()
        b.started()
        assert registry.active == 2 and a.shared and b.shared
        with pytest.raises(ResourceExhaustedError):
            with registry.admit():
                pass
    assert registry.active == 0


async def test_memory_goes_back_once_when_the_last_stream_ends() -> None:
    metrics = Metrics()
    registry = StreamRegistry(4, metrics)
    with ExitStack() as stack:
        stack.enter_context(registry.admit())
        with registry.admit():
            pass
        assert releases(metrics) == 0  # one stream still runs
    assert releases(metrics) == 1


async def test_drain_refuses_new_calls_and_waits_for_closing() -> None:
    registry = StreamRegistry(4, Metrics())
    stored = asyncio.Event()

    async def store_last_results() -> None:
        await stored.wait()

    with registry.admit() as slot:
        slot.keep_closing(asyncio.create_task(store_last_results()))
    registry.drain()
    assert slot.draining.is_set()
    with pytest.raises(UnavailableError, match="shutting down"):
        with registry.admit():
            pass
    waiting = asyncio.create_task(registry.wait_closed())
    await asyncio.sleep(0)
    assert registry.closing == 1 and not waiting.done()
    stored.set()
    await waiting
    assert registry.closing == 0


def test_what_is_kept_of_ended_streams_is_bounded() -> None:
    registry = StreamRegistry(1, Metrics())
    stats = DecodeStats()
    for t in range(0, 600, 5):  # ten minutes of decodes of 5 s each
        stats.add(t, 5.0, 0.1, "speech")
    assert len(stats.audio_s) == 10 and stats.audio_s[0] == 60.0
    assert stats.longest_s == {"speech": 5.0}
    for i in range(3 * ENDED_KEPT):
        with registry.admit() as slot:
            slot.ended(StreamSummary(str(i), "complete", stats))
    assert len(registry.ended) == ENDED_KEPT
    assert registry.ended[-1].transcript_id == str(3 * ENDED_KEPT - 1)
