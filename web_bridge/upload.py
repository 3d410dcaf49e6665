"""`POST /api/upload`: a recorded file, streamed as it arrives to UploadRecording.

The request body goes to the service in chunks while it is read (never the whole file
in memory; gRPC flow control slows the browser's upload when the service is behind),
so files of any length up to `max_upload_bytes` pass. Only a body read to its end is
followed by UploadRecording's `end` (the byte count, checked by the service); a body cut
off or over the limit cancels the call instead, so nothing of it is stored.

Title, tags, model and language come from the query
(`?title=Board%20call&tag=board&tag=q3&model=base&language=de`; no language, or "auto",
detects it on a multilingual model). The answer is the stored transcript, refinement
PENDING: the page then polls GET /api/transcripts/{id} for its progress.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from aiohttp import web
from transcribe.v1 import streaming_pb2, transcripts_pb2, transcripts_pb2_grpc

from web_bridge.api import transcript_json
from web_bridge.guard import ApiError, bad_request
from web_bridge.session import credentials
from web_bridge.state import CHANNEL, SETTINGS

logger = logging.getLogger(__name__)
pb = transcripts_pb2
CHUNK = 256 * 1024
"""Bytes per UploadRecording message: well under the service's 4 MiB message limit."""
MAX_TITLE = 200
MAX_TAGS, MAX_TAG = 20, 100
MAX_NAME = 100


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "RESOURCE_EXHAUSTED",
        f"the file is larger than this bridge accepts ({limit} bytes, --max-upload-bytes)",
        "body",
    )


def upload_config(request: web.Request) -> pb.UploadConfig:
    """Title, tags, model and language from the query, checked like the API's other inputs
    (the service checks that the model is loaded and can do the language)."""
    title = request.query.get("title", "").strip()
    if len(title) > MAX_TITLE:
        raise bad_request("title", f"longer than {MAX_TITLE} characters")
    tags = [t.strip() for t in request.query.getall("tag", []) if t.strip()]
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        raise bad_request("tag", f"at most {MAX_TAGS} tags of {MAX_TAG} characters")
    names = {f: request.query.get(f, "").strip() for f in ("model", "language")}
    for field, value in names.items():
        if len(value) > MAX_NAME:
            raise bad_request(field, f"longer than {MAX_NAME} characters")
    return pb.UploadConfig(
        encoding=streaming_pb2.AUDIO_ENCODING_UNSPECIFIED,  # the service detects the container
        title=title,
        tags=tags,
        model=names["model"],
        language_code=names["language"],
    )


async def _read(request: web.Request, size: int) -> bytes:
    """Up to `size` bytes of the body (fewer only at its end). A body cut off (the
    browser left) is a refusal the caller cancels the upload on (499, nginx's "client
    closed request"), not a 500 with a traceback in the log."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < size:
            part = await request.content.read(size - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
    except ConnectionResetError:
        logger.info("upload cut off: the browser closed the connection; nothing is stored")
        raise ApiError(
            499, "CANCELLED", "the connection closed before the whole file arrived", "body"
        ) from None
    return b"".join(parts)


async def upload(request: web.Request) -> web.StreamResponse:
    """Store a recording and queue its transcription; 413 past the size limit, 400
    without a body, the service's refusal (undecodable audio: 400) otherwise."""
    metadata = credentials(request)
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    config = upload_config(request)
    first = await _read(request, CHUNK)
    if not first:
        raise bad_request("body", "expected the recording's bytes as the request body")
    stub = transcripts_pb2_grpc.TranscriptServiceStub(request.app[CHANNEL])
    call = stub.UploadRecording(metadata=metadata)
    sent = 0
    try:
        await call.write(pb.UploadRecordingRequest(config=config))
        chunk = first
        while chunk:
            sent += len(chunk)
            if sent > limit:  # a chunked body, or a Content-Length that lied
                raise _too_large(limit)
            await call.write(pb.UploadRecordingRequest(audio_content=chunk))
            chunk = await _read(request, CHUNK)
        # The body was read to its end (a cut-off one raised above): only now may the
        # service store it, and only if it received every byte sent.
        await call.write(pb.UploadRecordingRequest(end=pb.UploadEnd(total_bytes=sent)))
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass  # the service ended the call (a refusal): its status is raised below
    except BaseException:
        call.cancel()  # the browser left or went over the limit: nothing is stored
        raise
    resp = await call
    logger.info("upload stored as %s (%d bytes)", resp.transcript.id, sent)
    return web.json_response(transcript_json(resp.transcript), status=201)
