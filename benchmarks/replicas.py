"""Replicas that share the load and survive each other, simulated on one machine.

Three server processes share one DynamoDB Local; N real-time streams go through one
Python client channel to all three (`ipv4:a,b,c`, round_robin: what a headless Service
gives a client). Mid-run one replica gets SIGTERM (it drains: its streams end UNAVAILABLE
naming their transcript) and later another gets SIGKILL (its connections just drop). Each
stream then resumes its transcript on a surviving replica with `resume_transcript_id`,
sending the audio it had not sent yet (as the page does after a reconnect).

First, placement only (sessions without audio, cheap): where `--placement-streams` streams
of the client channel land, and where the same number of page streams land through a real
transcribe-bridge given all three replicas. Then the audio streams.

Checked: no replica takes more than its share + 1 of the streams; every final a client
received is stored with the same text; how long each moved stream was without a server.
Also counted from the tables afterwards: DynamoDB items and write units per final.

    python -m benchmarks.replicas --streams 12 --seconds 90 --out /tmp/replicas.json
    python -m benchmarks.replicas --streams 3 --seconds 45      # brief, on a busy machine

CPU heavy: N real-time streams cost what they cost on one server (docs/benchmarks.md),
plus three loaded models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks.lib.clips import ROOT, load_audio
from benchmarks.lib.dynamodb_local import DynamoDBLocal
from benchmarks.lib.replica_fleet import (
    Replica,
    bridge_spread,
    client_spread,
    dynamodb_cost,
    spread,
    start_replica,
)
from clients.python import Enc, StreamingTranscriber, TranscriptClient, connect

CHUNK_S = 0.1
STAGGER_S = 0.3
BYTES_PER_S = 32000  # 16 kHz, 16-bit mono


@dataclass
class Stream:
    """One logical stream: a transcript that may move between replicas."""

    index: int
    pcm: bytes
    sent: int = 0
    transcript_id: str = ""
    finals: dict[int, str] = field(default_factory=dict)
    revisions: int = 0
    calls: int = 0
    moves: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    done: bool = False


RESUME_WAIT_S = 60.0
"""How long a moved stream retries a resume that is refused ABORTED (lease still held)."""
RESUME_POLL_S = 1.0


async def audio_from(stream: Stream, started: float) -> AsyncIterator[bytes]:
    """The stream's audio from what it has not sent yet, no faster than real time (a
    backlog left by a move goes at once, as a reconnecting page sends what it buffered)."""
    step = int(CHUNK_S * BYTES_PER_S)
    began = started + stream.index * STAGGER_S
    while stream.sent < len(stream.pcm):
        due = began + stream.sent / BYTES_PER_S - time.monotonic()
        if due > 0:
            await asyncio.sleep(due)
        chunk = stream.pcm[stream.sent : stream.sent + step]
        stream.sent += len(chunk)
        yield chunk


async def run_stream(stream: Stream, channel: grpc.aio.Channel, started: float) -> None:
    """Stream until the audio ends, resuming the same transcript after every UNAVAILABLE."""
    lost_at: float | None = None
    while True:
        stream.calls += 1
        sent_before = stream.sent
        tr = StreamingTranscriber(
            channel,
            encoding=Enc.AUDIO_ENCODING_LINEAR16,
            sample_rate_hertz=16000,
            channels=1,
            interim_results=False,
            live=True,
            resume_transcript_id=stream.transcript_id,
            title=f"replicas {stream.index}",
        )
        try:
            async for r in tr.transcribe(audio_from(stream, started)):
                if r.kind == "session":
                    stream.transcript_id = r.transcript_id
                    if lost_at is not None:
                        stream.moves[-1]["resumed_after_s"] = round(time.monotonic() - lost_at, 3)
                        lost_at = None
                elif r.is_final:
                    stream.finals[r.segment_index] = r.text
                    stream.revisions += r.revision > 0
            stream.done = True
            return
        except grpc.aio.AioRpcError as err:
            busy = err.code() == grpc.StatusCode.ABORTED and lost_at is not None
            if busy and time.monotonic() - lost_at < RESUME_WAIT_S:  # type: ignore[operator]
                # The transcript's lease is still held: by the dead replica until it expires
                # (--lease-seconds, 30 s), or until a draining one's stream has ended. Retry,
                # as clients are told to, with the audio this attempt took sent again.
                stream.moves[-1]["aborted_retries"] = stream.moves[-1].get("aborted_retries", 0) + 1
                stream.sent = sent_before
                await asyncio.sleep(RESUME_POLL_S)
                continue
            if err.code() != grpc.StatusCode.UNAVAILABLE or not stream.transcript_id:
                stream.error = f"{err.code().name}: {err.details()}"
                return
            lost_at = time.monotonic()
            stream.moves.append({"at_s": round(lost_at - started, 2), "details": err.details()})


async def wait_exit(proc: subprocess.Popen[str], limit_s: float) -> float:
    """Seconds until `proc` exits (at most `limit_s`)."""
    began = time.monotonic()
    try:
        await asyncio.to_thread(proc.wait, limit_s)
    except subprocess.TimeoutExpired:
        pass
    return round(time.monotonic() - began, 2)


def summarize_moves(streams: list[Stream], term_s: float, kill_s: float) -> dict[str, Any]:
    """Per signal: streams moved, seconds from the signal to the stream's end on the old
    replica, and from that end to the session on the new one."""
    out: dict[str, Any] = {}
    for name, at, after in (("sigterm", term_s, term_s), ("sigkill", kill_s, kill_s)):
        ended, resumed = [], []
        for s in streams:
            for m in s.moves:
                if at <= m["at_s"] and (name == "sigkill" or m["at_s"] < kill_s):
                    ended.append(round(m["at_s"] - after, 2))
                    resumed.append(m.get("resumed_after_s"))
        out[name] = {"moved": len(ended), "ended_after_s": ended, "resumed_after_s": resumed}
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    long_path = ROOT / "tests" / "data" / "4088-158079-long.ogg"  # the repo's long test clip
    audio = (np.clip(load_audio(long_path), -1, 1) * 32767).astype("<i2").tobytes()
    n_bytes = int(args.seconds * BYTES_PER_S)
    prefix = "replicas" + uuid.uuid4().hex[:6]
    ddb = DynamoDBLocal()
    ddb.start()
    data = Path(tempfile.mkdtemp(prefix="replicas-"))
    replicas: list[Replica] = []
    try:
        # The first creates the tables; the others start once they exist.
        replicas.append(start_replica("r0", ddb, prefix, data))
        for i in range(1, args.replicas):
            replicas.append(start_replica(f"r{i}", ddb, prefix, data))
        target = "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)
        streams = []
        for i in range(args.streams):
            offset = (i * 13 * BYTES_PER_S) % max(1, len(audio) - n_bytes)
            streams.append(Stream(i, audio[offset : offset + n_bytes]))
        report: dict[str, Any] = {"command": " ".join(sys.argv), "replicas": args.replicas}
        n = args.placement_streams
        report["client_spread"] = await client_spread(target, replicas, n)
        fair = math.ceil(n / args.replicas) + 1
        report["client_spread_ok"] = max(report["client_spread"].values()) <= fair
        report["bridge_spread"] = await bridge_spread(target, replicas, n)
        for _ in range(100):  # the bridge's streams ended everywhere
            if sum((await spread(replicas)).values()) == 0:
                break
            await asyncio.sleep(0.1)
        async with connect(target) as channel:
            # round_robin picks among the replicas it is connected to: let it connect to
            # all of them first (a long-lived channel, e.g. the bridge's, always is).
            await channel.channel_ready()
            await asyncio.sleep(1.0)
            started = time.monotonic()
            tasks = []
            for s in streams:  # staggered a little, as real sessions start
                tasks.append(asyncio.create_task(run_stream(s, channel, started)))
                await asyncio.sleep(STAGGER_S)
            await asyncio.sleep(max(0.0, started + args.term_at - time.monotonic()))
            before = await spread(replicas)
            report["active_before_sigterm"] = before
            share = math.ceil(args.streams / args.replicas)
            report["spread_ok"] = max(before.values()) <= share + 1
            victim = replicas[0]
            term_at = time.monotonic()
            victim.proc.send_signal(signal.SIGTERM)
            report["sigterm_exit_s"] = await wait_exit(victim.proc, 90)
            await asyncio.sleep(max(0.0, started + args.kill_at - time.monotonic()))
            report["active_before_sigkill"] = await spread(replicas)
            killed = replicas[1]
            kill_at = time.monotonic()
            killed.proc.kill()
            await asyncio.gather(*tasks)
            report["wall_s"] = round(time.monotonic() - started, 1)
            report["sigterm_at_s"] = round(term_at - started, 1)
            report["sigkill_at_s"] = round(kill_at - started, 1)
            report["streams"] = await check_stored(streams, channel)
        report["moves"] = summarize_moves(streams, report["sigterm_at_s"], report["sigkill_at_s"])
        report["dynamodb"] = dynamodb_cost(ddb, prefix)
        finals = sum(len(s.finals) for s in streams)
        # Segment and posting items only (the placement sessions left metadata items).
        db = report["dynamodb"]
        units = db["transcripts"]["by_kind"].get("S#", 0) + db["index"]["units"]
        report["finals"] = finals
        report["revisions"] = sum(s.revisions for s in streams)
        report["item_units_per_final"] = round(units / max(1, finals), 2)
        report["audio_s_per_final"] = round(args.streams * args.seconds / max(1, finals), 2)
        return report
    finally:
        for r in replicas:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in replicas:
            try:
                r.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                r.proc.kill()
        ddb.stop()


async def check_stored(streams: list[Stream], channel: grpc.aio.Channel) -> list[dict[str, Any]]:
    """Every final a client received is stored, with the text it last received."""
    client = TranscriptClient(channel)
    out = []
    for s in streams:
        row: dict[str, Any] = {
            "stream": s.index,
            "calls": s.calls,
            "moves": s.moves,
            "error": s.error,
            "finals": len(s.finals),
            "revisions": s.revisions,
        }
        if s.transcript_id:
            stored = {seg.index: seg.text for seg in (await client.get(s.transcript_id)).segments}
            lost = [i for i, text in s.finals.items() if stored.get(i) != text]
            row.update(stored=len(stored), lost_finals=lost)
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--streams", type=int, default=12)
    p.add_argument("--placement-streams", type=int, default=12, help="sessions placed, no audio")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--seconds", type=float, default=90.0, help="audio per stream")
    p.add_argument("--term-at", type=float, default=25.0, help="SIGTERM replica r0 at (s)")
    p.add_argument("--kill-at", type=float, default=55.0, help="SIGKILL replica r1 at (s)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
