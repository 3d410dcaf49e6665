"""What one model call costs, by batch size and threading: the figures behind the
scheduler's design (service/scheduler.py).

    python -m benchmarks.engine_bench                      # 8 s buffers, beam 2
    python -m benchmarks.engine_bench --seconds 4 --beam 1

No server and no streaming policy: the engine alone (`WhisperEngine.decode_batch`)
on the first clips of the manifest cut to `--seconds`, each with 32 tokens of
context as a stream has after its first sentences. For each configuration the
call is warmed up once and then timed `--repeat` times; the table gives the mean
wall time of one round and the same per request. Rounds:

- `2 threads, batch N`: one call of N requests, CTranslate2 with 2 intra-op
  threads (the server's setting before the two-worker scheduler);
- `1 thread, batch N`: the same on one thread;
- `1 thread x 2 workers, 2 x batch N`: two calls of N requests at once from two
  Python threads, on one model with two inter-op workers (the server's default).
"""

from __future__ import annotations

import argparse
import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path

from benchmarks.lib.clips import DEFAULT_MANIFEST, FALLBACK_MANIFEST, load_audio, read_manifest
from benchmarks.lib.machine import CONTEXT, mean_time
from service.config import ModelSettings
from service.engine import DecodeRequest, WhisperEngine


def _concurrently(engine: WhisperEngine, batches: Sequence[list[DecodeRequest]]) -> None:
    threads = [threading.Thread(target=engine.decode_batch, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    default = DEFAULT_MANIFEST if DEFAULT_MANIFEST.exists() else FALLBACK_MANIFEST
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=str(default))
    p.add_argument("--seconds", type=float, default=8.0, help="buffer length per request")
    p.add_argument("--beam", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sizes", default="1,2,4,8", help="batch sizes")
    p.add_argument("--out", help="write the rows as JSON here")
    args = p.parse_args()

    manifest = Path(args.manifest)
    clips = [load_audio(manifest.parent / e["wav"]) for e in read_manifest(manifest)[:16]]
    n = int(args.seconds * 16000)
    sizes = [int(s) for s in args.sizes.split(",")]

    def requests(count: int, offset: int = 0) -> list[DecodeRequest]:
        return [
            DecodeRequest(
                audio=clips[(offset + i) % len(clips)][:n],
                context=CONTEXT,
                beam_size=args.beam,
            )
            for i in range(count)
        ]

    rows: list[dict[str, object]] = []

    def row(label: str, requests_per_round: int, seconds: float) -> None:
        rows.append({"config": label, "round_s": round(seconds, 3),
                     "per_request_s": round(seconds / requests_per_round, 3)})  # fmt: skip
        print(f"| {label} | {seconds:.3f} s | {seconds / requests_per_round:.3f} s |", flush=True)

    print(f"{args.seconds:g} s buffers, beam {args.beam}, 32 context tokens, mean of {args.repeat}")
    print("| configuration | one round | per request |\n| --- | --- | --- |")
    two = WhisperEngine(ModelSettings(cpu_threads=2, workers=1))
    for size in sizes:
        call = functools.partial(two.decode_batch, requests(size))
        row(f"2 threads, batch {size}", size, mean_time(call, args.repeat))
    one = WhisperEngine(ModelSettings(cpu_threads=1, workers=2))
    for size in sizes:
        call = functools.partial(one.decode_batch, requests(size))
        row(f"1 thread, batch {size}", size, mean_time(call, args.repeat))
    for size in [s for s in sizes if s * 2 <= max(sizes)]:
        pair = functools.partial(_concurrently, one, [requests(size), requests(size, size)])
        row(f"1 thread x 2 workers, 2 x batch {size}", 2 * size, mean_time(pair, args.repeat))
    if args.out:
        Path(args.out).write_text(json.dumps({"seconds": args.seconds, "beam": args.beam,
                                              "rows": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
