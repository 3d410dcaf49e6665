"""Live transcription: the config goes first, audio after it, typed results come back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from clients.python.audio import PCM_RATE, audio_chunks, iterate_in_thread
from clients.python.models import Result

Enc = streaming_pb2.AudioEncoding
# The server answers a config at once (session info, or an error); this only bounds the
# wait for one that does not.
_ANSWER_WAIT_S = 1.0
_SUFFIX = {
    ".flac": Enc.AUDIO_ENCODING_FLAC,
    ".wav": Enc.AUDIO_ENCODING_WAV,
    ".mp3": Enc.AUDIO_ENCODING_MP3,
    ".webm": Enc.AUDIO_ENCODING_WEBM_OPUS,
    ".ogg": Enc.AUDIO_ENCODING_OGG_OPUS,
    ".opus": Enc.AUDIO_ENCODING_OGG_OPUS,
}


def encoding_for(path: str | Path) -> streaming_pb2.AudioEncoding.ValueType:
    """The encoding to declare when sending a file's own bytes (unknown: let the server
    detect the container)."""
    return _SUFFIX.get(Path(path).suffix.lower(), Enc.AUDIO_ENCODING_UNSPECIFIED)


def _duration(s: float | None) -> Duration | None:
    if s is None:
        return None
    d = Duration()
    d.FromNanoseconds(round(s * 1e9))
    return d


class FinalText:
    """The final text of a stream so far, one entry per `segment_index`.

    Joining finals in arrival order would repeat a sentence the server revised (it sends
    the segment again with `revision` > 0); keyed by index, the revision replaces it.
    """

    def __init__(self) -> None:
        self._by_index: dict[int, Result] = {}

    def add(self, result: Result) -> bool:
        """Takes a final (other kinds are ignored); True when it replaced a segment's text."""
        if not result.is_final:
            return False
        replaced = result.segment_index in self._by_index
        self._by_index[result.segment_index] = result
        return replaced

    @property
    def segments(self) -> list[Result]:
        """The current final of every segment, in segment order."""
        return [self._by_index[i] for i in sorted(self._by_index)]

    @property
    def text(self) -> str:
        return " ".join(r.text for r in self.segments if r.text)


@dataclass
class StreamingTranscriber:
    """How to transcribe one kind of audio on `channel`; each `transcribe()` is one stream.

    The defaults send self-describing containers (WAV, FLAC, MP3, WebM, Ogg) as they are;
    raw PCM needs `encoding=Enc.AUDIO_ENCODING_LINEAR16` and `sample_rate_hertz`.
    """

    channel: grpc.aio.Channel
    encoding: streaming_pb2.AudioEncoding.ValueType = Enc.AUDIO_ENCODING_UNSPECIFIED
    sample_rate_hertz: int = 0
    channels: int = 0
    language_code: str = ""
    interim_results: bool = True
    word_time_offsets: bool = True
    voice_activity_events: bool = False
    prompt: str = ""
    hotwords: list[str] = field(default_factory=list)
    endpointing_silence_s: float | None = None
    max_utterance_s: float | None = None
    title: str = ""
    tags: list[str] = field(default_factory=list)
    resume_transcript_id: str = ""
    live: bool = False
    """A live source (microphone, real-time pacing): the server refuses a flood of audio."""
    revisions: bool = True
    """Ask for revised finals (a second pass over each sentence); `Result.revision` marks
    them and `FinalText` applies them. False: every final arrives exactly once."""

    def config(self) -> streaming_pb2.StreamingTranscriptionConfig:
        """The first message of every stream."""
        endpointing = streaming_pb2.EndpointingConfig(
            silence_duration=_duration(self.endpointing_silence_s),
            max_utterance_duration=_duration(self.max_utterance_s),
        )
        return streaming_pb2.StreamingTranscriptionConfig(
            encoding=self.encoding,
            sample_rate_hertz=self.sample_rate_hertz,
            audio_channel_count=self.channels,
            language_code=self.language_code,
            interim_results=self.interim_results,
            enable_word_time_offsets=self.word_time_offsets,
            enable_voice_activity_events=self.voice_activity_events,
            prompt=self.prompt,
            hotwords=self.hotwords,
            endpointing=endpointing,
            title=self.title,
            tags=self.tags,
            resume_transcript_id=self.resume_transcript_id,
            live=self.live,
            enable_revisions=self.revisions,
        )

    async def transcribe(
        self, chunks: AsyncIterable[bytes] | Iterable[bytes]
    ) -> AsyncGenerator[Result, None]:
        """Stream `chunks` (sent as they come; a plain iterable is read in a worker thread,
        so it may block) and yield Results until the server has made every word final.

        Raises grpc.aio.AioRpcError when the stream ends with an error status. Stopping
        the iteration early cancels the stream; for a deadline use `asyncio.timeout()`.
        """
        source = chunks if isinstance(chunks, AsyncIterable) else iterate_in_thread(chunks)
        answered = asyncio.Event()
        finished = False

        async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
            yield streaming_pb2.StreamingTranscribeRequest(config=self.config())
            # Audio waits (at most a moment) for the server's first answer: a stream it
            # rejects (bad key, bad config) then ends with its status, where a write racing
            # the rejection would make grpc report INTERNAL instead.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ANSWER_WAIT_S):
                    await answered.wait()
            async for chunk in source:
                if finished:
                    return
                if chunk:
                    yield streaming_pb2.StreamingTranscribeRequest(audio_content=chunk)

        stub = streaming_pb2_grpc.TranscriptionServiceStub(self.channel)
        call = stub.StreamingTranscribe(requests())
        try:
            async for response in call:
                answered.set()
                for result in Result.from_response(response):
                    yield result
        finally:
            finished = True
            answered.set()
            call.cancel()  # no-op once the stream ended; stops it when the caller left early

    async def transcribe_file(
        self, path: str | Path, *, realtime: bool = False, chunk_s: float = 0.1
    ) -> AsyncGenerator[Result, None]:
        """Any file PyAV decodes, decoded here and sent as 16 kHz mono PCM (`realtime`:
        at the audio's own pace, as from a microphone)."""
        pcm = dataclasses.replace(
            self, encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=PCM_RATE, channels=1
        )
        async with aclosing(
            pcm.transcribe(audio_chunks(path, chunk_s=chunk_s, realtime=realtime))
        ) as results:
            async for result in results:
                yield result
