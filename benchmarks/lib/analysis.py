"""Pure helpers of the stream benchmark: latency alignment, statistics, capacity search,
per-minute cost and latency, test signals. No model, no server, no I/O."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
_TOKEN = re.compile(r"[^\w']+")

# Capacity criteria (../shared/DESIGN-NOTES.md, "How we measure").
P90_LIMIT_S = 3.0
GROWTH_LIMIT_S = 1.0


def norm_word(w: str) -> str:
    return _TOKEN.sub("", w.lower())


class _Alternative(Protocol):
    @property
    def transcript(self) -> str: ...


class _Result(Protocol):
    @property
    def is_final(self) -> bool: ...
    @property
    def revision(self) -> int: ...
    @property
    def segment_index(self) -> int: ...
    @property
    def alternatives(self) -> Sequence[_Alternative]: ...


class _Response(Protocol):
    @property
    def results(self) -> Sequence[_Result]: ...


@dataclass
class WordTiming:
    """One hypothesis word matched to an offline word: where it ends in the audio and when
    the client first saw it (interim) and received it final (seconds of session time)."""

    word: str
    end_s: float
    interim_s: float
    final_s: float

    @property
    def interim_latency(self) -> float:
        return self.interim_s - self.end_s

    @property
    def final_latency(self) -> float:
        return self.final_s - self.end_s


def english_words(text: str) -> list[str]:
    return [norm_word(w) for w in text.split()]


def word_timings(
    responses: Iterable[tuple[float, _Response]],
    word_ends: Sequence[tuple[str, float]],
    tokens: Callable[[str], list[str]] | None = None,
) -> list[WordTiming]:
    """Final words matched in order to the offline words (same model: mostly identical)
    by a longest-matching-blocks alignment (difflib), which resynchronises after any
    run of inserted or missing words, with their first-seen and final arrival times.
    `tokens` splits texts into the units timed (default: English words; characters for
    languages written without spaces, each timed by the end of its offline word)."""
    split = tokens or english_words
    finals: list[tuple[str, float]] = []  # (word, arrival) in order
    first_seen: dict[int, float] = {}
    for t, resp in responses:
        for r in resp.results:
            if r.revision:  # a second pass of words already final: timed by their first final
                continue
            words = split(r.alternatives[0].transcript)
            base = len(finals)
            for j in range(len(words)):
                first_seen.setdefault(base + j, t)
            if r.is_final:
                finals += [(w, t) for w in words]
    ref = [(u, end) for w, end in word_ends for u in split(w)]
    matcher = difflib.SequenceMatcher(
        None, [w for w, _ in finals], [u for u, _ in ref], autojunk=False
    )
    out: list[WordTiming] = []
    for a, b, size in matcher.get_matching_blocks():
        for i, j in zip(range(a, a + size), range(b, b + size), strict=True):
            w, arrival = finals[i]
            seen = min(first_seen.get(i, arrival), arrival)
            out.append(WordTiming(w, ref[j][1], seen, arrival))
    return out


def word_counts(responses: Iterable[tuple[float, _Response]]) -> dict[str, Any]:
    """Words in final results, the most words any interim result showed, and the texts."""
    final_words = interim_max = interim_nonempty = 0
    texts: list[str] = []
    for _, resp in responses:
        for r in resp.results:
            if r.revision:
                continue
            text = r.alternatives[0].transcript.strip() if r.alternatives else ""
            n = len(text.split())
            if r.is_final:
                final_words += n
                if text:
                    texts.append(text)
            elif n:
                interim_nonempty += 1
                interim_max = max(interim_max, n)
    return {
        "final_words": final_words,
        "interim_max_words": interim_max,
        "interim_results_with_words": interim_nonempty,
        "final_texts": texts,
    }


def final_transcript(responses: Iterable[tuple[float, _Response]], revised: bool = True) -> str:
    """The text of the final segments in index order; with `revised`, each segment as last
    sent (a revision replaces its first final), else as first sent (the first pass)."""
    segments: dict[int, str] = {}
    for _, resp in responses:
        for r in resp.results:
            if r.is_final and (revised or not r.revision):
                segments[r.segment_index] = r.alternatives[0].transcript
    return " ".join(text for _, text in sorted(segments.items()) if text)


def pct(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if len(values) else float("nan")


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99)}


def thirds(streams: Sequence[tuple[float, Sequence[tuple[float, float]]]]) -> tuple[float, float]:
    """p90 latency of the words ending in the first and in the last third of their
    session, over all streams (`streams`: (duration, [(word end in seconds, latency)]))."""
    first = [lat for dur, pts in streams for t, lat in pts if t < dur / 3]
    last = [lat for dur, pts in streams for t, lat in pts if t >= 2 * dur / 3]
    return pct(first, 90), pct(last, 90)


def verdict(
    p90: float,
    p90_first: float,
    p90_last: float,
    errors: int = 0,
    p90_limit: float = P90_LIMIT_S,
    growth_limit: float = GROWTH_LIMIT_S,
) -> tuple[bool, str]:
    """Does a run hold? p90 final latency under the limit over the whole run and not growing
    (last third's p90 at most `growth_limit` above the first third's), and no stream failed."""
    if errors:
        return False, f"{errors} stream(s) failed"
    if math.isnan(p90):
        return False, "no final words"
    if p90 > p90_limit:
        return False, f"p90 final latency {p90:.2f} s > {p90_limit:g} s"
    growth = p90_last - p90_first
    if not math.isnan(growth) and growth > growth_limit:
        return False, (
            f"latency grows: p90 {p90_first:.2f} s in the first third, "
            f"{p90_last:.2f} s in the last (> {growth_limit:g} s)"
        )
    return True, "holds"


def next_capacity_n(held: dict[int, bool], max_n: int) -> int | None:
    """The next stream count to try: double from 1 while runs hold, then bisect between
    the largest that held and the smallest that failed. None when the answer is known."""
    if not held:
        return 1
    ok = [n for n, h in held.items() if h]
    bad = [n for n, h in held.items() if not h]
    lo = max(ok, default=0)
    hi = min(bad, default=max_n + 1)
    if lo >= max_n or hi - lo <= 1:
        return None
    if not bad:
        return min(max(1, lo * 2), max_n)
    return (lo + hi) // 2


def capacity_of(held: dict[int, bool]) -> int:
    """The largest N that held below the smallest N that failed (0 if none held)."""
    hi = min((n for n, h in held.items() if not h), default=math.inf)
    return max((n for n, h in held.items() if h and n < hi), default=0)


def cpu_at(samples: Sequence[tuple[float, float]], t: float) -> float:
    """Cumulative CPU seconds at time t, linearly interpolated between (time, cpu) samples."""
    ts = [s[0] for s in samples]
    cs = [s[1] for s in samples]
    return float(np.interp(t, ts, cs))


def per_minute(
    streams: Sequence[tuple[float, float, Sequence[tuple[float, float]]]],
    cpu_samples: Sequence[tuple[float, float]],
    pace: float = 1.0,
    minute_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Latency and server decode cost per minute of session time.

    `streams`: (start, audio duration, [(word end in the stream's audio, final latency)])
    with start in run seconds; `cpu_samples`: (run seconds, server CPU seconds). Words are
    bucketed by where they end in their stream's session (audio seconds / pace); CPU by
    run time, divided by the audio seconds the streams sent in that minute of run time."""
    if not streams:
        return []
    end = max(start + dur / pace for start, dur, _ in streams)
    rows: list[dict[str, Any]] = []
    for m in range(math.ceil(end / minute_s - 1e-9)):
        a, b = m * minute_s, (m + 1) * minute_s
        lats = [lat for _start, _dur, pts in streams for t, lat in pts if a <= t / pace < b]
        audio = sum(
            max(0.0, min(b, start + dur / pace) - max(a, start)) * pace for start, dur, _ in streams
        )
        row: dict[str, Any] = {
            "minute": m + 1,
            "words": len(lats),
            "final_median_s": pct(lats, 50),
            "final_p90_s": pct(lats, 90),
            "audio_s": round(audio, 1),
        }
        if len(cpu_samples) >= 2 and audio > 0:
            # Past the last sample np.interp holds the last value: the final minute also
            # gets the CPU spent finishing the streams after their audio ended.
            cpu = cpu_at(cpu_samples, b) - cpu_at(cpu_samples, a)
            row["server_cpu_s"] = round(cpu, 2)
            row["server_cpu_s_per_audio_s"] = round(cpu / audio, 3)
        rows.append(row)
    return rows


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float | None:
    """Corpus WER with Whisper's English normalizer on both sides, as every benchmark
    reports it (None without references)."""
    if not refs:
        return None
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    n = EnglishTextNormalizer()
    return round(float(jiwer.wer([n(r) for r in refs], [n(h) for h in hyps])), 4)


