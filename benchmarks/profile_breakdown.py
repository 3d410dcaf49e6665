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

import argparse
import json
from pathlib import Path

from benchmarks.lib.profile import breakdown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="py-spy record --format raw --threads output")
    p.add_argument("--rate", type=int, default=0, help="py-spy's sampling rate (per second)")
    args = p.parse_args()
    print(json.dumps(breakdown(Path(args.file), args.rate), indent=2))


if __name__ == "__main__":
    main()
