"""An upload whose client stops sending is ended by the idle timeout, leaving nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.config import RefineSettings, Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server

pb = transcripts_pb2


@pytest.mark.parametrize("sent", [0, 1], ids=["before-audio", "mid-file"])
async def test_a_stalled_upload_ends_deadline_exceeded_and_leaves_nothing(
    engine: WhisperEngine, tmp_path: Path, sent: int
) -> None:
    """A client sends its config (and `sent` chunks of a file), then nothing, without
    closing: the upload ends DEADLINE_EXCEEDED saying so, and its transcript and partial
    recording are deleted. It held them (a LIVE transcript, an open file, a call) for ever."""
    settings = Settings(
        port=0,
        storage=StorageSettings(data_dir=tmp_path),
        refine=RefineSettings(upload_idle_timeout_s=0.5),
    )
    server = await start_server(settings, engine=engine)
    created = asyncio.Event()
    create = server.store.create_transcript

    async def creating(*args: object) -> None:
        await create(*args)  # type: ignore[arg-type]
        created.set()

    setattr(server.store, "create_transcript", creating)  # noqa: B010
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            stalled = asyncio.Event()

            async def requests() -> AsyncIterator[pb.UploadRecordingRequest]:
                yield pb.UploadRecordingRequest(config=pb.UploadConfig(title="stalled"))
                for _ in range(sent):
                    yield pb.UploadRecordingRequest(audio_content=b"RIFF" + bytes(4000))
                await stalled.wait()  # never set: the client hangs without closing

            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(60):
                    await stub.UploadRecording(requests())
            assert created.is_set(), "the upload's transcript was created first"
            listed = await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=10))
    finally:
        await server.stop(1.0)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value.details()
    assert "no upload data received for 0.5 s" in str(err.value.details())
    assert not listed.transcripts, [(t.id, t.status) for t in listed.transcripts]
    assert not any((tmp_path / "recordings").rglob("*.*")), "no partial recording is kept"
