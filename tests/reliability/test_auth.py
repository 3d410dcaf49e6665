"""API keys: who may see what."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.auth import ApiKeyInterceptor
from service.config import Settings, StorageSettings, build_settings
from service.engine import WhisperEngine
from service.server import auth_interceptors, start_server
from tests.helpers import Enc, chunks, config, dev_clips, stream

pb = transcripts_pb2


async def test_keys_scope_every_rpc_to_its_principal(engine: WhisperEngine, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    bob_digest = hashlib.sha256(b"bob-secret").hexdigest()
    keys.write_text(f"# team keys\nalice:alice-secret\nbob:sha256:{bob_digest}\n")
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), api_keys_file=str(keys)),
        engine=engine,
    )
    target = f"127.0.0.1:{running.port}"
    alice = (("authorization", "Bearer alice-secret"),)
    bob = (("x-api-key", "bob-secret"),)
    try:
        async with grpc.aio.insecure_channel(target) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == 1
            ts = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            for md in ((), (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await ts.ListTranscripts(pb.ListTranscriptsRequest(), metadata=md)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "API key" in (err.value.details() or "")
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            clip = dev_clips()[3]
            denied = await stream(
                stub, config(encoding=Enc.AUDIO_ENCODING_FLAC), [clip.path.read_bytes()]
            )
            assert denied.code == grpc.StatusCode.UNAUTHENTICATED

            call = stub.StreamingTranscribe(
                _requests(
                    config(encoding=Enc.AUDIO_ENCODING_FLAC), chunks(clip.path.read_bytes(), 8000)
                ),
                metadata=alice,
            )
            responses = [r async for r in call]
            tid = responses[0].session.transcript_id
            word = max(
                " ".join(
                    x.alternatives[0].transcript for r in responses for x in r.results
                ).split(),
                key=len,
            ).strip(".,?!")
            got = await ts.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid), metadata=alice)
            assert got.transcript.segments
            for rpc in (
                ts.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid), metadata=bob),
                ts.ExportTranscript(
                    pb.ExportTranscriptRequest(transcript_id=tid, format=pb.EXPORT_FORMAT_TXT),
                    metadata=bob,
                ),
                ts.DeleteTranscript(pb.DeleteTranscriptRequest(transcript_id=tid), metadata=bob),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await rpc
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert tid not in [
                t.id
                for t in (
                    await ts.ListTranscripts(pb.ListTranscriptsRequest(), metadata=bob)
                ).transcripts
            ]
            assert not (
                await ts.SearchTranscripts(pb.SearchTranscriptsRequest(query=word), metadata=bob)
            ).hits
            hits = await ts.SearchTranscripts(
                pb.SearchTranscriptsRequest(query=word), metadata=alice
            )
            assert tid in [h.transcript_id for h in hits.hits]
            resumed = await stream(
                stub, config(encoding=Enc.AUDIO_ENCODING_FLAC, resume_transcript_id=tid), []
            )
            assert resumed.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await running.stop(1)


async def _requests(cfg, payloads):  # type: ignore[no-untyped-def]
    from transcribe.v1 import streaming_pb2

    yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
    for p in payloads:
        yield streaming_pb2.StreamingTranscribeRequest(audio_content=p)


def test_open_network_server_needs_keys_or_an_explicit_choice(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="without authentication"):
        auth_interceptors(Settings(host="0.0.0.0"))
    assert auth_interceptors(Settings(host="0.0.0.0", auth="none")) == []
    assert auth_interceptors(Settings()) == []  # localhost: the local quick start
    bad = tmp_path / "keys"
    bad.write_text("no-colon-here\n")
    with pytest.raises(SystemExit, match="expected principal:key"):
        auth_interceptors(Settings(api_keys_file=str(bad)))
    with pytest.raises(SystemExit, match="No such file"):
        auth_interceptors(Settings(api_keys_file=str(tmp_path / "missing")))
    # Keys from the environment (containers): the same entries, comma-separated.
    settings = build_settings([], {"TRANSCRIBE_API_KEYS": "alice:a-key,bob:sha256:" + "0" * 64})
    (interceptor,) = auth_interceptors(settings)
    assert isinstance(interceptor, ApiKeyInterceptor)
    assert interceptor._principal((("authorization", "Bearer a-key"),)) == "alice"
    assert interceptor._principal((("authorization", "Bearer b-key"),)) is None
    with pytest.raises(SystemExit, match="api-keys entry:2"):
        auth_interceptors(Settings(api_keys="alice:a-key,broken"))
