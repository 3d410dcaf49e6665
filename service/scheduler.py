"""One model, many streams: batches decode requests across streams on worker threads.

Each stream has at most one request in flight (its session awaits the
result), so taking pending requests in arrival order gives each stream a fair
share: a new client joins the next batch instead of stalling the others.
Inference runs on worker threads, never on the event loop.

Measured on 2 cores (tiny.en int8, 8 streams of 8 s buffers): two batches of 4
run at once on one CTranslate2 thread each take 0.84 s, one batch of 8 on two
threads 1.2 s, and a lone request is as fast on one thread as on two. So the
scheduler keeps `workers` batches in flight (one model, CTranslate2's
inter-op workers) and splits the waiting streams evenly between them.

After a batch the scheduler waits a moment (`gather_s`) for the streams it just
answered to ask again. Without that, streams drift into cohorts that take
turns (3 streams, then the other 5, then the 3 ...), and every stream waits
for two model calls per decode instead of one.

Second passes (`decode(..., low=True)`) take the slack: they run `low_batch` at a time
(one), only on a worker no stream is waiting for or about to ask for, or once one has
waited `low_wait_s` (a stream's end waits for its last ones); one asked with
`force=False` runs only in the slack (it has the idle lane too: service/side_pass.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from service.engine import DecodeRequest, DecodeResult, SpeechEngine
from service.errors import EngineError
from service.metrics import Metrics
from service.threads import named_executor

logger = logging.getLogger(__name__)

LOW_BATCH = 1
LOW_WAIT_S = 4.0
"""Second passes run one at a time, and wait at most this long for slack. 8 real-time
tiny.en streams, 24 dev clips of the tuning speakers, two runs each (docs/benchmarks.md,
"Second passes in the slack"): one at a time with 4 s, WER 5.9 / 5.9 % (offline 5.9 %),
final p90 1.91 / 1.90 s; two at a time with 2 s, 4.8 / 5.0 %, p90 2.07 / 2.07 s; eight
at a time with 2 s, 5.3 / 5.5 %, p90 2.11 / 1.82 s; none (no --revise-shared), 6.4 /
7.0 %, p90 1.77 / 1.76 s. A batch of second passes holds a worker the streams need."""


@dataclass
class _Pending:
    request: DecodeRequest
    future: asyncio.Future[DecodeResult]
    queued_at: float = field(default_factory=time.monotonic)
    force: bool = True
    """A second pass that takes a worker from the streams once it has waited `low_wait_s`."""


class DecodeScheduler:
    """Collects requests from all streams and runs them in batches."""

    def __init__(
        self,
        engine: SpeechEngine,
        max_batch: int = 8,
        metrics: Metrics | None = None,
        workers: int = 1,
        gather_s: float = 0.05,
        low_wait_s: float = LOW_WAIT_S,
        low_batch: int = LOW_BATCH,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self.workers = max(1, workers)
        self.gather_s = gather_s
        self._pending: list[_Pending] = []
        self._low: list[_Pending] = []
        self._low_busy = False  # a batch of second passes is running
        self._answered_at = 0.0  # when the last batch of first passes ended
        self.low_wait_s = low_wait_s
        self.low_batch = low_batch
        self._in_flight = 0  # requests in running batches
        self._busy = 0  # workers running a batch
        self._running: set[asyncio.Task[None]] = set()
        self._returning = 0  # streams answered that have not asked again yet
        self._wakeup = asyncio.Event()
        self._arrived = asyncio.Event()
        self._executor = named_executor(self.workers, "engine")
        self._task: asyncio.Task[None] | None = None
        self.decode_seconds = 0.0
        self.batches = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="decode-scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._task = None
        for p in (*self._pending, *self._low):
            p.future.cancel()
        self._executor.shutdown(wait=True)

    async def decode(
        self, request: DecodeRequest, low: bool = False, force: bool = True
    ) -> DecodeResult:
        """Queue a request and wait for its result (EngineError if the model fails on it).
        `low`: a second pass, decoded in the slack (module docstring); `force` False: only
        in the slack, however long it waits."""
        self.start()
        fut: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
        if low:
            self._low.append(_Pending(request, fut, force=force))
        else:
            self._pending.append(_Pending(request, fut))
            self._returning = max(0, self._returning - 1)
            self._arrived.set()
        self._wakeup.set()
        return await fut

    def _oldest_forced(self) -> int | None:
        """Index of the oldest second pass that may take a worker when it has waited."""
        return next((i for i, p in enumerate(self._low) if p.force), None)

    def _next_low(self) -> int | None:
        """Index of the second pass to start now, if any: none is running, and one has
        waited its longest (the oldest that may be forced), or no stream waits or is
        about to ask (answered within `gather_s`): the oldest."""
        if not self._low or self._low_busy:
            return None
        now = time.monotonic()
        forced = self._oldest_forced()
        if forced is not None and now - self._low[forced].queued_at >= self.low_wait_s:
            return forced
        slack = not self._pending and (
            not self._returning or now - self._answered_at >= self.gather_s
        )
        return 0 if slack else None

    def _low_timeout(self) -> float | None:
        """When a waiting second pass may next be due (None: none waits)."""
        if not self._low or self._low_busy:
            return None
        forced = self._oldest_forced()
        due = math.inf if forced is None else self._low[forced].queued_at + self.low_wait_s
        if self._returning:
            due = min(due, self._answered_at + self.gather_s)
        return None if due == math.inf else max(0.0, due - time.monotonic())

    async def _gather(self) -> None:
        """Wait up to `gather_s` while streams just answered may still fill this batch."""
        deadline = time.monotonic() + self.gather_s
        while self._returning and len(self._pending) < self._share():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        self._returning = 0  # the rest has nothing to decode yet

    def _share(self) -> int:
        """Batch size that splits the streams waiting, decoding or about to come back
        evenly over the workers."""
        streams = len(self._pending) + self._in_flight + self._returning
        return max(1, min(self.max_batch, math.ceil(streams / self.workers)))

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._low_timeout()):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            self._start_low()  # one that has waited its longest goes before the streams
            while self._pending and self._busy < self.workers:
                if self._returning:
                    # The streams just answered come back within milliseconds when
                    # they have more speech: let them join this batch.
                    await self._gather()
                    if self._busy >= self.workers:
                        break
                take = self._share()
                batch = [p for p in self._pending[:take] if not p.future.done()]
                del self._pending[:take]
                if not batch:
                    continue
                self._in_flight += len(batch)
                self._busy += 1
                self._launch(batch)
            self._start_low()
            self.metrics.queue_depth.set(len(self._pending))

    def _launch(self, batch: list[_Pending], low: bool = False) -> None:
        task = asyncio.create_task(self._run_batch(batch, low), name="decode-batch")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _start_low(self) -> None:
        """Run the waiting second passes (up to `low_batch`) on a free worker if one is
        due (`_next_low`); those whose stream has gone are dropped first."""
        self._low = [p for p in self._low if not p.future.done()]
        while self._busy < self.workers and (i := self._next_low()) is not None:
            batch = self._low[i : i + self.low_batch]
            del self._low[i : i + self.low_batch]
            self._busy += 1
            self._low_busy = True
            self._launch(batch, low=True)

    async def _run_batch(self, batch: list[_Pending], low: bool = False) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            try:
                results = await loop.run_in_executor(
                    self._executor, self.engine.decode_batch, [p.request for p in batch]
                )
            except Exception:
                # Loud on purpose: a batch that fails as a whole means every stream in it
                # now decodes alone (slower for all), which must never go unnoticed.
                self.metrics.batch_fallbacks.inc()
                logger.exception(
                    "batched decode of %d requests failed; retrying them one by one", len(batch)
                )
                await self._run_singly(batch)
            else:
                for p, r in zip(batch, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(r)
        finally:
            self._busy -= 1
            if low:
                self._low_busy = False
            else:
                self._in_flight -= len(batch)
                self._returning += len(batch)
                self._answered_at = time.monotonic()
            self._wakeup.set()
        elapsed = time.monotonic() - started
        self.decode_seconds += elapsed
        self.batches += 1
        self.metrics.decode_seconds.observe(elapsed)
        self.metrics.batch_size.observe(len(batch))

    async def _run_singly(self, batch: list[_Pending]) -> None:
        """Isolate a failure to the stream whose request caused it."""
        loop = asyncio.get_running_loop()
        for p in batch:
            try:
                (result,) = await loop.run_in_executor(
                    self._executor, self.engine.decode_batch, [p.request]
                )
            except Exception as exc:
                if not p.future.done():
                    p.future.set_exception(EngineError(f"the speech model failed: {exc}"))
            else:
                if not p.future.done():
                    p.future.set_result(result)
