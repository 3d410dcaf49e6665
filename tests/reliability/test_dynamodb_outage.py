"""A real storage outage: DynamoDB Local (persisting to disk) is terminated for 30 s in
the middle of a live stream of speech and started again on the same port with the same
data. Transcription goes on, finals sent during the outage say they are not stored yet,
every one of them lands when storage returns, and a stream that ends while storage is
still down is told exactly which results are not stored.

The sender cycles real speech at real time (a live meeting) until the test says stop, so
the stream spans the outage however slow the (shared) machine is. The tests wait on what
they check (finals arriving, pending or stored; the call ending while the server still
retries), never on wall-clock thresholds: how fast the stream stays during the outage is
printed, not asserted, as it measures the (shared) machine as much as the server."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
import numpy as np
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.dynamodb_local import DynamoDBLocal
from tests.helpers import Enc, config, decode_16k, dev_clips, latest_finals, pcm16

OUTAGE_S = 30.0
CHUNK = 3200  # 0.1 s of 16 kHz LINEAR16
PACE_S = 0.1  # real time
pb = transcripts_pb2
Result = streaming_pb2.StreamingTranscriptionResult
if TYPE_CHECKING:  # the asyncio stubs exist for type checking only
    from transcribe.v1.streaming_pb2_grpc import TranscriptionServiceAsyncStub as Stub
    from transcribe.v1.transcripts_pb2_grpc import TranscriptServiceAsyncStub as TStub


async def _server(engine: WhisperEngine, ddb: DynamoDBLocal, tmp: Path) -> RunningServer:
    storage = StorageSettings(
        backend="dynamodb",
        data_dir=tmp,
        dynamodb_endpoint=ddb.endpoint,
        dynamodb_create_tables=True,
        dynamodb_table_prefix="outage",
    )
    return await start_server(Settings(port=0, storage=storage), engine=engine)


def _speech() -> bytes:
    """The dev clips one after another (44 s), as 16 kHz LINEAR16."""
    return pcm16(np.concatenate([decode_16k(c.path) for c in dev_clips()]))


@dataclass
class LiveStream:
    """A stream of speech that runs until `stop` is set, recording when everything arrived."""

    stub: Stub
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    finals: list[tuple[float, Result]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # every response, interims too
    new_final: asyncio.Event = field(default_factory=asyncio.Event)
    transcript_id: str = ""
    last_sent: float = 0.0
    sent: list[float] = field(default_factory=list)  # when each 0.1 s chunk was sent
    ended: float = 0.0
    code: grpc.StatusCode | None = None
    details: str = ""

    async def _requests(self) -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        cfg = config(
            encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, interim_results=True
        )
        yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
        speech = _speech()
        start = time.monotonic()
        i = 0
        while not self.stop.is_set():
            delay = start + i * PACE_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            at = i * CHUNK % len(speech)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=speech[at : at + CHUNK])
            self.sent.append(time.monotonic())
            i += 1
        self.last_sent = time.monotonic()

    async def run(self) -> None:
        call = self.stub.StreamingTranscribe(self._requests())
        try:
            async for resp in call:
                now = time.monotonic()
                self.arrivals.append(now)
                if resp.HasField("session"):
                    self.transcript_id = resp.session.transcript_id
                for r in resp.results:
                    if r.is_final:
                        self.finals.append((now, r))
                        self.new_final.set()
            self.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as err:
            self.code, self.details = err.code(), err.details() or ""
        self.ended = time.monotonic()

    async def until(self, n: int, *, pending: bool | None = None, after: float = 0.0) -> None:
        """Wait until `n` finals (with that storage_pending, if given) arrived after `after`."""
        while True:
            got = [
                r
                for t, r in self.finals
                if t > after and (pending is None or r.storage_pending == pending)
            ]
            if len(got) >= n:
                return
            self.new_final.clear()
            await self.new_final.wait()

    def delay(self, t: float, r: Result) -> float:
        """How long after its audio was sent a final arrived."""
        end = r.result_end_offset.seconds + r.result_end_offset.nanos / 1e9
        return t - self.sent[min(len(self.sent) - 1, max(0, round(end / 0.1) - 1))]

    def between(self, a: float, b: float) -> list[tuple[float, Result]]:
        return [(t, r) for t, r in self.finals if a < t < b]

    def max_gap(self, a: float, b: float) -> float:
        """The longest silence of the stream (no response of any kind) within [a, b]."""
        times = [a, *(t for t in self.arrivals if a < t < b), b]
        return max(y - x for x, y in itertools.pairwise(times))


async def _loop_lag(samples: list[tuple[float, float]]) -> None:
    """How late a 50 ms sleep wakes up: the event loop's responsiveness, sampled forever."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.05)
        samples.append((t, time.monotonic() - t - 0.05))


