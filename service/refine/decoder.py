"""A whole recording decoded at the lowest CPU priority.

Live streams share the machine's cores with refinement, and their latency has a bound
refinement must never push them past. Linux gives each thread its own nice value and a
new thread inherits its creator's: the refinement model is built on a thread at nice 19,
so CTranslate2's worker and compute threads start at nice 19 too, and the kernel's
scheduler gives them about 1.5 % of a core that a nice-0 live decode wants (weight 15
against 1024). When no live stream is decoding, refinement gets the whole machine.
The model is a second instance of the same weights (tiny.en: ~75 MB more resident), one
per model a stored transcript was made with, loaded when the first such job comes: a
transcript is refined by the model that made it, in its language (base on German, never
tiny.en).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.models import CATALOGUE, ModelChoiceError, ModelSpec, resolve

logger = logging.getLogger(__name__)

NICE = 19
BEAM_SIZE = 5


def lower_priority() -> None:
    """Give the calling thread (and the threads it will start) the lowest CPU priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError) as exc:  # not Linux, or not permitted
        logger.warning("refinement runs at normal priority: %s", exc)


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

    def _decode(
        self,
        audio: npt.NDArray[np.float32],
        language: str,
        progress: Callable[[float], None] | None,
    ) -> Decoded:
        model = self._load()
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
    ) -> Future[Decoded]:
        """Decode 16 kHz mono audio on the low-priority thread, in `language` ("": detect
        it); `progress` gets 0..1."""
        return self._executor.submit(self._decode, audio, language, progress)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class RefineDecoders:
    """A low-priority decoder per model name, each created (and its model loaded) when
    the first transcript of that model is refined."""

    def __init__(
        self, specs: Sequence[ModelSpec], compute_type: str = "int8", cpu_threads: int = 2
    ) -> None:
        self._specs = {s.name: s for s in specs}
        self._args = (compute_type, cpu_threads)
        self._decoders: dict[str, LowPriorityDecoder] = {}

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
