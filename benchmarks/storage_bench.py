r"""Search latency of a filled transcript store.

    python -m benchmarks.storage_bench --backend sqlite --transcripts 10000
    python -m benchmarks.storage_bench --backend dynamodb \
        --endpoint http://127.0.0.1:8000 --transcripts 1000

Fills a fresh store with synthetic transcripts whose sentences are real
LibriSpeech references (so word frequencies are those of real speech), ~100
words each, then times searches for single words, two words and phrases taken
from the stored text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.config import StorageSettings
from service.domain import Segment, TranscriptMeta, TranscriptStatus, Word
from service.storage.factory import open_store

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = [ROOT.parent / "shared" / "speech" / n / "manifest.jsonl" for n in ("dev", "long")]


def sentences(paths: list[Path]) -> list[list[str]]:
    out = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            texts = [s["text"] for s in entry.get("segments", [])] or [entry["text"]]
            out += [t.lower().split() for t in texts]
    if not out:
        out = [(ROOT / "README.md").read_text().lower().split()]
    return out


async def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(1)
    corpus = sentences([Path(p) for p in args.manifest] if args.manifest else MANIFESTS)
    with tempfile.TemporaryDirectory() as tmp:
        settings = StorageSettings(
            backend=args.backend,
            data_dir=Path(tmp),
            dynamodb_endpoint=args.endpoint,
            dynamodb_table_prefix="bench" + uuid.uuid4().hex[:6],
            dynamodb_create_tables=True,
        )
        store = await open_store(settings)
        t0 = time.monotonic()
        words_total = 0
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(args.transcripts):
            tid = f"b{i:06d}"
            await store.create_transcript(
                TranscriptMeta(
                    tid,
                    "bench",
                    base + timedelta(minutes=i),
                    TranscriptStatus.COMPLETE,
                    "en",
                    "tiny.en",
                    f"Meeting {i}",
                )
            )
            segs: list[Segment] = []
            t, n = 0.0, 0
            while n < args.words:
                sent = corpus[rng.randrange(len(corpus))][:20]
                words = tuple(
                    Word(w, t + 0.4 * k, t + 0.4 * k + 0.3, 0.9) for k, w in enumerate(sent)
                )
                segs.append(Segment(len(segs), t, words[-1].end, " ".join(sent), words, 0.9))
                t, n = words[-1].end + 0.5, n + len(sent)
            words_total += n
            await store.append_segments("bench", tid, segs)
            if args.progress and i % 1000 == 0:
                print(f"  filled {i} transcripts", flush=True)
        fill_s = time.monotonic() - t0
        queries = []
        for _ in range(args.queries):
            sent = corpus[rng.randrange(len(corpus))]
            k = rng.randrange(max(1, len(sent) - 1))
            kind = rng.choice(["word", "two", "phrase"])
            if kind == "word":
                queries.append(max(sent[k : k + 3], key=len))
            elif kind == "two":
                queries.append(f"{sent[k]} {sent[-1]}")
            else:
                queries.append('"' + " ".join(sent[k : k + 2]) + '"')
        times, hits = [], 0
        for q in queries:
            s = time.perf_counter()
            found, _ = await store.search("bench", q, 20, "")
            times.append(time.perf_counter() - s)
            hits += len(found)
        await store.close()
    times.sort()
    return {
        "backend": args.backend,
        "transcripts": args.transcripts,
        "words": words_total,
        "fill_seconds": round(fill_s, 1),
        "queries": len(queries),
        "mean_hits": round(hits / len(queries), 1),
        "search_median_ms": round(statistics.median(times) * 1000, 2),
        "search_p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))] * 1000, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backend", choices=["sqlite", "dynamodb"], default="sqlite")
    p.add_argument("--endpoint", default="", help="DynamoDB endpoint URL (DynamoDB Local)")
    p.add_argument("--transcripts", type=int, default=10000, help="transcripts to create")
    p.add_argument("--words", type=int, default=100, help="words per transcript")
    p.add_argument("--queries", type=int, default=300, help="searches to time")
    p.add_argument("--manifest", action="append", help="manifest.jsonl for the sentences")
    p.add_argument("--progress", action="store_true", help="print fill progress")
    print(json.dumps(asyncio.run(run(p.parse_args())), indent=2))


if __name__ == "__main__":
    main()
