"""Prometheus metrics reflect real streams."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import grpc
from transcribe.v1 import streaming_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from tests.helpers import Enc, chunks, config, dev_clips, stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


async def test_metrics_endpoint(engine: WhisperEngine, tmp_path: Path) -> None:
    port = free_port()
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), metrics_port=port),
        engine=engine,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            clip = dev_clips()[3]
            ok = await stream(
                stub, config(encoding=Enc.AUDIO_ENCODING_FLAC), chunks(clip.path.read_bytes(), 8000)
            )
            assert ok.code == grpc.StatusCode.OK
            bad = await stream(stub, config(encoding=Enc.AUDIO_ENCODING_LINEAR16), [b"\x00\x00"])
            assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
        async with aiohttp.ClientSession() as http:
            text = await (await http.get(f"http://127.0.0.1:{port}/metrics")).text()
        assert value(text, "transcribe_active_streams") == 0
        assert value(text, 'transcribe_streams_total{status="complete"}') == 1
        assert value(text, 'transcribe_refused_streams_total{reason="invalid_argument"}') == 1
        assert abs(value(text, "transcribe_audio_seconds_total") - clip.duration_s) < 0.2
        assert value(text, "transcribe_decode_seconds_count") >= 1
        assert value(text, "transcribe_final_word_latency_seconds_count") >= 1
        assert value(text, "transcribe_storage_write_retries_total") == 0
        assert value(text, "process_resident_memory_bytes") > 50e6
        assert value(text, "process_open_fds") > 0
        assert value(text, "transcribe_threads") >= 2
        assert value(text, "transcribe_event_loop_tasks") >= 1
    finally:
        await running.stop(1)
