"""POST /api/upload: the body streamed to UploadRecording in chunks, the size limit (413),
a missing body (400), the API's guards, and the refinement fields of the transcript JSON.
A scripted TranscriptService records what the bridge sends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.server import RunningServer
from tests.helpers import dev_clips, until
from tests.web_bridge.conftest import NoTranscripts, bridge_for
from web_bridge.config import BridgeSettings, build_bridge_settings
from web_bridge.upload import CHUNK

pb = transcripts_pb2


class Uploads(NoTranscripts):
    """Stores nothing: records each upload's config, audio messages and `end` byte count,
    and counts those completed."""

    def __init__(self, api_key: str = "") -> None:
        super().__init__(api_key)
        self.configs: list[pb.UploadConfig] = []
        self.messages: list[bytes] = []
        self.ends: list[int] = []
        self.completed = 0
        self.cancelled = 0
        self.hold = asyncio.Event()
        """Each call waits on this once its request stream has ended (set: no wait)."""
        self.hold.set()

    async def UploadRecording(
        self,
        request_iterator: AsyncIterator[pb.UploadRecordingRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.UploadRecordingResponse:
        await self._authenticate(context)
        try:
            async for request in request_iterator:
                if request.HasField("config"):
                    self.configs.append(request.config)
                elif request.HasField("end"):
                    self.ends.append(request.end.total_bytes)
                else:
                    self.messages.append(request.audio_content)
            # A client's cancel can reach a handler first as the end of its request stream,
            # its task cancelled a moment later (the real service is then still writing its
            # files). Holding calls here, a test sees every cancel.
            await self.hold.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.completed += 1
        cfg = self.configs[-1]
        return pb.UploadRecordingResponse(
            transcript=pb.Transcript(
                id="up-1",
                title=cfg.title,
                tags=cfg.tags,
                refinement_state=pb.REFINEMENT_STATE_PENDING,
            )
        )

    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetTranscriptResponse:
        return pb.GetTranscriptResponse(
            transcript=pb.Transcript(
                id=request.transcript_id,
                refinement_state=pb.REFINEMENT_STATE_FAILED,
                refinement_progress=0.25,
                refinement_detail="the recording is missing",
            )
        )


@contextlib.asynccontextmanager
async def upload_bridge(
    settings: BridgeSettings | None = None, api_key: str = "", service: Uploads | None = None
) -> AsyncGenerator[tuple[Uploads, str]]:
    """A bridge in front of `service` (default: a fresh Uploads)."""
    service = service or Uploads(api_key)  # type: ignore[abstract]  # stubs: all abstract
    server = grpc.aio.server()
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with bridge_for(port, settings) as (_, url):
            yield service, url
    finally:
        await server.stop(0)


async def test_the_body_is_streamed_to_the_service_in_chunks() -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256 + 7)  # a bit over three messages
    async with upload_bridge() as (service, url), aiohttp.ClientSession() as http:
        r = await http.post(
            f"{url}/api/upload?title=Board%20call&tag=board&tag=q3",
            data=data,
            headers={"Content-Type": "audio/flac"},
        )
        assert r.status == 201, await r.text()
        body = await r.json()
    assert (body["id"], body["title"], body["tags"]) == ("up-1", "Board call", ["board", "q3"])
    assert body["refinement"] == "pending"
    assert service.configs[0].title == "Board call"
    assert list(service.configs[0].tags) == ["board", "q3"]
    assert b"".join(service.messages) == data
    assert len(service.messages) >= 4 and max(map(len, service.messages)) <= CHUNK
    assert service.ends == [len(data)], "the body read to its end: `end` with its size"


async def test_the_real_service_stores_the_bridges_upload_checked_by_its_end(
    refiner_held: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The bridge's `end` carries the byte count the real service received (a wrong one
    would be refused), so the file is stored as checked whole, not as a legacy upload."""
    caplog.set_level(logging.INFO, logger="service.upload")
    data = min((c.path for c in dev_clips()), key=lambda p: p.stat().st_size).read_bytes()
    async with bridge_for(refiner_held.port) as (_, url), aiohttp.ClientSession() as http:
        r = await http.post(f"{url}/api/upload?title=clip", data=data)
        assert r.status == 201, await r.text()
        made = await r.json()
    stored = await refiner_held.store.get_transcript("local", made["id"])
    assert stored.title == "clip" and stored.duration_s > 0
    assert "without `end`" not in caplog.text


