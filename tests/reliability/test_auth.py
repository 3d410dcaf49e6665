"""API keys: who may see what."""

from __future__ import annotations

import hashlib
import importlib
import logging
import pkgutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.auth import ApiKeyInterceptor, current_principal, load_keys
from service.config import Settings, StorageSettings, build_settings
from service.engine import WhisperEngine
from service.errors import grpc_errors
from service.handlers import wrap_handler
from service.server import auth_interceptors, start_server
from service.wire import WireFormatInterceptor
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


async def _requests(cfg: Any, payloads: list[bytes]) -> AsyncIterator[Any]:
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


def transcribe_methods() -> list[tuple[str, MethodDescriptor]]:
    """(path, descriptor) of every method of every service in the transcribe.v1 protos."""
    import transcribe.v1 as package

    out = []
    for mod in pkgutil.iter_modules(package.__path__):
        if mod.name.endswith("_pb2"):
            module = importlib.import_module(f"transcribe.v1.{mod.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                for method in service.methods:
                    out.append((f"/{service.full_name}/{method.name}", method))
    return out


def serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


async def call(channel: grpc.aio.Channel, path: str, method: MethodDescriptor, md: Any) -> Any:
    """Call any method with an empty request (or a stream of one); its status code."""
    request = message_factory.GetMessageClass(method.input_type)()
    kinds: dict[tuple[bool, bool], Any] = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    rpc = kinds[(method.client_streaming, method.server_streaming)](
        path, request_serializer=serialize, response_deserializer=bytes
    )
    arg = iter([request]) if method.client_streaming else request
    try:
        got = rpc(arg, metadata=md)
        if method.server_streaming:
            async for _ in got:
                pass
        else:
            await got
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_every_transcribe_rpc_needs_a_key(engine: WhisperEngine, tmp_path: Path) -> None:
    """Walks the descriptors, so an RPC added later is covered without editing this test;
    health and reflection stay open on purpose (load balancers, grpcurl)."""
    methods = transcribe_methods()
    names = {m.name for _, m in methods}
    assert {"StreamingTranscribe", "UpdateTranscript", "GetRecording"} <= names, names
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), api_keys="alice:a-key"),
        engine=engine,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            for path, method in methods:
                for md in ((), (("authorization", "Bearer wrong"),)):
                    code = await call(ch, path, method, md)
                    assert code == grpc.StatusCode.UNAUTHENTICATED, (path, md, code)
                # With the key the call gets past authentication (and is answered, refused
                # for its empty request at most, or UNIMPLEMENTED where no servicer has the
                # method yet): the key is what was missing.
                code = await call(ch, path, method, (("authorization", "Bearer a-key"),))
                assert code not in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.INTERNAL,
                ), (path, code)
    finally:
        await running.stop(1)


async def test_a_client_streaming_rpc_is_checked_like_the_others() -> None:
    """No transcribe.v1 RPC is client-streaming yet; the first one must not skip the key
    check or the wire-format check (both interceptors used to pass it through)."""
    seen: list[str] = []

    @grpc_errors(logging.getLogger(__name__))
    async def count(requests: Any, context: Any) -> pb.GetTranscriptResponse:
        n = 0
        async for _ in requests:
            n += 1
        seen.append(current_principal())
        return pb.GetTranscriptResponse(transcript=pb.Transcript(title=str(n)))

    server = grpc.aio.server(
        interceptors=[ApiKeyInterceptor(load_keys(None, "alice:a-key")), WireFormatInterceptor()]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "probe.Probe",
                {
                    "Count": grpc.stream_unary_rpc_method_handler(
                        count,
                        pb.GetTranscriptRequest.FromString,
                        pb.GetTranscriptResponse.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            rpc: Any = ch.stream_unary("/probe.Probe/Count")  # raw bytes both ways
            good = pb.GetTranscriptRequest(transcript_id="x").SerializeToString()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await rpc(iter([good, good]))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert not seen
            key = (("authorization", "Bearer a-key"),)
            reply = pb.GetTranscriptResponse.FromString(await rpc(iter([good] * 3), metadata=key))
            assert reply.transcript.title == "3"
            assert seen == ["alice"]
            not_utf8 = b"\x0a\x02\xff\xfe"  # transcript_id: a string that is not UTF-8
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await rpc(iter([good, not_utf8]), metadata=key)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "message 2 of the stream" in (err.value.details() or "")
    finally:
        await server.stop(0)


async def test_a_handler_of_unknown_kind_is_refused_not_passed_through() -> None:
    class Odd:  # no kind grpc knows: whatever it is, it must not run unchecked
        request_streaming = response_streaming = False
        unary_unary = unary_stream = stream_unary = stream_stream = None
        request_deserializer = response_serializer = None

    ran = []

    async def check(_: Any) -> None:
        ran.append("check")

    async def check_stream(requests: Any) -> Any:
        return requests

    wrapped = wrap_handler(Odd(), check, check_stream)  # type: ignore[arg-type]

    class Context:
        async def abort(self, code: grpc.StatusCode, message: str) -> None:
            raise grpc.aio.AbortError(f"{code} {message}")

    with pytest.raises(grpc.aio.AbortError, match="INTERNAL"):
        await wrapped.unary_unary(object(), Context())  # type: ignore[misc, arg-type]
