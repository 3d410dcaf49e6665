"""One StreamingTranscribe call: audio bytes in, speech events and results out.

Glue between the audio decoder, the VAD, the streaming policy, the shared decode
scheduler and storage. Holds all per-stream state; knows nothing of protobuf.
A final result is written to storage before it is yielded, so what the user
has seen as final is stored (unless storage is down: then transcription goes
on, the writer keeps retrying, and the result says it is not yet stored).
The loop over the audio is service.stream_loop; how the stream ends (the status, the
error its client is told, the last writes) is service.stream_end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime

from service.audio import SAMPLE_RATE, AudioInput
from service.domain import TranscriptMeta, TranscriptStatus
from service.errors import UnavailableError
from service.logs import current_transcript
from service.policy import Policy
from service.registry import DecodeStats, StreamSlot, StreamSummary
from service.speakers.live import LiveSpeakers
from service.speakers.live_names import LiveNames
from service.storage.lease import RELEASE_S, Lease, LeaseKeeper, new_holder
from service.storage.writer import SegmentWriter
from service.stream_end import Ending, StreamCloser, outcome
from service.stream_input import AudioLimits, InputPump
from service.stream_language import StreamLanguage
from service.stream_loop import StreamLoop
from service.stream_names import StreamNames
from service.stream_types import (
    CLOSE_S,
    Output,
    SessionStarted,
    SpeakerNames,
    StoredResult,
    StreamConfig,
    StreamDeps,
)
from service.undo import await_or_undo

__all__ = [
    "CLOSE_S",
    "Output",
    "SessionStarted",
    "SpeakerNames",
    "StoredResult",
    "StreamConfig",
    "StreamDeps",
    "StreamSession",
]

logger = logging.getLogger(__name__)


def not_started(exc: Exception) -> UnavailableError:
    """The error a client gets when its new transcript could not be set up in storage."""
    if not isinstance(exc, UnavailableError):
        logger.error("the writer lease of a new transcript failed", exc_info=exc)
    return UnavailableError(
        f"the stream could not start: storing its new transcript failed ({exc}); nothing "
        "was kept. Retry in a moment; if it persists, the server's storage needs attention",
        reason="storage",
    )


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
        self._suspended = False
        """The client ended its audio with `suspend`: it continues the transcript elsewhere."""

    def suspend(self) -> None:
        """The client's audio ends here, and it will resume the transcript in another
        stream: every word heard is still made final and stored, and the transcript stays
        resumable (interrupted) instead of complete."""
        self._suspended = True

    @property
    def drained(self) -> bool:
        """The audio ended because the server is draining, not because the client stopped."""
        return self._pump is not None and self._pump.drained

    async def _open_transcript(self) -> tuple[Lease, float, int, str, dict[str, str]]:
        """Create or resume the transcript, holding its writer lease (ABORTED if another
        stream holds it); the offset and first segment index this stream continues at,
        the speaker state an earlier stream stored and the speaker names. A resumed
        transcript keeps its model and language (InvalidArgumentError if the config asks
        for others)."""
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
            try:
                lease = await store.acquire_lease(self.owner, tid, new_holder(), lease_s)
            except BaseException as exc:  # no lease: nothing may write it, so it stays LIVE
                await asyncio.shield(self._discard(tid, "its lease failed"))
                if isinstance(exc, Exception):
                    raise not_started(exc) from exc
                raise
            return lease, 0.0, 0, "", {}
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
        return lease, meta.duration_s, meta.segment_count, meta.speaker_state, meta.speaker_names

    async def _open(self) -> tuple[Lease, float, int, str, dict[str, str]]:
        """`_open_transcript`, undone if the call is cancelled while it runs (its client
        gone right after the config): the lease given back, a transcript it created
        deleted (the client never heard of it). Store writes that were sent land, so they
        left a LIVE transcript behind for ever, or a resumed one refused ABORTED to the
        client's next resume until the lease expired. A failed open holds no lease
        (`_open_transcript` gives up its own)."""

        async def give_back(opened: tuple[Lease, float, int, str, dict[str, str]]) -> None:
            await self._give_back(opened[0])

        return await await_or_undo(self._open_transcript(), give_back)

    async def _discard(self, tid: str, why: str) -> None:
        """Delete a transcript this stream created and never started: it holds nothing (no
        words, no audio) and its client was never told its id, so an interrupted one would
        only clutter the history with a meeting nobody can resume or read."""
        try:
            async with asyncio.timeout(RELEASE_S):
                await self.deps.store.delete_transcript(self.owner, tid)
        except Exception as exc:
            logger.warning("transcript %s: created but not deleted after %s: %s", tid, why, exc)

    async def _give_back(self, lease: Lease) -> None:
        """The stream ends before it started: release a resumed transcript's lease, delete
        a new one (its client was never told its id)."""
        if not self.config.resume_transcript_id:
            await self._discard(lease.transcript_id, "its client went away")
            return
        try:
            async with asyncio.timeout(RELEASE_S):
                await self.deps.store.release_lease(self.owner, lease.transcript_id, lease.epoch)
        except Exception as exc:  # the lease expires on its own
            logger.warning(
                "transcript %s: lease not given back after its client went away: %s",
                lease.transcript_id,
                exc,
            )

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncGenerator[Output, None]:
        """Transcribe the stream; yields outputs in order. Cleans up in every case."""
        lease, offset, first_index, speaker_state, names = await self._open()
        fmt = self.config.audio
        try:  # files on disk (full, read-only): the lease must not outlive the call
            recording = self.deps.recordings.open_writer(
                lease.transcript_id, fmt.container, fmt.sample_rate, fmt.channels, lease.epoch
            )
        except Exception:
            await asyncio.shield(self._give_back(lease))
            raise
        if self.config.diarization.enabled:
            self._speakers = LiveSpeakers(
                self.config.diarization, self.deps.vad_executor, speaker_state
            )
        keeper = LeaseKeeper(  # its renewals store the speaker state as it changes
            self.deps.store,
            self.owner,
            lease,
            self.deps.lease_s,
            self._speakers.state if self._speakers is not None else None,
        )
        keeper.start(speaker_state)
        tid = self.transcript_id = lease.transcript_id
        current_transcript.set(tid)  # every log record of this stream carries the id
        self.slot.started()
        renames = StreamNames(names)
        self.slot.follow_names(tid, renames.offer)  # renames through this server, at once
        forgotten: set[str] = set()  # voices deleted while live: its end does not store them
        if self.config.diarization.remember_voices:  # only its end remembers voices
            self.slot.follow_forgets(self.owner, lambda name: forgotten.add(name.casefold()))
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
        audio = AudioInput(fmt)
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
            poll = None
            if self._speakers is not None:  # renames through other servers, every poll_s
                poll = asyncio.create_task(
                    renames.poll(self.deps.store, self.owner, tid, self.deps.names_poll_s)
                )
            loop = StreamLoop(
                self.deps,
                self.config,
                self.slot,
                self.owner,
                tid,
                self._choice,
                self._language,
                self._pump,
                self.decodes,
                self._started,
                self._speakers,
                self._names,
                renames,
            )
            try:
                # Closed here, not by the garbage collector, when this generator is closed
                # at a yield (a vanished client): its side pass is cancelled before the end.
                async with aclosing(loop.run(audio, policy, writer, keeper, limits)) as outs:
                    async for out in outs:
                        yield out
                await reader  # surfaces a reader error (e.g. a second config message)
                if self._pump.error is not None:
                    raise self._pump.error
            finally:
                if not reader.done():
                    reader.cancel()
                if poll is not None:
                    poll.cancel()
                await asyncio.gather(reader, return_exceptions=True)  # retrieve its error
                if poll is not None:
                    await asyncio.gather(poll, return_exceptions=True)
            end = await outcome(
                writer, keeper, self.drained, self.deps.end_flush_s, self._suspended
            )
            self.status = end.status
            self._storage_down = end.ending is Ending.UNSTORED
            if end.error is not None:
                raise end.error
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
            closer = StreamCloser(
                self.deps,
                self.owner,
                tid,
                self.status,
                self._speakers,
                self.config.diarization.remember_voices,
                writer,
                recording,
                keeper,
                offset + heard_s,
                audio.not_audio,
                names,
                forgotten,
            )
            closing = asyncio.create_task(closer.close_within())
            self.slot.keep_closing(closing)
            if not self._storage_down:  # else the client hears now; the writer retries on
                await asyncio.shield(closing)
            self.slot.ended(StreamSummary(tid, self.status.name.lower(), self.decodes))

    def _storage_failed(self) -> None:
        self.deps.metrics.storage_errors.inc()
        self.deps.metrics.storage_retries.inc()
