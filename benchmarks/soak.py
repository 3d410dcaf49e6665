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
Writes benchmarks/results/soak-<N>streams-<M>min.json and .md (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from benchmarks.lib.analysis import pct
from benchmarks.lib.clips import load_audio
from benchmarks.lib.procfs import proc_counts, thread_names
from benchmarks.lib.server import free_port

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


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


METRICS = {
    "transcribe_active_streams": "active_streams",
    "transcribe_event_loop_tasks": "tasks",
    "transcribe_threads": "py_threads",
    "transcribe_decode_queue_depth": "queue_depth",
    "transcribe_storage_write_errors_total": "storage_write_errors",
    "transcribe_storage_write_retries_total": "storage_write_retries",
    "transcribe_finals_sent_before_stored_total": "finals_sent_before_stored",
    "transcribe_audio_seconds_total": "audio_s_received",
}
_LABELLED = re.compile(r'^(transcribe_(?:streams|refused_streams)_total)\{\w+="(\w+)"\} (\S+)$')


def scrape(port: int) -> dict[str, float]:
    """The metrics the soak watches (blocking: call in a thread)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            out[METRICS[name]] = float(value)
        elif m := _LABELLED.match(line):
            kind = "ended" if m.group(1) == "transcribe_streams_total" else "refused"
            out[f"{kind}_{m.group(2)}"] = float(m.group(3))
    return out


async def sample(soak: Soak) -> dict[str, float]:
    s: dict[str, float] = {"t": round(time.monotonic() - soak.t0, 1)}
    s.update(proc_counts(soak.pid))
    s.update(await asyncio.to_thread(scrape, soak.metrics_port))
    # Cores used since the previous sample: server, this client, everything else.
    now = (time.monotonic(), machine_busy_s(), s["cpu_s"], self_cpu_s())
    dt = now[0] - soak.cpu_mark[0]
    if soak.cpu_mark[0] and dt > 1:
        server = (now[2] - soak.cpu_mark[2]) / dt
        client = (now[3] - soak.cpu_mark[3]) / dt
        s["cores_server"] = round(server, 2)
        s["cores_client"] = round(client, 2)
        s["cores_other"] = round(max(0.0, (now[1] - soak.cpu_mark[1]) / dt - server - client), 2)
    soak.cpu_mark = now
    return s


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


def progress(soak: Soak, s: dict[str, float]) -> None:
    open_ = sum(1 for x in soak.streams if not x.code)
    finals = sum(len(x.finals) for x in soak.streams)
    line = (
        f"[{s['t'] / 60:5.1f}/{soak.args.minutes:g} min] streams {len(soak.streams)} "
        f"({open_} open) finals {finals} calls {sum(soak.calls.values())} "
        f"errors {len(soak.errors)} | RSS {s['rss_mb']:.0f} MB fds {s['fds']:.0f} "
        f"threads {s['threads']:.0f} tasks {s.get('tasks', -1):.0f} | "
        f"cores server {s.get('cores_server', 0):.2f} other {s.get('cores_other', 0):.2f}"
    )
    end = "\r" if sys.stderr.isatty() else "\n"
    sys.stderr.write(line + "   " + end if end == "\r" else line + end)
    sys.stderr.flush()


async def sampler(soak: Soak, stop: asyncio.Event) -> None:
    while not stop.is_set():
        s = await sample(soak)
        soak.samples.append(s)
        progress(soak, s)
        try:
            await asyncio.wait_for(stop.wait(), soak.args.sample_every)
        except TimeoutError:
            pass


async def settle(soak: Soak, base: dict[str, float] | None, limit_s: float) -> dict[str, float]:
    """Poll until no stream is active and fds/threads/tasks are back to `base` (or, without
    a base, unchanged over 2 s), or `limit_s` has passed."""
    keys = ("fds", "threads", "tasks")
    started = time.monotonic()
    history: list[dict[str, float]] = []
    while True:
        s = await sample(soak)
        s["settle_s"] = round(time.monotonic() - started, 1)
        history.append(s)
        if base is not None:
            back = all(s[k] <= base[k] for k in keys if k in base)
        else:
            back = len(history) >= 5 and all(
                h.get(k) == s.get(k) for h in history[-5:] for k in keys
            )
        if (s.get("active_streams", 0) == 0 and back) or s["settle_s"] > limit_s:
            return s
        await asyncio.sleep(0.5)


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


def server_log_summary(path: Path) -> dict[str, Any]:
    levels: dict[str, int] = {}
    errors: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
            level = str(rec.get("level", "?"))
        except (json.JSONDecodeError, AttributeError):
            level = "non-json"
            rec = {"message": line}
        levels[level] = levels.get(level, 0) + 1
        if level in ("ERROR", "CRITICAL") or (level == "non-json" and "Error" in line):
            exc = str(rec.get("exception", ""))
            errors.append(f"{rec.get('time', '')} {rec.get('message', line)}\n{exc[-1500:]}")
    return {"records_by_level": levels, "errors": errors[:20], "error_count": len(errors)}


def top_processes() -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "pcpu,pid,etimes,comm", "--sort=-pcpu"], capture_output=True, text=True
    ).stdout.splitlines()
    return [" ".join(x.split()) for x in out[1:8]]


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


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def report(
    args: argparse.Namespace,
    soak: Soak,
    fresh: dict[str, float],
    base: dict[str, float],
    after: dict[str, float],
    storage: dict[str, Any],
    server_log: dict[str, Any],
    ids: list[str],
    streams_ended: float,
    start_env: dict[str, Any],
    end_env: dict[str, Any],
) -> dict[str, Any]:
    samples = soak.samples
    rss = [s["rss_mb"] for s in samples]
    q = max(1, len(rss) // 4)
    second, last = rss[q : 2 * q] or rss, rss[-q:]
    growth = statistics.median(last) - statistics.median(second)
    audio_s = sum(s.audio_s for s in soak.streams)
    cpu = after["cpu_s"] - base["cpu_s"]
    lags = [x for s in soak.streams for x in s.final_lags]
    by_quarter = []
    for k in range(4):
        lo, hi = k * args.minutes * 15, (k + 1) * args.minutes * 15
        qs = [x for s in soak.streams if lo <= s.started < hi for x in s.final_lags]
        by_quarter.append({"median": pct(qs, 50), "p90": pct(qs, 90), "n": len(qs)})
    counters = {k: v for k, v in after.items() if k.startswith(("refused_", "ended_"))}
    server_errors = {
        "storage_write_errors": after.get("storage_write_errors", 0),
        "finals_sent_before_stored": after.get("finals_sent_before_stored", 0),
        "refused": sum(v for k, v in counters.items() if k.startswith("refused_")),
    }
    others = [s["cores_other"] for s in samples if "cores_other" in s]
    checks = {
        "no_client_errors": not soak.errors,
        "no_server_errors": not any(server_errors.values()),
        "no_error_log_records": server_log["error_count"] == 0,
        "every_final_stored": not storage["problems"]
        and storage["finals_stored_match"] == storage["finals_received"],
        "rss_flat": growth <= args.rss_tolerance_mb,
        "fds_back": after["fds"] <= base["fds"],
        "threads_back": after["threads"] <= base["threads"],
        "tasks_back": after.get("tasks", 0) <= base.get("tasks", 0),
        "no_active_streams": after.get("active_streams", 0) == 0,
    }
    keep = ("rss_mb", "fds", "threads", "py_threads", "tasks", "active_streams", "cpu_s")
    return {
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "recordings": ids,
        "streams": args.streams,
        "minutes": args.minutes,
        "search_rate_per_s": args.search_rate,
        "drop_fraction": args.drop_fraction,
        "seed": args.seed,
        "streams_run": len(soak.streams),
        "streams_clean": sum(s.mode == "clean" for s in soak.streams),
        "streams_dropped": sum(s.mode == "drop" for s in soak.streams),
        "last_stream_ended_s": streams_ended,
        "audio_streamed_min": round(audio_s / 60, 1),
        "calls": soak.calls,
        "call_latency_ms": {"median": pct(soak.call_ms, 50), "p99": pct(soak.call_ms, 99)},
        "search_hits": soak.search_hits,
        "client_errors": soak.errors[:50],
        "client_error_count": len(soak.errors),
        "server_errors": server_errors,
        "server_stream_counters": counters,
        "server_log": server_log,
        "storage": storage,
        "final_lag_s": {"median": pct(lags, 50), "p90": pct(lags, 90), "p99": pct(lags, 99)},
        "final_lag_s_by_quarter": by_quarter,
        "server_cpu_s_per_audio_s": round(cpu / audio_s, 3) if audio_s else None,
        "cores_other_median": round(statistics.median(others), 2) if others else None,
        "rss_mb": {
            "start": fresh["rss_mb"],
            "after_warmup": base["rss_mb"],
            "second_quarter_median": round(statistics.median(second), 1),
            "last_quarter_median": round(statistics.median(last), 1),
            "growth_mb": round(growth, 1),
            "peak": max(rss),
            "end": after["rss_mb"],
        },
        "start": {k: fresh[k] for k in keep if k in fresh},
        "before": {k: base[k] for k in keep if k in base},
        "after": {k: after[k] for k in (*keep, "settle_s") if k in after},
        "thread_names": {
            "before": server_log.pop("thread_names_before"),
            "after": server_log.pop("thread_names_after"),
        },
        "checks": checks,
        "passed": all(checks.values()),
        "machine_at_start": start_env,
        "machine_at_end": end_env,
        "streams_log": [
            {k: v for k, v in asdict(s).items() if k not in ("finals", "final_lags")}
            | {"finals": len(s.finals)}
            for s in soak.streams
        ],
        "samples": samples,
    }


def markdown(r: dict[str, Any]) -> str:
    b, a, st, m = r["before"], r["after"], r["storage"], r["rss_mb"]
    lines = [
        f"`{r['command']}` ({', '.join(r['recordings'])})",
        "",
        f"**{'PASS' if r['passed'] else 'FAIL'}**: {r['streams']} concurrent real-time streams "
        f"for {r['minutes']:g} min: {r['streams_run']} streams ({r['streams_clean']} "
        f"half-closed, {r['streams_dropped']} dropped mid-stream), "
        f"{r['audio_streamed_min']} min of audio; {sum(r['calls'].values())} unary calls "
        f"({', '.join(f'{v} {k}' for k, v in sorted(r['calls'].items()))}; median "
        f"{r['call_latency_ms']['median']} ms, p99 {r['call_latency_ms']['p99']} ms).",
        "",
        f"- errors: {r['client_error_count']} client-side (statuses other than OK / the "
        f"CANCELLED of dropped streams); server: {r['server_errors']}; ERROR log records: "
        f"{r['server_log']['error_count']}"
        + "".join(
            f"\n  - `{e.splitlines()[0]}`: {e.strip().splitlines()[-1]}"
            for e in r["server_log"]["errors"][:5]
        ),
        f"- storage: {st['finals_stored_match']} of {st['finals_received']} finals received "
        f"found stored with the same index and text, in {st['streams']} transcripts; "
        f"{len(st['problems'])} problems",
        f"- RSS: start {m['start']} MB, after warm-up {m['after_warmup']} MB, median of 2nd "
        f"quarter {m['second_quarter_median']} MB, of last quarter {m['last_quarter_median']} MB "
        f"(growth {m['growth_mb']} MB), peak {m['peak']} MB, end {m['end']} MB",
        f"- final results arrived {r['final_lag_s']['median']} s (median) / "
        f"{r['final_lag_s']['p90']} s (p90) after their audio ended; by quarter p90 "
        + ", ".join(f"{x['p90']}" for x in r["final_lag_s_by_quarter"])
        + f" s; server {r['server_cpu_s_per_audio_s']} CPU s per audio s",
        f"- other processes used a median {r['cores_other_median']} cores of 2; load average "
        f"at start {r['machine_at_start']['loadavg'][0]:.2f}, at end "
        f"{r['machine_at_end']['loadavg'][0]:.2f}",
        "",
        "| | fresh server | after warm-up (before) | after all streams ended |",
        "| --- | --- | --- | --- |",
    ]
    s = r["start"]
    rows = (
        ("rss_mb", "RSS MB"),
        ("fds", "open fds"),
        ("threads", "threads"),
        ("tasks", "event-loop tasks"),
        ("active_streams", "active streams"),
    )
    for key, name in rows:
        lines.append(
            f"| {name} | {s.get(key, 'n/a')} | {b.get(key, 'n/a')} | {a.get(key, 'n/a')} |"
        )
    tb, ta = r["thread_names"]["before"], r["thread_names"]["after"]
    changed = {k: (tb.get(k, 0), ta.get(k, 0)) for k in {*tb, *ta} if tb.get(k) != ta.get(k)}
    lines += [
        f"\nSettled {a.get('settle_s', '?')} s after the last stream ended. Threads whose "
        "count changed, by kernel name (before -> after): "
        + (", ".join(f"{k} {x} -> {y}" for k, (x, y) in sorted(changed.items())) or "none"),
        "",
        "| minute | RSS MB | fds | threads | tasks | active streams | server cores | other cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    shown = -1
    for x in r["samples"]:
        if int(x["t"] // 60) != shown:
            shown = int(x["t"] // 60)
            lines.append(
                f"| {x['t'] / 60:.1f} | {x['rss_mb']:.0f} | {x['fds']:.0f} | {x['threads']:.0f} "
                f"| {x.get('tasks', float('nan')):.0f} | {x.get('active_streams', 0):.0f} "
                f"| {x.get('cores_server', '')} | {x.get('cores_other', '')} |"
            )
    lines += [
        "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items()),
    ]
    if r["client_errors"] or r["storage"]["problems"]:
        lines += ["", "Problems:", *(f"- {e}" for e in r["client_errors"][:10])]
        lines += [f"- {p}" for p in r["storage"]["problems"][:10]]
    return "\n".join(lines) + "\n"


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
