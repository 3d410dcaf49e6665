"""The streaming and upload paths when the client goes away at a bad moment.

Each test makes the bad moment happen for certain (a store call held until the client
has cancelled), with the real model and an in-process server, and checks what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.domain import TranscriptStatus
from service.engine import WhisperEngine
from service.registry import StreamRegistry
from service.server import start_server
from tests.helpers import (
    Enc,
    Stub,
    TStub,
    assert_seen_finals_stored,
    chunks,
    config,
    decode_16k,
    dev_clips,
    pcm16,
    stream,
    wer,
)

pb = transcripts_pb2
T = TypeVar("T")


async def _none_listed(stub: TStub) -> bool:
    """True once no transcript is listed (the server unwinds a cancelled call in its own
    time; polled for up to 20 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        listed = await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=10))
        if not listed.transcripts:
            return True
        await asyncio.sleep(0.05)
    return False


async def _late(
    write: Coroutine[Any, Any, T], caller: asyncio.Task[Any] | None, writing: asyncio.Event
) -> T:
    """A store write that lands at once but answers only once its caller (the call's
    handler) is being cancelled: the client went away while it was in flight."""
    landed = await asyncio.shield(write)
    writing.set()
    assert caller is not None
    while not caller.cancelling() and not caller.done():  # noqa: ASYNC110 (no event for it)
        await asyncio.sleep(0.01)
    return landed


def _held(
    store: object,
    name: str,
    writing: asyncio.Event,
    handler: Callable[[], asyncio.Task[Any] | None] = asyncio.current_task,
) -> None:
    """Make the store's `name` call land at once but answer late (see `_late`); `handler`
    (asked as the call is made) is the call's handler task, by default the caller."""
    call = getattr(store, name)

    def held(*args: Any) -> Coroutine[Any, Any, Any]:
        return _late(call(*args), handler(), writing)

    setattr(store, name, held)


def _stream_handler(registry: StreamRegistry) -> Callable[[], asyncio.Task[Any] | None]:
    """The handler task of the last stream the registry admitted (a session's store
    calls may run in tasks of their own)."""
    handlers: list[asyncio.Task[Any] | None] = []
    admit = registry.admit

    def admitting() -> Any:
        handlers.append(asyncio.current_task())
        return admit()

    setattr(registry, "admit", admitting)  # noqa: B010
    return lambda: handlers[-1]


