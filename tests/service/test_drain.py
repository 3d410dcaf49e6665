"""Graceful shutdown: streams finalize what they heard, end UNAVAILABLE, resume elsewhere."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from service.storage.lease import RELEASE_S
from tests.helpers import (
    Enc,
    StreamRun,
    assert_seen_finals_stored,
    chunks,
    config,
    decode_16k,
    dev_clips,
    pcm16,
    stream,
    wer,
)


async def test_stop_lets_active_streams_finalize(engine: WhisperEngine, tmp_path: Path) -> None:
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    clip = dev_clips()[0]
    audio = decode_16k(clip.path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
            # Real-time pace: the stream is still sending when the server is asked to stop.
            first_final = asyncio.Event()
            final_words = 0

            def seen(resp: streaming_pb2.StreamingTranscribeResponse) -> None:
                nonlocal final_words
                for r in resp.results:
                    if r.is_final:
                        final_words += len(r.alternatives[0].transcript.split())
                if final_words >= 12:
                    first_final.set()

            task = asyncio.create_task(
                stream(stub, cfg, chunks(pcm16(audio), 3200), pace_s=0.1, on_response=seen)
            )
            await first_final.wait()  # mid-clip: a dozen words final, more to come
            await running.stop(grace=20.0)
            run = await task
    finally:
        await running.stop(0)
    # Every final was sent before the status; the status tells the client how to continue.
    assert run.code == grpc.StatusCode.UNAVAILABLE, run.details
    tid = run.transcript_id
    assert f"resume_transcript_id={tid}" in run.details
    heard = run.final_text.split()
    # Roughly the first half of the clip was heard and every word of it made final.
    assert 12 <= len(heard) < len(clip.text.split())
    ref_prefix = " ".join(clip.text.split()[: len(heard)])
    assert wer([ref_prefix], [run.final_text]) < 0.25

    # Another instance on the same storage continues the same transcript.
    other = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            got = await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
            assert got.transcript.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED
            stored = [s.text for s in got.transcript.segments]
            assert " ".join(stored) == run.final_text  # every final it was sent is stored
            sent_s = got.transcript.duration.seconds + got.transcript.duration.nanos / 1e9
            rest = audio[int(sent_s * 16000) :]
            cfg = config(
                encoding=Enc.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                resume_transcript_id=tid,
            )
            resumed = await stream(stub, cfg, chunks(pcm16(rest), 3200))
            assert resumed.code == grpc.StatusCode.OK, resumed.details
            assert resumed.transcript_id == tid
            got = await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
    finally:
        await other.stop(0)
    assert got.transcript.status == transcripts_pb2.TRANSCRIPT_STATUS_COMPLETE
    whole = " ".join(s.text for s in got.transcript.segments)
    assert wer([clip.text], [whole]) < 0.2


def _storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StorageSettings:
    """SQLite in a data directory two servers share, or one DynamoDB Local table set."""
    if backend == "sqlite":
        return StorageSettings(data_dir=tmp_path)
    ddb = request.getfixturevalue("dynamodb_local")
    return StorageSettings(
        backend="dynamodb",
        data_dir=tmp_path,
        dynamodb_endpoint=ddb.endpoint,
        dynamodb_create_tables=True,
        dynamodb_table_prefix=f"drain{uuid.uuid4().hex[:8]}",
    )


async def _stop_mid_stream(running: RunningServer, grace: float) -> StreamRun:
    """A real-time stream still sending and decoding when the server stops with `grace`."""
    audio = decode_16k(dev_clips()[0].path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
        cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
        first_final = asyncio.Event()

        def seen(resp: streaming_pb2.StreamingTranscribeResponse) -> None:
            if any(r.is_final for r in resp.results):
                first_final.set()

        task = asyncio.create_task(
            stream(stub, cfg, chunks(pcm16(audio), 3200), pace_s=0.1, on_response=seen)
        )
        await first_final.wait()
        await running.stop(grace=grace)
        # stop() returns once every stream's last results are stored and its lease is
        # released: a server process exits right here.
        assert running.registry.active == 0
        assert running.registry.closing == 0
        return await task


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
async def test_streams_cancelled_at_the_end_of_the_grace_release_their_leases(
    backend: str, engine: WhisperEngine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A stream still sending when the grace runs out is cancelled: what it showed as final
    is stored and its transcript resumes on another server at once, not ABORTED until the
    lease (30 s here) expires."""
    storage = _storage(backend, tmp_path, request)
    running = await start_server(Settings(port=0, storage=storage), engine=engine)
    try:
        # No grace: the stream is cancelled mid-decode, as when the grace runs out.
        run = await _stop_mid_stream(running, grace=0.0)
    finally:
        await running.stop(0)
    assert run.code == grpc.StatusCode.UNAVAILABLE, run.details
    tid = run.transcript_id

    other = await start_server(Settings(port=0, storage=storage), engine=engine)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as ch:
            tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            got = await tstub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
            assert got.transcript.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED
            stored = {s.index: s.text for s in got.transcript.segments}
            assert run.segments
            assert_seen_finals_stored(run.segments, stored)
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            cfg = config(
                encoding=Enc.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=16000,
                resume_transcript_id=tid,
            )
            audio = decode_16k(dev_clips()[0].path)
            resumed = await stream(stub, cfg, chunks(pcm16(audio[:32000]), 3200))
    finally:
        await other.stop(0)
    assert resumed.code == grpc.StatusCode.OK, resumed.details  # not ABORTED: lease released
    assert resumed.transcript_id == tid