def _lag(samples: list[tuple[float, float]], a: float, b: float) -> float:
    return max((lag for t, lag in samples if a < t < b), default=0.0)


def _stubs(ch: grpc.aio.Channel) -> tuple[Stub, TStub]:
    return (
        cast(Any, streaming_pb2_grpc.TranscriptionServiceStub(ch)),
        cast(Any, transcripts_pb2_grpc.TranscriptServiceStub(ch)),
    )


async def test_dynamodb_down_for_30_s_mid_stream(engine: WhisperEngine, tmp_path: Path) -> None:
    ddb = DynamoDBLocal(db_path=tmp_path / "ddb")
    await asyncio.to_thread(ddb.start)
    running = await _server(engine, ddb, tmp_path / "rec")
    lags: list[tuple[float, float]] = []
    lag_task = asyncio.create_task(_loop_lag(lags))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub, tstub = _stubs(ch)
            live = LiveStream(stub)
            task = asyncio.create_task(live.run())
            await asyncio.wait_for(live.until(2, pending=False), 120)  # stored while healthy

            kill_at = time.monotonic()
            await asyncio.to_thread(ddb.stop)  # SIGTERM, and the process has exited
            down_at = time.monotonic()
            # While storage is down, reading answers UNAVAILABLE soon, not an internal error.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await tstub.ListTranscripts(pb.ListTranscriptsRequest(), timeout=30)
            list_s = time.monotonic() - down_at
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert "retry" in (err.value.details() or "")
            await asyncio.sleep(OUTAGE_S - (time.monotonic() - down_at))  # the outage itself
            # ...lasting until transcription has shown it goes on: finals keep arriving.
            await asyncio.wait_for(live.until(3, pending=True, after=down_at), 180)
            restart_at = time.monotonic()
            await asyncio.to_thread(ddb.start)  # same port, same -dbPath: same data
            up_at = time.monotonic()

            # Writes flow again while the stream goes on; then the speaker stops.
            await asyncio.wait_for(live.until(2, pending=False, after=up_at), 180)
            live.stop.set()
            await asyncio.wait_for(task, 180)
            got = await tstub.GetTranscript(
                pb.GetTranscriptRequest(transcript_id=live.transcript_id)
            )
    finally:
        lag_task.cancel()
        await running.stop(1)
        await asyncio.to_thread(ddb.stop)

    during = live.between(down_at, restart_at)
    pending = [r.segment_index for _, r in during if r.storage_pending]
    first = next((i for i, (_, r) in enumerate(during) if r.storage_pending), 0)
    nan = float("nan")
    gap_after_first = live.max_gap(during[first][0], restart_at) if during else nan
    delay_at_end = live.delay(*during[-1]) if during else nan
    before = live.between(0, kill_at)
    print(
        f"\nDynamoDB down {restart_at - down_at:.1f} s (unreachable {up_at - kill_at:.1f} s: "
        f"terminate {down_at - kill_at:.1f} s, restart {up_at - restart_at:.1f} s); "
        f"ListTranscripts UNAVAILABLE after {list_s:.1f} s; finals: {len(before)} before, "
        f"{len(during)} during ({len(pending)} storage_pending), "
        f"{len(live.between(restart_at, live.ended))} after; longest silence of the stream "
        f"{live.max_gap(before[0][0], kill_at):.1f} s before, "
        f"{live.max_gap(down_at, restart_at):.1f} s during (after the first failed write "
        f"{gap_after_first:.1f} s); finals' delay behind the audio "
        f"{live.delay(*before[-1]):.1f} s before, {delay_at_end:.1f} s at the end; "
        f"event loop lag max {_lag(lags, 0, kill_at):.2f} s before, "
        f"{_lag(lags, down_at, up_at):.2f} s during"
    )
    assert live.code == grpc.StatusCode.OK, live.details
    assert restart_at - down_at >= OUTAGE_S
    # Transcription went on while storage was down, and said what was not stored yet:
    # once one final is pending, every later one is, until storage is back (in order).
    assert len(during) >= 3, "finals kept arriving during the outage"
    assert pending, "finals during the outage say storage_pending"
    assert all(r.storage_pending for _, r in during[first:]), pending
    # How fast the stream stayed (event loop lag, finals' delay behind the audio, longest
    # pause) is printed above, not asserted: thresholds on wall time made this test fail on
    # a loaded machine (issue 17 item 16). Before the fix in writer.py each final of the
    # outage held the stream for 2 s (its delay grew 2 s per final); the printed delays show
    # it, and tests/reliability/test_storage_outage.py checks the writer answers at once.
    # Every final the client received is stored, same index and text; status is right.
    t = got.transcript
    sent = list(latest_finals(r for _, r in live.finals).items())
    assert [(s.index, s.text) for s in t.segments] == sent, "every final landed, in order"
    assert t.segment_count == len(sent)
    assert t.status == pb.TRANSCRIPT_STATUS_COMPLETE


