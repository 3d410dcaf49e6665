"""The stream benchmark's pure helpers: alignment, capacity search, per-minute figures,
test signals, profile classification, the plot. No model, no server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from transcribe.v1 import streaming_pb2

from benchmarks.lib.analysis import (
    add_thread_cpu,
    capacity_of,
    concatenate,
    corpus_wer,
    next_capacity_n,
    per_minute,
    pink_noise,
    rolling_median,
    thirds,
    trim_to_segments,
    verdict,
    white_noise,
    word_counts,
    word_timings,
)
from benchmarks.lib.profile import WAITING, classify, parse


def resp(text: str, final: bool) -> streaming_pb2.StreamingTranscribeResponse:
    r = streaming_pb2.StreamingTranscribeResponse()
    res = r.results.add(is_final=final)
    res.alternatives.add(transcript=text)
    return r


def test_word_timings_interim_then_final() -> None:
    responses = [
        (1.0, resp("hello", False)),
        (1.5, resp("hello world", False)),
        (2.5, resp("Hello, world.", True)),
        (3.0, resp("again", False)),
        (4.0, resp("again", True)),
    ]
    ends = [("hello", 0.5), ("world", 1.2), ("again", 2.8)]
    ts = word_timings(responses, ends)
    assert [t.word for t in ts] == ["hello", "world", "again"]
    assert [round(t.interim_latency, 2) for t in ts] == [0.5, 0.3, 0.2]
    assert [round(t.final_latency, 2) for t in ts] == [2.0, 1.3, 1.2]


def test_word_timings_skips_words_not_in_the_reference() -> None:
    ts = word_timings([(3.0, resp("the cat uh sat", True))], [("the", 1), ("cat", 2), ("sat", 2.5)])
    assert [(t.word, t.end_s) for t in ts] == [("the", 1), ("cat", 2), ("sat", 2.5)]


def test_word_timings_resynchronise_after_a_long_gap() -> None:
    ends = [(f"w{i}", float(i)) for i in range(20)]
    hyp = " ".join(f"w{i}" for i in [0, 1, 2, *range(10, 20)])  # w3..w9 never finalised
    ts = word_timings([(25.0, resp(hyp, True))], ends)
    assert [t.end_s for t in ts] == [0, 1, 2, *range(10, 20)]


def test_word_counts() -> None:
    c = word_counts([(1.0, resp("", False)), (2.0, resp("thank you", False)), (3, resp("", True))])
    assert c["final_words"] == 0 and c["interim_max_words"] == 2
    assert c["interim_results_with_words"] == 1
    assert word_counts([(1.0, resp("Thank you.", True))])["final_texts"] == ["Thank you."]


def test_capacity_search_doubles_then_bisects() -> None:
    truth = 5  # holds up to 5 streams
    held: dict[int, bool] = {}
    tried = []
    while (n := next_capacity_n(held, 16)) is not None:
        tried.append(n)
        held[n] = n <= truth
    assert tried == [1, 2, 4, 8, 6, 5]
    assert capacity_of(held) == 5


def test_capacity_search_edges() -> None:
    assert next_capacity_n({1: False}, 16) is None and capacity_of({1: False}) == 0
    held = {1: True, 2: True, 4: True}
    assert next_capacity_n(held, 4) is None and capacity_of(held) == 4
    assert next_capacity_n({1: True, 2: True}, 3) == 3
    # A noisy run that holds above a failure does not count.
    assert capacity_of({1: True, 2: True, 3: False, 4: True}) == 2


def test_verdict() -> None:
    assert verdict(2.9, 2.0, 2.5) == (True, "holds")
    ok, why = verdict(3.2, 2.0, 2.5)
    assert not ok and "p90" in why
    ok, why = verdict(2.9, 1.0, 2.5)
    assert not ok and "grows" in why
    assert not verdict(1.0, 1.0, 1.0, errors=1)[0]
    assert not verdict(math.nan, math.nan, math.nan)[0]


def test_thirds() -> None:
    first, last = thirds([(90.0, [(10, 1.0), (20, 1.2), (50, 5.0), (70, 2.0), (80, 2.2)])])
    assert first == 1.18 and last == 2.18


def test_per_minute_latency_and_cpu() -> None:
    # One stream of 150 s at real time; the server burns 0.5 CPU-s per second.
    samples = [(t, 0.5 * t) for t in range(0, 154, 2)]
    pts = [(t + 0.5, 1.0 + (t >= 60)) for t in range(0, 150, 5)]
    rows = per_minute([(0.0, 150.0, pts)], samples)
    assert [r["minute"] for r in rows] == [1, 2, 3]
    assert [r["final_median_s"] for r in rows] == [1.0, 2.0, 2.0]
    assert [r["audio_s"] for r in rows] == [60, 60, 30]
    assert rows[0]["server_cpu_s_per_audio_s"] == 0.5
    assert rows[2]["server_cpu_s"] == 16.0  # includes what ran after the audio ended


def test_corpus_wer_normalizes_both_sides_and_counts_over_the_corpus() -> None:
    assert corpus_wer([], []) is None
    assert corpus_wer(["Hello, World!"], ["hello world"]) == 0.0
    # one error in 4 reference words over two clips, not the mean of 0/1 and 1/3
    assert corpus_wer(["cat", "the dog sat"], ["cat", "the dog sad"]) == 0.25


def test_cpu_by_thread_per_minute() -> None:
    # The model threads burn 0.4 CPU-s per second; the event loop 0.1 in the first
    # minute and 0.3 in the second; a storage thread runs from 62 s to 90 s.
    samples = []
    for t in range(0, 121, 2):
        d = {"python": 0.4 * t, "main": 0.1 * t if t <= 60 else 6 + 0.3 * (t - 60)}
        if 62 <= t < 90:
            d["sqlite"] = 0.5
        samples.append((float(t), d))
    rows: list[dict[str, Any]] = [{"minute": 1}, {"minute": 2}]
    add_thread_cpu(rows, samples)
    assert rows[0]["server_cpu_s_by_thread"] == {"python": 24.0, "main": 6.0}
    assert rows[1]["server_cpu_s_by_thread"] == {"python": 24.0, "main": 18.0, "sqlite": 0.5}
    assert list(rows[1]["server_cpu_s_by_thread"]) == ["python", "main", "sqlite"]  # largest first


def test_noise_levels() -> None:
    for x in (white_noise(2.0, -30), pink_noise(2.0, -30)):
        assert x.dtype == np.float32 and len(x) == 32000
        rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        assert abs(rms_db + 30) < 0.01
    p = pink_noise(4.0)
    spec = np.abs(np.fft.rfft(p)) ** 2
    f = np.fft.rfftfreq(len(p), 1 / 16000)
    assert spec[(f > 50) & (f < 200)].mean() > 10 * spec[(f > 3000) & (f < 6000)].mean()


def test_concatenate_offsets_word_ends() -> None:
    a = np.ones(16000, dtype=np.float32)
    b = np.ones(8000, dtype=np.float32)
    cat = concatenate([("a", a, "A", "a", [("x", 0.5)]), ("b", b, "B", "b", [("y", 0.4)])], 1.0)
    assert len(cat.audio) == 16000 + 16000 + 8000
    assert cat.word_ends == [("x", 0.5), ("y", 2.4)]
    assert cat.reference == "A B" and cat.parts == ["a", "b"]


def test_trim_to_segments() -> None:
    segs = [
        {"start_s": 0.0, "end_s": 100.0, "text": "ONE"},
        {"start_s": 100.6, "end_s": 290.0, "text": "TWO"},
        {"start_s": 290.4, "end_s": 400.0, "text": "THREE"},
    ]
    assert trim_to_segments(segs, 300) == (290.2, "ONE TWO")
    assert trim_to_segments(segs, 500) is None


def test_rolling_median() -> None:
    assert rolling_median([1, 5, 2, 8, 3], 3) == [1, 3, 2, 5, 3]


def test_profile_classification() -> None:
    loop = "run (asyncio/runners.py:190);BaseEventLoop._run_once (asyncio/base_events.py:1922)"
    eng = "_worker (concurrent/futures/thread.py:83);WhisperEngine.decode_batch (service/engine.py:"
    gen = f"{eng}161);WhisperEngine._generate (service/engine.py:195)"
    assert classify("engine_0", gen.split(";")).startswith("model: generate")
    align = f"{eng}170);WhisperEngine._align (service/engine.py:222)"
    assert classify("engine_0", align.split(";")).startswith("model: word alignment")
    assert classify("asyncio_1", ["_worker (concurrent/futures/thread.py:81)"]) == WAITING
    idle = f"{loop};EpollSelector.select (selectors.py:468)"
    assert classify("MainThread", idle.split(";")) == WAITING
    vad = f"{loop};FrameVad.feed (service/vad.py:71);Session.run (onnxruntime/capi/x.py:406)"
    assert classify("asyncio_0", vad.split(";")).startswith("VAD")
    pb = f"{loop};StreamSession.run (service/session.py:177);_checked (service/wire.py:46)"
    assert classify("MainThread", pb.split(";")).startswith("protobuf")
    glue = (
        f"{loop};TranscriptionServicer.X (service/servicer.py:202);"
        "StreamSession.run (service/session.py:177)"
    )
    assert classify("MainThread", glue.split(";")).startswith("session glue")
    counts = parse([f"thread (1): asyncio_3;{vad} 7", "thread (2): MainThread 2"])
    assert counts[("asyncio", "VAD (Silero, onnxruntime)")] == 7


def test_plot_writes_a_png(tmp_path: Path) -> None:
    from benchmarks.lib.plot import Panel, Series, plot_latency

    out = tmp_path / "p.png"
    series = [Series("s0", [(t, 1.0 + 0.01 * t) for t in range(0, 120, 3)]), Series("s1", [])]
    plot_latency(out, [Panel("test", series, [(0.0, 0.4), (60.0, 0.5), (120.0, 0.5)])])
    assert out.read_bytes()[:4] == b"\x89PNG"
