"""The JSON API over TranscriptService: list, search, read, rename/tag, delete, export,
the recording with HTTP Range, and the remembered voices (every call made as the
signed-in principal); uploads are in web_bridge.upload."""

from __future__ import annotations

import logging
import re
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.field_mask_pb2 import FieldMask
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from web_bridge import inputs
from web_bridge.guard import bad_request
from web_bridge.session import credentials
from web_bridge.state import CHANNEL

logger = logging.getLogger(__name__)
pb = transcripts_pb2
EXPORTS = {
    "txt": pb.EXPORT_FORMAT_TXT,
    "srt": pb.EXPORT_FORMAT_SRT,
    "vtt": pb.EXPORT_FORMAT_VTT,
    "json": pb.EXPORT_FORMAT_JSON,
}
REFINEMENT = {
    pb.REFINEMENT_STATE_PENDING: "pending",
    pb.REFINEMENT_STATE_RUNNING: "running",
    pb.REFINEMENT_STATE_DONE: "done",
    pb.REFINEMENT_STATE_FAILED: "failed",
}
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _stub(request: web.Request) -> transcripts_pb2_grpc.TranscriptServiceAsyncStub:
    return transcripts_pb2_grpc.TranscriptServiceStub(request.app[CHANNEL])


def _secs(d: Any) -> float:
    return round(float(d.seconds) + float(d.nanos) / 1e9, 3)


def transcript_json(t: pb.Transcript) -> dict[str, Any]:
    return {
        "id": t.id,
        "title": t.title,
        "tags": list(t.tags),
        "keywords": list(t.keywords),
        "status": pb.TranscriptStatus.Name(t.status).removeprefix("TRANSCRIPT_STATUS_").lower(),
        "created": t.create_time.ToJsonString(),
        "duration": _secs(t.duration),
        "language_code": t.language_code,
        "model": t.model,
        "segment_count": t.segment_count,
        "recording": bool(t.recording_mime_type),
        # none (still recording, or from before refinement), pending, running, done, failed
        "refinement": REFINEMENT.get(t.refinement_state, "none"),
        "refinement_progress": round(t.refinement_progress, 3),
        "refinement_detail": t.refinement_detail,
        "segments": [
            {
                "index": s.index,
                "start": _secs(s.start_offset),
                "end": _secs(s.end_offset),
                "text": s.text,
                "speaker": s.speaker_label,
            }
            for s in t.segments
        ],
        "speaker_names": dict(t.speaker_names),
    }


async def list_transcripts(request: web.Request) -> web.StreamResponse:
    q = request.query
    resp = await _stub(request).ListTranscripts(
        pb.ListTranscriptsRequest(
            page_size=inputs.query_int(request, "page_size", 20),
            page_token=q.get("page_token", ""),
            tags=[t for t in q.getall("tag", []) if t],
        ),
        metadata=credentials(request),
    )
    return web.json_response(
        {
            "transcripts": [transcript_json(t) for t in resp.transcripts],
            "next_page_token": resp.next_page_token,
        }
    )


async def search(request: web.Request) -> web.StreamResponse:
    resp = await _stub(request).SearchTranscripts(
        pb.SearchTranscriptsRequest(
            query=request.query.get("q", ""),
            page_size=inputs.query_int(request, "page_size", 0),
            page_token=request.query.get("page_token", ""),
            speaker=request.query.get("speaker", ""),
        ),
        metadata=credentials(request),
    )
    hits = [
        {
            "transcript_id": h.transcript_id,
            "title": h.transcript_title,
            "segment_index": h.segment_index,
            "start": _secs(h.start_offset),
            "snippet": h.snippet,
            "highlights": [[r.start, r.end] for r in h.highlights],
            "kind": "transcript" if h.kind == pb.SEARCH_HIT_KIND_TRANSCRIPT else "segment",
            "speaker_label": h.speaker_label,
            "speaker_name": h.speaker_name,
        }
        for h in resp.hits
    ]
    return web.json_response({"hits": hits, "next_page_token": resp.next_page_token})


async def get_transcript(request: web.Request) -> web.StreamResponse:
    resp = await _stub(request).GetTranscript(
        pb.GetTranscriptRequest(transcript_id=request.match_info["id"]),
        metadata=credentials(request),
    )
    return web.json_response(transcript_json(resp.transcript))