async def test_an_upload_cancelled_while_its_transcript_is_created_leaves_nothing(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """The client goes away while the upload's transcript row is being written: the
    write lands (as a DynamoDB put does once sent), the call is cancelled in its await.
    It left a LIVE transcript with no recording behind, for ever."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    writing = asyncio.Event()
    _held(server.store, "create_transcript", writing)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)

            async def requests() -> AsyncIterator[pb.UploadRecordingRequest]:
                yield pb.UploadRecordingRequest(config=pb.UploadConfig(title="half"))
                await asyncio.Event().wait()  # the audio never comes: the client cancels

            call = stub.UploadRecording(requests())
            await writing.wait()
            call.cancel()
            assert await _none_listed(stub), "the abandoned upload's transcript is still listed"
    finally:
        await server.stop(1.0)


async def _stream_until(
    stub: Stub,
    cfg: streaming_pb2.StreamingTranscriptionConfig,
    writing: asyncio.Event,
) -> None:
    """Send `cfg`, then cancel the call once the held store call has landed."""

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
        await asyncio.Event().wait()  # no audio: the client goes away first

    call = stub.StreamingTranscribe(requests())
    await writing.wait()
    call.cancel()


async def test_a_stream_cancelled_while_its_transcript_is_created_leaves_nothing(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """The client goes away right after its config, while the new transcript is being
    created: the transcript it never heard of is not left LIVE for ever."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    writing = asyncio.Event()
    _held(server.store, "create_transcript", writing, _stream_handler(server.registry))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            await _stream_until(
                streaming_pb2_grpc.TranscriptionServiceStub(ch), config(title="gone"), writing
            )
            assert await _none_listed(transcripts_pb2_grpc.TranscriptServiceStub(ch))
    finally:
        await server.stop(1.0)


async def test_a_resume_cancelled_while_it_takes_the_lease_gives_it_back(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """A client that gives up on a resume while the server takes the transcript's lease
    (e.g. its own connect timeout) and resumes again is let in at once, not refused
    ABORTED until the lease expires (120 s here)."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path, lease_s=120)),
        engine=engine,
    )
    clip = dev_clips()[0]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            pcm = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
            first = await stream(stub, pcm, chunks(pcm16(decode_16k(clip.path))[:64000], 3200))
            assert first.code == grpc.StatusCode.OK, first.details
            tid = first.transcript_id
            await server.store.finish_transcript(  # left resumable, as a drained stream is
                "local", tid, TranscriptStatus.INTERRUPTED, datetime.now(UTC), 2.0, ()
            )
            writing = asyncio.Event()
            original = server.store.acquire_lease
            _held(server.store, "acquire_lease", writing, _stream_handler(server.registry))
            resume = config(resume_transcript_id=tid)
            await _stream_until(stub, resume, writing)
            setattr(server.store, "acquire_lease", original)  # noqa: B010
            # The abandoned call gives the lease back as it unwinds: retried until then.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:
                again = await stream(stub, resume, [])
                if again.code != grpc.StatusCode.ABORTED or loop.time() > deadline:
                    break
                await asyncio.sleep(0.1)
    finally:
        await server.stop(1.0)
    assert again.code == grpc.StatusCode.OK, again.details
    assert again.transcript_id == tid


class _FailingFor:
    """The engine, except that a request with `prompt` fails once `after` of them
    decoded: the model failing on one stream's audio mid-stream."""

    def __init__(self, engine: Any, prompt: str, after: int) -> None:
        self._engine = engine
        self._prompt = prompt
        self._left = after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def decode_batch(self, requests: list[Any]) -> Any:
        if any(r.prompt == self._prompt for r in requests):
            if self._left <= 0:
                raise RuntimeError("out of memory (injected)")
            self._left -= 1
        return self._engine.decode_batch(requests)


async def test_the_model_failing_on_one_stream_ends_it_alone_with_its_finals_stored(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """EngineError mid-stream: that stream ends INTERNAL saying the model failed, what it
    was shown as final is stored and the transcript stays resumable; a stream beside it
    on the same model is not harmed."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    scheduler = server.deps.models.models[0].scheduler
    setattr(scheduler, "engine", _FailingFor(scheduler.engine, "doomed", after=6))  # noqa: B010
    clip = dev_clips()[0]
    audio = chunks(pcm16(decode_16k(clip.path)), 3200)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            pcm: dict[str, Any] = {
                "encoding": Enc.AUDIO_ENCODING_LINEAR16,
                "sample_rate_hertz": 16000,
            }
            bad, good = await asyncio.gather(
                stream(stub, config(prompt="doomed", **pcm), audio, pace_s=0.02),
                stream(stub, config(**pcm), audio, pace_s=0.02),
            )
            got = await transcripts_pb2_grpc.TranscriptServiceStub(ch).GetTranscript(
                pb.GetTranscriptRequest(transcript_id=bad.transcript_id)
            )
    finally:
        await server.stop(1.0)
    assert bad.code == grpc.StatusCode.INTERNAL, bad.details
    assert "speech model failed" in bad.details
    assert bad.segments, "the stream failed before its first final: nothing to check"
    assert_seen_finals_stored(bad.segments, {s.index: s.text for s in got.transcript.segments})
    assert got.transcript.status == pb.TRANSCRIPT_STATUS_INTERRUPTED
    assert good.code == grpc.StatusCode.OK, good.details
    assert wer([clip.text], [good.final_text]) < 0.25


async def test_a_stream_whose_recording_cannot_be_opened_gives_its_transcript_back(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """The disk refuses the stream's recording file (full, read-only): the call ends, and
    its new transcript is not left LIVE with its lease renewed for as long as the server
    runs."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    setattr(server.deps.recordings, "open_writer", disk_full)  # noqa: B010
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            run = await stream(streaming_pb2_grpc.TranscriptionServiceStub(ch), config(), [])
            assert await _none_listed(transcripts_pb2_grpc.TranscriptServiceStub(ch))
    finally:
        await server.stop(1.0)
    assert run.code == grpc.StatusCode.INTERNAL, run.details
