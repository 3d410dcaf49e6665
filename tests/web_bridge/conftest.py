"""A real bridge on a free port in front of the real in-process gRPC server, and one in
front of a scripted gRPC service for exchanges the model cannot be made to produce."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

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
    """Answers a stream's config with exactly the responses the test puts in `responses`,
    when it puts them (None ends the stream with OK); the audio is read and dropped."""

    def __init__(self) -> None:
        self.responses: asyncio.Queue[Response | None] = asyncio.Queue()

    async def StreamingTranscribe(
        self,
        request_iterator: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
        context: grpc.aio.ServicerContext[streaming_pb2.StreamingTranscribeRequest, Response],
    ) -> AsyncIterator[Response]:
        first = await anext(request_iterator)
        assert first.WhichOneof("streaming_request") == "config"

        async def drain() -> None:  # keeps HTTP/2 flow control from stalling the sender
            async for _ in request_iterator:
                pass

        reader = asyncio.create_task(drain())
        try:
            while (resp := await self.responses.get()) is not None:
                yield resp
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader


class NoTranscripts(transcripts_pb2_grpc.TranscriptServiceServicer):
    """An empty history: what the page asks on load (are we signed in?) and after a stream."""

    async def ListTranscripts(
        self, request: transcripts_pb2.ListTranscriptsRequest, context: object
    ) -> transcripts_pb2.ListTranscriptsResponse:
        return transcripts_pb2.ListTranscriptsResponse()


@pytest.fixture
async def scripted_bridge() -> AsyncIterator[tuple[ScriptedTranscription, str]]:
    """A bridge whose gRPC server sends what the test scripts (see ScriptedTranscription)."""
    service = ScriptedTranscription()
    server = grpc.aio.server()
    streaming_pb2_grpc.add_TranscriptionServiceServicer_to_server(service, server)
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(
        NoTranscripts(),  # type: ignore[abstract]  # the stubs mark every method abstract
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runner = web.AppRunner(
        create_app(BridgeSettings(grpc_target=f"127.0.0.1:{port}")), shutdown_timeout=0.2
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield service, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()
    await server.stop(0)


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
