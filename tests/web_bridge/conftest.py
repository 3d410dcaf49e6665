"""A real bridge on a free port in front of the real in-process gRPC server, and one in
front of a scripted gRPC service for exchanges the model cannot be made to produce."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web
from transcribe.v1 import (
    common_pb2,
    streaming_pb2,
    streaming_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)

from service.server import RunningServer
from web_bridge.app import create_app
from web_bridge.config import BridgeSettings

Response = streaming_pb2.StreamingTranscribeResponse
SCRIPTED_MODELS = streaming_pb2.ListModelsResponse(
    models=[
        streaming_pb2.ModelInfo(
            name="tiny.en", language_codes=["en"], is_default=True, description="English"
        ),
        streaming_pb2.ModelInfo(
            name="base",
            language_codes=["de", "en", "es", "fr", "ja", "zh"],
            detects_language=True,
            description="multilingual",
        ),
    ]
)
"""What a scripted service says it loaded: an English-only default and a multilingual one."""


@pytest.fixture(scope="session")
async def bridge_url(server: RunningServer) -> AsyncIterator[str]:
    app = create_app(BridgeSettings(grpc_target=f"127.0.0.1:{server.port}"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


class ScriptedTranscription(streaming_pb2_grpc.TranscriptionServiceServicer):
    """Answers each stream's config with what `respond` yields: by default exactly the
    responses the test puts in `responses`, when it puts them (None ends the stream with
    OK). The audio is read (while `reading` is set) and counted in `audio_bytes`, each
    stream's kept in `audio` if `keep_audio`; each stream's config is kept in `configs`.
    ListModels answers `models`. With `end_after_half_close`, None ends the stream only
    once the client has half-closed, as the real service does after a stop: ended before,
    gRPC may report the call to the client as INTERNAL "Internal error from Core" while it
    is still sending (grpc/grpc#36066; fresh-clone CI ci36)."""

    def __init__(self, keep_audio: bool = False) -> None:
        self.end_after_half_close = False
        self.models = SCRIPTED_MODELS
        self.configs: list[streaming_pb2.StreamingTranscriptionConfig] = []
        self.responses: asyncio.Queue[Response | None] = asyncio.Queue()
        self.reading = asyncio.Event()
        self.reading.set()
        self.audio_bytes = 0
        self.keep_audio = keep_audio
        self.audio: list[bytearray] = []

    async def StreamingTranscribe(
        self,
        request_iterator: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
        context: grpc.aio.ServicerContext[streaming_pb2.StreamingTranscribeRequest, Response],
    ) -> AsyncIterator[Response]:
        first = await anext(request_iterator)
        assert first.WhichOneof("streaming_request") == "config"
        self.configs.append(first.config)
        audio = bytearray()
        self.audio.append(audio)

        async def drain() -> None:  # keeps HTTP/2 flow control from stalling the sender
            await self.reading.wait()
            async for request in request_iterator:
                self.audio_bytes += len(request.audio_content)
                if self.keep_audio:
                    audio.extend(request.audio_content)

        reader = asyncio.create_task(drain())
        try:
            async for resp in self.respond(reader, context):
                yield resp
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader

    async def respond(
        self, reader: asyncio.Task[None], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Response]:
        """The responses of the stream just configured (the last of `configs`), whose audio
        `reader` reads until the client half-closes: those put in `responses`, until None."""
        while (resp := await self.responses.get()) is not None:
            yield resp
        if self.end_after_half_close:
            await reader

    async def ListModels(
        self,
        request: streaming_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> streaming_pb2.ListModelsResponse:
        return self.models


class NoTranscripts(transcripts_pb2_grpc.TranscriptServiceServicer):
    """An empty history: what the page asks on load (are we signed in?) and after a stream.
    With `api_key` set, calls without `authorization: Bearer <api_key>` get UNAUTHENTICATED.
    `recording` is served by GetRecording in 64 KiB messages; while `recording_gate` is
    clear, a ranged read stops after its first message. `reading` counts the GetRecording
    calls still running (a test stops this server only once the bridge has let go: stopped
    mid-send, gRPC logs the call's failure as an error)."""

    def __init__(self, api_key: str = "") -> None:
        self.api_key = api_key
        self.recording = b""
        self.recording_gate = asyncio.Event()
        self.recording_gate.set()
        self.reading = 0

    async def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.api_key and (
            ("authorization", f"Bearer {self.api_key}") not in (context.invocation_metadata() or ())
        ):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown API key")

    async def ListTranscripts(
        self,
        request: transcripts_pb2.ListTranscriptsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> transcripts_pb2.ListTranscriptsResponse:
        await self._authenticate(context)
        return transcripts_pb2.ListTranscriptsResponse()

    async def GetRecording(
        self,
        request: transcripts_pb2.GetRecordingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[transcripts_pb2.GetRecordingResponse]:
        await self._authenticate(context)
        end = request.range_start + (request.range_length or len(self.recording))
        data = self.recording[request.range_start : end]
        self.reading += 1
        try:
            for n, pos in enumerate(range(0, len(data), 65536)):
                if n == 1:
                    await self.recording_gate.wait()
                yield transcripts_pb2.GetRecordingResponse(
                    data=data[pos : pos + 65536],
                    mime_type="audio/ogg",
                    total_size=len(self.recording),
                )
        finally:
            self.reading -= 1


@contextlib.asynccontextmanager
async def bridge_for(
    grpc_port: int,
    settings: BridgeSettings | None = None,
    ssl_context: Any = None,
    shutdown_timeout: float = 0.2,
) -> AsyncGenerator[tuple[web.Application, str]]:
    """A bridge (with `settings`, grpc_target filled in) in front of the gRPC server on
    `grpc_port`, on a free port: its app and URL; stopped on the way out, its handlers
    given `shutdown_timeout` to finish."""
    settings = dataclasses.replace(
        settings or BridgeSettings(), grpc_target=f"127.0.0.1:{grpc_port}"
    )
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context else "http"
        yield app, f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving(
    service: ScriptedTranscription, transcripts: NoTranscripts | None = None
) -> AsyncGenerator[int]:
    """`service` and `transcripts` (an empty history if None) on a gRPC server on a free
    port: its port; stopped on the way out."""
    server = grpc.aio.server()
    streaming_pb2_grpc.add_TranscriptionServiceServicer_to_server(service, server)
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(
        transcripts or NoTranscripts(),  # type: ignore[abstract]  # stubs: all abstract
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def start_scripted(
    settings: BridgeSettings | None = None,
    api_key: str = "",
    ssl_context: Any = None,
    service: ScriptedTranscription | None = None,
    transcripts: NoTranscripts | None = None,
) -> AsyncGenerator[tuple[ScriptedTranscription, NoTranscripts, web.Application, str]]:
    """A bridge (with `settings`, grpc_target filled in) in front of scripted services:
    `service` and `transcripts` if given, else a ScriptedTranscription and a NoTranscripts
    that asks for `api_key`."""
    service = service or ScriptedTranscription()
    transcripts = transcripts or NoTranscripts(api_key)  # type: ignore[abstract]  # stubs
    async with serving(service, transcripts) as port:
        async with bridge_for(port, settings, ssl_context) as (app, url):
            yield service, transcripts, app, url


@pytest.fixture
async def scripted_bridge() -> AsyncIterator[tuple[ScriptedTranscription, str]]:
    """A bridge whose gRPC server sends what the test scripts (see ScriptedTranscription)."""
    async with start_scripted() as (service, _, _, url):
        yield service, url


def final(index: int, text: str, start: float, end: float, revision: int = 0) -> Response:
    """A final result as the server sends it."""
    result = streaming_pb2.StreamingTranscriptionResult(
        alternatives=[common_pb2.TranscriptionAlternative(transcript=text, confidence=0.9)],
        is_final=True,
        segment_index=index,
        revision=revision,
    )
    result.result_start_offset.FromNanoseconds(round(start * 1e9))
    result.result_end_offset.FromNanoseconds(round(end * 1e9))
    return Response(results=[result])
