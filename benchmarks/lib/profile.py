"""Where the server's time goes: py-spy's raw (collapsed) stacks grouped by stage.

    python -m benchmarks.stream_bench --streams 2 --limit 4 --profile /tmp/server.txt
    python -m benchmarks.profile_breakdown /tmp/server.txt

The stream benchmark runs the server under `py-spy record --format raw --threads --idle
--nonblocking` (py-spy cannot attach to a running process in this container, but it
can start one). Every sample of every thread is one line's count; each stack is put in
the first stage it matches, looking at its innermost frames in the service: the model
(features, encoder, generate, alignment: service/engine.py), VAD (service/vad.py,
onnxruntime), audio decoding (service/audio.py), the stored recording
(service/recordings.py), transcript storage (service/storage), the streaming policy,
protobuf/gRPC (grpc, service/wire.py, service/servicer.py), the event loop (anything
else under asyncio's `_run_once`), and waiting (idle threads: selectors, executor
workers waiting for work, gRPC's poller). Shares are of the busy thread-seconds
(waiting excluded). Model stages run native code in CTranslate2's own threads: their
thread-seconds are the wall time the Python thread spent waiting on that call.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

WAITING = "waiting (idle threads)"
STARTUP = "startup (imports, model load)"
_WAIT_LEAVES = (
    "EpollSelector.select",
    "select (selectors.py",
    "_worker (concurrent/futures/thread.py",
    "Condition.wait",
    "Event.wait",
    "_wait_for_tstate_lock",
    "SimpleQueue.get",
    "Queue.get",
    "sleep (",
)


_PROTO = "protobuf / gRPC (grpc, service/wire.py, service/servicer.py)"
_STAGES = (
    ("service/vad.py", "VAD (Silero, onnxruntime)"),
    ("onnxruntime/", "VAD (Silero, onnxruntime)"),
    ("service/audio.py", "audio decoding (service/audio.py, PyAV)"),
    ("av/", "audio decoding (service/audio.py, PyAV)"),
    ("service/recordings.py", "recording (service/recordings.py)"),
    ("service/storage/", "transcript storage (service/storage)"),
    ("sqlite3/", "transcript storage (service/storage)"),
    ("service/streaming.py", "streaming policy (service/streaming.py)"),
    ("service/wire.py", _PROTO),
    ("service/servicer.py", _PROTO),
    ("google/protobuf/", _PROTO),
    ("grpc/", _PROTO),
    ("service/", "session glue (service/session.py and others)"),
    ("asyncio/", "event loop (asyncio)"),
    ("concurrent/futures/", "event loop (asyncio)"),
)


def parse_frame(frame: str) -> tuple[str, str, int]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame, "", 0
    return m["func"], m["file"], int(m["line"] or 0)


def _source_line(file: str, line: int, cache: dict[str, list[str]]) -> str:
    if file not in cache:
        path = ROOT / file
        cache[file] = path.read_text().splitlines() if path.exists() else []
    lines = cache[file]
    return lines[line - 1] if 0 < line <= len(lines) else ""


def classify(thread: str, frames: list[str], src: dict[str, list[str]] | None = None) -> str:
    """The stage a sampled stack belongs to (frames outermost first)."""
    src = {} if src is None else src
    leaf = frames[-1] if frames else ""
    joined = ";".join(frames)
    if any(k in joined for k in ("_find_and_load", "WhisperModel.__init__", "shared_vad")):
        return STARTUP
    parsed = [parse_frame(f) for f in frames]
    engine = [(fn, ln) for fn, file, ln in parsed if file.endswith("service/engine.py")]
    if engine:
        fn, ln = engine[-1]
        name = fn.rsplit(".", 1)[-1]
        if name == "_generate":
            return "model: generate (beam search)"
        if name == "_align" or "find_alignment" in joined:
            return "model: word alignment (DTW)"
        if name == "features" or "FeatureExtractor" in joined:
            return "model: log-mel features"
        if name == "decode_batch" and ".encode(" in _source_line("service/engine.py", ln, src):
            return "model: encoder"
        return "model: other (batching, prompts, detokenize)"
    if any(leaf.startswith(w) or w in leaf for w in _WAIT_LEAVES):
        return WAITING
    if "_poll_wrapper" in thread or leaf.startswith("Thread.run (threading.py"):
        return WAITING  # gRPC core's poller thread: native epoll
    for _, file, _ in reversed(parsed):  # the innermost frame in a known place decides
        for prefix, stage in _STAGES:
            if file.startswith(prefix) or f"/{prefix}" in file:
                return stage
    return "other" if frames else "native code (no Python frames)"


def parse(lines: Iterable[str]) -> Counter[tuple[str, str]]:
    """(thread name, stage) -> samples."""
    counts: Counter[tuple[str, str]] = Counter()
    src: dict[str, list[str]] = {}
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        thread = ""
        if frames and frames[0].startswith("thread ("):
            thread = frames[0].split(": ", 1)[-1]
            frames = frames[1:]
        thread = re.sub(r"_\d+$", "", thread)  # asyncio_3 -> asyncio
        counts[(thread, classify(thread, frames, src))] += int(n)
    return counts


def breakdown(path: Path, rate: int = 0) -> dict[str, Any]:
    counts = parse(path.read_text().splitlines())
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for (thread, stage), n in counts.items():
        stages[stage] += n
        if stage not in (WAITING, STARTUP):
            threads[thread] += n
    busy = sum(n for s, n in stages.items() if s not in (WAITING, STARTUP))
    out: dict[str, Any] = {
        "samples": sum(stages.values()),
        "busy_samples": busy,
        "shares": {
            s: round(n / busy, 4)
            for s, n in stages.most_common()
            if s not in (WAITING, STARTUP) and busy
        },
        "busy_by_thread": {t: round(n / busy, 4) for t, n in threads.most_common() if busy},
        "startup_samples": stages[STARTUP],
        "waiting_samples": stages[WAITING],
    }
    if rate:
        out["busy_thread_seconds"] = round(busy / rate, 1)
    return out
