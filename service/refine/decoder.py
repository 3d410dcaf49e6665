"""A whole recording decoded at the lowest CPU priority.

Live streams share the machine's cores with refinement, and their latency has a bound
refinement must never push them past. Linux gives each thread its own nice value and a
new thread inherits its creator's: the refinement model is built on a thread at nice 19,
so CTranslate2's worker and compute threads start at nice 19 too, and the kernel's
scheduler gives them about 1.5 % of a core that a nice-0 live decode wants (weight 15
against 1024). When no live stream is decoding, refinement gets the whole machine.
The model is a second instance of the same weights (tiny.en: ~75 MB more resident), one
per model that refines, loaded when the first such job comes: a transcript is refined by
the model that made it, in its language (base on German, never tiny.en), or with
`--refine-model best` (the default) by a more accurate loaded model that knows its
language (refine/choice.py: base refines tiny.en's English when both are loaded).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.engine import language_code
from service.models import CATALOGUE, ModelChoiceError, ModelSpec, resolve
from service.refine.choice import refining_model
from service.threads import lower_priority

logger = logging.getLogger(__name__)

BEAM_SIZE = 5
RECHECK_WINDOWS = 4
"""A language a stream detected is checked on the recording's speech (silence cut out)
in up to this many 30 s windows (2 minutes of speech: one encoder pass each, ~0.6 CPU-s
for base; the beam-5 decode of the whole recording costs far more)."""
RECHECK_PROBABILITY = 0.6
RECHECK_MARGIN = 0.3
"""Another language replaces the stream's only when the windows' mean probability of it
is at least RECHECK_PROBABILITY and exceeds the stream's language's by RECHECK_MARGIN: a
stream that fixed its language on clear evidence keeps it on a close call."""


@dataclass(frozen=True)
class Decoded:
    """A whole recording's words and the language they are in (detected when not given)."""

    words: list[Word]
    language: str


class LowPriorityDecoder:
    """One nice-19 thread that owns a Whisper model and decodes whole recordings."""

    def __init__(
        self, model: ModelSpec | str, compute_type: str = "int8", cpu_threads: int = 2
    ) -> None:
        """`model`: a catalogue spec, or a model directory."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="refine", initializer=lower_priority
        )
        self._model: Any = None
        self.spec = resolve(model) if isinstance(model, str) else model
        self._args = (compute_type, cpu_threads)

    def _load(self) -> Any:
        if self._model is None:
            compute_type, threads = self._args
            self._model = self.spec.load("cpu", compute_type, threads)
        return self._model

    def _recheck(self, model: Any, audio: npt.NDArray[np.float32], language: str) -> str:
        """The language to refine in: `language` (a stream's detection), or another the
        whole recording's speech clearly is (see RECHECK_PROBABILITY)."""
        probs = language_probabilities(model, audio)
        if not probs:
            return language
        best = max(probs, key=probs.__getitem__)
        if (
            best != language
            and probs[best] >= RECHECK_PROBABILITY
            and probs[best] - probs.get(language, 0.0) >= RECHECK_MARGIN
        ):
            logger.info(
                "refinement: the recording is %s (%.2f), not %s (%.2f)",
                best, probs[best], language, probs.get(language, 0.0),
            )  # fmt: skip
            return best
        return language

    def _decode(
        self,
        audio: npt.NDArray[np.float32],
        language: str,
        progress: Callable[[float], None] | None,
        recheck: bool = False,
    ) -> Decoded:
        model = self._load()
        if recheck and language and model.model.is_multilingual:
            language = self._recheck(model, audio, language)
        duration = max(len(audio) / SAMPLE_RATE, 1e-6)
        segments, info = model.transcribe(
            audio,
            language=language or None,
            beam_size=BEAM_SIZE,
            word_timestamps=True,
            condition_on_previous_text=True,
        )
        words: list[Word] = []
        for seg in segments:
            for w in seg.words or []:
                text = w.word.strip()
                if text:
                    words.append(Word(text, float(w.start), float(w.end), float(w.probability)))
            if progress is not None:
                progress(min(1.0, float(seg.end) / duration))
        return Decoded(words, str(info.language))

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        language: str = "en",
        progress: Callable[[float], None] | None = None,
        recheck: bool = False,
    ) -> Future[Decoded]:
        """Decode 16 kHz mono audio on the low-priority thread, in `language` ("": detect
        it; with `recheck`, detected again on the whole recording and replaced when another
        is clearly more likely); `progress` gets 0..1."""
        return self._executor.submit(self._decode, audio, language, progress, recheck)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def language_probabilities(model: Any, audio: npt.NDArray[np.float32]) -> dict[str, float]:
    """Each language's probability on the recording's speech: the detector's on each of
    up to RECHECK_WINDOWS 30 s windows of the speech (Silero VAD cuts the silence out),
    averaged weighted by the speech each holds ({} without speech)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.vad import collect_chunks, get_speech_timestamps

    chunks = get_speech_timestamps(audio)
    if not chunks:
        return {}
    speech = np.concatenate(collect_chunks(audio, chunks)[0])
    window = model.feature_extractor.n_samples  # 30 s
    sums: dict[str, float] = {}
    total = 0.0
    for start in range(0, min(len(speech), RECHECK_WINDOWS * window), window):
        piece = speech[start : start + window]
        weight = len(piece) / SAMPLE_RATE
        if weight < 1.0:  # a last second of speech says little
            break
        features = pad_or_trim(model.feature_extractor(piece))
        ranked = model.model.detect_language(model.encode(features))[0]
        for token, prob in ranked:
            code = language_code(token)
            sums[code] = sums.get(code, 0.0) + weight * float(prob)
        total += weight
    return {code: p / total for code, p in sums.items()} if total else {}


class RefineDecoders:
    """A low-priority decoder per model name, each created (and its model loaded) when
    the first transcript of that model is refined."""

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        compute_type: str = "int8",
        cpu_threads: int = 2,
        choose: str = "same",
        languages: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._specs = {s.name: s for s in specs}
        self._args = (compute_type, cpu_threads)
        self._decoders: dict[str, LowPriorityDecoder] = {}
        self.choose = choose
        """"best" or "same": which loaded model refines a transcript (refine/choice.py)."""
        self.languages = dict(languages or {})
        """Each loaded model's languages (the server's model pool): what "best" may pick."""

    def model_for(self, made_with: str, language: str) -> str:
        """The model that refines a transcript made with `made_with` in `language`."""
        return refining_model(made_with, language, self.languages, self.choose)

    def get(self, model: str) -> LowPriorityDecoder:
        """The decoder of the model called `model`: one this server loaded, or a catalogue
        model that is installed; ModelChoiceError otherwise."""
        decoder = self._decoders.get(model)
        if decoder is None:
            spec = self._specs.get(model)
            if spec is None:
                if model not in CATALOGUE:
                    raise ModelChoiceError(f"model {model!r} is not loaded on this server")
                spec = resolve(model)
            decoder = self._decoders[model] = LowPriorityDecoder(spec, *self._args)
        return decoder

    def close(self) -> None:
        for decoder in self._decoders.values():
            decoder.close()
