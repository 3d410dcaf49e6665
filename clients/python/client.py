"""The client library: channel set-up in one place, streaming with the config sent first,
typed results, and the transcript RPCs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

Enc = streaming_pb2.AudioEncoding
pb = transcripts_pb2
# Unary calls are retried by gRPC itself on UNAVAILABLE, with exponential backoff.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "transcribe.v1.TranscriptService"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
_SUFFIX = {
    ".flac": Enc.AUDIO_ENCODING_FLAC,
    ".wav": Enc.AUDIO_ENCODING_WAV,
    ".mp3": Enc.AUDIO_ENCODING_MP3,
    ".webm": Enc.AUDIO_ENCODING_WEBM_OPUS,
    ".ogg": Enc.AUDIO_ENCODING_OGG_OPUS,
    ".opus": Enc.AUDIO_ENCODING_OGG_OPUS,
}


class _ApiKey(grpc.AuthMetadataPlugin):
    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback((("authorization", f"Bearer {self._key}"),), None)


def connect(
    target: str,
    *,
    api_key: str = "",
    tls: bool = False,
    root_certificates: bytes | None = None,
    keepalive_s: int = 30,
) -> grpc.aio.Channel:
    """A channel with TLS, API-key metadata, keepalive and unary retries set in one place."""
    options = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", keepalive_s * 1000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    if tls:
        creds = grpc.ssl_channel_credentials(root_certificates)
        if api_key:
            creds = grpc.composite_channel_credentials(
                creds, grpc.metadata_call_credentials(_ApiKey(api_key))
            )
        return grpc.aio.secure_channel(target, creds, options=options)
    channel = grpc.aio.insecure_channel(target, options=options)
    if api_key:  # plaintext with a key: only sensible on localhost; sent per call below
        channel._transcribe_api_key = api_key  # type: ignore[attr-defined]
    return channel


def _metadata(channel: grpc.aio.Channel) -> tuple[tuple[str, str], ...]:
    key = getattr(channel, "_transcribe_api_key", "")
    return (("authorization", f"Bearer {key}"),) if key else ()


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Result:
    """One interim or final result, or the session start (`transcript_id` set, text empty)."""

    text: str = ""
    is_final: bool = False
    stability: float = 0.0
    start: float = 0.0
    end: float = 0.0
    segment_index: int = -1
    words: tuple[Word, ...] = ()
    transcript_id: str = ""
    speech_event: str = ""


def _secs(d: Any) -> float:
    return float(d.seconds) + float(d.nanos) / 1e9


def _result(resp: streaming_pb2.StreamingTranscribeResponse) -> list[Result]:
    out = []
    if resp.HasField("session"):
        out.append(Result(transcript_id=resp.session.transcript_id))
    if resp.speech_event_type:
        begin = resp.speech_event_type == streaming_pb2.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_BEGIN
        out.append(
            Result(speech_event="begin" if begin else "end", start=_secs(resp.speech_event_offset))
        )
    for r in resp.results:
        alt = r.alternatives[0]
        out.append(
            Result(
                text=alt.transcript,
                is_final=r.is_final,
                stability=r.stability,
                start=_secs(r.result_start_offset),
                end=_secs(r.result_end_offset),
                segment_index=r.segment_index if r.is_final else -1,
                words=tuple(
                    Word(w.word, _secs(w.start_offset), _secs(w.end_offset), w.probability)
                    for w in alt.words
                ),
            )
        )
    return out


@dataclass
class StreamingTranscriber:
    """Streams audio chunks and yields Results; the config always goes first."""

    channel: grpc.aio.Channel
    encoding: int = Enc.AUDIO_ENCODING_UNSPECIFIED
    sample_rate_hertz: int = 0
    channels: int = 0
    interim_results: bool = True
    word_time_offsets: bool = True
    title: str = ""
    tags: list[str] = field(default_factory=list)
    hotwords: list[str] = field(default_factory=list)
    prompt: str = ""

    def config(self) -> streaming_pb2.StreamingTranscriptionConfig:
        return streaming_pb2.StreamingTranscriptionConfig(
            encoding=self.encoding,  # type: ignore[arg-type]
            sample_rate_hertz=self.sample_rate_hertz,
            audio_channel_count=self.channels,
            interim_results=self.interim_results,
            enable_word_time_offsets=self.word_time_offsets,
            enable_voice_activity_events=True,
            title=self.title,
            tags=self.tags,
            hotwords=self.hotwords,
            prompt=self.prompt,
        )

    async def transcribe(
        self, chunks: AsyncIterable[bytes] | Iterable[bytes]
    ) -> AsyncIterator[Result]:
        """Send the config, then every chunk; yield results until the server ends the stream."""

        async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
            yield streaming_pb2.StreamingTranscribeRequest(config=self.config())
            if isinstance(chunks, AsyncIterable):
                async for c in chunks:
                    yield streaming_pb2.StreamingTranscribeRequest(audio_content=c)
            else:
                for c in chunks:
                    yield streaming_pb2.StreamingTranscribeRequest(audio_content=c)

        stub = streaming_pb2_grpc.TranscriptionServiceStub(self.channel)
        async for resp in stub.StreamingTranscribe(requests(), metadata=_metadata(self.channel)):
            for result in _result(resp):
                yield result


def encoding_for(path: str | Path) -> int:
    """The API encoding for a file name (containers are also auto-detected when unknown)."""
    return _SUFFIX.get(Path(path).suffix.lower(), Enc.AUDIO_ENCODING_UNSPECIFIED)


async def file_chunks(
    path: str | Path,
    chunk_bytes: int = 16000,
    realtime: bool = False,
    bytes_per_second: float = 0.0,
) -> AsyncIterator[bytes]:
    """A file's bytes in chunks; with `realtime`, paced at `bytes_per_second` (as a live source)."""
    data = await asyncio.to_thread(Path(path).read_bytes)
    started = time.monotonic()
    for offset in range(0, len(data), chunk_bytes):
        if realtime and bytes_per_second > 0:
            due = started + offset / bytes_per_second
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield data[offset : offset + chunk_bytes]


