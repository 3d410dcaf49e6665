"""The scheduler keeps both workers busy and keeps streams in one batch per round.

Both behaviours are what let one 2-core machine serve 8 real-time streams
(docs/benchmarks.md): two batches at once on one CTranslate2 thread each, and
streams that just got their result joining the next batch together instead of
drifting into cohorts that take turns."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence

import numpy as np

from service.engine import DecodeRequest, DecodeResult, WhisperEngine
from service.scheduler import DecodeScheduler
from tests.helpers import decode_16k, dev_clips, until


class RecordingEngine:
    """The real engine, recording each batch's size and when it ran."""

    def __init__(self, real: WhisperEngine) -> None:
        self.real = real
        self.name = real.name
        self.batches: list[tuple[int, float, float]] = []
        self._lock = threading.Lock()

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        start = time.monotonic()
        out = self.real.decode_batch(requests)
        with self._lock:
            self.batches.append((len(requests), start, time.monotonic()))
        return out


def _requests(n: int) -> list[DecodeRequest]:
    clips = dev_clips()
    return [
        DecodeRequest(audio=np.ascontiguousarray(decode_16k(clips[i % len(clips)].path)[:48000]))
        for i in range(n)
    ]


async def test_waiting_streams_are_split_over_both_workers(engine: WhisperEngine) -> None:
    rec = RecordingEngine(engine)
    scheduler = DecodeScheduler(rec, max_batch=8, workers=2)
    try:
        results = await asyncio.gather(*(scheduler.decode(r) for r in _requests(4)))
    finally:
        await scheduler.stop()
    assert all(r.text for r in results)
    # the first request starts alone at once; the other three wait for a free worker
    sizes = sorted(size for size, _, _ in rec.batches)
    assert sum(sizes) == 4 and len(sizes) >= 2
    # two model calls really ran at the same time
    spans = sorted((s, e) for _, s, e in rec.batches)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))


async def test_answered_streams_join_one_batch(engine: WhisperEngine) -> None:
    """Streams come back a few thread hand-offs apart (VAD, storage): they still share."""
    rec = RecordingEngine(engine)
    scheduler = DecodeScheduler(rec, max_batch=8, workers=1, gather_s=0.5)
    requests = _requests(4)
    first_round = asyncio.Event()

    async def stream(i: int) -> None:
        await first_round.wait()
        for _ in range(3):
            await scheduler.decode(requests[i])
            for _ in range(i + 1):  # later streams take longer to ask again
                await asyncio.to_thread(lambda: None)

    tasks = [asyncio.create_task(stream(i)) for i in range(4)]
    try:
        first_round.set()
        await asyncio.gather(*tasks)
    finally:
        await scheduler.stop()
    sizes = [size for size, _, _ in rec.batches]
    assert sum(sizes) == 12
    assert sizes[-2:] == [4, 4], sizes  # rounds 2 and 3: everyone together


class BatchRefusingEngine(RecordingEngine):
    """The real engine, except that a batch of more than one request fails as a whole
    (what a device that cannot split a mixed batch would do)."""

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        if len(requests) > 1:
            raise RuntimeError("this batch cannot be decoded together")
        return super().decode_batch(requests)


async def test_a_failed_batch_is_counted_and_every_stream_still_answered(
    engine: WhisperEngine,
) -> None:
    rec = BatchRefusingEngine(engine)
    scheduler = DecodeScheduler(rec, max_batch=8, workers=1)
    try:
        results = await asyncio.gather(*(scheduler.decode(r) for r in _requests(3)))
    finally:
        await scheduler.stop()
    assert all(r.text for r in results)
    # at least one batch of several requests was tried, failed, and was counted
    fallbacks = scheduler.metrics.registry.get_sample_value("transcribe_batch_fallbacks_total")
    assert fallbacks is not None and fallbacks >= 1
    assert all(size == 1 for size, _, _ in rec.batches)


def test_encoder_output_rows_are_taken_from_host_memory(engine: WhisperEngine) -> None:
    """Mixed beams in one batch split the encoder output by rows (the path that needed
    device memory before): both groups decode, each to the text it gets alone."""
    reqs = _requests(2)
    mixed = [
        DecodeRequest(audio=reqs[0].audio, beam_size=1),
        DecodeRequest(audio=reqs[1].audio, beam_size=2),
    ]
    together = engine.decode_batch(mixed)
    alone = [engine.decode_batch([r])[0] for r in mixed]
    assert [r.text for r in together] == [r.text for r in alone]


