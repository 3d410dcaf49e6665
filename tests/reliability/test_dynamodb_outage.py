"""A real storage outage: DynamoDB Local is stopped for 30 s in the middle of a live
stream and started again with its data. Transcription goes on, finals sent during the
outage say they are not stored yet, every one of them lands when storage returns, and a
stream that ends while storage is still down is told which results are not stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.dynamodb_local import DynamoDBLocal
from tests.helpers import Enc, chunks, config, decode_16k, dev_clips, pcm16, stream

OUTAGE_S = 30.0
pb = transcripts_pb2


async def _server(engine: WhisperEngine, ddb: DynamoDBLocal, tmp: Path) -> RunningServer:
    storage = StorageSettings(
        backend="dynamodb",
        data_dir=tmp,
        dynamodb_endpoint=ddb.endpoint,
        dynamodb_create_tables=True,
        dynamodb_table_prefix="outage",
    )
    return await start_server(Settings(port=0, storage=storage), engine=engine)


def _speech(seconds: float) -> bytes:
    """Dev clips one after another, as LINEAR16, `seconds` long."""
    audio = np.concatenate([decode_16k(c.path) for c in dev_clips()])
    while len(audio) < seconds * 16000:
        audio = np.concatenate([audio, audio])
    return pcm16(audio[: int(seconds * 16000)])


async def test_dynamodb_down_for_30_s_mid_stream(engine: WhisperEngine, tmp_path: Path) -> None:
    ddb = DynamoDBLocal(db_path=tmp_path / "ddb")
    await asyncio.to_thread(ddb.start)
    running = await _server(engine, ddb, tmp_path / "rec")
    down_at = up_at = 0.0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            first_final = asyncio.Event()
            arrivals: list[tuple[float, streaming_pb2.StreamingTranscriptionResult]] = []

            def seen(resp: streaming_pb2.StreamingTranscribeResponse) -> None:
                for r in resp.results:
                    if r.is_final:
                        arrivals.append((time.monotonic(), r))
                        first_final.set()

            # Twice real time: 90 s of speech span the 30 s outage plus DynamoDB's restart.
            cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
            task = asyncio.create_task(
                stream(stub, cfg, chunks(_speech(90), 3200), pace_s=0.05, on_response=seen)
            )
            await first_final.wait()
            await asyncio.to_thread(ddb.stop)
            down_at = time.monotonic()
            # While storage is down, reading answers UNAVAILABLE, not an internal error.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await tstub.ListTranscripts(pb.ListTranscriptsRequest())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert "retry" in (err.value.details() or "")
            await asyncio.sleep(OUTAGE_S - (time.monotonic() - down_at))  # the outage itself
            await asyncio.to_thread(ddb.start)
            up_at = time.monotonic()
            run = await task
            assert run.code == grpc.StatusCode.OK, run.details
            during = [r for t, r in arrivals if down_at < t < up_at]
            assert len(during) >= 3, "transcription went on while storage was down"
            assert any(r.storage_pending for r in during), "the client was told"
            got = await tstub.GetTranscript(
                pb.GetTranscriptRequest(transcript_id=run.transcript_id)
            )
    finally:
        await running.stop(1)
        await asyncio.to_thread(ddb.stop)
    t = got.transcript
    assert t.status == pb.TRANSCRIPT_STATUS_COMPLETE
    sent = [(r.segment_index, r.alternatives[0].transcript) for _, r in arrivals]
    assert [(s.index, s.text) for s in t.segments] == sent, "every final landed, in order"
    assert up_at - down_at >= OUTAGE_S


async def test_stream_ending_during_the_outage_names_what_is_not_stored(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    ddb = DynamoDBLocal(db_path=tmp_path / "ddb")
    await asyncio.to_thread(ddb.start)
    running = await _server(engine, ddb, tmp_path / "rec")
    running.deps.end_flush_s = 2.0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            first_final = asyncio.Event()

            def seen(resp: streaming_pb2.StreamingTranscribeResponse) -> None:
                if any(r.is_final for r in resp.results):
                    first_final.set()

            cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
            task = asyncio.create_task(
                stream(stub, cfg, chunks(_speech(25), 3200), pace_s=0.05, on_response=seen)
            )
            await first_final.wait()
            await asyncio.to_thread(ddb.stop)  # and it does not come back
            run = await task
    finally:
        await running.stop(0)
    pending = [r.segment_index for r in run.results(True) if r.storage_pending]
    assert pending, "finals after the outage began say they are not stored"
    assert run.code == grpc.StatusCode.UNAVAILABLE
    assert "not stored" in run.details and str(pending[0]) in run.details
