"""Bad input on a stream gets INVALID_ARGUMENT with an actionable message; others go on."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from transcribe.v1 import streaming_pb2

from tests.helpers import (
    Enc,
    Stub,
    chunks,
    config,
    decode_16k,
    dev_clips,
    encode_container,
    pcm16,
    stream,
)

Req = streaming_pb2.StreamingTranscribeRequest


async def test_first_message_must_be_config(stub: Stub) -> None:
    run = await stream(stub, None, [b"\x00\x01" * 100])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message must carry `config`" in run.details


async def test_config_twice(stub: Stub) -> None:
    cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
    run = await stream(stub, cfg, [], extra_first=[Req(config=cfg)])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "only the first message may" in run.details


async def test_empty_stream(stub: Stub) -> None:
    run = await stream(stub, None, [])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "before its config" in run.details


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        (config(encoding=Enc.AUDIO_ENCODING_LINEAR16), "sample_rate_hertz is 0"),
        (config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=1000000), "between 8000"),
        (
            config(
                encoding=Enc.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                audio_channel_count=99,
            ),
            "audio_channel_count",
        ),
        (config(encoding=42), "not supported"),
        (config(encoding=Enc.AUDIO_ENCODING_FLAC, language_code="de"), "language_code"),
        (config(encoding=Enc.AUDIO_ENCODING_FLAC, title="x" * 500), "config.title"),
    ],
)
async def test_bad_config_values(
    stub: Stub, cfg: streaming_pb2.StreamingTranscriptionConfig, needle: str
) -> None:
    run = await stream(stub, cfg, [b"\x00" * 320])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT, run.details
    assert needle in run.details


async def test_undecodable_audio_while_another_stream_goes_on(stub: Stub) -> None:
    """Garbage declared as WEBM_OPUS fails alone; a good stream beside it completes."""
    clip = dev_clips()[3]
    audio = decode_16k(clip.path)
    good = stream(
        stub,
        config(encoding=Enc.AUDIO_ENCODING_WEBM_OPUS),
        chunks(encode_container(audio, "webm"), 4000),
    )
    bad = stream(stub, config(encoding=Enc.AUDIO_ENCODING_WEBM_OPUS), [b"this is not webm" * 500])
    truncated_flac = encode_container(audio, "flac")[:3000] + b"\xff" * 5000
    bad2 = stream(stub, config(encoding=Enc.AUDIO_ENCODING_FLAC), chunks(truncated_flac, 1000))
    good_run, bad_run, bad2_run = await asyncio.gather(good, bad, bad2)
    assert bad_run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "WEBM_OPUS" in bad_run.details
    assert good_run.code == grpc.StatusCode.OK, good_run.details
    assert good_run.final_text
    # A FLAC file cut off and followed by junk either decodes what it can or is rejected clearly.
    assert bad2_run.code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    if bad2_run.code == grpc.StatusCode.INVALID_ARGUMENT:
        assert "FLAC" in bad2_run.details


async def test_odd_pcm_byte_count(stub: Stub) -> None:
    cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
    run = await stream(stub, cfg, [pcm16(decode_16k(dev_clips()[3].path))[:-1]])
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "stray byte" in run.details