class GatedEngine(RecordingEngine):
    """The real engine, recording each batch's requests by their prompt; a batch whose
    first prompt is in `hold` waits until the test releases it."""

    def __init__(self, real: WhisperEngine, hold: set[str]) -> None:
        super().__init__(real)
        self.hold = hold
        self.release = threading.Event()
        self.started = threading.Event()
        self.order: list[list[str]] = []

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        with self._lock:
            self.order.append([r.prompt for r in requests])
        if requests[0].prompt in self.hold:
            self.started.set()
            self.release.wait(60)
        return super().decode_batch(requests)


def _tagged(tags: str) -> dict[str, DecodeRequest]:
    requests = _requests(len(tags))
    return {t: DecodeRequest(audio=r.audio, prompt=t) for t, r in zip(tags, requests, strict=True)}


async def test_a_second_pass_waits_for_the_streams_waiting_on_the_model(
    engine: WhisperEngine,
) -> None:
    """One worker: a second pass queued while a stream's first pass runs and another
    waits goes after that one, in the slack, not before it."""
    gated = GatedEngine(engine, hold={"a"})
    scheduler = DecodeScheduler(gated, max_batch=8, workers=1, gather_s=0.01)
    r = _tagged("abl")
    try:
        first = asyncio.create_task(scheduler.decode(r["a"]))
        await asyncio.to_thread(gated.started.wait, 60)
        second = asyncio.create_task(scheduler.decode(r["l"], low=True))
        waiting = asyncio.create_task(scheduler.decode(r["b"]))
        await until(lambda: len(scheduler._low) == 1 and len(scheduler._pending) == 1, "queued")
        gated.release.set()
        results = await asyncio.gather(first, second, waiting)
    finally:
        await scheduler.stop()
    assert all(x.text for x in results)
    assert gated.order == [["a"], ["b"], ["l"]], gated.order


async def test_a_second_pass_starved_by_busy_streams_runs_once_it_has_waited(
    engine: WhisperEngine,
) -> None:
    """Streams that always have a first pass waiting cannot hold a second pass back for
    longer than `low_wait_s`: it runs between their batches, by itself."""
    rec = GatedEngine(engine, hold=set())
    scheduler = DecodeScheduler(rec, max_batch=8, workers=1, low_wait_s=0.3)
    r = _tagged("abl")
    second: asyncio.Task[DecodeResult] | None = None

    async def stream(tag: str) -> int:
        rounds = 0
        while second is None or not second.done():
            await scheduler.decode(r[tag])
            rounds += 1
            assert rounds < 200, "the second pass never ran"
        return rounds

    streams = [asyncio.create_task(stream(t)) for t in "ab"]
    try:
        await until(lambda: len(rec.order) >= 2, "the streams are decoding")
        second = asyncio.create_task(scheduler.decode(r["l"], low=True))
        await second
        await asyncio.gather(*streams)
    finally:
        await scheduler.stop()
    assert ["l"] in rec.order
    assert all(batch == ["l"] or "l" not in batch for batch in rec.order), rec.order


async def test_a_second_pass_that_may_not_force_waits_for_the_slack(
    engine: WhisperEngine,
) -> None:
    """`force=False` (a second pass that has the idle lane too): busy streams hold it back
    past `low_wait_s`, while one that may force goes; it runs once they stop."""
    rec = GatedEngine(engine, hold=set())
    scheduler = DecodeScheduler(rec, max_batch=8, workers=1, low_wait_s=0.3)
    r = _tagged("abln")
    forced: asyncio.Task[DecodeResult] | None = None

    async def stream(tag: str) -> None:
        while forced is None or not forced.done():
            await scheduler.decode(r[tag])

    streams = [asyncio.create_task(stream(t)) for t in "ab"]
    try:
        await until(lambda: len(rec.order) >= 2, "the streams are decoding")
        unforced = asyncio.create_task(scheduler.decode(r["n"], low=True, force=False))
        await until(lambda: len(scheduler._low) == 1, "the unforced second pass waits")
        forced = asyncio.create_task(scheduler.decode(r["l"], low=True))
        await forced  # queued after the unforced one, it still ran first
        assert ["n"] not in rec.order and not unforced.done()
        await asyncio.gather(*streams)  # the streams stop: slack
        await unforced
    finally:
        await scheduler.stop()
    assert rec.order.index(["l"]) < rec.order.index(["n"]), rec.order