def _indices(details: str) -> set[int]:
    """The segment indexes named by "final results with segment_index 3-5, 9 are not stored"."""
    m = re.search(r"segment_index ([0-9, -]+) are not stored", details)
    assert m, details
    out: set[int] = set()
    for part in m.group(1).split(","):
        a, _, b = part.strip().partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


@dataclass
class Unreturned:
    """A stream that ended while storage was down, and what was stored afterwards."""

    live: LiveStream
    stored: list[tuple[int, str]]
    retrying_at_end: int
    """The server's closing tasks still retrying storage when the client had its status."""


@pytest.fixture(scope="module")
async def unreturned(engine: WhisperEngine, tmp_path_factory: pytest.TempPathFactory) -> Unreturned:
    tmp = tmp_path_factory.mktemp("unreturned")
    ddb = DynamoDBLocal(db_path=tmp / "ddb")
    await asyncio.to_thread(ddb.start)
    running = await _server(engine, ddb, tmp / "rec")
    running.deps.end_flush_s = 2.0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub, tstub = _stubs(ch)
            live = LiveStream(stub)
            task = asyncio.create_task(live.run())
            await asyncio.wait_for(live.until(2, pending=False), 120)
            await asyncio.to_thread(ddb.stop)  # and it does not come back before the end
            await asyncio.wait_for(live.until(2, pending=True), 120)
            live.stop.set()
            await asyncio.wait_for(task, 180)
            retrying_at_end = running.registry.closing
            # Afterwards storage returns; the server was still retrying what it had not
            # stored (for close_timeout_s after the call), so in the end nothing is lost.
            await asyncio.to_thread(ddb.start)
            await asyncio.wait_for(running.registry.wait_closed(), 60)
            got = await tstub.GetTranscript(
                pb.GetTranscriptRequest(transcript_id=live.transcript_id)
            )
    finally:
        await running.stop(0)
        await asyncio.to_thread(ddb.stop)
    last_final = live.finals[-1][0]
    print(
        f"\n{len(live.finals)} finals, {sum(r.storage_pending for _, r in live.finals)} "
        f"storage_pending; the status came {live.ended - live.last_sent:.1f} s after the last "
        f"audio, {live.ended - last_final:.1f} s after the last final: {live.code} {live.details}"
    )
    stored = [(s.index, s.text) for s in got.transcript.segments]
    return Unreturned(live, stored, retrying_at_end)


async def test_stream_ending_during_the_outage_names_what_is_not_stored(
    unreturned: Unreturned,
) -> None:
    live = unreturned.live
    pending = {r.segment_index for _, r in live.finals if r.storage_pending}
    assert live.code == grpc.StatusCode.UNAVAILABLE, live.details
    assert "not stored" in live.details
    assert _indices(live.details) == pending, "the client is told exactly which"
    assert pending, "the outage left finals unstored when the stream ended"
    # Whether a pending final was stored before the status left cannot be observed with
    # storage down; what can: once storage returns every final sent is stored, pending
    # ones included (the server kept retrying them after the call ended).
    sent = list(latest_finals(r for _, r in live.finals).items())
    assert unreturned.stored == sent


async def test_stream_ending_during_the_outage_is_told_promptly(
    unreturned: Unreturned,
) -> None:
    """The client hears while the server still retries (storage is down for all of it), not
    after the writer's 30 s of retries: the call did not wait for them."""
    assert unreturned.live.code == grpc.StatusCode.UNAVAILABLE
    assert unreturned.retrying_at_end >= 1
