"""Refinement and uploads through the real gRPC API (in-process server, real model).

A stream's transcript is refined after the stream ends: same segment indexes and
times, the text of a whole-recording beam-5 decode, the state DONE. An upload becomes
a stored, searchable transcript the same way. Jobs that cannot succeed end FAILED with
a reason, and a job left PENDING by a stopped server is picked up by the next one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import RefineSettings, Settings, StorageSettings
from service.domain import Refinement, RefinementState
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import Enc, TStub, chunks, config, dev_clips, normalize, stream, wer

pb = transcripts_pb2
DONE = (pb.REFINEMENT_STATE_DONE, pb.REFINEMENT_STATE_FAILED)


async def _server(
    engine: WhisperEngine, data: Path, refine: RefineSettings | None = None
) -> RunningServer:
    settings = Settings(
        port=0, storage=StorageSettings(data_dir=data), refine=refine or RefineSettings()
    )
    return await start_server(settings, engine=engine, refine_streams=True)


async def _refined(stub: TStub, tid: str, timeout_s: float = 240) -> transcripts_pb2.Transcript:
    """The transcript once its refinement is DONE or FAILED (bounded poll)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        t = (await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))).transcript
        if t.refinement_state in DONE:
            return t
        assert asyncio.get_running_loop().time() < deadline, f"still {t.refinement_state}"
        await asyncio.sleep(0.25)


async def _upload(stub: TStub, data: bytes, **cfg: object) -> transcripts_pb2.Transcript:
    async def requests() -> AsyncIterator[pb.UploadRecordingRequest]:
        yield pb.UploadRecordingRequest(config=pb.UploadConfig(**cfg))  # type: ignore[arg-type]
        for c in chunks(data, 64 * 1024):
            yield pb.UploadRecordingRequest(audio_content=c)

    return (await stub.UploadRecording(requests())).transcript


async def test_a_stream_is_refined_with_its_segments_kept(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await _server(engine, tmp_path)
    clip = dev_clips()[1]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            run = await stream(
                streaming_pb2_grpc.TranscriptionServiceStub(ch),
                config(encoding=Enc.AUDIO_ENCODING_FLAC),
                chunks(clip.path.read_bytes(), 16000),
            )
            assert run.code == grpc.StatusCode.OK
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            live = (
                await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=run.transcript_id))
            ).transcript
            refined = await _refined(stub, run.transcript_id)
    finally:
        await server.stop(1.0)
    assert refined.refinement_state == pb.REFINEMENT_STATE_DONE, refined.refinement_detail
    assert refined.refinement_progress == pytest.approx(1.0)
    # indexes and times are the live ones; only words and text may change
    assert [(s.index, s.start_offset, s.end_offset) for s in refined.segments] == [
        (s.index, s.start_offset, s.end_offset) for s in live.segments
    ]
    text = " ".join(s.text for s in refined.segments)
    assert wer([clip.text], [text]) <= 0.15, normalize(text)


async def test_an_upload_becomes_a_refined_searchable_transcript(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await _server(engine, tmp_path)
    clip = dev_clips()[2]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            stored = await _upload(stub, clip.path.read_bytes(), title="board call", tags=["q3"])
            assert stored.refinement_state in (
                pb.REFINEMENT_STATE_PENDING,
                pb.REFINEMENT_STATE_RUNNING,
            )
            assert stored.title == "board call" and list(stored.tags) == ["q3"]
            assert stored.duration.seconds >= int(clip.duration_s) - 1
            done = await _refined(stub, stored.id)
            text = " ".join(s.text for s in done.segments)
            word = max(normalize(clip.text).split(), key=len)
            hits = await stub.SearchTranscripts(pb.SearchTranscriptsRequest(query=word))
    finally:
        await server.stop(1.0)
    assert done.refinement_state == pb.REFINEMENT_STATE_DONE
    assert done.status == pb.TRANSCRIPT_STATUS_COMPLETE and done.keywords
    assert wer([clip.text], [text]) <= 0.15, normalize(text)
    assert any(h.transcript_id == stored.id for h in hits.hits)


async def test_undecodable_or_empty_uploads_are_refused_and_leave_nothing(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await _server(engine, tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as garbage:
                await _upload(stub, bytes(range(256)) * 400, encoding=Enc.AUDIO_ENCODING_FLAC)
            with pytest.raises(grpc.aio.AioRpcError) as empty:
                await _upload(stub, b"")
            listed = await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=10))
    finally:
        await server.stop(1.0)
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not be decoded" in (garbage.value.details() or "")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(listed.transcripts) == []


async def test_a_recording_over_the_limit_fails_with_the_reason(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    server = await _server(engine, tmp_path, RefineSettings(max_s=2.0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            stored = await _upload(stub, dev_clips()[0].path.read_bytes())
            done = await _refined(stub, stored.id)
    finally:
        await server.stop(1.0)
    assert done.refinement_state == pb.REFINEMENT_STATE_FAILED
    assert "limit" in done.refinement_detail


async def test_a_job_left_pending_is_picked_up_after_a_restart(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    clip = dev_clips()[3]
    first = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )  # streams not refined: the job is queued by hand, as a server that died would leave it
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as ch:
            run = await stream(
                streaming_pb2_grpc.TranscriptionServiceStub(ch),
                config(encoding=Enc.AUDIO_ENCODING_FLAC),
                chunks(clip.path.read_bytes(), 16000),
            )
        owner = "local"
        meta = await first.store.get_transcript(owner, run.transcript_id)
        await first.store.set_refinement(owner, meta.id, Refinement(RefinementState.PENDING))
    finally:
        await first.stop(1.0)
    second = await _server(engine, tmp_path, dataclasses.replace(RefineSettings(), poll_s=0.2))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as ch:
            done = await _refined(transcripts_pb2_grpc.TranscriptServiceStub(ch), meta.id)
    finally:
        await second.stop(1.0)
    assert done.refinement_state == pb.REFINEMENT_STATE_DONE
