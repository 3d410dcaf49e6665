"""Silero voice activity detection, incremental per 32 ms frame.

faster-whisper ships the Silero v6 ONNX model and runs it over a sequence of
512-sample frames, each with the previous 64 samples as context, carrying the
recurrent state (h, c) through the sequence. A stream keeps that state between
calls, so it computes probabilities for new audio only, identical to a
whole-file pass whatever the chunking.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE

FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
Array = npt.NDArray[np.float32]


class SileroVad:
    """Thread-safe wrapper of the Silero ONNX session (one per process)."""

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._model = get_vad_model()

    def frame_probabilities(
        self, audio: npt.NDArray[np.float32], state: tuple[Array, Array] | None = None
    ) -> tuple[npt.NDArray[np.float32], tuple[Array, Array]]:
        """Speech probability of each whole 512-sample frame of `audio`, and the new state.

        `audio` must start with CONTEXT_SAMPLES of context (zeros at stream start)
        followed by a multiple of FRAME_SAMPLES.
        """
        body = audio[CONTEXT_SAMPLES:]
        n = len(body) // FRAME_SAMPLES
        if state is None:
            state = (np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32))
        if n == 0:
            return np.zeros(0, dtype=np.float32), state
        frames = body[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        ctx = np.concatenate(
            [audio[:CONTEXT_SAMPLES][None, :], frames[:-1, -CONTEXT_SAMPLES:]], axis=0
        )
        batch = np.ascontiguousarray(np.concatenate([ctx, frames], axis=1), dtype=np.float32)
        out, h, c = self._model.session.run(None, {"input": batch, "h": state[0], "c": state[1]})
        return np.asarray(out, dtype=np.float32).reshape(-1)[:n], (h, c)


@functools.lru_cache(maxsize=1)
def shared_vad() -> SileroVad:
    """The process-wide VAD (the ONNX session is safe to share between threads)."""
    return SileroVad()


class FrameVad:
    """Per-stream incremental VAD: feed samples, get one probability per frame."""

    def __init__(self, vad: SileroVad) -> None:
        self._vad = vad
        self._pending = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._state: tuple[Array, Array] | None = None

    def feed(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for the whole frames completed by `samples` (blocking; run off-loop)."""
        buf = np.concatenate([self._pending, samples])
        n = (len(buf) - CONTEXT_SAMPLES) // FRAME_SAMPLES
        if n <= 0:
            self._pending = buf
            return np.zeros(0, dtype=np.float32)
        used = CONTEXT_SAMPLES + n * FRAME_SAMPLES
        probs, self._state = self._vad.frame_probabilities(buf[:used], self._state)
        self._pending = buf[used - CONTEXT_SAMPLES :]
        return probs
