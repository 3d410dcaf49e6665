"""Graceful shutdown: streams finalize what they heard, end UNAVAILABLE, resume elsewhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from tests.helpers import Enc, chunks, config, decode_16k, dev_clips, pcm16, stream, wer


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
