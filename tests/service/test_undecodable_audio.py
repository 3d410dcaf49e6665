"""Audio no decoder can turn into sound is refused, for every container alike (issue 17, items
3 and 8): INVALID_ARGUMENT naming the encoding and how far the decoder got, no recording
stored, and one log line instead of a traceback."""

from __future__ import annotations

import asyncio
import logging
import random
import struct

import grpc
import numpy as np
import pytest
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.audio import AudioFormat, AudioInput
from service.server import RunningServer
from tests.helpers import Enc, Stub, chunks, config, encode_container, stream


def junk(n: int, seed: int = 17) -> bytes:
    """Random bytes that cannot be mistaken for any container (fixed seed: same every run)."""
    return random.Random(seed).randbytes(n)


def wav_header(rate: int, channels: int = 1, data_bytes: int = 100_000) -> bytes:
    """A 16-bit PCM WAV header declaring what it is told to, however absurd."""
    block = channels * 2
    fmt = struct.pack(
        "<HHIIHH", 1, channels, rate & 0xFFFFFFFF, rate * block & 0xFFFFFFFF, block & 0xFFFF, 16
    )
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


async def no_recording(ts: transcripts_pb2_grpc.TranscriptServiceAsyncStub, tid: str) -> bool:
    try:
        async for _ in ts.GetRecording(transcripts_pb2.GetRecordingRequest(transcript_id=tid)):
            return False
    except grpc.aio.AioRpcError as err:
        return err.code() == grpc.StatusCode.NOT_FOUND
    return False


@pytest.mark.parametrize("name", ["FLAC", "WAV", "OGG_OPUS", "WEBM_OPUS", "MP3", "UNSPECIFIED"])
async def test_random_bytes_refused_in_every_container(
    server: RunningServer,
    stub: Stub,
    transcripts_stub: transcripts_pb2_grpc.TranscriptServiceAsyncStub,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    encoding = Enc.Value(f"AUDIO_ENCODING_{name}")
    caplog.set_level(logging.INFO)
    run = await stream(stub, config(encoding=encoding), chunks(junk(100_000), 16_000))
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT, (run.code, run.details)
    assert name in run.details
    assert "could not be decoded after" in run.details, run.details
    tid = run.transcript_id
    # The garbage is not kept as the transcript's recording.
    await asyncio.wait_for(server.registry.wait_closed(), 30)
    assert await no_recording(transcripts_stub, tid)
    # One line, not a traceback, says why nothing was stored (item 8).
    mine = [r for r in caplog.records if tid in r.getMessage()]
    assert not [r for r in mine if r.exc_info], [r.getMessage() for r in mine if r.exc_info]
    assert not [r for r in mine if r.levelno >= logging.ERROR]
    assert any("not decodable" in r.getMessage() for r in mine), [r.getMessage() for r in mine]


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (wav_header(1_000_000_000), "1000000000 Hz"),
        (wav_header(16_000, channels=100), "100 channels"),
    ],
    ids=["rate", "channels"],
)
async def test_absurd_wav_header_refused(stub: Stub, header: bytes, needle: str) -> None:
    run = await stream(stub, config(encoding=Enc.AUDIO_ENCODING_WAV), [header + junk(100_000)])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT, (run.code, run.details)
    assert needle in run.details, run.details
    assert "WAV" in run.details


async def _decode(fmt: AudioFormat, data: bytes, size: int = 4000) -> tuple[int, str]:
    """Feed bytes to the decoder as a stream does; (samples out, error message or '')."""
    audio = AudioInput(fmt)

    async def pump() -> None:
        for part in chunks(data, size):
            await audio.feed(part)
        await audio.end()

    task = asyncio.create_task(pump())
    samples = 0
    try:
        async for out in audio:
            samples += len(out)
        error = ""
    except Exception as exc:
        error = str(exc)
    finally:
        audio.close()
        await asyncio.gather(task, return_exceptions=True)
    return samples, error


async def test_endless_junk_refused_before_its_end() -> None:
    """A client that keeps sending junk is told so after a bounded amount, not at its end."""
    fmt = AudioFormat("flac", label="FLAC")
    audio = AudioInput(fmt)
    sent = 0
    failed = ""

    async def pump() -> None:
        nonlocal sent
        for i in range(250):  # 16 MB, far more than the decoder may read without audio
            await audio.feed(junk(64_000, seed=i))
            sent += 64_000
        await audio.end()

    task = asyncio.create_task(pump())
    try:
        async for _ in audio:
            pass
    except Exception as exc:
        failed = str(exc)
    finally:
        audio.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "could not be decoded after" in failed
    assert sent < 4_000_000, sent


async def test_good_audio_still_decodes() -> None:
    audio = np.sin(np.arange(16_000 * 2) / 16_000 * 2 * np.pi * 440).astype(np.float32) * 0.3
    for fmt in ("webm", "ogg", "flac", "wav"):
        samples, error = await _decode(AudioFormat(fmt, label=fmt), encode_container(audio, fmt))
        assert error == "", (fmt, error)
        assert abs(samples - len(audio)) < 2000, (fmt, samples)
