"""The stored-transcript RPCs with plain arguments and dataclass results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from transcribe.v1 import transcripts_pb2 as pb
from transcribe.v1 import transcripts_pb2_grpc

from clients.python.models import (
    Export,
    Page,
    RecordingInfo,
    SearchHit,
    Transcript,
    Voice,
    seconds,
)

ExportFormat = Literal["txt", "srt", "vtt", "json"]
_FORMATS: dict[str, pb.ExportFormat.ValueType] = {
    "txt": pb.EXPORT_FORMAT_TXT,
    "srt": pb.EXPORT_FORMAT_SRT,
    "vtt": pb.EXPORT_FORMAT_VTT,
    "json": pb.EXPORT_FORMAT_JSON,
}


def _timestamp(t: datetime | None) -> Timestamp | None:
    if t is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


class TranscriptClient:
    """List, read, search, edit, export, delete and download the caller's transcripts.

    Errors are grpc.aio.AioRpcError: NOT_FOUND for an unknown id (or someone else's),
    INVALID_ARGUMENT for bad values.
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)

    async def list_transcripts(
        self,
        *,
        page_size: int = 20,
        page_token: str = "",
        tags: list[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page[Transcript]:
        """One page, newest first, without segments."""
        resp = await self._stub.ListTranscripts(
            pb.ListTranscriptsRequest(
                page_size=page_size,
                page_token=page_token,
                tags=tags or [],
                created_after=_timestamp(created_after),
                created_before=_timestamp(created_before),
            )
        )
        items = tuple(Transcript.from_proto(t) for t in resp.transcripts)
        return Page(items, resp.next_page_token)

    async def iter_transcripts(
        self, *, limit: int | None = None, tags: list[str] | None = None
    ) -> AsyncIterator[Transcript]:
        """Every transcript (at most `limit`), newest first, fetching pages as needed."""
        token, count = "", 0
        while True:
            size = 100 if limit is None else max(1, min(100, limit - count))
            page = await self.list_transcripts(page_size=size, page_token=token, tags=tags)
            for t in page.items:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield t
            token = page.next_page_token
            if not token or (limit is not None and count >= limit):
                return

    async def get(self, transcript_id: str) -> Transcript:
        """One transcript with all its final segments."""
        resp = await self._stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=transcript_id))
        return Transcript.from_proto(resp.transcript)

    async def search(
        self, query: str, *, page_size: int = 20, page_token: str = "", speaker: str = ""
    ) -> Page[SearchHit]:
        """Segments holding all the words, or a "quoted phrase"; newest transcript first.
        `speaker` keeps only one speaker's segments: a label ("S2") or a name ("Alice")."""
        resp = await self._stub.SearchTranscripts(
            pb.SearchTranscriptsRequest(
                query=query, page_size=page_size, page_token=page_token, speaker=speaker
            )
        )
        return Page(tuple(SearchHit.from_proto(h) for h in resp.hits), resp.next_page_token)

    async def update(
        self,
        transcript_id: str,
        *,
        title: str | None = None,
        tags: list[str] | None = None,
        speaker_names: dict[str, str] | None = None,
    ) -> Transcript:
        """Changes only the fields given (an empty list or "" clears one)."""
        changes = {"title": title, "tags": tags, "speaker_names": speaker_names}
        paths = [name for name, value in changes.items() if value is not None]
        t = pb.Transcript(
            id=transcript_id, title=title or "", tags=tags or [], speaker_names=speaker_names or {}
        )
        resp = await self._stub.UpdateTranscript(
            pb.UpdateTranscriptRequest(transcript=t, update_mask=FieldMask(paths=paths))
        )
        return Transcript.from_proto(resp.transcript)

    async def list_voices(self) -> tuple[Voice, ...]:
        """The voices remembered for you (streams with `remember_voices`), by name."""
        resp = await self._stub.ListVoices(pb.ListVoicesRequest())
        return tuple(Voice.from_proto(v) for v in resp.voices)

    async def forget_voice(self, name: str) -> None:
        """Deletes a remembered voice's print; names already given stay. NOT_FOUND if none."""
        await self._stub.DeleteVoice(pb.DeleteVoiceRequest(name=name))

    async def delete(self, transcript_id: str) -> None:
        """Deletes the transcript, its search entries and its recording."""
        await self._stub.DeleteTranscript(pb.DeleteTranscriptRequest(transcript_id=transcript_id))

    async def export(self, transcript_id: str, fmt: ExportFormat) -> Export:
        """The transcript rendered as plain text, SRT, WebVTT or JSON."""
        if fmt not in _FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(_FORMATS)}")
        resp = await self._stub.ExportTranscript(
            pb.ExportTranscriptRequest(transcript_id=transcript_id, format=_FORMATS[fmt])
        )
        return Export(resp.content, resp.mime_type, resp.file_name)

    async def recording(
        self, transcript_id: str, *, start: int = 0, length: int = 0
    ) -> tuple[RecordingInfo, AsyncIterator[bytes]]:
        """The stored recording (or `length` bytes from byte `start`): its metadata, then its
        bytes as they arrive."""
        call = self._stub.GetRecording(
            pb.GetRecordingRequest(
                transcript_id=transcript_id, range_start=start, range_length=length
            )
        )
        first = await call.read()
        if not isinstance(first, pb.GetRecordingResponse):
            raise RuntimeError("the server ended GetRecording without a message")
        info = RecordingInfo(first.mime_type, first.total_size, seconds(first.duration))

        async def data() -> AsyncIterator[bytes]:
            if first.data:
                yield first.data
            while isinstance(msg := await call.read(), pb.GetRecordingResponse):
                yield msg.data

        return info, data()

    async def upload(
        self,
        chunks: AsyncIterator[bytes],
        *,
        title: str = "",
        tags: list[str] | None = None,
        language_code: str = "",
        model: str = "",
        encoding: int = 0,
        sample_rate_hertz: int = 0,
        channels: int = 0,
    ) -> Transcript:
        """Store a recorded file (its bytes in order) and queue it for transcription.

        Returns the transcript at once (refinement "pending"); `wait_refined()` follows
        it to "done" or "failed". `encoding` is a transcribe.v1 AudioEncoding value
        (0 = detect the container from the bytes). `model` and `language_code` as for a
        stream ("": the server's default model; detect the language on a multilingual one).

        The last message is `end` with the number of bytes sent, sent only once `chunks`
        is exhausted: an upload cut short (an error reading the file, a cancel) can never
        be stored as if it were the whole file."""

        async def requests() -> AsyncIterator[pb.UploadRecordingRequest]:
            yield pb.UploadRecordingRequest(
                config=pb.UploadConfig(
                    encoding=encoding,  # type: ignore[arg-type]
                    sample_rate_hertz=sample_rate_hertz,
                    audio_channel_count=channels,
                    title=title,
                    tags=tags or [],
                    language_code=language_code,
                    model=model,
                )
            )
            sent = 0
            async for chunk in chunks:
                sent += len(chunk)
                yield pb.UploadRecordingRequest(audio_content=chunk)
            yield pb.UploadRecordingRequest(end=pb.UploadEnd(total_bytes=sent))

        resp = await self._stub.UploadRecording(requests())
        return Transcript.from_proto(resp.transcript)

    async def wait_refined(
        self,
        transcript_id: str,
        on_progress: Callable[[Transcript], None] | None = None,
        poll_s: float = 1.0,
    ) -> Transcript:
        """Poll until the transcript's refinement is done or failed; the last state."""
        while True:
            t = await self.get(transcript_id)
            if on_progress is not None:
                on_progress(t)
            if t.refinement in ("done", "failed", ""):
                return t
            await asyncio.sleep(poll_s)

    async def save_recording(self, transcript_id: str, path: str | Path) -> RecordingInfo:
        """Downloads the recording to `path`, written as it arrives."""
        info, data = await self.recording(transcript_id)
        with Path(path).open("wb") as f:  # noqa: ASYNC230 (local disk writes of small chunks)
            async for chunk in data:
                f.write(chunk)
        return info
