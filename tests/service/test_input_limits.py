"""The reason a stream's input stopped is what the client hears. A message over the size
limit after an odd number of LINEAR16 bytes once answered INVALID_ARGUMENT "stray byte"
instead of RESOURCE_EXHAUSTED, depending on whether the transcriber was already waiting
for audio when the reader stopped (found by tests/reliability/test_request_fuzz.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.audio import AudioFormat, AudioInput
from service.config import LimitSettings
from service.errors import ResourceExhaustedError
from service.stream_input import AudioLimits, InputPump, check_message_size


async def _odd_then_oversized() -> AsyncIterator[bytes]:
    yield b"\x00"  # half a sample: a stray byte if the audio ended here
    check_message_size(2, 65_537, 65_536)  # the servicer's check on the next message
    yield b""  # never reached


async def test_a_refused_message_is_reported_not_the_stray_byte_before_it() -> None:
    audio = AudioInput(AudioFormat("pcm", sample_rate=16000, channels=1, label="LINEAR16"))
    recorded: list[bytes] = []

    async def record(data: bytes) -> None:
        recorded.append(data)

    pump = InputPump(
        _odd_then_oversized(),
        audio,
        record,
        idle_s=30,
        draining=asyncio.Event(),
        transcript_id="t",
        limits=AudioLimits(LimitSettings(), live=False),
    )
    await pump.run()  # the reader ends first: the worst case of the race
    assert isinstance(pump.error, ResourceExhaustedError)
    with pytest.raises(ResourceExhaustedError, match="over this server's limit"):
        async for _ in audio:
            pass
    assert recorded == [b"\x00"]
