"""VAD and audio decoding, on real speech."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from service.audio import AudioFormat, AudioInput
from service.errors import InvalidArgumentError
from service.vad import FrameVad, shared_vad
from tests.helpers import chunks, decode_16k, dev_clips, encode_container, pcm16


def test_incremental_vad_equals_whole_file_pass() -> None:
    audio = decode_16k(dev_clips()[0].path)
    vad = shared_vad()
    padded = np.pad(audio, (0, (-len(audio)) % 512))
    whole, _ = vad.frame_probabilities(np.concatenate([np.zeros(64, np.float32), padded]))
    stream = FrameVad(vad)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < len(audio):
        n = int(rng.integers(1, 9000))
        parts.append(stream.feed(audio[i : i + n]))
        i += n
    inc = np.concatenate(parts)
    assert len(inc) == len(audio) // 512
    np.testing.assert_allclose(inc, whole[: len(inc)], atol=1e-5)
    assert (inc > 0.5).mean() > 0.5  # it is speech


async def _decode_all(fmt: AudioFormat, payloads: list[bytes]) -> np.ndarray:
    inp = AudioInput(fmt)

    async def feed() -> None:
        for p in payloads:
            await inp.feed(p)
        await inp.end()

    task = asyncio.create_task(feed())
    out = [s async for s in inp]
    await task
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@pytest.mark.parametrize("container", ["webm", "ogg", "flac", "wav"])
async def test_containers_decode_incrementally_to_the_same_audio(container: str) -> None:
    audio = decode_16k(dev_clips()[3].path)
    data = encode_container(audio, container)
    got = await _decode_all(AudioFormat(container), chunks(data, 977))
    assert abs(len(got) - len(audio)) < 16000 * 0.08  # codec padding only
    n = min(len(got), len(audio))
    if container in ("flac", "wav"):  # lossless: same samples
        np.testing.assert_allclose(got[:n], audio[:n], atol=2e-4)
    else:  # Opus: same signal within codec noise (after its fixed pre-skip alignment)
        corr = max(float(np.corrcoef(got[k:n], audio[: n - k])[0, 1]) for k in range(0, 400, 8))
        assert corr > 0.9


async def test_auto_detects_container() -> None:
    audio = decode_16k(dev_clips()[3].path)
    got = await _decode_all(AudioFormat("auto"), chunks(encode_container(audio, "ogg"), 4000))
    assert abs(len(got) - len(audio)) < 16000 * 0.08


async def test_pcm_resamples_any_rate_and_mixes_channels() -> None:
    audio = decode_16k(dev_clips()[3].path)[:16000]
    quad = np.repeat(pcm16_array(audio)[:, None], 4, axis=1).reshape(-1)
    got = await _decode_all(AudioFormat("pcm", 16000, 4), chunks(quad.astype("<i2").tobytes(), 333))
    assert abs(len(got) - 16000) < 64
    np.testing.assert_allclose(got[:15000], audio[:15000], atol=2e-3)
    pcm8k = pcm16(audio[::2])
    got8 = await _decode_all(AudioFormat("pcm", 8000, 1), chunks(pcm8k, 100))
    assert abs(len(got8) - 16000) < 64


def pcm16_array(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


async def test_garbage_is_invalid_argument_with_the_encoding_named() -> None:
    with pytest.raises(InvalidArgumentError, match="OGG_OPUS"):
        await _decode_all(AudioFormat("ogg", label="OGG_OPUS"), [b"\x00garbage" * 1000])


async def test_no_bytes_is_no_audio() -> None:
    got = await _decode_all(AudioFormat("webm"), [])
    assert len(got) == 0
