"""That a stream detected its transcript's language is stored, so refinement on another
server (a replica, or this one after a restart) still checks it on the whole recording.

A German clip streamed to base with language auto is stored marked `language_detected`;
the language is then set to English, as a stream that misheard the first seconds stores
it. A NEW server on the same SQLite file refines it and stores German, with German text.
Before, the mark lived only in the streaming process's memory, and a restarted server
kept the wrong language. Real parts: tiny.en and base, SQLite, in-process servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import ModelSettings, RefineSettings, Settings, StorageSettings
from service.domain import Refinement, RefinementState
from service.engine import WhisperEngine
from service.server import start_server
from tests.helpers import Enc, chunks, config, stream
from tests.multilingual import german_clip

pb = transcripts_pb2
OWNER = "local"


def _settings(data: Path) -> Settings:
    return Settings(
        port=0,
        model=ModelSettings(models="tiny.en,base"),
        storage=StorageSettings(data_dir=data),
        refine=dataclasses.replace(RefineSettings(), poll_s=0.2),
    )


async def test_a_detected_language_is_rechecked_by_refinement_after_a_restart(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    clip = german_clip()
    first = await start_server(_settings(tmp_path), engine=engine)  # streams not refined
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as ch:
            cfg = config(encoding=Enc.AUDIO_ENCODING_FLAC, model="base", language_code="")
            run = await stream(
                streaming_pb2_grpc.TranscriptionServiceStub(ch),
                cfg,
                chunks(clip.path.read_bytes(), 16000),
            )
            assert run.code == grpc.StatusCode.OK, run.details
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            request = pb.GetTranscriptRequest(transcript_id=run.transcript_id)
            live = (await stub.GetTranscript(request)).transcript
        assert (live.language_code, live.language_detected) == ("de", True)
        # What a stream that took the first seconds for English stores (the mark as it is).
        await first.store.update_transcript(OWNER, run.transcript_id, language="en")
        pending = Refinement(RefinementState.PENDING)
        await first.store.set_refinement(OWNER, run.transcript_id, pending)
    finally:
        await first.stop(1.0)
    second = await start_server(_settings(tmp_path), engine=engine, refine_streams=True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            deadline = asyncio.get_running_loop().time() + 300
            while (t := (await stub.GetTranscript(request)).transcript).refinement_state not in (
                pb.REFINEMENT_STATE_DONE,
                pb.REFINEMENT_STATE_FAILED,
            ):
                assert asyncio.get_running_loop().time() < deadline, t.refinement_state
                await asyncio.sleep(0.25)
    finally:
        await second.stop(1.0)
    assert t.refinement_state == pb.REFINEMENT_STATE_DONE, t.refinement_detail
    assert (t.language_code, t.language_detected) == ("de", True)
    text = " ".join(s.text for s in t.segments).lower()
    assert "sediment war nötig" in text and "lebensräume" in text, text
