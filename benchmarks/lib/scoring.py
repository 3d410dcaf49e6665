"""Scoring in any language: normalisation, WER or CER, the detected language of a stream,
and per-language figures. Pure: no model, no server, no I/O.

English is scored as every other benchmark scores it (Whisper's English normalizer, WER).
Other languages get a plain normaliser, because the English one rewrites English spellings
and numbers: NFKC (composed accents, full-width forms folded), case folded, every Unicode
punctuation character a word break (so "l'accident" and "dix-sept" split the same way on
both sides), accents kept (an accent is part of the word in de/fr/es/pt). Languages written
without spaces between words (ja, zh, ...) are scored by characters, spaces removed: CER.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Written without spaces between words: scored and timed by characters.
CHARACTER_LANGUAGES = frozenset({"ja", "zh", "yue", "th", "lo", "km", "my", "bo"})
# Detection is judged on utterances at least this long (issue 20's target).
DETECTION_MIN_S = 5.0


def primary(code: str) -> str:
    """The primary subtag of a BCP-47 code, lower case: "pt-BR" -> "pt", "" -> ""."""
    return code.replace("_", "-").split("-")[0].lower()


def by_characters(language: str) -> bool:
    return primary(language) in CHARACTER_LANGUAGES


def is_english(language: str) -> bool:
    return primary(language) in ("", "en")


def normalize(text: str, language: str) -> str:
    """The text as scored for `language` (not English): NFKC, case folded, punctuation
    turned into spaces, whitespace collapsed; for character languages, no spaces at all."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    if by_characters(language):
        return "".join(text.split())
    return " ".join(text.split())


def tokens(text: str, language: str) -> list[str]:
    """Scoring units of `text`: characters for ja/zh and the like, else normalised words."""
    norm = normalize(text, language)
    return list(norm) if by_characters(language) else norm.split()


def tokenizer(language: str) -> Callable[[str], list[str]] | None:
    """What word-latency alignment splits texts with: None (the English default) or tokens."""
    if is_english(language):
        return None
    return lambda text: tokens(text, language)


def metric(language: str) -> str:
    return "CER" if by_characters(language) else "WER"


def error_rate(refs: Sequence[str], hyps: Sequence[str], language: str) -> float | None:
    """Corpus WER (CER for character languages) of `hyps` against `refs` in one language;
    English through Whisper's English normalizer as elsewhere. None without references."""
    if not refs:
        return None
    import jiwer

    if is_english(language):
        from benchmarks.lib.analysis import corpus_wer

        return corpus_wer(refs, hyps)
    r = [normalize(x, language) for x in refs]
    h = [normalize(x, language) for x in hyps]
    if by_characters(language):
        return round(float(jiwer.cer(r, h)), 4)
    return round(float(jiwer.wer(r, h)), 4)


def clip_errors(ref: str, hyp: str, language: str) -> tuple[int, int]:
    """Errors (substitutions + deletions + insertions) of one clip's `hyp` against `ref`,
    and the reference's units (words, or characters for ja/zh), scored as `error_rate`
    scores them: for comparing streaming with offline clip by clip, where a corpus rate
    hides which clip and how many words make the gap."""
    import jiwer

    if is_english(language):
        from whisper_normalizer.english import EnglishTextNormalizer

        n = EnglishTextNormalizer()
        r, h = n(ref), n(hyp)
    else:
        r, h = normalize(ref, language), normalize(hyp, language)
    units = len(r) if by_characters(language) else len(r.split())
    if not units:
        return 0, 0
    out = jiwer.process_characters(r, h) if by_characters(language) else jiwer.process_words(r, h)
    return out.substitutions + out.deletions + out.insertions, units


class _Result(Protocol):
    @property
    def is_final(self) -> bool: ...
    @property
    def language_code(self) -> str: ...


class _Response(Protocol):
    @property
    def results(self) -> Sequence[_Result]: ...


def detected_language(responses: Iterable[tuple[float, _Response]]) -> str:
    """The language a stream reported: that of its first final result (fixed from then
    on), else the last guess an interim result carried, else ""."""
    guess = ""
    for _, resp in responses:
        for r in resp.results:
            if r.is_final and r.language_code:
                return primary(r.language_code)
            if r.language_code:
                guess = primary(r.language_code)
    return guess


@dataclass
class Utterance:
    """One streamed utterance: its language, what was detected, the texts and latencies."""

    id: str
    language: str
    duration_s: float
    reference: str
    streaming: str
    offline: str
    detected: str = ""
    offline_detected: str = ""
    final_latencies: list[float] = field(default_factory=list)
    error: str = ""


def _pct(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """Median and p90 (None without values)."""
    return {"median": _pct(values, 50), "p90": _pct(values, 90)}


def _share(ok: int, n: int) -> float | None:
    return round(ok / n, 4) if n else None


def detection(utts: Sequence[Utterance], min_s: float = 0.0) -> dict[str, Any]:
    """Detected-language accuracy over the utterances of at least `min_s` seconds."""
    kept = [u for u in utts if u.duration_s >= min_s]
    ok = sum(1 for u in kept if u.detected == primary(u.language))
    return {"n": len(kept), "correct": ok, "accuracy": _share(ok, len(kept))}


def language_row(language: str, utts: Sequence[Utterance]) -> dict[str, Any]:
    """Figures of one language: detection, streaming vs offline error, final latency."""
    refs = [u.reference for u in utts]
    streaming = error_rate(refs, [u.streaming for u in utts], language)
    offline = error_rate(refs, [u.offline for u in utts], language)
    lat = [x for u in utts for x in u.final_latencies]
    wrong = Counter(u.detected or "(none)" for u in utts if u.detected != primary(language))
    off_ok = sum(1 for u in utts if u.offline_detected == primary(language))
    return {
        "language": language,
        "utterances": len(utts),
        "audio_seconds": round(sum(u.duration_s for u in utts), 1),
        "detection": detection(utts),
        "detection_5s": detection(utts, DETECTION_MIN_S),
        "detected_instead": dict(wrong.most_common()),
        "offline_detection_accuracy": _share(off_ok, len(utts)),
        "metric": metric(language),
        "streaming": streaming,
        "offline": offline,
        "gap_points": (
            None if streaming is None or offline is None else round(100 * (streaming - offline), 2)
        ),
        "final_latency_s": quantiles(lat),
        "units_timed": len(lat),
        "errors": [f"{u.id}: {u.error}" for u in utts if u.error],
    }


def per_language(utts: Sequence[Utterance]) -> dict[str, Any]:
    """Rows per language (in order of first appearance) and the pooled detection and
    latency over all of them (an error rate pooled over languages would mean nothing)."""
    groups: dict[str, list[Utterance]] = {}
    for u in utts:
        groups.setdefault(u.language, []).append(u)
    lat = [x for u in utts for x in u.final_latencies]
    wrong = Counter(
        f"{u.language}->{u.detected or '(none)'}" for u in utts if u.detected != primary(u.language)
    )
    return {
        "languages": [language_row(lang, g) for lang, g in groups.items()],
        "all": {
            "utterances": len(utts),
            "audio_seconds": round(sum(u.duration_s for u in utts), 1),
            "detection": detection(utts),
            "detection_5s": detection(utts, DETECTION_MIN_S),
            "wrong_detections": dict(wrong.most_common()),
            "final_latency_s": quantiles(lat),
            "units_timed": len(lat),
        },
    }
