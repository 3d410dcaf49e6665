"""Structured logs: one JSON object per line, carrying the transcript id and principal of
the stream they concern, and never the transcript text at INFO."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.logs import handler_for
from service.server import start_server
from tests.helpers import Enc, StreamRun, Stub, chunks, config, decode_16k, dev_clips, pcm16, stream


async def test_stream_logs_carry_ids_not_text(engine: WhisperEngine, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("alice:alice-key\n")
    out = io.StringIO()
    handler = handler_for("json", out)
    log = logging.getLogger("service")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), api_keys_file=str(keys)),
        engine=engine,
    )
    md = (("authorization", "Bearer alice-key"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)

            good = dev_clips()[1]
            pcm = pcm16(decode_16k(good.path))
            lin = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
            ok = await stream_as(stub, lin, chunks(pcm, 3200), md)
            assert ok.code == grpc.StatusCode.OK and ok.final_text
            bad = await stream_as(stub, config(encoding=Enc.AUDIO_ENCODING_OGG_OPUS),
                                  [b"definitely not ogg" * 100], md)  # fmt: skip
            assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await running.stop(1)
        log.removeHandler(handler)
        log.setLevel(old_level)

    records = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is JSON
    assert records
    for tid in (ok.transcript_id, bad.transcript_id):
        mine = [r for r in records if r.get("transcript_id") == tid]
        assert any("started" in r["message"] for r in mine), tid
        assert any("ended" in r["message"] for r in mine), tid
        assert all(r["principal"] == "alice" for r in mine)
    assert any(
        r.get("transcript_id") == bad.transcript_id and "INVALID_ARGUMENT" in r["message"]
        for r in records
    )
    said = {w.strip(".,?!").lower() for w in ok.final_text.split() if len(w) > 5}
    assert said
    for r in records:
        if r["level"] in ("INFO", "WARNING", "ERROR"):
            words = {w.strip(".,?!:;()'\"").lower() for w in r["message"].split()}
            assert not (words & said), f"transcript text in a log line: {r['message']}"


async def stream_as(
    stub: Stub,
    cfg: streaming_pb2.StreamingTranscriptionConfig,
    payloads: list[bytes],
    md: tuple[tuple[str, str], ...],
) -> StreamRun:
    """tests.helpers.stream with call metadata."""

    class WithMetadata:
        def StreamingTranscribe(
            self, reqs: AsyncIterator[streaming_pb2.StreamingTranscribeRequest]
        ) -> AsyncIterable[streaming_pb2.StreamingTranscribeResponse]:
            return stub.StreamingTranscribe(reqs, metadata=md)

    return await stream(WithMetadata(), cfg, payloads)