async def test_a_hung_store_cannot_hold_up_the_stop(engine: WhisperEngine, tmp_path: Path) -> None:
    """Storage that never answers once the grace ran out: stop() still returns, within the
    streams' close bound and the lease release's, so the process exits before Kubernetes'
    termination grace and the lease simply expires."""
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    running.deps.close_s = 1.0
    hung = asyncio.Event()  # never set

    async def never(*args: Any, **kwargs: Any) -> None:
        await hung.wait()

    real_stop = running.server.stop
    hung_names = ("append_segments", "set_recording", "finish_transcript", "release_lease")
    stopped_calls_at = 0.0

    async def stop_then_hang(grace: float | None) -> None:
        nonlocal stopped_calls_at
        await real_stop(grace)
        stopped_calls_at = time.monotonic()
        for name in hung_names:
            setattr(running.store, name, never)

    running.server.stop = stop_then_hang  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(_stop_mid_stream(running, grace=0.0), 120)
    finally:
        for name in hung_names:  # the store's own methods again
            running.store.__dict__.pop(name, None)
    # 1 s for the last writes, RELEASE_S for the lease; a margin for a busy machine.
    assert time.monotonic() - stopped_calls_at < 1.0 + RELEASE_S + 10


async def test_a_file_cut_inside_a_frame_by_the_stop_ends_unavailable_to_resume(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """A FLAC stream whose bytes so far end inside a frame when the server stops: the stop
    cut it, not the client, so it ends UNAVAILABLE with the id to resume (it was
    INVALID_ARGUMENT "could not be decoded", which tells a client not to resume)."""
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    data = dev_clips()[0].path.read_bytes()
    half = data[: len(data) // 2 + 1]  # a frame boundary would be a coincidence
    final_seen = asyncio.Event()
    hold = asyncio.Event()  # never set: the client has more to send

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=config(encoding=Enc.AUDIO_ENCODING_FLAC)
        )
        for piece in chunks(half, 3001):
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=piece)
        await hold.wait()

    code = details = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            call = streaming_pb2_grpc.TranscriptionServiceStub(ch).StreamingTranscribe(requests())

            async def read() -> None:
                nonlocal code, details
                try:
                    async for resp in call:
                        if any(r.is_final for r in resp.results):
                            final_seen.set()
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as err:
                    code, details = err.code(), err.details()
                final_seen.set()

            reader = asyncio.create_task(read())
            await final_seen.wait()  # the half is being transcribed
            await running.stop(grace=20.0)
            await reader
    finally:
        await running.stop(0)
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert "resume_transcript_id=" in (details or "")
