"""What the soak (benchmarks/soak.py) watches on its server and machine: /proc and
/metrics samples (RSS, fds, threads, event-loop tasks, error counters, cores used by the
server, the client and everything else), the progress line, waiting until the counts
settle, the server's JSON log, and the machine's load at start and end."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.lib.procfs import proc_counts

if TYPE_CHECKING:
    from benchmarks.soak import Soak


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


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
