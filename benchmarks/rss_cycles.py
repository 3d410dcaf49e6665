"""Does the server's memory go back down after bursts of streams?

    python -m benchmarks.rss_cycles --streams 8 --cycles 4

Starts a server, warms it up with one stream, then sends bursts of `--streams`
concurrent streams (dev clips at `--pace` x real time) and reads the server's
resident memory (VmRSS) after each burst has ended. A server that holds on to
what ended streams used grows from burst to burst or stays near its peak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.lib.client import run_streams
from benchmarks.lib.clips import DEFAULT_MANIFEST, Clip, load_audio, pick, read_manifest
from benchmarks.lib.procfs import proc_counts
from benchmarks.lib.server import Server, git_version


async def settled_rss(pid: int, seconds: float) -> float:
    """RSS (MB) once the server had `seconds` to finish storing the streams' last results."""
    await asyncio.sleep(seconds)
    return proc_counts(pid)["rss_mb"]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    manifest = Path(args.manifest)
    entries = pick(read_manifest(manifest), args.clips)
    clips = [Clip(e["id"], load_audio(manifest.parent / e["wav"])) for e in entries]
    server = Server(args.server_arg, sample_every=5.0)
    await server.start()
    out: dict[str, Any] = {"command": args.command, "commit": git_version()}
    try:
        out["rss_mb_started"] = proc_counts(server.pid)["rss_mb"]
        await run_streams(server.port, clips[:2], 1, args.pace, 0.0, time.monotonic(), "warm-up")
        out["rss_mb_warm"] = await settled_rss(server.pid, args.settle_s)
        after = []
        for i in range(args.cycles):
            label = f"burst {i + 1}"
            await run_streams(
                server.port, clips, args.streams, args.pace, 0.3, time.monotonic(), label
            )
            after.append(await settled_rss(server.pid, args.settle_s))
        out["rss_mb_after_each_burst"] = after
        out["server_peak_rss_mb"] = round(server.peak_rss() / 2**20, 1)
    finally:
        out["server_log_errors"] = (await server.stop())[:20]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST))
    p.add_argument("--clips", type=int, default=16, help="dev clips per burst")
    p.add_argument("--streams", type=int, default=8, help="concurrent streams in a burst")
    p.add_argument("--cycles", type=int, default=4, help="bursts")
    p.add_argument("--pace", type=float, default=2.0, help="x real time")
    p.add_argument("--settle-s", type=float, default=3.0, help="wait after a burst ends")
    p.add_argument("--server-arg", action="append", default=[], help="server flag (repeat)")
    p.add_argument("--out", type=Path, help="write the result as JSON")
    args = p.parse_args()
    args.command = "python -m benchmarks.rss_cycles " + " ".join(sys.argv[1:])
    result = asyncio.run(run(args))
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
