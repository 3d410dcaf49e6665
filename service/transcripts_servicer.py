"""TranscriptService: proto <-> domain translation for the stored-transcript RPCs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.auth import principal_of
from service.convert import duration, from_timestamp, timestamp, word_info
from service.domain import SearchHit, Segment, TranscriptMeta
from service.errors import (
    InvalidArgumentError,
    UnavailableError,
    grpc_errors,
    log_unexpected,
    status_for,
)
from service.export import render
from service.recordings import RecordingStore
from service.registry import StreamRegistry
from service.speakers import voices
from service.storage.base import TranscriptStore
from service.storage.query import check_page_size
from service.upload import Uploads

logger = logging.getLogger(__name__)
pb = transcripts_pb2
Ctx = grpc.aio.ServicerContext[Any, Any]
UPDATABLE = {"title", "tags", "speaker_names"}
EXPORT = {
    pb.EXPORT_FORMAT_TXT: "txt",
    pb.EXPORT_FORMAT_SRT: "srt",
    pb.EXPORT_FORMAT_VTT: "vtt",
    pb.EXPORT_FORMAT_JSON: "json",
}


def transcript_message(
    meta: TranscriptMeta, segments: list[Segment] | None = None
) -> pb.Transcript:
    """Domain metadata (and optionally segments) as a Transcript message."""
    msg = pb.Transcript(
        id=meta.id,
        create_time=timestamp(meta.created_at),
        duration=duration(meta.duration_s),
        language_code=meta.language,
        language_detected=meta.language_detected,
        model=meta.model,
        status=meta.status.value,  # type: ignore[arg-type]
        title=meta.title,
        tags=list(meta.tags),
        keywords=list(meta.keywords),
        speaker_names=meta.speaker_names,
        segment_count=meta.segment_count,
        recording_mime_type=meta.recording_mime_type,
        refinement_state=meta.refinement.state.value,  # type: ignore[arg-type]
        refinement_progress=meta.refinement.progress,
        refinement_detail=meta.refinement.detail,
    )
    if meta.ended_at is not None:
        msg.end_time.CopyFrom(timestamp(meta.ended_at))
    for seg in segments or []:
        msg.segments.append(
            pb.Segment(
                index=seg.index,
                start_offset=duration(seg.start),
                end_offset=duration(seg.end),
                text=seg.text,
                confidence=seg.confidence,
                words=[word_info(w, seg.speaker_label) for w in seg.words],
                speaker_label=seg.speaker_label,
            )
        )
    return msg


def hit_message(hit: SearchHit) -> pb.SearchHit:
    return pb.SearchHit(
        transcript_id=hit.transcript_id,
        transcript_title=hit.transcript_title,
        segment_index=hit.segment_index,
        start_offset=duration(hit.start),
        snippet=hit.snippet,
        highlights=[pb.TextRange(start=r.start, end=r.end) for r in hit.highlights],
        create_time=timestamp(hit.created_at),
        kind=pb.SearchHitKind.ValueType(hit.kind.value),
        speaker_label=hit.speaker_label,
        speaker_name=hit.speaker_name,
    )


def _id(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgumentError("transcript_id is empty; pass the id from SessionInfo or List")
    return value


def _clean_tags(tags: list[str]) -> list[str]:
    out = [t.strip() for t in tags if t.strip()]
    if len(out) > 20 or any(len(t) > 50 for t in out):
        raise InvalidArgumentError("at most 20 tags of at most 50 characters each")
    return list(dict.fromkeys(out))


class TranscriptServicer(transcripts_pb2_grpc.TranscriptServiceServicer):
    """List, read, search, edit, export, delete and replay stored transcripts."""

    def __init__(
        self,
        store: TranscriptStore,
        recordings: RecordingStore,
        max_page_size: int = 100,
        uploads: Uploads | None = None,
        live: StreamRegistry | None = None,
    ) -> None:
        self._store = store
        self._recordings = recordings
        self._max_page = max_page_size
        self._uploads = uploads
        self._live = live
        """This server's live streams: a rename is pushed to the transcript's (None: not)."""

    @grpc_errors(logger)
    async def UploadRecording(
        self, request_iterator: AsyncIterator[pb.UploadRecordingRequest], context: Ctx
    ) -> pb.UploadRecordingResponse:
        if self._uploads is None:
            raise UnavailableError("this server does not accept uploads")
        meta = await self._uploads.upload(principal_of(context), request_iterator)
        return pb.UploadRecordingResponse(transcript=transcript_message(meta))

    @grpc_errors(logger)
    async def ListTranscripts(
        self, request: pb.ListTranscriptsRequest, context: Ctx
    ) -> pb.ListTranscriptsResponse:
        page_size = check_page_size(request.page_size, maximum=self._max_page)
        after = _time("created_after", request) if request.HasField("created_after") else None
        before = _time("created_before", request) if request.HasField("created_before") else None
        # Nothing is created before 1970 or after 2200: such bounds are empty or no bound.
        if (before is not None and before <= EPOCH) or (after is not None and after >= LATEST):
            return pb.ListTranscriptsResponse()
        if after is not None and before is not None and after > before:
            return pb.ListTranscriptsResponse()
        metas, token = await self._store.list_transcripts(
            principal_of(context),
            page_size,
            request.page_token,
            tags=_clean_tags(list(request.tags)),
            created_after=after if after is not None and after > EPOCH else None,
            created_before=before if before is not None and before < LATEST else None,
        )
        return pb.ListTranscriptsResponse(
            transcripts=[transcript_message(m) for m in metas], next_page_token=token
        )

    @grpc_errors(logger)
    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: Ctx
    ) -> pb.GetTranscriptResponse:
        owner, tid = principal_of(context), _id(request.transcript_id)
        meta = await self._store.get_transcript(owner, tid)
        segments = await self._store.get_segments(owner, tid)
        return pb.GetTranscriptResponse(transcript=transcript_message(meta, segments))

    @grpc_errors(logger)
    async def SearchTranscripts(
        self, request: pb.SearchTranscriptsRequest, context: Ctx
    ) -> pb.SearchTranscriptsResponse:
        hits, token = await self._store.search(
            principal_of(context),
            request.query,
            check_page_size(request.page_size, maximum=self._max_page),
            request.page_token,
            speaker=request.speaker,
        )
        return pb.SearchTranscriptsResponse(
            hits=[hit_message(h) for h in hits], next_page_token=token
        )

    @grpc_errors(logger)
    async def UpdateTranscript(
        self, request: pb.UpdateTranscriptRequest, context: Ctx
    ) -> pb.UpdateTranscriptResponse:
        paths = set(request.update_mask.paths)
        if not paths:
            raise InvalidArgumentError("update_mask is empty; name the fields to change")
        unknown = paths - UPDATABLE
        if unknown:
            raise InvalidArgumentError(
                f"update_mask names {sorted(unknown)}; only title, tags and speaker_names change"
            )
        t = request.transcript
        if len(t.title) > 200:
            raise InvalidArgumentError("title is longer than 200 characters")
        if "speaker_names" in paths and any(not k.strip() for k in t.speaker_names):
            # DynamoDB refuses empty map keys; SQLite would store one no speaker can have.
            raise InvalidArgumentError(
                'speaker_names has an empty speaker label: each key names a label, e.g. "spk1"'
            )
        owner, tid = principal_of(context), _id(t.id)
        # Stored trimmed: "" is the one way to say unnamed (a conditional write of a name
        # from a remembered voice tests for it: TranscriptStore.name_unnamed_speakers).
        names = {k: v.strip() for k, v in t.speaker_names.items()}
        if "speaker_names" in paths:  # a transcript made with remember_voices: remember them
            await voices.remember_named(
                self._store, owner, await self._store.get_transcript(owner, tid), names
            )
        meta = await self._store.update_transcript(
            owner,
            tid,
            title=t.title if "title" in paths else None,
            tags=_clean_tags(list(t.tags)) if "tags" in paths else None,
            speaker_names=names if "speaker_names" in paths else None,
        )
        if "speaker_names" in paths and self._live is not None:  # live streams follow it
            self._live.names_changed(tid, meta.speaker_names)
        return pb.UpdateTranscriptResponse(transcript=transcript_message(meta))

    @grpc_errors(logger)
    async def ListVoices(
        self, request: pb.ListVoicesRequest, context: Ctx
    ) -> pb.ListVoicesResponse:
        found = await self._store.list_voices(principal_of(context))
        return pb.ListVoicesResponse(
            voices=[
                pb.Voice(
                    name=v.name,
                    transcript_id=v.transcript_id,
                    speaker_label=v.speaker_label,
                    update_time=timestamp(v.updated_at),
                )
                for v in found
            ]
        )

    @grpc_errors(logger)
    async def DeleteVoice(
        self, request: pb.DeleteVoiceRequest, context: Ctx
    ) -> pb.DeleteVoiceResponse:
        name = request.name.strip()
        if not name:
            raise InvalidArgumentError("name is empty; pass a name from ListVoices")
        await self._store.delete_voice(principal_of(context), name)
        if self._live is not None:  # live streams that named it do not store it again
            self._live.voice_forgotten(principal_of(context), name)
        return pb.DeleteVoiceResponse()

    @grpc_errors(logger)
    async def DeleteTranscript(
        self, request: pb.DeleteTranscriptRequest, context: Ctx
    ) -> pb.DeleteTranscriptResponse:
        tid = _id(request.transcript_id)
        await self._store.delete_transcript(principal_of(context), tid)
        await self._recordings.delete(tid)
        return pb.DeleteTranscriptResponse()

    @grpc_errors(logger)
    async def ExportTranscript(
        self, request: pb.ExportTranscriptRequest, context: Ctx
    ) -> pb.ExportTranscriptResponse:
        fmt = EXPORT.get(request.format)
        if fmt is None:
            raise InvalidArgumentError("format must be one of TXT, SRT, VTT or JSON")
        owner, tid = principal_of(context), _id(request.transcript_id)
        meta = await self._store.get_transcript(owner, tid)
        segments = await self._store.get_segments(owner, tid)
        content, mime, name = render(fmt, meta, segments)
        return pb.ExportTranscriptResponse(
            content=content.encode("utf-8"), mime_type=mime, file_name=name
        )

    async def GetRecording(
        self, request: pb.GetRecordingRequest, context: Ctx
    ) -> AsyncIterator[pb.GetRecordingResponse]:
        try:
            owner, tid = principal_of(context), _id(request.transcript_id)
            if request.range_start < 0 or request.range_length < 0:
                raise InvalidArgumentError("range_start and range_length must not be negative")
            await self._store.get_transcript(owner, tid)  # ownership check
            info = self._recordings.info(tid)
            if request.range_start > info.size:
                raise InvalidArgumentError(
                    f"range_start {request.range_start} is past the end ({info.size} bytes)"
                )
            first = True
            async for data in self._recordings.read(tid, request.range_start, request.range_length):
                msg = pb.GetRecordingResponse(data=data)
                if first:
                    msg.mime_type = info.mime_type
                    msg.total_size = info.size
                    msg.duration.CopyFrom(duration(info.duration_s))
                    first = False
                yield msg
            if first:  # empty range: still tell the caller what the recording is
                yield pb.GetRecordingResponse(
                    mime_type=info.mime_type,
                    total_size=info.size,
                    duration=duration(info.duration_s),
                )
        except Exception as exc:
            log_unexpected(logger, exc, "GetRecording")
            code, message = status_for(exc)
            await context.abort(code, message)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _time(field: str, request: pb.ListTranscriptsRequest) -> datetime:
    try:
        return from_timestamp(getattr(request, field))
    except (ValueError, OverflowError) as exc:
        raise InvalidArgumentError(f"{field} is not a valid timestamp ({exc})") from exc
