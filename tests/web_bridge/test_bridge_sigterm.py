"""SIGTERM to a real `transcribe-bridge` process hands a live page stream over.

test_bridge_shutdown.py calls `leave` itself; this runs the bridge as `make run` does
(its own process, web_bridge.main) and sends it the signal a supervisor sends, so the
handler that calls `leave` (web_bridge.app leave_on_sigterm) is what is tested: without
it, aiohttp's own SIGTERM handler stops reading the sockets at once, and the audio a page
sends after it was told `leaving` is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from transcribe.v1 import transcripts_pb2

from service.server import RunningServer
from tests.helpers import chunks, dev_clips, normalize, wer
from tests.service.test_port_in_use import free_port
from tests.web_bridge.test_bridge_shutdown import (
    CHUNK,
    get,
    grpc_transcripts,
    messages_until_closed,
    shown,
    webm,
)
from web_bridge.app import LEAVE_S, SHUTDOWN_S

ROOT = Path(__file__).resolve().parents[2]
TAIL = 4
"""The clip's last quarter (its last words, then a second of silence) is sent after
`leaving`, as the page's old recorder flushes it: little work left for the service
after SIGTERM, so the handover ends well within LEAVE_S even on a loaded machine."""


@contextlib.asynccontextmanager
async def bridge_process(
    grpc_port: int, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`transcribe-bridge` in front of the gRPC server on `grpc_port`, once it listens
    (it prints the address to open when its port is bound, after its start-up hooks);
    killed on the way out if the test left it running. Its log goes to `log`."""
    port = free_port()
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from web_bridge.main import main; main()",
            f"--port={port}",
            f"--grpc-target=127.0.0.1:{grpc_port}",
            cwd=ROOT,
            env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            assert f"127.0.0.1:{port}" in line.decode(), (line, f"see {log}")
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_sigterm_hands_a_live_page_over_and_exits_0(
    server: RunningServer, tmp_path: Path
) -> None:
    """A page streams the first half of a clip; once the service answers with results the
    bridge process gets SIGTERM. The page is told `leaving` (and a new socket is turned
    away, 1001); it sends the rest of its recorder's audio and `stop`, as live.js does.
    It gets the finals of the whole clip, then UNAVAILABLE + close 1001; the process exits
    0 within LEAVE_S plus aiohttp's shutdown timeout; the transcript is stored interrupted
    (resumable) with every word shown. Without the handler the tail sent after `leaving`
    is never read (and the new socket is refused, not told 1001)."""
    audio, text = webm(0)
    parts = chunks(audio, CHUNK)
    head = len(parts) - len(parts) // TAIL
    head_s = (dev_clips()[0].duration_s + 1.0) * head / len(parts)
    start = {"type": "start", "config": {"encoding": "webm", "title": "SIGTERM"}}
    async with (
        bridge_process(server.port, tmp_path / "bridge.log") as (proc, url),
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(f"{url}/ws")
        await ws.send_json(start)
        session = await ws.receive_json(timeout=60)
        assert session["type"] == "session", session
        tid = session["transcript_id"]
        for chunk in parts[:head]:
            await ws.send_bytes(chunk)
        before: list[dict[str, Any]] = []
        while not any(m.get("end", 0) >= head_s - 3 for m in before):  # heard most of it
            before.append(await ws.receive_json(timeout=120))

        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while (told := await ws.receive_json(timeout=60))["type"] != "leaving":
            before.append(told)  # results already on their way
        late = await http.ws_connect(f"{url}/ws")  # a page (re)connecting meanwhile
        refused = await late.receive(timeout=30)
        assert refused.type == aiohttp.WSMsgType.CLOSE, refused
        assert refused.data == aiohttp.WSCloseCode.GOING_AWAY, refused
        for chunk in parts[head:]:  # the old recorder's flush (live.js handOver)
            await ws.send_bytes(chunk)
        await ws.send_json({"type": "stop"})
        after = await asyncio.wait_for(messages_until_closed(ws), 120)
        closed = time.monotonic() - signalled
        code = await asyncio.wait_for(proc.wait(), LEAVE_S + 2 * SHUTDOWN_S + 30)
        took = time.monotonic() - signalled
    log = (tmp_path / "bridge.log").read_text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert took < LEAVE_S + 2 * SHUTDOWN_S, (closed, took)

    assert any(m["type"] == "final" for m in after[:-2]), "the last finals come first"
    assert after[-2]["type"] == "error" and after[-2]["code"] == "UNAVAILABLE", after[-2:]
    assert "resume" in after[-2]["message"]
    assert after[-1]["code"] == aiohttp.WSCloseCode.GOING_AWAY, after[-1]
    seen = shown(before + after)
    words = normalize(" ".join(seen[i] for i in sorted(seen))).split()
    assert wer([text], [" ".join(words)]) < 0.25, seen
    assert "know" in words[-3:], "the last words, sent after `leaving`, are there"

    async with grpc_transcripts(server) as stub:
        t = await get(stub, tid)
    assert t.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED, "still resumable"
    assert {s.index: s.text for s in t.segments} == seen, "every final shown is stored"
