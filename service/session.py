"""One StreamingTranscribe call: audio bytes in, speech events and results out.

Glue between the audio decoder, the VAD, the streaming policy, the shared decode
scheduler and storage. Holds all per-stream state; knows nothing of protobuf.
A final result is written to storage before it is yielded, so what the user
has seen as final is stored (unless storage is down: then transcription goes
on, the writer keeps retrying, and the result says it is not yet stored).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from service.audio import AudioFormat, AudioInput, Samples
from service.domain import Segment, TranscriptMeta, TranscriptStatus
from service.errors import InvalidArgumentError, ResourceExhaustedError, UnavailableError
from service.logs import current_transcript
from service.memory import release_free_memory
from service.metrics import Metrics
from service.recordings import RecordingStore
from service.scheduler import DecodeScheduler
from service.storage.base import TranscriptStore
from service.storage.writer import SegmentWriter
from service.streaming import (
    FRAME,
    DecodeJob,
    PolicyConfig,
    ResultUpdate,
    SpeechEvent,
    StreamingPolicy,
)
from service.vad import FrameVad, SileroVad

logger = logging.getLogger(__name__)

BLOCK = 8 * FRAME  # 0.256 s: the policy sees audio at least this finely, whatever the chunking


@dataclass(frozen=True)
class StreamConfig:
    """A validated stream configuration (built by the servicer from the proto)."""

    audio: AudioFormat
    policy: PolicyConfig
    language: str = "en"
    interim_results: bool = False
    word_offsets: bool = False
    voice_events: bool = False
    title: str = ""
    tags: tuple[str, ...] = ()
    resume_transcript_id: str = ""
    live: bool = False


@dataclass(frozen=True)
class SessionStarted:
    transcript_id: str
    model: str
    start_offset_s: float
    first_segment_index: int


@dataclass(frozen=True)
class StoredResult:
    """A result to send; `stored` tells whether a final is durable yet."""

    update: ResultUpdate
    stored: bool = True


Output = SessionStarted | SpeechEvent | StoredResult


@dataclass
class StreamDeps:
    """Process-wide parts every session shares."""

    scheduler: DecodeScheduler
    vad: SileroVad
    store: TranscriptStore
    recordings: RecordingStore
    model_name: str
    max_stream_s: float = 4 * 3600.0
    idle_timeout_s: float = 60.0
    live_max_speed: float = 2.0
    live_burst_s: float = 60.0
    end_flush_s: float = 10.0
    """At a stream's end, how long to wait for storage before telling the client what is
    not stored (the writer keeps retrying after the call)."""
    vad_executor: Executor | None = None
    """Threads of the VAD (None: the event loop's default executor). The server gives it
    named threads of its own, so per-thread CPU shows what the VAD costs."""
    active: set[str] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    on_session_end: Callable[[StreamSession], None] | None = None
    """Observer called with each finished session (metrics, benchmarks, tests)."""
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on shutdown: streams stop reading audio, finalize what they have and end."""
    closing: set[asyncio.Task[None]] = field(default_factory=set)
    """Sessions still storing their last results after their call ended."""

    async def wait_closed(self) -> None:
        """Wait until every ended session has finished storing its results."""
        while self.closing:
            await asyncio.gather(*self.closing, return_exceptions=True)


@dataclass(frozen=True)
class DecodeStat:
    """Cost of one decode: where in the stream, how much audio, how long it took."""

    stream_s: float
    audio_s: float
    wall_s: float
    kind: str


class StreamSession:
    """State and lifecycle of one stream."""

    def __init__(self, deps: StreamDeps, owner: str, config: StreamConfig) -> None:
        self.deps = deps
        self.owner = owner
        self.config = config
        self.status = TranscriptStatus.INTERRUPTED
        self.transcript_id = ""
        self.decode_log: list[DecodeStat] = []
        self.drained = False
        """The audio ended because the server is draining, not because the client stopped."""
        self._storage_down = False
        """The stream ended with finals not stored: its call ends without awaiting the writer."""
        self._started = time.monotonic()

    async def _open_transcript(self) -> tuple[str, float, int]:
        cfg, store = self.config, self.deps.store
        if cfg.resume_transcript_id:
            meta = await store.get_transcript(self.owner, cfg.resume_transcript_id)
            if meta.status is TranscriptStatus.COMPLETE:
                raise InvalidArgumentError(
                    f"transcript {meta.id} is complete and cannot be resumed; "
                    "start a new transcript instead"
                )
            await store.set_status(self.owner, meta.id, TranscriptStatus.LIVE)
            return meta.id, meta.duration_s, meta.segment_count
        tid = uuid.uuid4().hex
        await store.create_transcript(
            TranscriptMeta(
                id=tid,
                owner=self.owner,
                created_at=datetime.now(UTC),
                status=TranscriptStatus.LIVE,
                language=cfg.language,
                model=self.deps.model_name,
                title=cfg.title,
                tags=cfg.tags,
            )
        )
        return tid, 0.0, 0

    def _release_memory(self) -> None:
        try:
            asyncio.get_running_loop().run_in_executor(self.deps.vad_executor, release_free_memory)
        except RuntimeError:  # the server is stopping and its pool is closed: the OS takes all
            return
        self.deps.metrics.memory_releases.inc()

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[Output]:
        """Transcribe the stream; yields outputs in order. Cleans up in every case."""
        tid, offset, first_index = await self._open_transcript()
        self.transcript_id = tid
        current_transcript.set(tid)  # every log record of this stream carries the id
        self.deps.active.add(tid)
        self.deps.metrics.active_streams.inc()
        self._started = time.monotonic()
        logger.info(
            "transcript %s: stream started (%s, resumed at %.1f s)",
            tid,
            self.config.audio.label,
            offset,
        )
        writer = SegmentWriter(self.deps.store, self.owner, tid, on_retry=self._storage_failed)
        fmt = self.config.audio
        recording = self.deps.recordings.open_writer(
            tid, fmt.container, fmt.sample_rate, fmt.channels
        )
        audio = AudioInput(fmt)
        policy = StreamingPolicy(self.config.policy, offset, first_index)
        try:
            yield SessionStarted(tid, self.deps.model_name, offset, first_index)
            pump = asyncio.create_task(self._pump(chunks, audio, recording.write))
            try:
                async for out in self._transcribe(audio, policy, writer):
                    yield out
                await pump  # surfaces a reader error (e.g. a second config message)
            finally:
                if not pump.done():
                    pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)  # retrieve its error
            unsaved = await writer.flush(self.deps.end_flush_s)
            if unsaved:  # the client must not believe these are safe
                self._storage_down = True
                if not self.drained:
                    self.status = TranscriptStatus.COMPLETE
                raise UnavailableError(
                    f"final results with segment_index {_ranges(unsaved)} are not stored: "
                    f"storage has been unreachable; the server keeps retrying for "
                    f"{writer.close_timeout_s:g} s more. Check with GetTranscript",
                    reason="storage",
                )
            if self.drained:  # stays resumable: the client continues on another server
                raise UnavailableError(
                    f"the server is shutting down; every final result sent is stored. "
                    f"Reconnect and send resume_transcript_id={tid} to continue this transcript",
                    reason="shutdown",
                )
            self.status = TranscriptStatus.COMPLETE
        finally:
            audio.close()
            self.deps.active.discard(tid)
            self.deps.metrics.active_streams.dec()
            if not self.deps.active:  # idle: what the streams freed goes back to the OS
                self._release_memory()
            self.deps.metrics.streams.labels(self.status.name.lower()).inc()
            logger.info(
                "transcript %s: stream ended %s after %d bytes, %.1f s of audio",
                tid,
                self.status.name.lower(),
                audio.bytes_in,
                policy.received_s,
            )
            # Storing the last results must survive the call's cancellation (client gone).
            closing = asyncio.create_task(
                self._close(writer, recording, offset + policy.received_s, audio.not_audio)
            )
            self.deps.closing.add(closing)
            closing.add_done_callback(self.deps.closing.discard)
            if not self._storage_down:  # else the client hears now; the writer retries on
                await asyncio.shield(closing)
            if self.deps.on_session_end is not None:
                self.deps.on_session_end(self)

    async def _close(
        self, writer: SegmentWriter, recording: object, duration: float, not_audio: object
    ) -> None:
        try:
            if not_audio is not None:  # garbage is not a recording: the client was told why
                await recording.discard()  # type: ignore[attr-defined]
                logger.info(
                    "transcript %s: the stream's audio was not decodable, not stored: %s",
                    self.transcript_id,
                    not_audio,
                )
            else:
                await recording.finish()  # type: ignore[attr-defined]
            await self.deps.store.set_recording(
                self.owner, self.transcript_id, self._recording_mime()
            )
        except Exception:
            logger.exception("transcript %s: storing the recording failed", self.transcript_id)
        unsaved = await writer.close(self.status, datetime.now(UTC), duration)
        if unsaved:
            logger.error(
                "transcript %s: segments %s could not be stored", self.transcript_id, unsaved
            )

    def _storage_failed(self) -> None:
        self.deps.metrics.storage_errors.inc()
        self.deps.metrics.storage_retries.inc()

    def _recording_mime(self) -> str:
        return self.deps.recordings.mime_type(self.transcript_id)

    async def _pump(self, chunks: AsyncIterator[bytes], audio: AudioInput, record: object) -> None:
        """Reader task: request bytes -> recording and decoder, bounded by back-pressure."""
        try:
            while (data := await self._next_chunk(chunks)) is not None:
                await record(data)  # type: ignore[operator]
                await audio.feed(data)
        finally:
            await audio.end()

    async def _next_chunk(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """The next audio bytes; None at the end of input or when the server drains."""
        if self.deps.draining.is_set():
            self.drained = True
            return None
        nxt = asyncio.ensure_future(anext(chunks))
        nxt.add_done_callback(_retrieved)  # an end of input after we stopped waiting is fine
        drain = asyncio.ensure_future(self.deps.draining.wait())
        try:
            done, _ = await asyncio.wait(
                {nxt, drain},
                timeout=self.deps.idle_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            drain.cancel()
            if not nxt.done():
                nxt.cancel()
        if nxt in done:
            try:
                return nxt.result()
            except StopAsyncIteration:
                return None
        if drain in done:
            self.drained = True
            logger.info("transcript %s: server draining, finalizing", self.transcript_id)
            return None
        raise ResourceExhaustedError(
            f"no audio received for {self.deps.idle_timeout_s:g} s; the stream was closed as idle",
            reason="idle",
        )

    async def _transcribe(
        self, audio: AudioInput, policy: StreamingPolicy, writer: SegmentWriter
    ) -> AsyncIterator[Output]:
        loop = asyncio.get_running_loop()
        vad = FrameVad(self.deps.vad)
        min_step = int(policy.cfg.min_step_s * 16000)
        probs_pending: list[float] = []
        frames_seen = 0
        async for samples in audio:
            if policy.received_s + len(samples) / 16000 > self.deps.max_stream_s:
                raise ResourceExhaustedError(
                    f"stream longer than the limit of {self.deps.max_stream_s:g} s of audio; "
                    "start a new stream (resume_transcript_id continues the same transcript)",
                    reason="max_duration",
                )
            if self.config.live:
                self._check_live_rate(policy.received_s + len(samples) / 16000)
            self.deps.metrics.audio_seconds.inc(len(samples) / 16000)
            probs = await loop.run_in_executor(self.deps.vad_executor, vad.feed, samples)
            probs_pending.extend(float(p) for p in probs)
            for start in range(0, len(samples), BLOCK):
                block: Samples = samples[start : start + BLOCK]
                total_frames = int((policy.received_s * 16000 + len(block)) // FRAME)
                take = total_frames - frames_seen
                frame_probs, probs_pending = probs_pending[:take], probs_pending[take:]
                frames_seen += len(frame_probs)
                for event in policy.push(block, frame_probs):
                    if self.config.voice_events:
                        yield event
                backlog = audio.queued_samples + len(samples) - start - len(block)
                job = policy.next_job(
                    caught_up=backlog < min_step, shared=len(self.deps.active) > 1
                )
                if job is not None:
                    async for out in self._decode(policy, job, writer):
                        yield out
        # The last final decode, then the second pass of every sentence not yet revised;
        # while the server drains, the grace time is for finals: no second passes.
        while (
            job := policy.finish_job(shared=len(self.deps.active) > 1 or self.drained)
        ) is not None:
            async for out in self._decode(policy, job, writer):
                yield out

    def _check_live_rate(self, received_s: float) -> None:
        """A live source cannot run ahead of the clock by more than a reconnect's backlog."""
        elapsed = time.monotonic() - self._started
        allowed = self.deps.live_max_speed * elapsed + self.deps.live_burst_s
        if received_s > allowed:
            raise ResourceExhaustedError(
                f"live stream sent {received_s:.1f} s of audio in {elapsed:.1f} s; a live stream "
                f"may run at most {self.deps.live_max_speed:g}x real time after a "
                f"{self.deps.live_burst_s:g} s burst. Send recorded files with config.live=false",
                reason="live_rate",
            )

    async def _decode(
        self, policy: StreamingPolicy, job: DecodeJob, writer: SegmentWriter
    ) -> AsyncIterator[Output]:
        request = job.request()
        started = time.monotonic()
        result = await self.deps.scheduler.decode(request)
        self.decode_log.append(
            DecodeStat(
                job.end_s, len(job.audio) / 16000, time.monotonic() - started, job.kind.value
            )
        )
        for update in policy.on_result(job, result):
            if update.is_final:
                segment = Segment(
                    index=update.segment_index,
                    start=update.start_s,
                    end=update.end_s,
                    text=update.text,
                    words=update.words,
                    confidence=float(np.mean([w.probability for w in update.words])),
                )
                stored = await writer.write(segment)
                m = self.deps.metrics
                if update.revision:
                    m.revisions.inc()
                else:  # a revision's words were timed at their first final
                    lag = time.monotonic() - self._started - (update.end_s - policy.origin_s)
                    m.final_latency.observe(max(0.0, lag))
                if not stored:
                    m.unstored_finals.inc()
                yield StoredResult(update, stored)
            elif self.config.interim_results:
                yield StoredResult(update)


def _ranges(indices: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9" (short messages even after a long outage)."""
    out: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if i is not None:
            start = prev = i
    return ", ".join(out)


def _retrieved(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()
