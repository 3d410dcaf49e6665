"""A whole recording decoded at the lowest CPU priority.

Live streams share the machine's cores with refinement, and their latency has a bound
refinement must never push them past. Linux gives each thread its own nice value and a
new thread inherits its creator's: the refinement model is built on a thread at nice 19,
so CTranslate2's worker and compute threads start at nice 19 too, and the kernel's
scheduler gives them about 1.5 % of a core that a nice-0 live decode wants (weight 15
against 1024). When no live stream is decoding, refinement gets the whole machine.
The model is a second instance of the same weights (tiny.en: ~75 MB more resident).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.domain import Word

logger = logging.getLogger(__name__)

NICE = 19
BEAM_SIZE = 5


def lower_priority() -> None:
    """Give the calling thread (and the threads it will start) the lowest CPU priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError) as exc:  # not Linux, or not permitted
        logger.warning("refinement runs at normal priority: %s", exc)


class LowPriorityDecoder:
    """One nice-19 thread that owns a Whisper model and decodes whole recordings."""

    def __init__(self, model_path: str, compute_type: str = "int8", cpu_threads: int = 2) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="refine", initializer=lower_priority
        )
        self._model: Any = None
        self._args = (model_path, compute_type, cpu_threads)

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            path, compute_type, threads = self._args
            self._model = WhisperModel(
                path, device="cpu", compute_type=compute_type, cpu_threads=threads,
                local_files_only=True,
            )  # fmt: skip
        return self._model

    def _decode(
        self,
        audio: npt.NDArray[np.float32],
        language: str,
        progress: Callable[[float], None] | None,
    ) -> list[Word]:
        model = self._load()
        duration = max(len(audio) / SAMPLE_RATE, 1e-6)
        segments, _ = model.transcribe(
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
        return words

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        language: str = "en",
        progress: Callable[[float], None] | None = None,
    ) -> Future[list[Word]]:
        """Decode 16 kHz mono audio on the low-priority thread; `progress` gets 0..1."""
        return self._executor.submit(self._decode, audio, language, progress)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