class TranscriptClient:
    """The stored-transcript RPCs with plain Python arguments."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)  # the async stub
        self._md = _metadata(channel)

    async def list_transcripts(
        self, page_size: int = 20, page_token: str = "", tags: list[str] | None = None
    ) -> pb.ListTranscriptsResponse:
        return await self._stub.ListTranscripts(
            pb.ListTranscriptsRequest(page_size=page_size, page_token=page_token, tags=tags or []),
            metadata=self._md,
        )

    async def get(self, transcript_id: str) -> pb.Transcript:
        resp = await self._stub.GetTranscript(
            pb.GetTranscriptRequest(transcript_id=transcript_id), metadata=self._md
        )
        return resp.transcript

    async def search(self, query: str, page_size: int = 20) -> pb.SearchTranscriptsResponse:
        return await self._stub.SearchTranscripts(
            pb.SearchTranscriptsRequest(query=query, page_size=page_size), metadata=self._md
        )

    async def export(self, transcript_id: str, fmt: str) -> pb.ExportTranscriptResponse:
        formats = {
            "txt": pb.EXPORT_FORMAT_TXT,
            "srt": pb.EXPORT_FORMAT_SRT,
            "vtt": pb.EXPORT_FORMAT_VTT,
            "json": pb.EXPORT_FORMAT_JSON,
        }
        return await self._stub.ExportTranscript(
            pb.ExportTranscriptRequest(transcript_id=transcript_id, format=formats[fmt]),
            metadata=self._md,
        )

    async def update(
        self, transcript_id: str, *, title: str | None = None, tags: list[str] | None = None
    ) -> pb.Transcript:
        from google.protobuf.field_mask_pb2 import FieldMask

        t = pb.Transcript(id=transcript_id, title=title or "", tags=tags or [])
        paths = [p for p, v in (("title", title), ("tags", tags)) if v is not None]
        resp = await self._stub.UpdateTranscript(
            pb.UpdateTranscriptRequest(transcript=t, update_mask=FieldMask(paths=paths)),
            metadata=self._md,
        )
        return resp.transcript

    async def delete(self, transcript_id: str) -> None:
        await self._stub.DeleteTranscript(
            pb.DeleteTranscriptRequest(transcript_id=transcript_id), metadata=self._md
        )
