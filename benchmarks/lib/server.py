"""A real transcribe-server process for a benchmark (its own port, data directory, log)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.lib.clips import ROOT
from benchmarks.lib.procfs import child_pid, proc_stats, thread_cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git_version() -> str:
    """The commit the server ran from (`-dirty` if the working tree had changes)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return ""
    return out.stdout.strip()


class Server:
    """A transcribe-server subprocess on a free port (optionally under py-spy), with a
    task sampling its CPU seconds every `sample_every` seconds."""

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        profile: Path | None = None,
        sample_every: float = 2.0,
        profile_rate: int = 25,
    ) -> None:
        self.extra_args = list(extra_args)
        self.profile = profile
        self.rate = profile_rate
        self.sample_every = sample_every
        self.samples: list[tuple[float, float]] = []  # (monotonic, CPU seconds)
        self.thread_samples: list[tuple[float, dict[str, float]]] = []  # by thread name
        self._tmp = tempfile.TemporaryDirectory()
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> int:
        cmd = [
            sys.executable,
            "-c",
            "from service.server import main; main()",
            "--port=0",
            f"--data-dir={self._tmp.name}",
            *self.extra_args,
        ]
        if self.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            cmd = [
                spy, "record", "--format", "raw", "--threads", "--idle", "--nonblocking", "--rate",
                str(self.rate), "--output", str(self.profile), "--", *cmd,
            ]  # fmt: skip
        self.log = Path(self._tmp.name) / "server.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
                cmd, stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self.proc.stdout is not None
        m = None
        while not m:  # py-spy prints its own lines first
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                raise RuntimeError("the server did not start:\n" + self.log.read_text()[-3000:])
            m = re.search(r"listening on .*:(\d+) ", line)
        self.pid = self.proc.pid
        if self.profile:
            child = child_pid(self.proc.pid)
            assert child is not None, "py-spy started no server"
            self.pid = child
        self.port = int(m.group(1))
        self._sampler = asyncio.get_running_loop().create_task(self._sample())
        return self.port

    def sample(self) -> tuple[float, float]:
        cpu, _ = proc_stats(self.pid)
        s = (time.monotonic(), cpu)
        self.samples.append(s)
        self.thread_samples.append((s[0], thread_cpu(self.pid)))
        return s

    async def _sample(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.sample_every)

    def peak_rss(self) -> int:
        return proc_stats(self.pid)[1]

    async def stop(self) -> list[str]:
        """Stop the server; the ERROR lines of its log."""
        if self._sampler:
            self._sampler.cancel()
        os.kill(self.pid, signal.SIGTERM)
        await asyncio.to_thread(self.proc.wait, 120)
        errors = [ln for ln in self.log.read_text().splitlines() if " ERROR " in ln]
        self._tmp.cleanup()
        return errors
