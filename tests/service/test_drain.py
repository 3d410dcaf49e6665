"""Graceful shutdown: active streams finalize what they heard and end with OK."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

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
    assert run.code == grpc.StatusCode.OK, run.details
    heard = run.final_text.split()
    # Roughly the first half of the clip was heard and every word of it made final.
    assert 12 <= len(heard) < len(clip.text.split())
    ref_prefix = " ".join(clip.text.split()[: len(heard)])
    assert wer([ref_prefix], [run.final_text]) < 0.25
