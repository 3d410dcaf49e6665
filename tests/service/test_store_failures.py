"""Storage failing while a stream sets up its transcript: nothing is left behind LIVE."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from service.storage.lease import Lease
from service.storage.sqlite import SQLiteTranscriptStore
from tests.helpers import config, stream


class LeaseWriteFails(SQLiteTranscriptStore):
    """The real SQLite store whose lease write fails as a full or broken disk fails it
    (every other call works): the failure under test."""

    async def acquire_lease(
        self, owner: str, transcript_id: str, holder: str, lease_s: float
    ) -> Lease:
        def fail() -> Lease:
            raise sqlite3.OperationalError("disk I/O error")

        return await self._run(fail)


async def test_a_lease_write_failing_after_the_create_leaves_no_live_transcript(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """The new transcript was created, then its writer lease could not be stored: the
    client gets UNAVAILABLE saying the stream did not start and to retry, and the
    transcript (no words, no audio, an id its client never got) is deleted. It stayed
    LIVE for ever, listed as a meeting in progress that nothing would ever end."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    server.store.__class__ = LeaseWriteFails
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            run = await stream(streaming_pb2_grpc.TranscriptionServiceStub(ch), config(), [])
            listed = await transcripts_pb2_grpc.TranscriptServiceStub(ch).ListTranscripts(
                transcripts_pb2.ListTranscriptsRequest(page_size=10)
            )
    finally:
        await server.stop(1.0)
    assert not listed.transcripts, [(t.id, t.status) for t in listed.transcripts]
    assert run.code == grpc.StatusCode.UNAVAILABLE, run.details
    assert "could not start" in str(run.details) and "Retry" in str(run.details), run.details
