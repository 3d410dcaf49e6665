"""Two service processes sharing one DynamoDB Local: no state that stops scaling out."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from tests.dynamodb_local import DynamoDBLocal
from tests.helpers import Enc, chunks, config, dev_clips, stream

pb = transcripts_pb2


async def test_streamed_through_one_found_through_the_other(
    engine: WhisperEngine, dynamodb_local: DynamoDBLocal, tmp_path: Path
) -> None:
    prefix = "scale" + uuid.uuid4().hex[:6]
    storage = StorageSettings(
        backend="dynamodb",
        data_dir=tmp_path / "a",
        dynamodb_endpoint=dynamodb_local.endpoint,
        dynamodb_table_prefix=prefix,
        dynamodb_create_tables=True,
    )
    a = await start_server(Settings(port=0, storage=storage), engine=engine)
    other = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [
            sys.executable,
            "-c",
            "from service.server import main; main()",
            "--port=0",
            "--storage=dynamodb",
            f"--data-dir={tmp_path / 'b'}",
            f"--dynamodb-endpoint={dynamodb_local.endpoint}",
            f"--dynamodb-table-prefix={prefix}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        line = await asyncio.to_thread(other.stdout.readline)
        port = int(re.search(r"listening on [^:]+:(\d+)", line).group(1))  # type: ignore[union-attr]
        clip = dev_clips()[3]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch_a:
            run = await stream(
                streaming_pb2_grpc.TranscriptionServiceStub(ch_a),
                config(encoding=Enc.AUDIO_ENCODING_FLAC, title="Scale test"),
                chunks(clip.path.read_bytes(), 8000),
            )
        assert run.final_text
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch_b:
            b = transcripts_pb2_grpc.TranscriptServiceStub(ch_b)
            listed = await b.ListTranscripts(pb.ListTranscriptsRequest())
            assert run.transcript_id in [t.id for t in listed.transcripts]
            word = max(run.final_text.split(), key=len).strip(".,?!")
            hits = await b.SearchTranscripts(pb.SearchTranscriptsRequest(query=word))
            assert run.transcript_id in [h.transcript_id for h in hits.hits]
            srt = await b.ExportTranscript(
                pb.ExportTranscriptRequest(
                    transcript_id=run.transcript_id, format=pb.EXPORT_FORMAT_SRT
                )
            )
            assert word in srt.content.decode()
    finally:
        other.terminate()
        assert other.wait(timeout=60) == 0  # SIGTERM: drains and exits cleanly
        await a.stop(1)
