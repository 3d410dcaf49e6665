"""Soak: real-time streams and searches for a long time, watching for leaks and lost finals.

    python -m benchmarks.soak --streams 2 --minutes 20           # the reference run
    python -m benchmarks.soak --streams 2 --minutes 2            # a quick check

Starts its own transcribe-server (SQLite in a temporary directory, Prometheus metrics on
a free port, JSON logs kept aside). N workers each stream a window of the long
recordings (../shared/speech/long, played end to end in a loop) as LINEAR16 in 100 ms
messages at real-time pace, every stream on its own channel (a new connection): a
random 1-4 minutes of audio, then a clean half-close, or (`--drop-fraction`) the
client vanishes at a random moment (the call is cancelled and its connection closed
without a goodbye); then the worker starts the next one. Meanwhile one client sends
SearchTranscripts (words of the reference texts), ListTranscripts and GetTranscript
calls at a steady `--search-rate` per second.

Every `--sample-every` seconds: the server's RSS, open file descriptors and threads
(from /proc/<pid>), and from /metrics its active streams, event-loop tasks and every
error counter. Checks: no gRPC status other than OK (clean streams, unary calls) or the
CANCELLED of the streams dropped on purpose, no refusals or storage errors, no ERROR
log record; every final each client received is stored under the same segment index
with the same text (complete for clean streams, interrupted for dropped ones); RSS
flat after warm-up (median of the second quarter vs the last quarter of the run); fds,
threads and tasks back to their warmed-up values once every stream has ended (polled).
Writes benchmarks/results/soak-<N>streams-<M>min.json and .md (or --out). The sampling
and settling live in soak_watch.py, the report and its checks in soak_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from benchmarks.lib.clips import load_audio
from benchmarks.lib.procfs import thread_names
from benchmarks.lib.server import free_port
from benchmarks.soak_report import markdown, report
from benchmarks.soak_watch import sample, sampler, server_log_summary, settle, top_processes, uptime

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT.parent / "shared" / "speech" / "long" / "manifest.jsonl"
CHUNK = 3200  # 100 ms of 16 kHz 16-bit mono
BPS = 32000  # bytes per second of audio
pb = transcripts_pb2


@dataclass
class StreamLog:
    """One client stream as the client saw it."""

    n: int
    mode: str  # "clean" (half-close) or "drop" (client vanishes)
    planned_s: float
    started: float = 0.0  # seconds into the soak
    transcript_id: str = ""
    audio_s: float = 0.0
    finals: dict[int, str] = field(default_factory=dict)
    final_lags: list[float] = field(default_factory=list)  # receive time - result end
    code: str = ""
    detail: str = ""


@dataclass
class Soak:
    args: argparse.Namespace
    pid: int
    port: int
    metrics_port: int
    audio: bytes
    words: list[str]
    t0: float = 0.0
    deadline: float = 0.0
    cursor: int = 0
    streams: list[StreamLog] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    call_ms: list[float] = field(default_factory=list)
    search_hits: int = 0
    errors: list[str] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    cpu_mark: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def piece(self, seconds: float) -> bytes:
        """The next `seconds` of the looped recordings."""
        n = int(seconds * 10) * CHUNK
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), len(self.audio) - self.cursor)
            out += self.audio[self.cursor : self.cursor + take]
            self.cursor = (self.cursor + take) % len(self.audio)
        return bytes(out)


def seconds(d: Any) -> float:
    return float(d.seconds) + float(d.nanos) / 1e9


async def one_stream(soak: Soak, log: StreamLog, pcm: bytes, warm: bool = False) -> None:
    """Stream `pcm` at real-time pace on a new channel; a "drop" stream vanishes mid-way."""
    cut_s = random.uniform(0.15, 0.95) * len(pcm) / BPS if log.mode == "drop" else None
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{soak.port}")
    stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
    t0 = time.monotonic()

    async def requests() -> AsyncIterator[Any]:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=streaming_pb2.StreamingTranscriptionConfig(
                encoding=streaming_pb2.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                interim_results=True,
                title=f"soak {log.n}" if not warm else "soak warm-up",
                tags=["soak"],
                live=True,
                enable_revisions=True,
            )
        )
        for i, pos in enumerate(range(0, len(pcm), CHUNK)):
            if (d := t0 + i * CHUNK / BPS - time.monotonic()) > 0:
                await asyncio.sleep(d)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=pcm[pos : pos + CHUNK])
            log.audio_s = (pos + CHUNK) / BPS
        # returning half-closes the stream

    call = stub.StreamingTranscribe(requests())

    async def read() -> None:
        try:
            async for resp in call:
                if resp.HasField("session"):
                    log.transcript_id = resp.session.transcript_id
                for r in resp.results:
                    if r.is_final:
                        log.finals[r.segment_index] = r.alternatives[0].transcript
                    if r.is_final and not r.revision:  # a revision's words were final before
                        lag = time.monotonic() - t0 - seconds(r.result_end_offset)
                        log.final_lags.append(round(lag, 3))
            log.code = "OK"
        except grpc.aio.AioRpcError as err:
            log.code, log.detail = err.code().name, err.details() or ""

    reader = asyncio.create_task(read())
    try:
        limit = cut_s if cut_s is not None else len(pcm) / BPS + 120
        done, _ = await asyncio.wait({reader}, timeout=limit)
        if not done:
            call.cancel()  # the client vanishes: no half-close, connection dropped below
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            log.code = "CANCELLED" if cut_s is not None else "TIMEOUT"
    finally:
        if not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await ch.close(grace=None)
    want = "CANCELLED" if log.mode == "drop" else "OK"
    if log.code != want:
        soak.errors.append(
            f"stream {log.n} ({log.mode}, {log.transcript_id}): {log.code} {log.detail}"
            f" (expected {want})"
        )


async def streamer(soak: Soak) -> None:
    a = soak.args
    while (left := soak.deadline - time.monotonic()) > 15:
        planned = min(random.uniform(a.min_stream_s, a.max_stream_s), left)
        log = StreamLog(
            n=len(soak.streams),
            mode="drop" if random.random() < a.drop_fraction else "clean",
            planned_s=round(planned, 1),
            started=round(time.monotonic() - soak.t0, 1),
        )
        soak.streams.append(log)
        await one_stream(soak, log, soak.piece(planned))


async def caller(soak: Soak) -> None:
    """Search / List / Get at a steady rate, on one channel closed at the end."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{soak.port}") as ch:
        await calls(soak, transcripts_pb2_grpc.TranscriptServiceStub(ch))


