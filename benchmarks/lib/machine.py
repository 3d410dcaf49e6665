"""How fast this machine runs the model today, recorded beside every latency figure.

The 2-core host is shared and not always the same speed: on 1 Dec 2026 (evening) the
engine alone took 2.0x as long per decode as on 30 Nov (`engine_bench`: one thread,
batch 4 of 8 s buffers, 1.05 s against 0.525 s), and eight tiny.en streams of the
1 Dec morning's code (a2bbe37), which held at p90 final 2.60 s then, measured 7.57 s.
Latency and capacity figures are only comparable between runs of similar speed, so
each benchmark that reports them measures this first (about 10 s) and prints it.

The CPU is not always the same either (3 Dec 2026): the fast hosts (0.6-0.7x) have
AVX-512 VNNI, which CTranslate2's int8 kernels use, and the same model then decodes the
same audio into slightly different text (FLEURS, base, offline beam 5: 7 of 10 es and 8
of 10 pt transcripts differ from an earlier host's). WER figures, offline ones included,
compare only between runs on the same CPU features: `cpu` records them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.lib.clips import DEFAULT_MANIFEST, FALLBACK_MANIFEST, load_audio, read_manifest

REFERENCE_S = 0.525
"""The same measurement on 30 Nov 2026 (benchmarks/results/engine.json, "1 thread, batch 4"),
the day the capacity figures of 8-10 tiny.en streams were taken."""
CONTEXT = (  # 32 tokens, as a stream has after its first sentences (engine_bench too)
    "and then he said that he would go to the market to buy some bread and some milk "
    "for the children who were waiting at home"
)


def mean_time(fn: Callable[[], object], repeat: int) -> float:
    """Mean wall seconds of `fn` over `repeat` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def machine_speed(repeat: int = 3) -> dict[str, Any]:
    """One round of 4 tiny.en decodes (8 s each, beam 2, one thread), mean of `repeat`
    after a warm-up, and its ratio to REFERENCE_S (2.0 = half as fast as on 30 Nov)."""
    from service.config import ModelSettings
    from service.engine import DecodeRequest, WhisperEngine

    manifest = DEFAULT_MANIFEST if DEFAULT_MANIFEST.exists() else FALLBACK_MANIFEST
    entries = read_manifest(manifest)[:4]
    audio = [load_audio(Path(manifest).parent / e["wav"])[: 8 * 16000] for e in entries]
    engine = WhisperEngine(ModelSettings(cpu_threads=1, workers=1))
    batch = [DecodeRequest(audio=a, context=CONTEXT, beam_size=2) for a in audio]
    round_s = round(mean_time(lambda: engine.decode_batch(batch), repeat), 3)
    return {
        "engine_round_s": round_s,
        "reference_s": REFERENCE_S,
        "slowdown_vs_30_nov": round(round_s / REFERENCE_S, 2),
        "cpu": cpu_features(),
        "manifest": str(manifest),
    }


def cpu_features() -> str:
    """The widest vector instructions CTranslate2's int8 kernels can use here."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    for flag in ("avx512_vnni", "avx512f", "avx2"):
        if flag in flags:
            return flag
    return "other"


def speed_text(speed: dict[str, Any]) -> str:
    return (
        f"Machine speed: 4 tiny.en decodes of 8 s on one thread took "
        f"{speed['engine_round_s']:.2f} s ({speed['slowdown_vs_30_nov']:.2f}x the "
        f"{speed['reference_s']:.3f} s of 30 Nov 2026; latency scales with it); "
        f"CPU {speed.get('cpu', 'unknown')}."
    )
