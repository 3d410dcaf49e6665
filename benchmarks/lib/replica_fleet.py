"""The processes of benchmarks/replicas.py: transcribe-server replicas sharing one DynamoDB
Local, where streams land on them (client channel and bridge placement probes), and what
the finals cost in DynamoDB items and write units afterwards."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import boto3

from benchmarks.lib.dynamodb_local import DynamoDBLocal
from clients.python import StreamingTranscriber, connect

LOCAL_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    """One transcribe-server process."""

    name: str
    proc: subprocess.Popen[str]
    port: int
    metrics_port: int

    def active_streams(self) -> float:
        if self.proc.poll() is not None:
            return 0.0
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("transcribe_active_streams "):
                    return float(line.split()[1])
        return 0.0


def start_replica(name: str, ddb: DynamoDBLocal, prefix: str, data: Path) -> Replica:
    metrics_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from service.server import main; main()",
            "--port=0",
            "--storage=dynamodb",
            f"--dynamodb-endpoint={ddb.endpoint}",
            f"--dynamodb-table-prefix={prefix}",
            "--dynamodb-create-tables=true",
            f"--data-dir={data / name}",
            f"--metrics-port={metrics_port}",
            "--grace=10",
        ],
        stdout=subprocess.PIPE,
        stderr=(data / f"{name}.log").open("w"),
        text=True,
        env={**os.environ, **LOCAL_AWS},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "transcribe-server listening on 127.0.0.1:PORT (...)"
    if proc.poll() is not None or " listening on " not in line:
        raise RuntimeError(f"{name} did not start: {line!r}")
    port = int(line.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
    return Replica(name, proc, port, metrics_port)


async def spread(replicas: list[Replica]) -> dict[str, float]:
    counts = await asyncio.gather(*(asyncio.to_thread(r.active_streams) for r in replicas))
    return {r.name: c for r, c in zip(replicas, counts, strict=True)}


async def client_spread(target: str, replicas: list[Replica], n: int) -> dict[str, float]:
    """Where `n` streams of one round_robin client channel land (sessions only, no audio)."""
    release = asyncio.Event()

    async def silence() -> AsyncIterator[bytes]:
        await release.wait()
        return
        yield b""  # an async generator that sends nothing

    async with connect(target) as channel:
        await channel.channel_ready()
        await asyncio.sleep(1.0)  # connected to every replica (see run())
        calls = [StreamingTranscriber(channel).transcribe(silence()) for _ in range(n)]
        for call in calls:
            assert (await anext(call)).kind == "session"
        placed = await spread(replicas)
        release.set()
        for call in calls:
            async for _ in call:
                pass
    return placed


async def bridge_spread(target: str, replicas: list[Replica], n: int) -> dict[str, float]:
    """Where the bridge's streams land: open `n` page streams through a transcribe-bridge
    given every replica (`--grpc-target ipv4:a,b,c`), count each replica's active streams
    once all have their session, and stop them (no audio: this measures placement only)."""
    port = free_port()
    bridge = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [
            sys.executable,
            "-c",
            "from web_bridge.main import main; main()",
            f"--port={port}",
            f"--grpc-target={target}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # until it listens
                try:
                    async with http.get(url + "/"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            sockets = []
            for _ in range(n):
                ws = await http.ws_connect(url + "/ws", headers={"Origin": url})
                await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
                sockets.append(ws)
            for ws in sockets:
                msg = await ws.receive_json(timeout=60)
                assert msg["type"] == "session", msg
            placed = await spread(replicas)
            for ws in sockets:
                await ws.send_json({"type": "stop"})
                await ws.close()
        return placed
    finally:
        bridge.terminate()
        await asyncio.to_thread(bridge.wait, 30)


def dynamodb_cost(ddb: DynamoDBLocal, prefix: str) -> dict[str, Any]:
    """Items and 1 KB write units that the finals left in the two tables."""
    client = boto3.client(
        "dynamodb", endpoint_url=ddb.endpoint, region_name="us-east-1", **_creds()
    )
    out: dict[str, Any] = {}
    for table in (f"{prefix}-transcripts", f"{prefix}-index"):
        items, units = 0, 0
        kinds: dict[str, int] = {}
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                items += 1
                size = len(json.dumps(item))  # an upper bound of DynamoDB's item size
                units += math.ceil(size / 1024)
                kind = item["sk"]["S"][:2] if table.endswith("transcripts") else "W#"
                kinds[kind] = kinds.get(kind, 0) + 1
        out[table.removeprefix(prefix + "-")] = {"items": items, "units": units, "by_kind": kinds}
    return out


def _creds() -> dict[str, str]:
    return {
        "aws_access_key_id": LOCAL_AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_AWS["AWS_SECRET_ACCESS_KEY"],
    }