def add_thread_cpu(
    rows: list[dict[str, Any]],
    samples: Sequence[tuple[float, dict[str, float]]],
    minute_s: float = 60.0,
) -> None:
    """Add each minute's server CPU seconds by thread name to the per-minute rows, so a
    rise in cost can be traced to a thread (model workers, event loop, storage, ...).

    `samples`: (run seconds, {thread name: cumulative CPU seconds})."""
    if len(samples) < 2:
        return
    labels = sorted({k for _, d in samples for k in d})
    series: dict[str, list[tuple[float, float]]] = {k: [] for k in labels}
    for t, d in samples:  # a thread that ended keeps the CPU it used
        for k in labels:
            last = series[k][-1][1] if series[k] else 0.0
            series[k].append((t, max(last, d.get(k, 0.0))))
    for row in rows:
        a, b = (row["minute"] - 1) * minute_s, row["minute"] * minute_s
        cpu = {k: max(0.0, cpu_at(series[k], b) - cpu_at(series[k], a)) for k in labels}
        row["server_cpu_s_by_thread"] = {
            k: round(v, 2) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05
        }


def rolling_median(values: Sequence[float], window: int) -> list[float]:
    """Median of each value with up to `window - 1` values before it."""
    return [float(np.median(values[max(0, i - window + 1) : i + 1])) for i in range(len(values))]


