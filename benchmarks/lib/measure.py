"""One measured run: a server, clips streamed through it, and the figures of what came back."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.lib.analysis import (
    WordTiming,
    add_thread_cpu,
    corpus_wer,
    per_minute,
    summary,
    thirds,
    word_counts,
    word_timings,
)
from benchmarks.lib.client import ClipRun, run_streams
from benchmarks.lib.clips import Clip
from benchmarks.lib.scoring import is_english, tokenizer
from benchmarks.lib.server import Server


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
    timed = {
        r.id: word_timings(r.responses, clips[r.id].word_ends, tokenizer(clips[r.id].language))
        for r in runs
    }
    interim = [t.interim_latency for ts in timed.values() for t in ts]
    final = [t.final_latency for ts in timed.values() for t in ts]
    # English WER here; other languages are scored per language (benchmarks/language_bench.py).
    scored = [r for r in runs if r.reference and is_english(clips[r.id].language)]
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
        # What the server said served the streams (SessionInfo.model), to catch a wrong model.
        "session_models": sorted(
            {resp.session.model for r in runs for _, resp in r.responses if resp.session.model}
        ),
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


def stream_model(args: argparse.Namespace) -> str:
    """The model the streams use: `--model`, else the first of `--models`, else tiny.en."""
    models = str(getattr(args, "models", "") or "")
    return str(getattr(args, "model", "") or (models.split(",")[0] if models else "tiny.en"))


def server_args(args: argparse.Namespace) -> list[str]:
    """The server's options: `--models` (or the one `--model` a stream asks for) and the
    `--server-arg`s, which come last and so win."""
    models = getattr(args, "models", "") or getattr(args, "model", "")
    return ([f"--models={models}"] if models else []) + list(args.server_arg)


async def measure(
    args: argparse.Namespace,
    speech: Sequence[Clip],
    noise: Sequence[Clip],
    streams: int,
    label: str = "",
) -> tuple[dict[str, Any], dict[str, list[WordTiming]], list[ClipRun]]:
    """One server: the speech clips (`streams` at a time), then the silence/noise clips."""
    server = Server(
        server_args(args), Path(args.profile) if args.profile else None, args.sample_every
    )
    port = await server.start()
    result: dict[str, Any] = {}
    timed: dict[str, list[WordTiming]] = {}
    runs: list[ClipRun] = []
    try:
        if speech:
            origin, cpu0 = server.sample()
            runs = await run_streams(
                port, speech, streams, args.pace, args.stagger, origin, label or "speech",
                getattr(args, "model", ""), getattr(args, "labels", False),
            )  # fmt: skip
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
                port, noise, len(noise), args.pace, 0.0, origin, "silence/noise",
                getattr(args, "model", ""), getattr(args, "labels", False),
            )  # fmt: skip
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
        from benchmarks.lib.profile import breakdown

        result["profile"] = {"file": args.profile, **breakdown(Path(args.profile), server.rate)}
    return result, timed, runs
