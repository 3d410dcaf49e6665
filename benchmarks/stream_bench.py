"""Accuracy, latency and cost of live transcription, measured through the real gRPC API.

    python -m benchmarks.stream_bench --manifest ../shared/speech/dev/manifest.jsonl --limit 20
    python -m benchmarks.stream_bench --streams 4 --limit 8          # concurrent streams
    python -m benchmarks.stream_bench --quick                        # < 1 minute, for development
    python -m benchmarks.stream_bench --silence-noise --no-speech    # words on silence and noise
    python -m benchmarks.stream_bench --manifest ../shared/speech/long/manifest.jsonl \\
        --limit 1 --max-seconds 300 --plot long.png                  # per-minute report + plot
    python -m benchmarks.stream_bench --capacity                     # largest N that holds

Starts its own transcribe-server (so it can read that process's CPU time and
peak RSS from /proc), streams each clip as LINEAR16 in 100 ms messages at
real-time pace (`--pace`), N streams at once with staggered starts, and records
every response's arrival time. Definitions follow ../shared/DESIGN-NOTES.md:
WER through Whisper's English normalizer and jiwer (corpus level); a word's
latency is the arrival of the first response containing it (interim) or of its
final result, minus the time the word ends in the audio, taken from an offline
word-timestamp pass of the same model over the whole clip (cached under
~/.cache/live-transcribe-bench, keyed by the audio and the model).

The server's CPU time is sampled every `--sample-every` seconds: sessions of a
minute or more get a per-minute table (final-word latency and server CPU per
audio second for each minute). `--silence-noise` also streams digital silence,
white and pink noise and counts the words the service emits on them (should be
none). `--capacity` (benchmarks/capacity.py) raises the number of concurrent
streams until p90 final latency exceeds 3 s or grows over the run.
`--profile FILE` runs the server under py-spy and breaks its time down by stage
(benchmarks/profile_breakdown.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from benchmarks.analysis import (
    SAMPLE_RATE,
    WordTiming,
    add_thread_cpu,
    corpus_wer,
    final_transcript,
    norm_word,
    pct,
    per_minute,
    pink_noise,
    summary,
    thirds,
    trim_to_segments,
    white_noise,
    word_counts,
    word_timings,
)
from benchmarks.progress import Progress

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT.parent / "shared" / "speech" / "dev" / "manifest.jsonl"
FALLBACK_MANIFEST = ROOT / "tests" / "data" / "manifest.jsonl"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "live-transcribe-bench"
)
CHUNK = 3200  # bytes of LINEAR16: 100 ms

__all__ = ["load_audio", "norm_word", "pct", "proc_stats", "stat_cpu_s", "word_latencies"]

Audio = npt.NDArray[np.float32]


@dataclass
class Clip:
    """What one stream plays, with its reference and offline word end times."""

    id: str
    audio: Audio
    reference: str = ""
    offline_text: str = ""
    word_ends: list[tuple[str, float]] = field(default_factory=list)
    kind: str = "speech"  # speech | silence | noise

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass
class ClipRun:
    id: str
    reference: str
    duration_s: float
    kind: str = "speech"
    start_s: float = 0.0  # run time at which its first audio was sent
    responses: list[tuple[float, Any]] = field(default_factory=list)
    final_text: str = ""
    first_pass_text: str = ""
    error: str = ""


def load_audio(path: Path) -> Audio:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


class Offline:
    """The offline reference: the same model over each whole clip (beam 5, word
    timestamps), cached on disk by audio content and model."""

    def __init__(self, cache: bool = True) -> None:
        from service.config import bundled_model_path

        self.model_path = str(bundled_model_path())
        self.cache = cache
        self._model: Any = None

    def __call__(self, audio: Audio) -> tuple[str, list[tuple[str, float]]]:
        key = hashlib.sha1(audio.tobytes() + self.model_path.encode()).hexdigest()
        path = CACHE_DIR / f"{key}.json"
        if self.cache and path.exists():
            data = json.loads(path.read_text())
            return data["text"], [(w, e) for w, e in data["word_ends"]]
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(
                self.model_path, device="cpu", compute_type="int8", cpu_threads=2
            )
        segs, _ = self._model.transcribe(audio, beam_size=5, language="en", word_timestamps=True)
        segs = list(segs)
        text = " ".join(s.text.strip() for s in segs)
        ends = [(w.word.strip(), float(w.end)) for s in segs for w in (s.words or [])]
        if self.cache:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"text": text, "word_ends": ends}))
        return text, ends


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pick(entries: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """`limit` entries spread evenly over the manifest (all if 0)."""
    if limit:
        step = max(1, len(entries) // limit)
        entries = entries[::step][:limit]
    return entries


def load_clip(
    manifest: Path, entry: dict[str, Any], offline: Offline, max_seconds: float = 0.0
) -> Clip:
    audio = load_audio(manifest.parent / entry["wav"])
    reference = entry.get("text", "")
    if max_seconds and len(audio) > max_seconds * SAMPLE_RATE:
        cut = trim_to_segments(entry.get("segments", []), max_seconds)
        if cut is None:  # no segments: cut the audio only (the reference no longer fits)
            audio, reference = audio[: int(max_seconds * SAMPLE_RATE)], ""
        else:
            audio, reference = audio[: int(cut[0] * SAMPLE_RATE)], cut[1]
    text, ends = offline(audio)
    return Clip(entry["id"], audio, reference, text, ends)


def noise_clips(seconds: float, dbfs: float) -> list[Clip]:
    return [
        Clip("silence", np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32), kind="silence"),
        Clip(f"white noise {dbfs:g} dBFS", white_noise(seconds, dbfs), kind="noise"),
        Clip(f"pink noise {dbfs:g} dBFS", pink_noise(seconds, dbfs), kind="noise"),
    ]


def stat_cpu_s(stat: Path) -> float:
    """User + system CPU seconds from a /proc `stat` file (of a process or a thread)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a process, from /proc."""
    cpu = stat_cpu_s(Path(f"/proc/{pid}/stat"))
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process by thread name ("main" is the event loop's thread;
    numbered pool threads such as engine_0 and engine_1 add up under "engine")."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            cpu = stat_cpu_s(task / "stat")
        except OSError:  # the thread ended between the listing and the read
            continue
        label = "main" if task.name == str(pid) else re.sub(r"_\d+$", "", name)
        out[label] = out.get(label, 0.0) + cpu
    return out


def _child_pid(pid: int) -> int | None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


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
            child = _child_pid(self.proc.pid)
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


async def stream_clip(
    stub: Any,
    clip: Clip,
    pace: float,
    delay: float,
    origin: float,
    progress: Progress | None = None,
) -> ClipRun:
    """One clip at `pace`, asking for revised finals as the clients here do."""
    run = ClipRun(clip.id, clip.reference, clip.duration_s, clip.kind)
    await asyncio.sleep(delay)
    pcm = (np.clip(clip.audio, -1, 1) * 32767).astype("<i2").tobytes()
    t0 = time.monotonic()
    run.start_s = t0 - origin
    if progress:
        progress.active += 1

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=streaming_pb2.StreamingTranscriptionConfig(
                encoding=streaming_pb2.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=SAMPLE_RATE,
                interim_results=True,
                enable_word_time_offsets=True,
                enable_revisions=True,
                title=f"bench {clip.id}",
            )
        )
        for i in range(0, len(pcm), CHUNK):
            due = t0 + (i / (2 * SAMPLE_RATE)) / pace
            if (d := due - time.monotonic()) > 0:
                await asyncio.sleep(d)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=pcm[i : i + CHUNK])
            if progress:
                progress.sent_s += len(pcm[i : i + CHUNK]) / (2 * SAMPLE_RATE)

    try:
        async for resp in stub.StreamingTranscribe(requests()):
            run.responses.append(((time.monotonic() - t0) * pace, resp))
            if progress:
                progress.finals += sum(1 for r in resp.results if r.is_final)
    except grpc.aio.AioRpcError as err:
        run.error = f"{err.code().name}: {err.details()}"
        if progress:
            progress.errors += 1
    if progress:
        progress.active -= 1
        progress.done += 1
    run.final_text = final_transcript(run.responses)
    run.first_pass_text = final_transcript(run.responses, revised=False)
    return run


async def run_streams(
    port: int,
    clips: Sequence[Clip],
    streams: int,
    pace: float,
    stagger: float,
    origin: float,
    label: str,
) -> list[ClipRun]:
    """Clips in groups of `streams` concurrent streams (staggered starts), group after group."""
    runs: list[ClipRun] = []
    total = sum(c.duration_s for c in clips)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
        with Progress(label, total, len(clips)) as progress:
            queue = list(clips)
            while queue:
                batch, queue = queue[:streams], queue[streams:]
                runs += await asyncio.gather(
                    *(
                        stream_clip(stub, c, pace, i * stagger, origin, progress)
                        for i, c in enumerate(batch)
                    )
                )
    return runs


def word_latencies(
    run: ClipRun, word_ends: list[tuple[str, float]]
) -> tuple[list[float], list[float]]:
    """(interim, final) latencies of hypothesis words matched in order to the offline words."""
    ts = word_timings(run.responses, word_ends)
    return [t.interim_latency for t in ts], [t.final_latency for t in ts]


def speech_figures(
    runs: Sequence[ClipRun],
    clips: dict[str, Clip],
    cpu_s: float,
    peak: int,
    wall: float,
    samples: Sequence[tuple[float, float]],
    pace: float,
) -> tuple[dict[str, Any], dict[str, list[WordTiming]]]:
    """WER, latency, cost (and per minute for sessions of a minute or more) of speech runs."""
    timed = {r.id: word_timings(r.responses, clips[r.id].word_ends) for r in runs}
    interim = [t.interim_latency for ts in timed.values() for t in ts]
    final = [t.final_latency for ts in timed.values() for t in ts]
    scored = [r for r in runs if r.reference]
    refs = [r.reference for r in scored]
    audio_s = sum(r.duration_s for r in runs)
    per_stream = [(r.duration_s, [(t.end_s, t.final_latency) for t in timed[r.id]]) for r in runs]
    first, last = thirds(per_stream)
    out: dict[str, Any] = {
        "clips": len(runs),
        "audio_seconds": round(audio_s, 1),
        "errors": [f"{r.id}: {r.error}" for r in runs if r.error],
        "wer_streaming": corpus_wer(refs, [r.final_text for r in scored]),
        # The finals as first sent, before the second pass revised them.
        "wer_first_pass": corpus_wer(refs, [r.first_pass_text for r in scored]),
        "wer_offline": corpus_wer(refs, [clips[r.id].offline_text for r in scored]),
        "interim_latency_s": summary(interim),
        "final_latency_s": summary(final),
        "final_p90_first_third_s": first,
        "final_p90_last_third_s": last,
        "words_timed": len(final),
        "words_offline": sum(len(clips[r.id].word_ends) for r in runs),
        "server_cpu_s_per_audio_s": round(cpu_s / audio_s, 3) if audio_s else None,
        "server_peak_rss_mb": round(peak / 2**20, 1),
        "wall_seconds": round(wall, 1),
    }
    # Every timed word, so that plots can be redrawn and runs compared from the JSON.
    out["words"] = [
        {
            "id": r.id,
            "start_s": round(r.start_s, 2),
            "duration_s": round(r.duration_s, 2),
            "final_text": r.final_text,
            "end_final_interim_s": [
                [round(t.end_s, 2), round(t.final_latency, 3), round(t.interim_latency, 3)]
                for t in timed[r.id]
            ],
        }
        for r in runs
    ]
    if max((r.duration_s for r in runs), default=0) >= 60:
        out["per_minute"] = per_minute(
            [(r.start_s, r.duration_s, pts) for r, (_, pts) in zip(runs, per_stream, strict=True)],
            samples,
            pace,
        )
    return out, timed


async def measure(
    args: argparse.Namespace,
    speech: Sequence[Clip],
    noise: Sequence[Clip],
    streams: int,
    label: str = "",
) -> tuple[dict[str, Any], dict[str, list[WordTiming]], list[ClipRun]]:
    """One server: the speech clips (`streams` at a time), then the silence/noise clips."""
    server = Server(
        args.server_arg, Path(args.profile) if args.profile else None, args.sample_every
    )
    port = await server.start()
    result: dict[str, Any] = {}
    timed: dict[str, list[WordTiming]] = {}
    runs: list[ClipRun] = []
    try:
        if speech:
            origin, cpu0 = server.sample()
            runs = await run_streams(
                port, speech, streams, args.pace, args.stagger, origin, label or "speech"
            )
            wall = time.monotonic() - origin
            await asyncio.sleep(0.2)
            _, cpu1 = server.sample()
            samples = [(t - origin, c - cpu0) for t, c in server.samples if t >= origin]
            result, timed = speech_figures(
                runs,
                {c.id: c for c in speech},
                cpu1 - cpu0,
                server.peak_rss(),
                wall,
                samples,
                args.pace,
            )
            if "per_minute" in result:
                by_thread = [(t - origin, d) for t, d in server.thread_samples if t >= origin]
                add_thread_cpu(result["per_minute"], by_thread)
        if noise:
            origin, _ = server.sample()
            noise_runs = await run_streams(
                port, noise, len(noise), args.pace, 0.0, origin, "silence/noise"
            )
            result["silence_noise"] = [
                {
                    "input": r.id,
                    "seconds": round(r.duration_s, 1),
                    "error": r.error,
                    **word_counts(r.responses),
                }
                for r in noise_runs
            ]
    finally:
        server_errors = await server.stop()
    result["server_log_errors"] = server_errors[:20]
    if args.profile:
        from benchmarks.profile_breakdown import breakdown

        result["profile"] = {"file": args.profile, **breakdown(Path(args.profile), server.rate)}
    return result, timed, runs


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    manifest = Path(args.manifest)
    speech: list[Clip] = []
    if not args.no_speech:
        entries = await asyncio.to_thread(read_manifest, manifest)
        entries = pick([e for e in entries if not args.long_only or "segments" in e], args.limit)
        offline = Offline(cache=not args.no_cache)
        for e in entries:
            speech.append(
                await asyncio.to_thread(load_clip, manifest, e, offline, args.max_seconds)
            )
    noise = noise_clips(args.noise_seconds, args.noise_dbfs) if args.silence_noise else []
    result, timed, runs = await measure(args, speech, noise, args.streams)
    if args.plot and runs:
        from benchmarks.plot import Panel, Series, plot_latency

        cpu = [
            ((row["minute"] - 1) * 60.0, row["server_cpu_s_per_audio_s"])
            for row in result.get("per_minute", [])
            if "server_cpu_s_per_audio_s" in row
        ]
        if cpu:
            end = max(r.start_s + r.duration_s / args.pace for r in runs) - runs[0].start_s
            cpu.append((end, cpu[-1][1]))
        series = [Series(r.id, [(t.end_s, t.final_latency) for t in timed[r.id]]) for r in runs]
        title = f"{manifest.parent.name}: {len(runs)} clip(s), {args.streams} stream(s) at a time"
        await asyncio.to_thread(plot_latency, Path(args.plot), [Panel(title, series, cpu)])
        result["plot"] = args.plot
    return {
        "command": " ".join(["python -m benchmarks.stream_bench", *sys.argv[1:]]),
        "manifest": str(manifest) if speech else None,
        "streams": args.streams,
        "pace": args.pace,
        "service_version": git_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        **result,
    }


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


def _lat(d: dict[str, float], keys: tuple[str, ...] = ("median", "p90")) -> str:
    return " / ".join(f"{d[k]:.2f}" for k in keys) + " s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def speech_table(r: dict[str, Any]) -> list[str]:
    return [
        "| streams | clips | audio | WER stream | WER offline | interim median / p90 "
        "| final median / p90 / p99 | p90 first / last third | CPU s per audio s | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {r['streams']} | {r['clips']} | {r['audio_seconds']:.0f} s | "
        f"{_pct(r['wer_streaming'])} | {_pct(r['wer_offline'])} | {_lat(r['interim_latency_s'])} | "
        f"{_lat(r['final_latency_s'], ('median', 'p90', 'p99'))} | "
        f"{r['final_p90_first_third_s']:.2f} / {r['final_p90_last_third_s']:.2f} s | "
        f"{r['server_cpu_s_per_audio_s']} | {r['server_peak_rss_mb']} MB |",
    ]


def minute_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| minute | words | final median / p90 | audio | server CPU s | CPU s per audio s "
        "| CPU s by thread |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in rows:
        threads = ", ".join(f"{k} {v:g}" for k, v in m.get("server_cpu_s_by_thread", {}).items())
        out.append(
            f"| {m['minute']} | {m['words']} | {m['final_median_s']:.2f} / "
            f"{m['final_p90_s']:.2f} s | {m['audio_s']:.0f} s | {m.get('server_cpu_s', '-')} | "
            f"{m.get('server_cpu_s_per_audio_s', '-')} | {threads or '-'} |"
        )
    return out


def noise_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| input | seconds | words in finals | most words in an interim | final texts |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n in rows:
        texts = "; ".join(n["final_texts"])[:120] or "-"
        err = f" (error {n['error']})" if n["error"] else ""
        out.append(
            f"| {n['input']}{err} | {n['seconds']:g} | {n['final_words']} | "
            f"{n['interim_max_words']} | {texts} |"
        )
    return out


def profile_table(p: dict[str, Any]) -> list[str]:
    out = [
        f"Where the server's busy thread time went (py-spy, {p['busy_samples']} busy of "
        f"{p['samples']} samples, {p.get('busy_thread_seconds', '?')} busy thread-seconds; "
        "waiting and start-up excluded):",
        "",
        "| stage | share |",
        "| --- | --- |",
    ]
    out += [f"| {k} | {v:.1%} |" for k, v in p["shares"].items()]
    out += ["", "By thread: " + ", ".join(f"{k} {v:.0%}" for k, v in p["busy_by_thread"].items())]
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = [f"`{r['command']}`", ""]
    if "clips" in r:
        lines += speech_table(r)
        if r.get("errors"):
            lines += ["", "Errors: " + "; ".join(r["errors"])]
    if r.get("per_minute"):
        lines += ["", "Per minute of session time:", "", *minute_table(r["per_minute"])]
    if r.get("silence_noise"):
        lines += ["", "Words emitted on silence and noise:", "", *noise_table(r["silence_noise"])]
    if r.get("profile"):
        lines += ["", *profile_table(r["profile"])]
    if r.get("plot"):
        lines += ["", f"![final-word latency over the session]({Path(r['plot']).name})"]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = DEFAULT_MANIFEST if DEFAULT_MANIFEST.exists() else FALLBACK_MANIFEST
    p.add_argument("--manifest", default=str(default), help="manifest.jsonl of clips")
    p.add_argument("--limit", type=int, default=0, help="clips to use, spread over the manifest")
    p.add_argument("--max-seconds", type=float, default=0.0, help="cut longer clips (segments)")
    p.add_argument("--streams", type=int, default=1, help="concurrent streams")
    p.add_argument("--pace", type=float, default=1.0, help="1.0 = real time")
    p.add_argument("--stagger", type=float, default=0.7, help="seconds between stream starts")
    p.add_argument("--long-only", action="store_true", help="only entries with segments")
    p.add_argument("--quick", action="store_true", help="3 clips at 2x, silence and noise")
    p.add_argument("--silence-noise", action="store_true", help="also stream silence and noise")
    p.add_argument("--no-speech", action="store_true", help="no clips (with --silence-noise)")
    p.add_argument("--noise-seconds", type=float, default=20.0)
    p.add_argument("--noise-dbfs", type=float, default=-30.0, help="noise RMS level")
    p.add_argument("--sample-every", type=float, default=2.0, help="server CPU sampling (s)")
    p.add_argument("--plot", help="write a latency-over-time PNG here")
    p.add_argument("--profile", help="run the server under py-spy; raw stacks to this file")
    p.add_argument("--server-arg", action="append", default=[], help="extra server option")
    p.add_argument("--no-cache", action="store_true", help="redo the offline reference pass")
    p.add_argument("--out", help="write JSON here (and .md beside it)")
    cap = p.add_argument_group("capacity (benchmarks/capacity.py)")
    cap.add_argument("--capacity", action="store_true", help="find the largest N that holds")
    cap.add_argument("--capacity-seconds", type=float, default=90.0, help="audio per stream")
    cap.add_argument("--capacity-max", type=int, default=16, help="largest N to try")
    cap.add_argument("--capacity-ns", help="try exactly these N (comma-separated), no search")
    return p


def write(result: dict[str, Any], text: str, out: str | None) -> None:
    print(json.dumps(result, indent=2))
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        Path(out).with_suffix(".md").write_text(text + "\n")


def main() -> None:
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the server started here is stopped
    # too instead of being left running, orphaned, and skewing the next measurement.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = parser().parse_args()
    if args.capacity:
        from benchmarks.capacity import capacity_markdown, run_capacity

        cap = asyncio.run(run_capacity(args))
        write(cap, capacity_markdown(cap), args.out)
        return
    if args.quick:
        args.limit, args.pace, args.silence_noise = args.limit or 3, 2.0, True
    result = asyncio.run(run_bench(args))
    write(result, markdown(result), args.out)


if __name__ == "__main__":
    main()
