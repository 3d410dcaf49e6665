"""A second server, bridge or `make run` on a busy port refuses to start (issue 17, item 4).

gRPC on Linux binds with SO_REUSEPORT, so a second server used to start and the kernel
split clients between two servers with two stores. Each refusal is one line naming the
address and the flag or environment variable that changes it, with no traceback, and a
non-zero exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on (as a browser bridge or any other program would)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield int(sock.getsockname()[1])


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group; on timeout kill the group (children too)."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args} still running after {timeout} s (it started anyway): {out}{err}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert "listening" not in done.stdout and "Open http" not in done.stdout, done.stdout
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)


async def test_second_server_on_a_busy_port_is_refused(
    server: RunningServer, engine: WhisperEngine, tmp_path: Path
) -> None:
    settings = Settings(port=server.port, storage=StorageSettings(data_dir=tmp_path))
    second: RunningServer | None = None
    try:
        with pytest.raises(SystemExit) as refused:
            second = await start_server(settings, engine=engine)
    finally:
        if second is not None:
            await second.stop(0)
    message = str(refused.value)
    assert f"127.0.0.1:{server.port}" in message
    assert "in use" in message
    assert "--port" in message and "TRANSCRIBE_PORT" in message


def test_server_cli_on_a_busy_port_exits_with_one_line(
    server: RunningServer, tmp_path: Path
) -> None:
    done = run(
        [sys.executable, "-c", "from service.server import main; main()", f"--port={server.port}"],
        {"TRANSCRIBE_DATA_DIR": str(tmp_path)},
    )
    assert_one_line_refusal(done, f"127.0.0.1:{server.port}", "--port", "TRANSCRIBE_PORT")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bridge_on_a_busy_port_exits_with_one_line(busy_port: int) -> None:
    done = run(
        [sys.executable, "-c", "from web_bridge.main import main; main()", f"--port={busy_port}"],
        {},
    )
    assert_one_line_refusal(done, f"127.0.0.1:{busy_port}", "--port", "TRANSCRIBE_BRIDGE_PORT")


def run_all(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "scripts/run_all.py"], env, timeout)


def test_make_run_with_the_grpc_port_busy(server: RunningServer, tmp_path: Path) -> None:
    done = run_all(
        {
            "TRANSCRIBE_PORT": str(server.port),
            "TRANSCRIBE_BRIDGE_PORT": str(free_port()),
            "TRANSCRIBE_DATA_DIR": str(tmp_path),
        }
    )
    assert_one_line_refusal(done, f"127.0.0.1:{server.port}", "TRANSCRIBE_PORT=")


def test_make_run_with_the_page_port_busy(busy_port: int, tmp_path: Path) -> None:
    done = run_all(
        {
            "TRANSCRIBE_PORT": "0",
            "TRANSCRIBE_BRIDGE_PORT": str(busy_port),
            "TRANSCRIBE_DATA_DIR": str(tmp_path),
        }
    )
    assert_one_line_refusal(done, f"127.0.0.1:{busy_port}", "TRANSCRIBE_BRIDGE_PORT=")


def test_make_run_fails_when_the_bridge_fails_after_the_server_started(tmp_path: Path) -> None:
    """Not a port: any failure of either process ends `make run` non-zero, both stopped."""
    done = run_all(
        {
            "TRANSCRIBE_PORT": "0",
            "TRANSCRIBE_BRIDGE_PORT": str(free_port()),
            "TRANSCRIBE_BRIDGE_CHUNK_MS": "not-a-number",
            "TRANSCRIBE_DATA_DIR": str(tmp_path),
        }
    )
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "listening" in done.stdout  # the server had started; it was stopped again
    assert "models tiny.en, base" in done.stdout  # the extra is installed: languages offered
    assert "transcribe-bridge exited with code" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
