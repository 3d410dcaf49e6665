"""Start transcribe-server and transcribe-bridge together (the README's one run command).

Prints the address to open in a browser; Ctrl-C stops both (the server drains).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop both children on SIGTERM too
    env = dict(os.environ)
    grpc_port = env.get("TRANSCRIBE_PORT", "50051")
    server = subprocess.Popen(
        [sys.executable, "-c", "from service.server import main; main()", f"--port={grpc_port}"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    print(line.strip(), flush=True)
    match = re.search(r":(\d+) ", line)
    if server.poll() is not None or match is None:
        sys.exit("transcribe-server did not start")
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from web_bridge.main import main; main()",
            f"--grpc-target=127.0.0.1:{match.group(1)}",
        ],
        env=env,
    )
    try:
        bridge.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (bridge, server):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (bridge, server):
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