async def test_a_chunked_body_without_length_is_streamed_too() -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 100_000

    async with upload_bridge() as (service, url), aiohttp.ClientSession() as http:
        r = await http.post(f"{url}/api/upload", data=body())
        assert r.status == 201, await r.text()
    assert b"".join(service.messages) == b"".join(bytes([i]) * 100_000 for i in range(5))
    assert service.ends == [500_000]


async def test_over_the_size_limit_is_413_with_a_json_error() -> None:
    settings = BridgeSettings(max_upload_bytes=300_000)
    async with upload_bridge(settings) as (service, url), aiohttp.ClientSession() as http:
        r = await http.post(f"{url}/api/upload", data=b"x" * 300_001)  # Content-Length
        assert r.status == 413
        error = (await r.json())["error"]
        assert error["code"] == "RESOURCE_EXHAUSTED" and "300000" in error["message"]
        assert not service.configs, "refused before anything reached the service"

        async def chunked() -> AsyncIterator[bytes]:  # no length: counted while streamed
            for _ in range(4):
                yield b"y" * 100_000

        service.hold.clear()
        r = await http.post(f"{url}/api/upload", data=chunked())
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "RESOURCE_EXHAUSTED"
        # Held after its stream's end, that call completes only if the bridge never cancels it.
        await until(lambda: service.cancelled == 1, "the bridge cancelled the upload")
        assert not service.ends, "a body over the limit has no `end`: nothing may be stored"
        service.hold.set()
        r = await http.post(f"{url}/api/upload", data=b"z" * 1000)  # the bridge goes on
        assert r.status == 201
        assert (service.completed, service.cancelled) == (1, 1)


async def test_no_body_is_400_and_bad_query_values_name_their_field() -> None:
    async with upload_bridge() as (service, url), aiohttp.ClientSession() as http:
        r = await http.post(f"{url}/api/upload")
        assert r.status == 400
        assert (await r.json())["error"]["field"] == "body"
        r = await http.post(f"{url}/api/upload?title={'t' * 201}", data=b"abc")
        assert r.status == 400 and (await r.json())["error"]["field"] == "title"
        r = await http.post(f"{url}/api/upload", data=b"abc", headers={"Origin": "http://evil"})
        assert r.status == 403
    assert not service.configs


async def test_uploads_need_a_sign_in_in_api_key_mode() -> None:
    settings = BridgeSettings(auth="api-key")
    async with upload_bridge(settings, api_key="k" * 20) as (service, url):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            r = await http.post(f"{url}/api/upload", data=b"abc")
            assert r.status == 401
            r = await http.post(f"{url}/api/login", json={"api_key": "k" * 20})
            assert r.status == 200, await r.text()
            r = await http.post(f"{url}/api/upload", data=b"abc")
            assert r.status == 201, await r.text()
    assert len(service.configs) == 1


async def test_the_transcript_json_carries_its_refinement() -> None:
    async with upload_bridge() as (_, url), aiohttp.ClientSession() as http:
        t = await (await http.get(f"{url}/api/transcripts/t9")).json()
    assert t["refinement"] == "failed"
    assert t["refinement_progress"] == 0.25
    assert t["refinement_detail"] == "the recording is missing"


@pytest.mark.parametrize("path", ["/favicon.ico", "/static/favicon.svg"])
async def test_the_favicon_is_served(path: str) -> None:
    async with upload_bridge() as (_, url), aiohttp.ClientSession() as http:
        r = await http.get(f"{url}{path}")
        assert r.status == 200 and r.content_type == "image/svg+xml"
        assert (await r.text()).startswith("<svg")


def test_the_upload_limit_is_a_setting() -> None:
    assert BridgeSettings().max_upload_bytes == 1 << 30
    assert build_bridge_settings(["--max-upload-bytes", "5000"], {}).max_upload_bytes == 5000
    env = {"TRANSCRIBE_BRIDGE_MAX_UPLOAD_BYTES": "7000"}
    assert build_bridge_settings([], env).max_upload_bytes == 7000
    with pytest.raises(ValueError, match="max-upload-bytes"):
        BridgeSettings(max_upload_bytes=0)
