"""One model, many streams: batches decode requests across streams on one thread.

Each stream has at most one request in flight (its session awaits the
result), so taking every pending request in arrival order gives each stream a
fair share: a new client joins the next batch instead of stalling the others.
Inference runs on a single worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from service.engine import DecodeRequest, DecodeResult, SpeechEngine
from service.errors import EngineError
from service.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    request: DecodeRequest
    future: asyncio.Future[DecodeResult]
    queued_at: float = field(default_factory=time.monotonic)


class DecodeScheduler:
    """Collects requests from all streams and runs them in batches."""

    def __init__(
        self, engine: SpeechEngine, max_batch: int = 8, metrics: Metrics | None = None
    ) -> None:
        self.metrics = metrics or Metrics()
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._task: asyncio.Task[None] | None = None
        self.decode_seconds = 0.0
        self.batches = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="decode-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for p in self._pending:
            p.future.cancel()
        self._executor.shutdown(wait=True)

    async def decode(self, request: DecodeRequest) -> DecodeResult:
        """Queue a request and wait for its result (EngineError if the model fails on it)."""
        self.start()
        fut: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, fut))
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = [p for p in self._pending[: self.max_batch] if not p.future.done()]
                del self._pending[: self.max_batch]
                if not batch:
                    continue
                started = time.monotonic()
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.engine.decode_batch, [p.request for p in batch]
                    )
                except Exception:
                    logger.exception("batched decode failed; retrying requests one by one")
                    await self._run_singly(batch)
                else:
                    for p, r in zip(batch, results, strict=True):
                        if not p.future.done():
                            p.future.set_result(r)
                elapsed = time.monotonic() - started
                self.decode_seconds += elapsed
                self.batches += 1
                self.metrics.decode_seconds.observe(elapsed)
                self.metrics.batch_size.observe(len(batch))
                self.metrics.queue_depth.set(len(self._pending))

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
