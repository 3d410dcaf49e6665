"""Live transcription: the config goes first, audio after it, typed results come back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from clients.python.audio import PCM_RATE, audio_chunks, iterate_in_thread
from clients.python.models import ModelInfo, Result

Enc = streaming_pb2.AudioEncoding
# The server answers a config at once (session info, or an error); this only bounds the
# wait for one that does not.
_ANSWER_WAIT_S = 1.0
# Statuses with which a server refuses a stream it never started: at its stream limit
# (RESOURCE_EXHAUSTED), draining or gone (UNAVAILABLE). Another replica may take it.
_FAILOVER = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
_FAILOVER_BACKOFF_S = 0.1
_READ_AHEAD = 16
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


async def list_models(channel: grpc.aio.Channel) -> list[ModelInfo]:
    """The models the server has loaded, its default first, with their languages."""
    stub = streaming_pb2_grpc.TranscriptionServiceStub(channel)
    resp = await stub.ListModels(streaming_pb2.ListModelsRequest())
    return [ModelInfo.from_proto(m) for m in resp.models]


class _End:
    """The source ended (or failed with `error`)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReplayableAudio:
    """The audio of one logical stream, which may be sent to several servers in turn.

    A task reads the caller's source into a bounded queue (so a slow server slows the
    source, and a refused call never cancels the caller's generator mid-read). Chunks
    taken before a server answered are kept; `rewind()` sends them again to the next
    server, `confirm()` drops them once a server has taken the stream.
    """

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = source
        self._queue: asyncio.Queue[bytes | _End] = asyncio.Queue(_READ_AHEAD)
        self._unconfirmed: list[bytes] = []
        self._replay: deque[bytes] = deque()
        self._confirmed = False
        self._end: _End | None = None
        self._task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        try:
            async for chunk in self._source:
                await self._queue.put(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the caller's source failed: raised where it is read
            await self._queue.put(_End(exc))
            return
        await self._queue.put(_End())

    async def next(self) -> bytes | None:
        """The next chunk, None at the end; raises what the source raised."""
        if self._replay:
            chunk = self._replay.popleft()
        else:
            if self._end is None:
                if self._task is None:
                    self._task = asyncio.create_task(self._pump())
                item = await self._queue.get()
                if isinstance(item, _End):
                    self._end = item
            if self._end is not None:
                if self._end.error is not None:
                    raise self._end.error
                return None
            chunk = item  # type: ignore[assignment]
        if not self._confirmed:
            self._unconfirmed.append(chunk)
        return chunk

    def confirm(self) -> None:
        """A server took the stream: what it was sent is its own now."""
        self._confirmed = True
        self._unconfirmed.clear()

    def rewind(self) -> None:
        """The server refused the stream: send it all again, from the first chunk."""
        self._replay.extendleft(reversed(self._unconfirmed))
        self._unconfirmed = []

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


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
    model: str = ""
    """Which loaded model transcribes, by catalogue name ("tiny.en", "base"; see
    `list_models`); "" is the server's default."""
    language_code: str = ""
    """BCP-47 code ("de") to force; "" or "auto" detects it on a multilingual model (the
    results then carry it in `language_code`), English on an English-only one."""
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
    speakers: bool = False
    """Label who speaks (`Result.speaker`, "S1", "S2", ...); finals split at speaker changes."""
    min_speakers: int = 0
    max_speakers: int = 0
    """Bounds on the number of speakers (0: unset, 1 to 8)."""
    remember_voices: bool = False
    """With `speakers`: remember the voices named in this transcript, and name the
    speakers whose voice was named before, while the stream runs (a Result of kind
    "speaker_names" carries the names; they are stored in `speaker_names`).
    TranscriptClient.list_voices / forget_voice manage them."""
    suspend: bool = False
    """End the stream with `suspend` when the audio ends, instead of a plain end: every
    word heard is still made final and stored, but the transcript stays `interrupted`, so
    this program (or another) continues it with `resume_transcript_id` (the session
    result's `transcript_id`). Read when the source ends: a program may set it while the
    stream runs, e.g. when it is told to shut down, before ending its source."""
    attempts: int = 3
    """Calls made for one stream when a server refuses it before answering (at its stream
    limit, draining, or down). Given several servers (`connect("ipv4:a:50051,b:50051")`,
    or a DNS name with several addresses such as a headless Service), the channel's
    round_robin sends each call to the next one; the audio read so far is sent again."""

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
            model=self.model,
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
            diarization_config=streaming_pb2.SpeakerDiarizationConfig(
                enable_speaker_diarization=self.speakers,
                min_speaker_count=self.min_speakers,
                max_speaker_count=self.max_speakers,
                remember_voices=self.remember_voices,
            )
            if self.speakers
            else None,
        )

    async def transcribe(
        self, chunks: AsyncIterable[bytes] | Iterable[bytes]
    ) -> AsyncGenerator[Result, None]:
        """Stream `chunks` (sent as they come; a plain iterable is read in a worker thread,
        so it may block) and yield Results until the server has made every word final.

        A server that refuses the stream before answering (RESOURCE_EXHAUSTED,
        UNAVAILABLE) is left for the next one, up to `attempts` calls. Raises
        grpc.aio.AioRpcError when the stream ends with an error status. Stopping the
        iteration early cancels the stream; for a deadline use `asyncio.timeout()`.
        """
        source = chunks if isinstance(chunks, AsyncIterable) else iterate_in_thread(chunks)
        audio = ReplayableAudio(source)
        try:
            for attempt in range(1, max(1, self.attempts) + 1):
                answered = False
                try:
                    async with aclosing(self._call(audio)) as results:
                        async for result in results:
                            answered = True
                            yield result
                    return
                except grpc.aio.AioRpcError as err:
                    if answered or attempt >= self.attempts or err.code() not in _FAILOVER:
                        raise
                audio.rewind()
                await asyncio.sleep(_FAILOVER_BACKOFF_S * attempt)
        finally:
            await audio.aclose()

    async def _call(self, audio: ReplayableAudio) -> AsyncGenerator[Result, None]:
        """One StreamingTranscribe call carrying `audio`.

        Requests are written by a task of our own rather than by grpc's poller of a request
        generator: a refused call's writer is then cancelled for sure, never left holding
        a chunk that the next call needs.
        """
        answered = asyncio.Event()
        call = streaming_pb2_grpc.TranscriptionServiceStub(self.channel).StreamingTranscribe()
        writer = asyncio.create_task(self._write(call, audio, answered))
        try:
            async for response in call:
                audio.confirm()
                answered.set()
                for result in Result.from_response(response):
                    yield result
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            # The writer cancels the call when the caller's source fails: raise that error.
            if writer.done() and not writer.cancelled() and writer.exception() is not None:
                raise writer.exception() from None  # type: ignore[misc]
            raise
        finally:
            writer.cancel()
            call.cancel()  # no-op once the stream ended; stops it when the caller left early
            await asyncio.gather(writer, return_exceptions=True)

    async def _write(
        self,
        call: grpc.aio.StreamStreamCall[
            streaming_pb2.StreamingTranscribeRequest, streaming_pb2.StreamingTranscribeResponse
        ],
        audio: ReplayableAudio,
        answered: asyncio.Event,
    ) -> None:
        try:
            await call.write(streaming_pb2.StreamingTranscribeRequest(config=self.config()))
            # Audio waits (at most a moment) for the server's first answer: a stream it
            # rejects (bad key, bad config, at its limit) then ends with its status, where
            # a write racing the rejection would make grpc report INTERNAL instead.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ANSWER_WAIT_S):
                    await answered.wait()
            while (chunk := await audio.next()) is not None:
                if chunk:
                    await call.write(streaming_pb2.StreamingTranscribeRequest(audio_content=chunk))
            if self.suspend:  # the transcript stays resumable
                await call.write(streaming_pb2.StreamingTranscribeRequest(suspend=True))
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended: its status reaches the reader
        except asyncio.CancelledError:
            raise
        except BaseException:
            call.cancel()  # the source failed: stop the call, and _call raises the error
            raise

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
