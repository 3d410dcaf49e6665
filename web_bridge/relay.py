"""One browser WebSocket <-> one gRPC StreamingTranscribe call.

Client messages: a JSON `{"type": "start", "config": {...}}`, then binary audio
chunks exactly as MediaRecorder produced them, then `{"type": "stop"}`.
Server messages (JSON): `session`, `interim`, `final`, `speech`, `error`
(with the gRPC status name and message) and `end`. A `final` with `revision` > 0
carries new text for a `segment_index` already sent: the page replaces that segment
(revisions are on unless the start config says `"revisions": false`).

Back-pressure both ways: audio goes through a bounded queue, and the socket is
not read while the queue is full; results are sent with `send_json`, which
waits while the browser is slow to read. A socket that closes without `stop`
is a dropped connection: the gRPC call is cancelled, so the server stores the
transcript as interrupted and the page can resume it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import WSMsgType, web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

logger = logging.getLogger(__name__)
Enc = streaming_pb2.AudioEncoding
ENCODINGS = {
    "webm": Enc.AUDIO_ENCODING_WEBM_OPUS,
    "ogg": Enc.AUDIO_ENCODING_OGG_OPUS,
    "wav": Enc.AUDIO_ENCODING_WAV,
    "auto": Enc.AUDIO_ENCODING_UNSPECIFIED,
}


class ProtocolError(Exception):
    """The browser broke the message protocol; sent back as INVALID_ARGUMENT."""


def stream_config(raw: Any) -> streaming_pb2.StreamingTranscriptionConfig:
    """The page's JSON config as the gRPC config (the service validates values)."""
    if not isinstance(raw, dict):
        raise ProtocolError("start.config must be an object")
    encoding = ENCODINGS.get(str(raw.get("encoding", "webm")))
    if encoding is None:
        raise ProtocolError(f"start.config.encoding must be one of {sorted(ENCODINGS)}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ProtocolError("start.config.tags must be a list of strings")
    return streaming_pb2.StreamingTranscriptionConfig(
        encoding=encoding,
        interim_results=bool(raw.get("interim_results", True)),
        enable_word_time_offsets=bool(raw.get("word_time_offsets", False)),
        enable_voice_activity_events=True,
        title=str(raw.get("title", "")),
        tags=tags,
        resume_transcript_id=str(raw.get("resume_transcript_id", "")),
        language_code=str(raw.get("language_code", "")),
        live=True,  # a browser page streams its microphone
        enable_revisions=bool(raw.get("revisions", True)),  # the page replaces by index
    )


def _secs(d: Any) -> float:
    return round(float(d.seconds) + float(d.nanos) / 1e9, 3)


def to_json(resp: streaming_pb2.StreamingTranscribeResponse) -> list[dict[str, Any]]:
    """A gRPC response as the page's typed messages."""
    out: list[dict[str, Any]] = []
    if resp.HasField("session"):
        out.append(
            {
                "type": "session",
                "transcript_id": resp.session.transcript_id,
                "model": resp.session.model,
                "start_offset": _secs(resp.session.start_offset),
                "first_segment_index": resp.session.first_segment_index,
            }
        )
    if resp.speech_event_type:
        begin = resp.speech_event_type == streaming_pb2.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_BEGIN
        out.append(
            {
                "type": "speech",
                "event": "begin" if begin else "end",
                "offset": _secs(resp.speech_event_offset),
            }
        )
    for r in resp.results:
        alt = r.alternatives[0] if r.alternatives else None
        msg: dict[str, Any] = {
            "type": "final" if r.is_final else "interim",
            "text": alt.transcript if alt else "",
            "start": _secs(r.result_start_offset),
            "end": _secs(r.result_end_offset),
        }
        if r.is_final:
            msg["segment_index"] = r.segment_index
            msg["revision"] = r.revision
            msg["confidence"] = round(alt.confidence, 3) if alt else 0.0
        else:
            msg["stability"] = round(r.stability, 2)
        out.append(msg)
    return out


async def relay(
    ws: web.WebSocketResponse,
    stub: streaming_pb2_grpc.TranscriptionServiceAsyncStub,
    max_buffered: int,
    metadata: tuple[tuple[str, str], ...] = (),
) -> None:
    """Run one socket's session until either side ends; always closes both."""
    first = await ws.receive()
    try:
        if first.type != WSMsgType.TEXT:
            raise ProtocolError("the first message must be a JSON start message")
        start = json.loads(first.data)
        if not isinstance(start, dict) or start.get("type") != "start":
            raise ProtocolError('the first message must be {"type": "start", "config": {...}}')
        config = stream_config(start.get("config", {}))
    except (ProtocolError, json.JSONDecodeError) as exc:
        await ws.send_json({"type": "error", "code": "INVALID_ARGUMENT", "message": str(exc)})
        await ws.close()
        return

    audio: asyncio.Queue[bytes | None] = asyncio.Queue(max_buffered)
    stopped = False
    dropped = False

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(config=config)
        while (chunk := await audio.get()) is not None:
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=chunk)

    call = stub.StreamingTranscribe(requests(), metadata=metadata)

    async def read_socket() -> None:
        nonlocal stopped, dropped
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await audio.put(msg.data)  # waits while gRPC is behind: back-pressure
            elif msg.type == WSMsgType.TEXT:
                kind = json.loads(msg.data).get("type") if msg.data.startswith("{") else None
                if kind == "stop":
                    stopped = True
                    await audio.put(None)
                    return
            else:
                break
        if not stopped:  # dropped without stop: abandon the call (transcript interrupted)
            dropped = True
            call.cancel()

    reader = asyncio.create_task(read_socket())
    try:
        async for resp in call:
            for message in to_json(resp):
                await ws.send_json(message)
        await ws.send_json({"type": "end"})
    except grpc.aio.AioRpcError as err:
        if not ws.closed:
            await ws.send_json(
                {"type": "error", "code": err.code().name, "message": err.details() or ""}
            )
    except asyncio.CancelledError:
        if not dropped:  # our own task is being cancelled (shutdown): propagate
            raise
    except ConnectionResetError:
        pass
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        call.cancel()
        if not ws.closed:
            await ws.close()
