"""A stream's second pass, decoded beside its first passes instead of before them.

A stream awaits each first-pass decode before it reads on, and so far awaited its second
passes the same way: a second pass (a whole sentence and the 3 s before it, final beam)
held the next first pass back for as long as it took, which is what made second passes
too slow for a lone base stream on 2 cores (docs/benchmarks.md, "Capacity: real-time
base streams"). The model's scheduler keeps two workers, and a lone stream uses one: the
second pass runs as a task of its own on the other, and the stream takes its result at
its next step. At most one at a time (the policy offers no second one while it runs).
Second passes wait for the scheduler's slack (`low`): while streams share the model they
run only with `--revise-shared`, when no stream waits for a worker.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from service.engine import DecodeRequest, DecodeResult
from service.policy import DecodeJob
from service.scheduler import DecodeScheduler


@dataclass(frozen=True)
class _Running:
    job: DecodeJob
    task: asyncio.Task[DecodeResult]
    started: float


class SidePass:
    """The second pass of one stream running beside its first passes, if any."""

    def __init__(self, scheduler: DecodeScheduler) -> None:
        self._scheduler = scheduler
        self._running: _Running | None = None

    @property
    def running(self) -> bool:
        """A second pass was started and its result not yet taken."""
        return self._running is not None

    def start(self, job: DecodeJob, request: DecodeRequest) -> None:
        """Decode `request` (of the started second-pass `job`) on the model's scheduler."""
        if self._running is not None:
            raise ValueError("a second pass of this stream is already running beside")
        task = asyncio.create_task(self._scheduler.decode(request, low=True), name="second-pass")
        self._running = _Running(job, task, time.monotonic())

    async def take(self, wait: bool = False) -> tuple[DecodeJob, DecodeResult, float] | None:
        """The job, result and start time of the second pass once it is done (`wait`:
        wait for it), else None. Its EngineError is raised here, as an inline decode's."""
        running = self._running
        if running is None or not (wait or running.task.done()):
            return None
        result = await running.task
        self._running = None
        return running.job, result, running.started

    async def cancel(self) -> None:
        """The stream is over: a second pass still running is dropped."""
        running, self._running = self._running, None
        if running is None:
            return
        running.task.cancel()
        await asyncio.wait([running.task])
        if not running.task.cancelled():
            running.task.exception()  # retrieved: the stream ended for another reason
