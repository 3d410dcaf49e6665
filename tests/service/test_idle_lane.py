"""Shared streams' second passes on the idle lane (service/idle_lane.py): a copy of the
model on threads at nice 19, so that second passes take only the CPU the live decodes
leave. Real model (tiny.en), real speech."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from service.config import Settings, StorageSettings, StreamingSettings
from service.config_decode import ModelSettings
from service.engine import DecodeRequest, DecodeResult, WhisperEngine
from service.idle_lane import IdleLane
from service.metrics import Metrics
from service.policy import DecodeJob, JobKind
from service.scheduler import DecodeScheduler
from service.server import start_server
from service.side_pass import SidePass
from service.threads import NICE
from tests.helpers import decode_16k, dev_clips, thread_nices, until
from tests.service.test_scheduler import GatedEngine
from tests.service.test_second_pass_beside import two_streams_store_what_they_were_sent


def _request() -> DecodeRequest:
    audio = decode_16k(dev_clips()[0].path)[: 6 * 16000]
    return DecodeRequest(audio=np.ascontiguousarray(audio), beam_size=5)


def _job(request: DecodeRequest) -> DecodeJob:
    return DecodeJob(
        kind=JobKind.REVISE, audio=request.audio, start_s=0.0, end_s=6.0, beam_size=5,
        prompt="", context="", hotwords="",
    )  # fmt: skip


def passes(metrics: Metrics) -> dict[str, float]:
    """Second passes counted by lane (transcribe_second_passes_total)."""
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "transcribe_second_passes_total" and sample.value:
                out[sample.labels["lane"]] = sample.value
    return out


def forces(scheduler: DecodeScheduler) -> list[bool]:
    """Whether each second pass waiting in the scheduler may be forced (those whose
    stream stopped waiting are left out: the scheduler drops them)."""
    return [p.force for p in scheduler._low if not p.future.done()]


def _lane_thread(lane: IdleLane) -> tuple[int, int]:
    """The lane thread's native id and nice value, read on that thread."""

    def read() -> tuple[int, int]:
        tid = threading.get_native_id()
        return tid, os.getpriority(os.PRIO_PROCESS, tid)

    return lane._executor.submit(read).result(timeout=60)


async def test_the_lane_decodes_as_the_model_does_at_the_lowest_priority(
    engine: WhisperEngine,
) -> None:
    before = thread_nices()
    lane = IdleLane(engine.spec, ModelSettings())
    try:
        request = _request()
        got = await lane.decode(request)
        want = engine.decode_batch([request])[0]
        assert got.text == want.text and got.text.strip()
        tid, nice = _lane_thread(lane)
        assert nice == 19, f"the lane's thread runs at nice {nice}"
        assert tid != threading.get_native_id()
        # CTranslate2's own threads were started by the lane's thread: they inherit nice 19.
        new = [nice for tid, nice in thread_nices().items() if tid not in before]
        added = new.count(NICE)
        assert added >= 2, f"{added} threads at nice 19: the lane's, and not CTranslate2's"
    finally:
        lane.stop()


async def test_a_shared_second_pass_takes_the_slack_when_the_lane_is_busy(
    engine: WhisperEngine,
) -> None:
    """The idle lane busy (a decode holds its thread) and a worker free with no stream
    waiting: the second pass runs in the scheduler's slack, whichever comes first."""
    lane = IdleLane(engine.spec, ModelSettings())
    scheduler = DecodeScheduler(engine, workers=2)
    release = threading.Event()
    lane._executor.submit(release.wait, 120)
    try:
        metrics = Metrics()
        side = SidePass(scheduler, lane, metrics)
        request = _request()
        side.start(_job(request), request, shared=True)
        running = side._running
        assert running is not None
        await until(running.task.done, "the pass ran in the slack", 120)
        taken = await side.take()  # done: taken without waiting, so never forced
        assert taken is not None and taken[1].text == engine.decode_batch([request])[0].text
        assert scheduler.batches == 1 and lane.decodes == 0
        assert passes(metrics) == {"slack": 1.0}
    finally:
        release.set()
        lane.stop()
        await scheduler.stop()