async def update_transcript(request: web.Request) -> web.StreamResponse:
    """Rename, retag and/or name speakers:
    `{"title": "...", "tags": ["..."], "speaker_names": {"S1": "Alice"}}`."""
    body = await inputs.json_object(request)
    inputs.only_fields(body, {"title", "tags", "speaker_names"})
    t = pb.Transcript(id=request.match_info["id"])
    paths = []
    if "title" in body:
        t.title = inputs.string(body, "title")
        paths.append("title")
    if "tags" in body:
        t.tags.extend(inputs.string_list(body, "tags"))
        paths.append("tags")
    if "speaker_names" in body:
        t.speaker_names.update(inputs.string_map(body, "speaker_names"))
        paths.append("speaker_names")
    resp = await _stub(request).UpdateTranscript(
        pb.UpdateTranscriptRequest(transcript=t, update_mask=FieldMask(paths=paths)),
        metadata=credentials(request),
    )
    return web.json_response(transcript_json(resp.transcript))


async def delete_transcript(request: web.Request) -> web.StreamResponse:
    await _stub(request).DeleteTranscript(
        pb.DeleteTranscriptRequest(transcript_id=request.match_info["id"]),
        metadata=credentials(request),
    )
    return web.json_response({"deleted": request.match_info["id"]})


async def export(request: web.Request) -> web.StreamResponse:
    fmt = EXPORTS.get(request.query.get("format", "txt"))
    if fmt is None:
        raise bad_request("format", "must be txt, srt, vtt or json")
    resp = await _stub(request).ExportTranscript(
        pb.ExportTranscriptRequest(transcript_id=request.match_info["id"], format=fmt),
        metadata=credentials(request),
    )
    return web.Response(
        body=resp.content,
        content_type=resp.mime_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{resp.file_name}"'},
    )


async def list_voices(request: web.Request) -> web.StreamResponse:
    """The principal's remembered voices, by name (ListVoices)."""
    resp = await _stub(request).ListVoices(pb.ListVoicesRequest(), metadata=credentials(request))
    voices = [
        {
            "name": v.name,
            "transcript_id": v.transcript_id,
            "speaker_label": v.speaker_label,
            "updated": v.update_time.ToJsonString(),
        }
        for v in resp.voices
    ]
    return web.json_response({"voices": voices})


async def forget_voice(request: web.Request) -> web.StreamResponse:
    """Forget a voice: its stored voice print is deleted (DeleteVoice)."""
    name = request.match_info["name"]
    await _stub(request).DeleteVoice(
        pb.DeleteVoiceRequest(name=name), metadata=credentials(request)
    )
    return web.json_response({"forgotten": name})


def _byte_range(header: str, total: int) -> tuple[int, int]:
    """(start, length) of a single `bytes=` range; 416 when it cannot be served."""
    m = RANGE.match(header.strip())
    if m and (m.group(1) or m.group(2)):
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
        else:  # suffix range: the last N bytes
            start, end = max(0, total - int(m.group(2))), total - 1
        if start < total and end >= start:
            return start, end - start + 1
    raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{total}"})


async def recording(request: web.Request) -> web.StreamResponse:
    """The recording, with HTTP Range so the audio element can seek. A browser that
    aborts the fetch (it does while seeking) is normal traffic: one debug line."""
    stub = _stub(request)
    tid = request.match_info["id"]
    metadata = credentials(request)
    head = None
    async for msg in stub.GetRecording(
        pb.GetRecordingRequest(transcript_id=tid, range_length=1), metadata=metadata
    ):
        head = msg
        break
    if head is None:
        raise web.HTTPNotFound()
    total = head.total_size
    header = request.headers.get("Range")
    start, length = _byte_range(header, total) if header else (0, total)
    resp = web.StreamResponse(status=206 if header else 200)
    resp.content_type = head.mime_type
    resp.content_length = length
    resp.headers["Accept-Ranges"] = "bytes"
    if header:
        resp.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{total}"
    call = stub.GetRecording(
        pb.GetRecordingRequest(transcript_id=tid, range_start=start, range_length=length),
        metadata=metadata,
    )
    try:
        await resp.prepare(request)
        async for msg in call:
            await resp.write(msg.data)
        await resp.write_eof()
    except ConnectionResetError:
        logger.debug("recording %s: the browser closed the connection (seek or stop)", tid)
    except grpc.aio.AioRpcError as err:
        # The headers are sent: a JSON error now would be written into the audio bytes
        # and the browser would wait for the rest. Cut the connection: it sees a failed
        # download, as it should, and can fetch the range again.
        logger.warning("recording %s: the service failed mid-download: %s", tid, err.code().name)
        if request.transport is not None:
            request.transport.close()
    finally:
        call.cancel()
    return resp
