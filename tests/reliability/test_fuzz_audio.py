"""Property-based fuzzing of the audio decoders: any bytes give audio or a clear error."""

from __future__ import annotations

import asyncio
from functools import cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.audio import AudioFormat, AudioInput
from service.errors import InvalidArgumentError
from tests.helpers import decode_16k, dev_clips, encode_container


@cache
def seeds() -> dict[str, bytes]:
    audio = decode_16k(dev_clips()[3].path)[:16000]
    return {fmt: encode_container(audio, fmt) for fmt in ("webm", "ogg", "flac", "wav")}


async def decode(fmt: AudioFormat, payloads: list[bytes]) -> None:
    inp = AudioInput(fmt)

    async def feed() -> None:
        for p in payloads:
            await inp.feed(p)
        await inp.end()

    task = asyncio.create_task(feed())
    try:
        async for samples in inp:
            assert samples.dtype == np.float32 and np.isfinite(samples).all()
    except InvalidArgumentError as exc:
        assert str(exc)  # a message a person can act on
    finally:
        inp.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    fmt = draw(st.sampled_from(["webm", "ogg", "flac", "wav"]))
    data = bytearray(seeds()[fmt])
    cut = draw(st.integers(0, len(data)))
    data = data[:cut]
    for _ in range(draw(st.integers(0, 8))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    data += draw(st.binary(max_size=300))
    size = draw(st.integers(1, 5000))
    declared = draw(st.sampled_from([fmt, "webm", "ogg", "flac", "wav", "mp3", "auto"]))
    return declared, [bytes(data[i : i + size]) for i in range(0, len(data), size)]


def test_containers_never_crash_or_hang() -> None:
    tried: list[str] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=mangled())
    def container(case: tuple[str, list[bytes]]) -> None:
        declared, payloads = case
        tried.append(declared)
        asyncio.run(asyncio.wait_for(decode(AudioFormat(declared, label=declared), payloads), 30))

    container()
    print(f"fuzzed container inputs: {len(tried)}")
    assert len(tried) >= 120  # hypothesis ran the property on this many inputs


def test_pcm_any_bytes_rates_and_channels() -> None:
    tried: list[int] = []

    @settings(max_examples=100, deadline=None)
    @given(
        data=st.binary(max_size=20000),
        rate=st.integers(8000, 48000),
        channels=st.integers(1, 8),
        size=st.integers(1, 4000),
    )
    def pcm(data: bytes, rate: int, channels: int, size: int) -> None:
        tried.append(len(data))
        payloads = [data[i : i + size] for i in range(0, len(data), size)]
        asyncio.run(asyncio.wait_for(decode(AudioFormat("pcm", rate, channels), payloads), 30))

    pcm()
    print(f"fuzzed LINEAR16 inputs: {len(tried)}")
    assert len(tried) >= 80


# Found by the container property in a fresh-clone CI run: a WAV header whose
# sample format (0 bits per sample) names no codec FFmpeg can open, fed a byte
# at a time. It once crashed on PyAV's missing codec context (AttributeError).
NO_CODEC_WAV = (
    b"RIFFF}\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00"
    b"\x02\x00\x00\x00LIST\x1a\x00\x00\x00INFOISFT\x0e\x00\x00\x00Lavf62.12.102\x00"
    b"data\x00}\x00\x00"
)


def test_wav_whose_codec_cannot_open_is_refused_clearly() -> None:
    async def run() -> str:
        inp = AudioInput(AudioFormat("wav", label="wav"))
        for i in range(len(NO_CODEC_WAV)):
            await inp.feed(NO_CODEC_WAV[i : i + 1])
        await inp.end()
        try:
            async for _ in inp:
                pass
        except InvalidArgumentError as exc:
            return str(exc)
        finally:
            inp.close()
        return "decoded without error"

    message = asyncio.run(asyncio.wait_for(run(), 30))
    assert "codec" in message, message
