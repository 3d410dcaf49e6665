"""Renames reach a live stream (service/stream_names.py): a speaker renamed with
UpdateTranscript while its transcript is being recorded is sent on that stream as the
whole `speaker_names` map, and so is a rename back to empty (""), through the same
server at once (the registry) and through another server sharing the store (the
stream's re-read). Real model, real speech (the A-B-A mix of test_speakers_api) sent at
real-time pace like a live source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import Stub, TStub, chunks, pcm16
from tests.service.test_speakers import mix
from tests.service.test_speakers_api import ABA, diarized
from tests.service.test_voices_live import rename

Request = streaming_pb2.StreamingTranscribeRequest
CHUNK = 3200  # bytes: 0.1 s of 16 kHz PCM
PACE_S = 0.1


async def renamed_live(
    stub: Stub, renamer: TStub, steps: list[dict[str, str]]
) -> list[tuple[dict[str, str], float, bool]]:
    """Stream the A-B-A mix at real-time pace; 2 s in, apply each rename of `steps` in
    turn (through `renamer`), each once the stream has sent the one before. Returns each
    step's names as the stream sent them, the seconds from the rename's answer to their
    arrival, and whether they arrived while audio was still being sent."""
    payloads = chunks(pcm16(mix(ABA)[0]), CHUNK)
    started = asyncio.Event()
    seen: list[tuple[dict[str, str], float]] = []
    arrived = asyncio.Event()
    done = asyncio.Event()
    sending = True
    tid = ""

    async def requests() -> AsyncIterator[Request]:
        nonlocal sending
        yield Request(config=diarized())
        t0 = time.monotonic()
        for i, p in enumerate(payloads):
            if done.is_set():
                break
            if i == 20:
                started.set()
            delay = t0 + i * PACE_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the sender like a live source
            yield Request(audio_content=p)
        sending = False

    async def renames() -> list[tuple[dict[str, str], float, bool]]:
        out = []
        await started.wait()
        for names in steps:
            arrived.clear()
            await rename(renamer, tid, names)
            at = time.monotonic()
            await arrived.wait()
            got, when = seen[-1]
            out.append((got, when - at, sending))
        done.set()
        return out

    call = stub.StreamingTranscribe(requests())
    task: asyncio.Task[list[tuple[dict[str, str], float, bool]]] | None = None
    async with asyncio.timeout(180):
        async for resp in call:
            if resp.HasField("session"):
                tid = resp.session.transcript_id
                task = asyncio.create_task(renames())
            if resp.speaker_names:
                seen.append((dict(resp.speaker_names), time.monotonic()))
                arrived.set()
    assert await call.code() == grpc.StatusCode.OK
    assert task is not None
    assert task.done(), f"not every rename reached the stream: {seen}"
    return task.result()


async def test_a_rename_on_the_same_server_reaches_the_live_stream(
    server: RunningServer, stub: Stub, transcripts_stub: TStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.deps, "names_poll_s", 3600.0)  # the push alone, no re-read
    steps = [{"S1": "Alice"}, {"S1": ""}, {"S2": "Bob"}, {}]
    got = await renamed_live(stub, transcripts_stub, steps)
    print("push latencies (s):", [round(s, 3) for _, s, _ in got])
    # Back to empty is sent as ""; so is a name dropped from the map (an empty map would
    # be no message at all).
    assert [names for names, _, _ in got] == [
        {"S1": "Alice"},
        {"S1": ""},
        {"S2": "Bob"},
        {"S2": ""},
    ]
    assert all(live for _, _, live in got), got  # while the audio still came


async def test_a_rename_through_another_server_reaches_the_live_stream(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    storage = StorageSettings(backend="sqlite", data_dir=tmp_path)
    a = await start_server(Settings(port=0, storage=storage), engine=engine)
    b = await start_server(Settings(port=0, storage=storage), engine=engine)
    a.deps.names_poll_s = 1.0  # the re-read's cadence (POLL_S, 5 s by default)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch_b,
        ):
            got = await renamed_live(
                streaming_pb2_grpc.TranscriptionServiceStub(ch_a),
                transcripts_pb2_grpc.TranscriptServiceStub(ch_b),
                [{"S1": "Alice", "S2": "Bob"}, {"S1": "", "S2": "Bob"}],
            )
    finally:
        await a.stop(1)
        await b.stop(1)
    print("re-read latencies (s):", [round(s, 3) for _, s, _ in got])
    assert [names for names, _, _ in got] == [{"S1": "Alice", "S2": "Bob"}, {"S1": "", "S2": "Bob"}]
    assert all(live for _, _, live in got), got