async def calls(soak: Soak, stub: Any) -> None:
    """The calls of `caller` (the schedule does not catch up in bursts)."""
    period = 1 / soak.args.search_rate
    due = time.monotonic()
    while True:
        due = max(due + period, time.monotonic())
        if due >= soak.deadline:
            return
        await asyncio.sleep(due - time.monotonic())
        kind = random.choice(("search", "search", "list", "get"))
        ids = [s.transcript_id for s in soak.streams if s.transcript_id]
        started = time.monotonic()
        try:
            if kind == "search":
                query = " ".join(random.sample(soak.words, random.choice((1, 1, 2))))
                resp = await stub.SearchTranscripts(
                    pb.SearchTranscriptsRequest(query=query, page_size=20)
                )
                soak.search_hits += len(resp.hits)
            elif kind == "list":
                await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=20))
            elif ids:
                await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=random.choice(ids)))
            soak.call_ms.append((time.monotonic() - started) * 1000)
            soak.calls[kind] = soak.calls.get(kind, 0) + 1
        except grpc.aio.AioRpcError as err:
            soak.errors.append(f"{kind}: {err.code().name} {err.details()}")


async def verify(soak: Soak) -> dict[str, Any]:
    """Every final each client received is stored (same index, same text), right status."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{soak.port}") as ch:
        return await check_stored(soak, transcripts_pb2_grpc.TranscriptServiceStub(ch))


async def check_stored(soak: Soak, stub: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"streams": 0, "finals_received": 0, "finals_stored_match": 0}
    problems: list[str] = []
    for log in soak.streams:
        if not log.transcript_id:
            problems.append(f"stream {log.n}: no transcript id received")
            continue
        out["streams"] += 1
        for _ in range(300):  # a dropped stream is closed moments after the drop
            t = (
                await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=log.transcript_id))
            ).transcript
            if t.status != pb.TRANSCRIPT_STATUS_LIVE:
                break
            await asyncio.sleep(0.1)
        stored = {s.index: s.text for s in t.segments}
        out["finals_received"] += len(log.finals)
        out["finals_stored_match"] += sum(stored.get(i) == x for i, x in log.finals.items())
        for i, x in log.finals.items():
            if stored.get(i) != x:
                problems.append(f"stream {log.n} segment {i}: sent {x!r}, stored {stored.get(i)!r}")
        if log.mode == "clean" and set(stored) != set(log.finals):
            problems.append(f"stream {log.n}: stored {sorted(stored)} != sent {sorted(log.finals)}")
        want = (
            pb.TRANSCRIPT_STATUS_COMPLETE
            if log.mode == "clean"
            else pb.TRANSCRIPT_STATUS_INTERRUPTED
        )
        if t.status != want:
            problems.append(
                f"stream {log.n} ({log.mode}): status {pb.TranscriptStatus.Name(t.status)}"
            )
    out["problems"] = problems
    return out


def load_recordings(manifest: Path) -> tuple[bytes, list[str], list[str]]:
    """All recordings end to end as LINEAR16 (1 s of silence between), and search words."""
    entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    parts, words = [], set()
    for e in entries:
        audio = load_audio(manifest.parent / e["wav"])
        parts += [(np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes(), bytes(BPS)]
        words |= {w.lower() for w in re.findall(r"[A-Za-z]{5,}", e["text"])}
    return b"".join(parts), sorted(words), [str(e["id"]) for e in entries]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    audio, words, ids = await asyncio.to_thread(load_recordings, Path(args.manifest))
    start_env = {"loadavg": os.getloadavg(), "top": top_processes(), "uptime": uptime()}
    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("w") as log_file:
            server = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
                [sys.executable, "-c", "from service.server import main; main()", "--port=0",
                 f"--data-dir={tmp}/data", f"--metrics-port={metrics_port}", "--log-format=json",
                 f"--max-streams={args.streams + 4}"],
                stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=ROOT,
            )  # fmt: skip
        assert server.stdout is not None
        try:
            line = await asyncio.to_thread(server.stdout.readline)
            port = re.search(r":(\d+) ", line)
            if not port:
                raise SystemExit(f"server did not start: {line!r}; see {log_path}")
            soak = Soak(args, server.pid, int(port.group(1)), metrics_port, audio, words)
            soak.t0 = time.monotonic()
            fresh = await sample(soak)
            # Warm-up: N concurrent streams and a few calls start every lazily made pool.
            warm = [
                StreamLog(-1 - i, "drop" if i == 1 else "clean", args.warmup_s)
                for i in range(args.streams)
            ]
            soak.deadline = time.monotonic() + args.warmup_s + 5
            await asyncio.gather(
                *(one_stream(soak, w, soak.piece(args.warmup_s), warm=True) for w in warm),
                caller(soak),
            )
            base = await settle(soak, None, 60)  # idle again; its counts are the baseline
            names_before = thread_names(soak.pid)
            soak.calls.clear()
            soak.call_ms.clear()
            sys.stderr.write(f"warm-up done: {base}\n")
            # The soak proper.
            soak.t0 = time.monotonic()
            soak.deadline = soak.t0 + args.minutes * 60
            soak.samples.clear()
            stop = asyncio.Event()
            sampling = asyncio.create_task(sampler(soak, stop))
            await asyncio.gather(*(streamer(soak) for _ in range(args.streams)), caller(soak))
            streams_ended = round(time.monotonic() - soak.t0, 1)
            stop.set()
            await sampling
            sys.stderr.write("\n")
            after = await settle(soak, base, args.settle_s)
            names_after = thread_names(soak.pid)
            storage = await verify(soak)
        finally:
            server.terminate()
            await asyncio.to_thread(server.wait, 60)
        server_log = server_log_summary(log_path)
    end_env = {"loadavg": os.getloadavg(), "top": top_processes(), "uptime": uptime()}
    server_log["thread_names_before"] = names_before
    server_log["thread_names_after"] = names_after
    return report(
        args, soak, fresh, base, after, storage, server_log, ids, streams_ended,
        start_env, end_env,
    )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="manifest.jsonl")
    p.add_argument("--streams", type=int, default=2, help="concurrent real-time streams")
    p.add_argument("--minutes", type=float, default=20.0, help="length of the soak")
    p.add_argument("--search-rate", type=float, default=1.0, help="Search/List/Get calls per s")
    p.add_argument("--min-stream-s", type=float, default=60.0, help="shortest stream")
    p.add_argument("--max-stream-s", type=float, default=240.0, help="longest stream")
    p.add_argument("--drop-fraction", type=float, default=1 / 3, help="streams that vanish")
    p.add_argument("--warmup-s", type=float, default=20.0, help="warm-up streams' length")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--settle-s", type=float, default=60.0, help="longest wait for the counts")
    p.add_argument("--rss-tolerance-mb", type=float, default=20.0, help="allowed RSS growth")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="JSON path (.md beside it); default benchmarks/results/soak-*")
    args = p.parse_args()
    random.seed(args.seed)
    result = asyncio.run(run(args))
    md = markdown(result)
    sys.stdout.write(md)
    out = Path(
        args.out or ROOT / f"benchmarks/results/soak-{args.streams}streams-{args.minutes:g}min.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(md)
    sys.stderr.write(f"wrote {out.with_suffix('.json')} and .md\n")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
