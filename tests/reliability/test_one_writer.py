"""The one-writer rule keeps automatic resume working: a transcript's lease ends when its
stream ends (at once) or, when its server dies, when the lease expires."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2_grpc

from service.config import Settings, StorageSettings, build_settings
from service.domain import TranscriptStatus
from service.engine import WhisperEngine
from service.server import start_server
from tests.helpers import Enc, config, decode_16k, dev_clips, pcm16, stream
from tests.reliability.test_adversarial import interrupted_transcript


async def test_a_dropped_stream_frees_its_transcript_and_a_dead_servers_lease_expires(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    speech = pcm16(decode_16k(dev_clips()[0].path)[: 16000 * 3]) + b"\x00" * 48000
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            resume = config(
                encoding=Enc.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                resume_transcript_id=await interrupted_transcript(stub, tstub, speech),
            )
            tid = resume.resume_transcript_id
            # The stream ended (its connection dropped): once the transcript shows it, the
            # lease is gone too (one write), and the page's resume is admitted first time.
            first = await stream(stub, resume, [b"\x00" * 16000])
            assert first.code == grpc.StatusCode.OK, first.details
            assert first.transcript_id == tid
            await server.store.finish_transcript(  # resumable again, as after a second drop
                "local", tid, TranscriptStatus.INTERRUPTED, datetime.now(UTC), 0.0, []
            )

            # A server that dies holds the lease until it expires (here 1.5 s, taken through
            # the store as that server would have): refused before, admitted after.
            dead = await server.store.acquire_lease("local", tid, "dead-server", 1.5)
            refused = await stream(stub, resume, [b"\x00" * 16000])
            assert refused.code == grpc.StatusCode.ABORTED, refused.details
            assert f"transcript {tid} is being written by another stream" in refused.details
            for _ in range(60):  # bounded poll on the condition, as the page retries
                run = await stream(stub, resume, [b"\x00" * 16000])
                if run.code != grpc.StatusCode.ABORTED:
                    break
                await asyncio.sleep(0.1)
            assert run.code == grpc.StatusCode.OK, run.details
            assert run.responses[0][1].session.transcript_id == tid
            assert time.time() >= dead.expires_at
    finally:
        await server.stop(1)


def test_the_lease_duration_is_a_setting() -> None:
    assert Settings().storage.lease_s == 30.0
    assert build_settings(["--lease-seconds", "5"], environ={}).storage.lease_s == 5.0
