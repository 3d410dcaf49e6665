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
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from service.audio import SAMPLE_RATE, AudioFormat, AudioInput, Samples
from service.config import LimitSettings
from service.domain import Segment, TranscriptMeta, TranscriptStatus
from service.errors import UnavailableError
from service.logs import current_transcript
from service.metrics import Metrics
from service.model_pool import Choice, ModelPool
from service.policy import FRAME, DecodeJob, Policy, PolicyConfig, ResultUpdate, SpeechEvent
from service.recordings import RecordingStore, RecordingWriter
from service.refine.worker import Refiner
from service.registry import DecodeStats, StreamSlot, StreamSummary
from service.speakers import voices
from service.speakers.config import DiarizationSettings
from service.speakers.live import LiveSpeakers
from service.speakers.live_names import LiveNames
from service.storage.base import TranscriptStore
from service.storage.lease import (
    DEFAULT_LEASE_S,
    Lease,
    LeaseKeeper,
    LeaseLostError,
    lost_message,
    new_holder,
)
from service.storage.writer import SegmentWriter
from service.stream_input import AudioLimits, InputPump
from service.stream_language import StreamLanguage, store_language
from service.vad import FrameVad, SileroVad

logger = logging.getLogger(__name__)

BLOCK = 8 * FRAME  # 0.256 s: the policy sees audio at least this finely, whatever the chunking
CLOSE_S = 30.0
"""Default bound on a stream's last writes after its call (StreamDeps.close_s); its lease's
release then takes at most RELEASE_S more (service.storage.lease)."""


@dataclass(frozen=True)
class StreamConfig:
    """A validated stream configuration (built by the servicer from the proto)."""

    audio: AudioFormat
    policy: PolicyConfig
    choice: Choice
    """The model and language, validated (a resume's: the model asked for, replaced by the
    transcript's stored ones when it is opened)."""
    model: str = ""
    """The model asked for ("" the server's default; a resumed transcript keeps its own)."""
    language: str = ""
    """The language asked for, a primary subtag ("" detects on a multilingual model)."""
    interim_results: bool = False
    word_offsets: bool = False
    voice_events: bool = False
    title: str = ""
    tags: tuple[str, ...] = ()
    resume_transcript_id: str = ""
    live: bool = False
    diarization: DiarizationSettings = field(default_factory=DiarizationSettings)


@dataclass(frozen=True)
class SessionStarted:
    transcript_id: str
    model: str
    start_offset_s: float
    first_segment_index: int
    language: str = ""
    """The stream's language, or "" while the model detects it."""


@dataclass(frozen=True)
class StoredResult:
    """A result to send; `stored` tells whether a final is durable yet."""

    update: ResultUpdate
    stored: bool = True
    language: str = ""
    """The language of its text (a detecting stream's interims: that decode's guess)."""


@dataclass(frozen=True)
class SpeakerNames:
    """The transcript's names for its speaker labels (the whole map), after a stream
    with `remember_voices` named a speaker after a remembered voice."""

    names: dict[str, str]


Output = SessionStarted | SpeechEvent | StoredResult | SpeakerNames


@dataclass
class StreamDeps:
    """The process's parts every session uses (no server-wide state: see service.registry)."""

    models: ModelPool
    """The loaded models, each with its scheduler; a stream decodes on the one it chose."""
    vad: SileroVad
    store: TranscriptStore
    recordings: RecordingStore
    limits: LimitSettings = field(default_factory=LimitSettings)
    lease_s: float = DEFAULT_LEASE_S
    """How long a transcript's writer lease lasts unless renewed (a dead server's streams
    block resuming their transcripts this long)."""
    end_flush_s: float = 10.0
    """At a stream's end, how long to wait for storage before telling the client what is
    not stored (the writer keeps retrying after the call)."""
    close_s: float = CLOSE_S
    """How long a stream's last writes (segments, recording, status) may go on after its
    call ended, however it ended; then they are given up and its lease released."""
    vad_executor: Executor | None = None
    """Threads of the VAD (None: the event loop's default executor). The server gives it
    named threads of its own, so per-thread CPU shows what the VAD costs."""
    metrics: Metrics = field(default_factory=Metrics)
    refiner: Refiner | None = None
    """Queues each transcript for refinement once its stream has stored everything
    (None: streams are not refined; see service.server.start_server)."""


