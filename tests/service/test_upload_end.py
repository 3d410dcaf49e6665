"""UploadRecording's last message, `end`: the byte count the client sent, checked by the
server. A client cancelled mid-upload can reach the server as a plain end of its request
stream; only `end` with the right count proves the file whole. A wrong count, or anything
after `end`, is INVALID_ARGUMENT and leaves nothing; an upload without `end` (an older
client) is still stored. Real in-process server; its refiner held, so no decoding."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from clients.python.transcripts import TranscriptClient
from service.server import RunningServer
from service.upload import Uploads
from tests.helpers import chunks, dev_clips

pb = transcripts_pb2
Req = pb.UploadRecordingRequest


def _file() -> bytes:
    """The smallest test clip (FLAC, ~52 KB): four 16 KiB messages."""
    return min((c.path for c in dev_clips()), key=lambda p: p.stat().st_size).read_bytes()


def _upload(*after_audio: Req) -> list[Req]:
    """The config, the file in 16 KiB chunks, then `after_audio`."""
    audio = [Req(audio_content=c) for c in chunks(_file(), 16 * 1024)]
    return [Req(config=pb.UploadConfig(title="board call")), *audio, *after_audio]


def _end(total: int) -> Req:
    return Req(end=pb.UploadEnd(total_bytes=total))


async def _requests(messages: list[Req]) -> AsyncIterator[Req]:
    """`messages`, then the half-close."""
    for m in messages:
        yield m


async def _refused(server: RunningServer, messages: list[Req], tmp_path: Path) -> str:
    """Upload `messages`: the call must end INVALID_ARGUMENT and leave no transcript and no
    recording behind. Its details."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadRecording(_requests(messages))
        listed = await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert not listed.transcripts, [(t.id, t.title) for t in listed.transcripts]
    assert not any((tmp_path / "recordings").rglob("*.*")), "no recording is kept"
    return err.value.details() or ""


async def _stored(server: RunningServer, messages: list[Req]) -> pb.Transcript:
    """Upload `messages`: stored, COMPLETE, with its recording; the listed transcript."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
        made = (await stub.UploadRecording(_requests(messages))).transcript
        listed = await stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=10))
    assert [t.id for t in listed.transcripts] == [made.id]
    stored = listed.transcripts[0]
    assert stored.status == pb.TRANSCRIPT_STATUS_COMPLETE and stored.recording_mime_type
    assert stored.refinement_state == pb.REFINEMENT_STATE_PENDING
    return stored


async def test_an_upload_ending_with_its_byte_count_is_stored(
    refiner_held: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.upload")
    stored = await _stored(refiner_held, _upload(_end(len(_file()))))
    assert stored.title == "board call" and stored.duration.seconds >= 1
    assert "without `end`" not in caplog.text


@pytest.mark.parametrize("off", [-1, 1], ids=["fewer-received", "more-received"])
async def test_an_end_with_another_byte_count_is_refused_and_leaves_nothing(
    refiner_held: RunningServer, tmp_path: Path, off: int
) -> None:
    """`fewer-received` is the truncation `end` exists for: the client sent a byte more
    than reached the server."""
    size = len(_file())
    details = await _refused(refiner_held, _upload(_end(size - off)), tmp_path)
    assert details == (
        f"the client sent {size - off} bytes but the server received {size}; "
        "nothing was stored, send the file again"
    )


@pytest.mark.parametrize("after", ["audio", "end"])
async def test_a_message_after_end_is_refused_and_leaves_nothing(
    refiner_held: RunningServer, tmp_path: Path, after: str
) -> None:
    size = len(_file())
    more = Req(audio_content=b"late") if after == "audio" else _end(size)
    details = await _refused(refiner_held, _upload(_end(size), more), tmp_path)
    kind = "audio_content" if after == "audio" else "end"
    assert f"sent {kind} after its `end`" in details and "nothing was stored" in details


async def test_an_upload_without_end_is_still_stored_and_logged(
    refiner_held: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client from before `end`: its half-close is taken as the end of the file."""
    caplog.set_level(logging.INFO, logger="service.upload")
    stored = await _stored(refiner_held, _upload())
    logged = [r.getMessage() for r in caplog.records if "without `end`" in r.getMessage()]
    assert logged == [
        f"upload {stored.id} ended without `end` (a client from before it?): "
        f"stored as received, {len(_file())} bytes, unchecked"
    ]


async def test_the_python_clients_upload_ends_with_its_byte_count(
    refiner_held: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the server receives from `TranscriptClient.upload` (and so `transcribe
    upload`): the config, the chunks, then `end` with their total, then the half-close."""
    seen: list[Req] = []
    receive = Uploads.upload

    async def observed(self: Uploads, owner: str, requests: AsyncIterator[Req]) -> object:
        async def tap() -> AsyncIterator[Req]:
            async for r in requests:
                seen.append(r)
                yield r

        return await receive(self, owner, tap())

    monkeypatch.setattr(Uploads, "upload", observed)
    data = _file()

    async def file_chunks() -> AsyncIterator[bytes]:
        for c in chunks(data, 20_000):
            yield c

    async with grpc.aio.insecure_channel(f"127.0.0.1:{refiner_held.port}") as ch:
        made = await TranscriptClient(ch).upload(file_chunks(), title="from the client")
    assert made.id and made.refinement == "pending"
    kinds = [r.WhichOneof("request") for r in seen]
    assert kinds == ["config", "audio_content", "audio_content", "audio_content", "end"]
    assert seen[-1].end.total_bytes == len(data) == sum(len(r.audio_content) for r in seen)