async def test_a_second_pass_the_stream_waits_for_moves_to_the_scheduler(
    engine: WhisperEngine,
) -> None:
    """Neither lane free (the idle lane's thread held, the one worker held by a stream's
    first pass): the shared second pass waits, not forced. At its end the stream waits for
    it: it leaves the idle lane and is queued to be forced after `low_wait_s`, so that no
    stream's end waits on CPU the others leave."""
    lane = IdleLane(engine.spec, ModelSettings())
    gated = GatedEngine(engine, hold={"a"})
    scheduler = DecodeScheduler(gated, workers=1, low_wait_s=0.2)
    release = threading.Event()
    lane._executor.submit(release.wait, 120)
    try:
        first = asyncio.create_task(scheduler.decode(DecodeRequest(_request().audio, "a")))
        await asyncio.to_thread(gated.started.wait, 60)
        metrics = Metrics()
        side = SidePass(scheduler, lane, metrics)
        request = _request()
        side.start(_job(request), request, shared=True)
        await until(lambda: forces(scheduler) == [False], "waits unforced")
        assert await side.take() is None
        ending = asyncio.create_task(side.take(wait=True))
        await until(lambda: forces(scheduler) == [True], "queued to be forced")
        gated.release.set()
        taken = await asyncio.wait_for(ending, 120)
        await first
        assert taken is not None and taken[1].text == engine.decode_batch([request])[0].text
        assert lane.decodes == 0 and gated.order == [["a"], [""]], gated.order
        assert not side.running
        assert passes(metrics) == {"forced": 1.0}
    finally:
        gated.release.set()
        release.set()
        lane.stop()
        await scheduler.stop()


async def test_a_lone_stream_keeps_its_second_passes_on_the_scheduler(
    engine: WhisperEngine,
) -> None:
    """Not shared: the second pass runs beside on the model's other worker at normal
    priority, as before (a lone stream's revisions must not wait for idle CPU)."""
    lane = IdleLane(engine.spec, ModelSettings())
    scheduler = DecodeScheduler(engine, workers=2)
    try:
        metrics = Metrics()
        side = SidePass(scheduler, lane, metrics)
        request = _request()
        side.start(_job(request), request, shared=False)
        taken = await asyncio.wait_for(side.take(wait=True), 120)
        assert taken is not None and taken[1].text.strip()
        assert lane.decodes == 0 and scheduler.batches == 1
        assert passes(metrics) == {"beside": 1.0}
    finally:
        lane.stop()
        await scheduler.stop()


async def test_shared_streams_second_passes_go_to_the_idle_lane(
    engine: WhisperEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--revise-shared-idle`: two live streams share the model; the second passes they
    start while shared go to the idle lane, and each stream's stored transcript is what it
    was sent, revisions included."""
    streaming = dataclasses.replace(
        StreamingSettings(), revise_beside=True, revise_shared=True, revise_shared_idle=True
    )
    settings = Settings(port=0, storage=StorageSettings(data_dir=tmp_path), streaming=streaming)
    running = await start_server(settings, engine=engine)
    laned: list[DecodeRequest] = []
    decode = IdleLane.decode

    async def counting(lane: IdleLane, request: DecodeRequest) -> DecodeResult:
        laned.append(request)
        return await decode(lane, request)

    monkeypatch.setattr(IdleLane, "decode", counting)
    try:
        assert running.deps.models.default.idle is not None
        await two_streams_store_what_they_were_sent(running.port)
        counted = passes(running.deps.metrics)
        assert counted.get("idle", 0) + counted.get("slack", 0) >= 1, counted
        assert laned, "no second pass went to the idle lane while the streams shared"
    finally:
        await running.stop(1.0)