class StreamSession:
    """State and lifecycle of one stream."""

    def __init__(
        self, deps: StreamDeps, slot: StreamSlot, owner: str, config: StreamConfig
    ) -> None:
        self.deps = deps
        self.slot = slot
        self.owner = owner
        self.config = config
        self.status = TranscriptStatus.INTERRUPTED
        self.transcript_id = ""
        self.decodes = DecodeStats()
        self._pump: InputPump | None = None
        self._storage_down = False
        """The stream ended with finals not stored: its call ends without awaiting the writer."""
        self._started = time.monotonic()
        self._speakers: LiveSpeakers | None = None
        """The stream's speaker labels (None: diarization off)."""
        self._names: LiveNames | None = None
        """Names from remembered voices while it runs (None: `remember_voices` off)."""
        self._choice = config.choice
        self._language = StreamLanguage(self._choice.language)

    @property
    def drained(self) -> bool:
        """The audio ended because the server is draining, not because the client stopped."""
        return self._pump is not None and self._pump.drained

    async def _open_transcript(self) -> tuple[Lease, float, int, str]:
        """Create or resume the transcript, holding its writer lease (ABORTED if another
        stream holds it); the offset and first segment index this stream continues at,
        and the speaker state an earlier stream stored. A resumed transcript keeps its
        model and language (InvalidArgumentError if the config asks for others)."""
        cfg, store, lease_s = self.config, self.deps.store, self.deps.lease_s
        if not cfg.resume_transcript_id:
            tid = uuid.uuid4().hex
            await store.create_transcript(
                TranscriptMeta(
                    id=tid,
                    owner=self.owner,
                    created_at=datetime.now(UTC),
                    status=TranscriptStatus.LIVE,
                    language=self._choice.language,
                    model=self._choice.model.name,
                    title=cfg.title,
                    tags=cfg.tags,
                )
            )
            return await store.acquire_lease(self.owner, tid, new_holder(), lease_s), 0.0, 0, ""
        lease = await store.acquire_lease(
            self.owner, cfg.resume_transcript_id, new_holder(), lease_s
        )
        try:  # stable now: no other writer can add segments while we hold the lease
            meta = await store.get_transcript(self.owner, lease.transcript_id)
            self._choice = self.deps.models.resume(
                meta.model, meta.language, cfg.model, cfg.language
            )
            self._language = StreamLanguage(self._choice.language)
        except BaseException:
            await asyncio.shield(store.release_lease(self.owner, lease.transcript_id, lease.epoch))
            raise
        return lease, meta.duration_s, meta.segment_count, meta.speaker_state

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[Output]:
        """Transcribe the stream; yields outputs in order. Cleans up in every case."""
        lease, offset, first_index, speaker_state = await self._open_transcript()
        keeper = LeaseKeeper(self.deps.store, self.owner, lease, self.deps.lease_s)
        keeper.start()
        tid = self.transcript_id = lease.transcript_id
        current_transcript.set(tid)  # every log record of this stream carries the id
        self.slot.started()
        self._started = time.monotonic()
        logger.info(
            "transcript %s: stream started (%s, resumed at %.1f s, epoch %d)",
            tid,
            self.config.audio.label,
            offset,
            lease.epoch,
        )
        writer = SegmentWriter(
            self.deps.store,
            self.owner,
            tid,
            on_retry=self._storage_failed,
            epoch=lease.epoch,
            on_lost=keeper.mark_lost,
            close_timeout_s=self.deps.close_s,
        )
        fmt = self.config.audio
        recording = self.deps.recordings.open_writer(
            tid, fmt.container, fmt.sample_rate, fmt.channels, epoch=lease.epoch
        )
        audio = AudioInput(fmt)
        if self.config.diarization.enabled:
            self._speakers = LiveSpeakers(
                self.config.diarization, self.deps.vad_executor, speaker_state
            )
        policy = Policy(
            self._choice.model.policy(self.config.policy),  # the model's beams and steps
            offset,
            first_index,
            splitter=self._speakers.split_points if self._speakers else None,
        )
        limits = AudioLimits(self.deps.limits, self.config.live)
        self._pump = InputPump(
            chunks,
            audio,
            recording.write,
            self.deps.limits.idle_timeout_s,
            self.slot.draining,
            tid,
            limits,
        )
        try:
            yield SessionStarted(
                tid, self._choice.model.name, offset, first_index, self._language.forced
            )
            if self._speakers is not None and self.config.diarization.remember_voices:
                self._names = await LiveNames.open(self.deps.store, self.owner, tid)
            reader = asyncio.create_task(self._pump.run())
            try:
                async for out in self._transcribe(audio, policy, writer, keeper, limits):
                    yield out
                await reader  # surfaces a reader error (e.g. a second config message)
                if self._pump.error is not None:
                    raise self._pump.error
            finally:
                if not reader.done():
                    reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)  # retrieve its error
            unsaved = await writer.flush(self.deps.end_flush_s)
            if keeper.lost.is_set():
                raise LeaseLostError(lost_message(tid, lease.epoch))
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
            self.slot.end()
            self.deps.metrics.streams.labels(self.status.name.lower()).inc()
            logger.info(
                "transcript %s: stream ended %s after %d bytes, %.1f s of audio",
                tid,
                self.status.name.lower(),
                audio.bytes_in,
                policy.received_s,
            )
            # The transcript lasts as long as its recording: audio decoded but still queued
            # for the policy when the call ended (a vanished client, at load: seconds) is
            # stored, so a resume must start after it (refinement transcribes it).
            heard_s = max(policy.received_s, audio.decoded_samples / SAMPLE_RATE)
            # Storing the last results must survive the call's cancellation (client gone);
            # the lease is held (and renewed) until they are stored, then released.
            closing = asyncio.create_task(
                self._close_within(writer, recording, keeper, offset + heard_s, audio.not_audio)
            )
            self.slot.keep_closing(closing)
            if not self._storage_down:  # else the client hears now; the writer retries on
                await asyncio.shield(closing)
            self.slot.ended(StreamSummary(tid, self.status.name.lower(), self.decodes))

    async def _close_within(
        self,
        writer: SegmentWriter,
        recording: RecordingWriter,
        keeper: LeaseKeeper,
        duration: float,
        not_audio: object,
    ) -> None:
        """`_close` bounded by close_s: a hung store cannot keep the stream's lease, nor the
        server's stop waiting. Cut short (timeout, or the task cancelled as the process
        exits), `_close` still releases the lease in its `finally` (within RELEASE_S), so
        another server can resume the transcript at once instead of after it expires."""
        try:
            async with asyncio.timeout(self.deps.close_s):
                await self._close(writer, recording, keeper, duration, not_audio)
        except TimeoutError:
            logger.error(
                "transcript %s: storing the stream's last results took over %g s; given up "
                "with segments %s not stored",
                self.transcript_id,
                self.deps.close_s,
                writer.unsaved,
            )

    async def _close(
        self,
        writer: SegmentWriter,
        recording: RecordingWriter,
        keeper: LeaseKeeper,
        duration: float,
        not_audio: object,
    ) -> None:
        epoch = keeper.lease.epoch
        try:
            try:
                if not_audio is not None:  # garbage is not a recording: the client was told
                    await recording.discard()
                    logger.info(
                        "transcript %s: the stream's audio was not decodable, not stored: %s",
                        self.transcript_id,
                        not_audio,
                    )
                else:
                    await recording.finish()
                await self.deps.store.set_recording(
                    self.owner, self.transcript_id, self._recording_mime(), epoch=epoch
                )
            except LeaseLostError as exc:
                keeper.mark_lost()
                logger.warning("transcript %s: recording not stored: %s", self.transcript_id, exc)
            except Exception:
                logger.exception("transcript %s: storing the recording failed", self.transcript_id)
            state = await self._speakers.state() if self._speakers is not None else None
            unsaved = await writer.close(
                self.status, datetime.now(UTC), duration, speaker_state=state
            )
            if state is not None and self.config.diarization.remember_voices:
                await voices.after_stream(self.deps.store, self.owner, self.transcript_id, state)
            if unsaved:
                logger.error(
                    "transcript %s: segments %s could not be stored", self.transcript_id, unsaved
                )
        finally:
            await keeper.release()
        await self._queue_refinement()

    async def _queue_refinement(self) -> None:
        """Queue the transcript for refinement (after the lease is released, so the
        refiner reads what this stream stored); never fails the stream."""
        refiner = self.deps.refiner
        if refiner is None or not self.deps.recordings.mime_type(self.transcript_id):
            return
        try:
            await refiner.submit(self.owner, self.transcript_id)
        except Exception as exc:  # storage down: the transcript simply stays unrefined
            logger.warning("transcript %s: not queued for refinement: %s", self.transcript_id, exc)

    def _storage_failed(self) -> None:
        self.deps.metrics.storage_errors.inc()
        self.deps.metrics.storage_retries.inc()

    def _recording_mime(self) -> str:
        return self.deps.recordings.mime_type(self.transcript_id)

    async def _transcribe(
        self,
        audio: AudioInput,
        policy: Policy,
        writer: SegmentWriter,
        keeper: LeaseKeeper,
        limits: AudioLimits,
    ) -> AsyncIterator[Output]:
        loop = asyncio.get_running_loop()
        vad = FrameVad(self.deps.vad)
        min_step = int(policy.cfg.min_step_s * SAMPLE_RATE)
        probs_pending: list[float] = []
        frames_seen = 0
        async for samples in audio:
            if keeper.lost.is_set():  # another stream took the transcript over
                raise LeaseLostError(lost_message(self.transcript_id, keeper.lease.epoch))
            if self._pump is not None and self._pump.error is not None:
                raise self._pump.error  # over a limit: no more decoding
            limits.check(policy.received_s + len(samples) / SAMPLE_RATE)
            self.deps.metrics.audio_seconds.inc(len(samples) / SAMPLE_RATE)
            vad_done = loop.run_in_executor(self.deps.vad_executor, vad.feed, samples)
            if self._speakers is not None:  # both in threads, awaited before any decode
                at = policy.origin_s + policy.received_s
                _, probs = await asyncio.gather(self._speakers.push(samples, at), vad_done)
                if self._names is not None and (
                    names := await self._names.check(self._speakers.speakers())
                ):
                    yield SpeakerNames(names)
            else:
                probs = await vad_done
            probs_pending.extend(float(p) for p in probs)
            for start in range(0, len(samples), BLOCK):
                block: Samples = samples[start : start + BLOCK]
                total_frames = int((policy.received_s * SAMPLE_RATE + len(block)) // FRAME)
                take = total_frames - frames_seen
                frame_probs, probs_pending = probs_pending[:take], probs_pending[take:]
                frames_seen += len(frame_probs)
                for event in policy.push(block, frame_probs):
                    if self.config.voice_events:
                        yield event
                backlog = audio.queued_samples + len(samples) - start - len(block)
                job = policy.next_job(caught_up=backlog < min_step, shared=self.slot.shared)
                if job is not None:
                    async for out in self._decode(policy, job, writer):
                        yield out
        # The last final decode, then the second pass of every sentence not yet revised;
        # while the server drains, the grace time is for finals: no second passes.
        policy.finish()
        while (job := policy.next_job(shared=self.slot.shared or self.drained)) is not None:
            async for out in self._decode(policy, job, writer):
                yield out
        if self._speakers is not None:  # labels the re-clustering corrected, as revisions
            for update in await self._speakers.finish():
                stored = await writer.write(_segment(update))
                yield StoredResult(update, stored, self._language.language)
            if self._names is not None and (
                names := await self._names.finish(self._speakers.speakers())
            ):
                yield SpeakerNames(names)

    async def _decode(
        self, policy: Policy, job: DecodeJob, writer: SegmentWriter
    ) -> AsyncIterator[Output]:
        policy.job_started(job)
        request = replace(job.request(), language=self._language.forced)
        started = time.monotonic()
        result = await self._choice.model.scheduler.decode(request)
        heard_s = len(job.audio) / SAMPLE_RATE
        self.decodes.add(job.end_s, heard_s, time.monotonic() - started, job.kind.value)
        speech_s = sum(w.end - w.start for w in result.words)  # silence is no evidence
        self._language.heard(result.language, result.language_probability, speech_s)
        for update in policy.on_result(job, result):
            if self._speakers is not None:
                update = self._speakers.label(update)
            language, fixed = self._language.on_result(update.is_final)
            if fixed:
                await store_language(self.deps.store, self.owner, self.transcript_id, language)
            if update.is_final:
                stored = await writer.write(_segment(update))
                m = self.deps.metrics
                if update.revision:
                    m.revisions.inc()
                else:  # a revision's words were timed at their first final
                    lag = time.monotonic() - self._started - (update.end_s - policy.origin_s)
                    m.final_latency.observe(max(0.0, lag))
                if not stored:
                    m.unstored_finals.inc()
                yield StoredResult(update, stored, language)
            elif self.config.interim_results:
                yield StoredResult(update, language=language)


def _segment(update: ResultUpdate) -> Segment:
    """A final result as the segment to store."""
    return Segment(
        index=update.segment_index,
        start=update.start_s,
        end=update.end_s,
        text=update.text,
        words=update.words,
        confidence=float(np.mean([w.probability for w in update.words])),
        speaker_label=update.speaker_label,
    )


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
