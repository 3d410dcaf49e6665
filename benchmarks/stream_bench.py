"""Accuracy, latency and cost of live transcription, measured through the real gRPC API.

    python -m benchmarks.stream_bench --manifest ../shared/speech/dev/manifest.jsonl --limit 20
    python -m benchmarks.stream_bench --streams 4 --limit 8          # concurrent streams
    python -m benchmarks.stream_bench --quick                        # < 1 minute, for development

Starts its own transcribe-server (so it can read that process's CPU time and
peak RSS from /proc), streams each clip as LINEAR16 in 100 ms messages at
real-time pace (`--pace`), N streams at once with staggered starts, and records
every response's arrival time. Definitions follow ../shared/DESIGN-NOTES.md:
WER through Whisper's English normalizer and jiwer (corpus level); a word's
latency is the arrival of the first response containing it (interim) or of its
final result, minus the time the word ends in the audio, taken from an offline
word-timestamp pass of the same model over the whole clip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT.parent / "shared" / "speech" / "dev" / "manifest.jsonl"
FALLBACK_MANIFEST = ROOT / "tests" / "data" / "manifest.jsonl"
_TOKEN = re.compile(r"[^\w']+")


def norm_word(w: str) -> str:
    return _TOKEN.sub("", w.lower())


@dataclass
class ClipRun:
    id: str
    reference: str
    duration_s: float
    responses: list[tuple[float, Any]] = field(default_factory=list)
    final_text: str = ""
    error: str = ""


def load_audio(path: Path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


async def stream_clip(
    stub: Any, clip: dict[str, Any], audio: np.ndarray, pace: float, delay: float
) -> ClipRun:
    run = ClipRun(clip["id"], clip.get("text", ""), len(audio) / 16000)
    await asyncio.sleep(delay)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = 3200  # 100 ms
    t0 = time.monotonic()

    async def requests() -> Any:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=streaming_pb2.StreamingTranscriptionConfig(
                encoding=streaming_pb2.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                interim_results=True,
                enable_word_time_offsets=True,
                title=f"bench {clip['id']}",
            )
        )
        for i in range(0, len(pcm), step):
            due = t0 + (i / 32000) / pace
            if (d := due - time.monotonic()) > 0:
                await asyncio.sleep(d)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=pcm[i : i + step])

    try:
        async for resp in stub.StreamingTranscribe(requests()):
            run.responses.append(((time.monotonic() - t0) * pace, resp))
    except grpc.aio.AioRpcError as err:
        run.error = f"{err.code().name}: {err.details()}"
    run.final_text = " ".join(
        r.alternatives[0].transcript
        for _, resp in run.responses
        for r in resp.results
        if r.is_final
    )
    return run


def word_latencies(
    run: ClipRun, word_ends: list[tuple[str, float]]
) -> tuple[list[float], list[float]]:
    """(interim, final) latencies of hypothesis words matched in order to the offline words."""
    finals: list[tuple[str, float]] = []  # (word, arrival) in order
    first_seen: dict[int, float] = {}
    for t, resp in run.responses:
        for r in resp.results:
            words = r.alternatives[0].transcript.split()
            base = len(finals)
            for j in range(len(words)):
                first_seen.setdefault(base + j, t)
            if r.is_final:
                finals += [(norm_word(w), t) for w in words]
    # Align final words to the offline words (same model: mostly identical) greedily in order.
    interim, final = [], []
    k = 0
    for i, (w, arrival) in enumerate(finals):
        for j in range(k, min(k + 4, len(word_ends))):
            if norm_word(word_ends[j][0]) == w:
                end = word_ends[j][1]
                final.append(arrival - end)
                interim.append(min(first_seen.get(i, arrival), arrival) - end)
                k = j + 1
                break
    return interim, final


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    manifest = Path(args.manifest)
    text = await asyncio.to_thread(manifest.read_text)
    entries = [json.loads(line) for line in text.splitlines()]
    entries = [e for e in entries if not args.long_only or "segments" in e]
    if args.limit:
        step = max(1, len(entries) // args.limit)
        entries = entries[::step][: args.limit]
    from faster_whisper import WhisperModel

    from service.config import bundled_model_path

    model = WhisperModel(bundled_model_path(), device="cpu", compute_type="int8", cpu_threads=2)
    audios, offline_text, word_ends = {}, {}, {}
    for e in entries:
        audio = load_audio(manifest.parent / e["wav"])
        audios[e["id"]] = audio
        segs, _ = model.transcribe(audio, beam_size=5, language="en", word_timestamps=True)
        segs = list(segs)
        offline_text[e["id"]] = " ".join(s.text.strip() for s in segs)
        word_ends[e["id"]] = [(w.word.strip(), w.end) for s in segs for w in (s.words or [])]
    del model
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            [
                sys.executable,
                "-c",
                "from service.server import main; main()",
                "--port=0",
                f"--data-dir={tmp}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        line = await asyncio.to_thread(server.stdout.readline)
        port = int(re.search(r":(\d+) ", line).group(1))  # type: ignore[union-attr]
        cpu0, _ = proc_stats(server.pid)
        started = time.monotonic()
        runs: list[ClipRun] = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            queue = list(entries)
            while queue:
                batch, queue = queue[: args.streams], queue[args.streams :]
                runs += await asyncio.gather(
                    *(
                        stream_clip(stub, e, audios[e["id"]], args.pace, i * args.stagger)
                        for i, e in enumerate(batch)
                    )
                )
        wall = time.monotonic() - started
        cpu1, peak = proc_stats(server.pid)
        server.terminate()
        server.wait(timeout=60)
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    n = EnglishTextNormalizer()
    refs = [n(r.reference) for r in runs]
    interim_l: list[float] = []
    final_l: list[float] = []
    for r in runs:
        i, f = word_latencies(r, word_ends[r.id])
        interim_l += i
        final_l += f
    audio_s = sum(r.duration_s for r in runs)
    return {
        "command": " ".join(["python -m benchmarks.stream_bench", *sys.argv[1:]]),
        "manifest": str(manifest),
        "clips": len(runs),
        "streams": args.streams,
        "pace": args.pace,
        "audio_seconds": round(audio_s, 1),
        "errors": [r.error for r in runs if r.error],
        "wer_streaming": round(jiwer.wer(refs, [n(r.final_text) for r in runs]), 4),
        "wer_offline": round(jiwer.wer(refs, [n(offline_text[r.id]) for r in runs]), 4),
        "interim_latency_s": {
            "median": pct(interim_l, 50),
            "p90": pct(interim_l, 90),
            "p99": pct(interim_l, 99),
        },
        "final_latency_s": {
            "median": pct(final_l, 50),
            "p90": pct(final_l, 90),
            "p99": pct(final_l, 99),
        },
        "words_timed": len(final_l),
        "server_cpu_s_per_audio_s": round((cpu1 - cpu0) / audio_s, 3),
        "server_peak_rss_mb": round(peak / 2**20, 1),
        "wall_seconds": round(wall, 1),
    }


def markdown(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"`{r['command']}`",
            "",
            "| clips | streams | WER stream | WER offline | interim median / p90 "
            "| final median / p90 / p99 | CPU s per audio s | peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {r['clips']} | {r['streams']} | {r['wer_streaming']:.1%} | "
            f"{r['wer_offline']:.1%} | "
            f"{r['interim_latency_s']['median']} / {r['interim_latency_s']['p90']} s | "
            f"{r['final_latency_s']['median']} / {r['final_latency_s']['p90']} / "
            f"{r['final_latency_s']['p99']} s | "
            f"{r['server_cpu_s_per_audio_s']} | {r['server_peak_rss_mb']} MB |",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = DEFAULT_MANIFEST if DEFAULT_MANIFEST.exists() else FALLBACK_MANIFEST
    p.add_argument("--manifest", default=str(default), help="manifest.jsonl of clips")
    p.add_argument("--limit", type=int, default=0, help="clips to use, spread over the manifest")
    p.add_argument("--streams", type=int, default=1, help="concurrent streams")
    p.add_argument("--pace", type=float, default=1.0, help="1.0 = real time")
    p.add_argument("--stagger", type=float, default=0.7, help="seconds between stream starts")
    p.add_argument("--long-only", action="store_true", help="only entries with segments")
    p.add_argument("--quick", action="store_true", help="3 clips at twice real time")
    p.add_argument("--out", help="write JSON here (and .md beside it)")
    args = p.parse_args()
    if args.quick:
        args.limit, args.pace = args.limit or 3, 2.0
    result = asyncio.run(run_bench(args))
    print(json.dumps(result, indent=2))
    print(markdown(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        Path(args.out).with_suffix(".md").write_text(markdown(result) + "\n")


if __name__ == "__main__":
    main()
