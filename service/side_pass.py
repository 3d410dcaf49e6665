"""A stream's second pass, decoded beside its first passes instead of before them.

A stream awaits each first-pass decode before it reads on, and so far awaited its second
passes the same way: a second pass (a whole sentence and the 3 s before it, final beam)
held the next first pass back for as long as it took, which is what made second passes
too slow for a lone base stream on 2 cores (docs/benchmarks.md, "Capacity: real-time
base streams"). The model's scheduler keeps two workers, and a lone stream uses one: the
second pass runs as a task of its own on the other, and the stream takes its result at
its next step. At most one at a time (the policy offers no second one while it runs).
Second passes wait for the scheduler's slack (`low`): while streams share the model they
run only with `--revise-shared`, when no stream waits for a worker, or with
`--revise-shared-idle` on the model's idle lane (service/idle_lane.py) or in the
scheduler's slack, whichever comes first, but never on a worker a stream waits for; one
not done when its stream ends and waits for it moves to the scheduler, which runs it
within `LOW_WAIT_S`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from service.engine import DecodeRequest, DecodeResult
from service.idle_lane import IdleLane
from service.metrics import Metrics
from service.policy import DecodeJob
from service.scheduler import DecodeScheduler


@dataclass(frozen=True)
class _Running:
    job: DecodeJob
    request: DecodeRequest
    task: asyncio.Task[DecodeResult]
    started: float
    idle: bool


class SidePass:
    """The second pass of one stream running beside its first passes, if any."""

    def __init__(
        self,
        scheduler: DecodeScheduler,
        idle: IdleLane | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._idle = idle
        self._metrics = metrics or Metrics()
        self._running: _Running | None = None

    @property
    def running(self) -> bool:
        """A second pass was started and its result not yet taken."""
        return self._running is not None

    def start(self, job: DecodeJob, request: DecodeRequest, shared: bool = False) -> None:
        """Decode `request` (of the started second-pass `job`) on the model's scheduler, or,
        while the stream shares the model (`shared`) and the model has an idle lane, there
        or in the scheduler's slack, whichever comes first."""
        if self._running is not None:
            raise ValueError("a second pass of this stream is already running beside")
        lane = self._idle if shared else None
        where = "shared" if shared else "beside"
        decode = self._either(lane, request) if lane else self._decode(request, where)
        task = asyncio.create_task(decode, name="second-pass")
        self._running = _Running(job, request, task, time.monotonic(), lane is not None)

    async def _decode(self, request: DecodeRequest, lane: str) -> DecodeResult:
        result = await self._scheduler.decode(request, low=True)
        self._metrics.second_passes.labels(lane).inc()
        return result

    async def _either(self, idle: IdleLane, request: DecodeRequest) -> DecodeResult:
        """The first result of the idle lane and of the scheduler's slack (never forced:
        it takes no worker a stream wants); the other is dropped, before it starts if it
        has not."""
        lanes = [
            asyncio.create_task(idle.decode(request), name="second-pass-idle"),
            asyncio.create_task(
                self._scheduler.decode(request, low=True, force=False), name="second-pass-slack"
            ),
        ]
        try:
            done, _ = await asyncio.wait(lanes, return_when=asyncio.FIRST_COMPLETED)
            first = next(iter(done))
            result = first.result()
            self._metrics.second_passes.labels("idle" if first is lanes[0] else "slack").inc()
            return result
        finally:
            for lane in lanes:
                lane.cancel()
            await asyncio.wait(lanes)
            for lane in lanes:  # retrieved: the one not taken may have failed too
                if not lane.cancelled():
                    lane.exception()

    async def take(self, wait: bool = False) -> tuple[DecodeJob, DecodeResult, float] | None:
        """The job, result and start time of the second pass once it is done (`wait`:
        wait for it), else None. Its EngineError is raised here, as an inline decode's."""
        running = self._running
        if running is None or not (wait or running.task.done()):
            return None
        if running.idle and not running.task.done():  # the stream waits: not at nice 19
            running.task.cancel()
            await asyncio.wait([running.task])
            task = asyncio.create_task(self._decode(running.request, "forced"), name="second-pass")
            running = replace(running, task=task, idle=False)
            self._running = running
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