def dbfs_scale(x: npt.NDArray[np.float64], dbfs: float) -> npt.NDArray[np.float32]:
    """Scale a signal to an RMS level in dB relative to full scale (a full-scale sine
    is -3 dBFS RMS; here 0 dBFS RMS = 1.0)."""
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return (x * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def white_noise(seconds: float, dbfs: float = -30.0, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    return dbfs_scale(rng.standard_normal(int(seconds * SAMPLE_RATE)), dbfs)


def pink_noise(seconds: float, dbfs: float = -30.0, seed: int = 1) -> npt.NDArray[np.float32]:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1]
    return dbfs_scale(np.fft.irfft(spectrum / np.sqrt(f), n), dbfs)


@dataclass
class Concatenated:
    audio: npt.NDArray[np.float32]
    reference: str
    offline_text: str
    word_ends: list[tuple[str, float]]
    parts: list[str]


def concatenate(
    clips: Sequence[tuple[str, npt.NDArray[np.float32], str, str, Sequence[tuple[str, float]]]],
    gap_s: float = 0.6,
) -> Concatenated:
    """Clips (id, audio, reference, offline text, offline word ends) played one after
    another with `gap_s` of silence between them: one long stream with its references."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces: list[npt.NDArray[np.float32]] = []
    refs, offs, parts = [], [], []
    ends: list[tuple[str, float]] = []
    t = 0.0
    for cid, audio, ref, off, words in clips:
        if pieces:
            pieces.append(gap)
            t += gap_s
        pieces.append(audio)
        ends += [(w, t + e) for w, e in words]
        t += len(audio) / SAMPLE_RATE
        refs.append(ref)
        offs.append(off)
        parts.append(cid)
    audio_all = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return Concatenated(audio_all, " ".join(refs), " ".join(offs), ends, parts)


def trim_to_segments(segments: Sequence[dict[str, Any]], max_s: float) -> tuple[float, str] | None:
    """Cut a long recording at the end of its last segment ending by `max_s`: (cut time,
    reference text of the kept segments), or None if every segment ends by `max_s`."""
    if not segments or segments[-1]["end_s"] <= max_s:
        return None
    kept = [s for s in segments if s["end_s"] <= max_s] or [segments[0]]
    nxt = segments[len(kept)]["start_s"] if len(kept) < len(segments) else kept[-1]["end_s"]
    cut = (kept[-1]["end_s"] + nxt) / 2
    return cut, " ".join(s["text"] for s in kept)
