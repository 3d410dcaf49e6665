"""How a stream ends: the outcome its client is told, and its last writes.

`outcome` maps the state at the end of the audio (lease lost, finals not stored, server
draining, or none of these) to an explicit `Ending`, the transcript status to store and
the error the call ends with. `StreamCloser` does the last writes, which must outlive
the call (a vanished client cancels it): the recording, the remaining segments and the
status with the speaker state, the remembered voices, then the lease's release and the
refinement queue, all bounded by StreamDeps.close_s.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from service.domain import TranscriptStatus
from service.errors import UnavailableError
from service.recordings import RecordingWriter
from service.speakers import voices
from service.speakers.live import LiveSpeakers
from service.storage.lease import LeaseKeeper, LeaseLostError, lost_message
from service.storage.writer import SegmentWriter
from service.stream_types import StreamDeps

logger = logging.getLogger(__name__)


class Ending(enum.Enum):
    """Why a stream's audio ended, as far as its client is concerned."""

    COMPLETE = "complete"
    """The client ended its audio and every final is stored."""
    LEASE_LOST = "lease_lost"
    """Another stream took the transcript over: ABORTED."""
    UNSTORED = "unstored"
    """Storage did not take every final in time: UNAVAILABLE naming them (the writer
    keeps retrying after the call, which ends without waiting for it)."""
    DRAINED = "drained"
    """The server is shutting down: UNAVAILABLE, resume elsewhere."""
    SUSPENDED = "suspended"
    """The client ended its audio with `suspend` and every final is stored: OK, and the
    transcript stays resumable (the client continues it in another stream)."""


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    status: TranscriptStatus
    """The status to store (INTERRUPTED: the transcript stays resumable)."""
    error: Exception | None = None
    """What the call ends with (None: OK)."""


async def outcome(
    writer: SegmentWriter,
    keeper: LeaseKeeper,
    drained: bool,
    flush_s: float,
    suspended: bool = False,
) -> Outcome:
    """Wait (up to flush_s) for storage, then how the stream ends (`suspended`: the client
    ended its audio with `suspend`)."""
    tid, epoch = keeper.lease.transcript_id, keeper.lease.epoch
    unsaved = await writer.flush(flush_s)
    if keeper.lost.is_set():
        return Outcome(
            Ending.LEASE_LOST,
            TranscriptStatus.INTERRUPTED,
            LeaseLostError(lost_message(tid, epoch)),
        )
    if unsaved:  # the client must not believe these are safe
        error = UnavailableError(
            f"final results with segment_index {ranges(unsaved)} are not stored: "
            f"storage has been unreachable; the server keeps retrying for "
            f"{writer.close_timeout_s:g} s more. Check with GetTranscript",
            reason="storage",
        )
        resumable = drained or suspended
        status = TranscriptStatus.INTERRUPTED if resumable else TranscriptStatus.COMPLETE
        return Outcome(Ending.UNSTORED, status, error)
    if drained:  # stays resumable: the client continues on another server
        error = UnavailableError(
            f"the server is shutting down; every final result sent is stored. "
            f"Reconnect and send resume_transcript_id={tid} to continue this transcript",
            reason="shutdown",
        )
        return Outcome(Ending.DRAINED, TranscriptStatus.INTERRUPTED, error)
    if suspended:
        return Outcome(Ending.SUSPENDED, TranscriptStatus.INTERRUPTED)
    return Outcome(Ending.COMPLETE, TranscriptStatus.COMPLETE)


@dataclass
class StreamCloser:
    """The last writes of one stream (module docstring)."""

    deps: StreamDeps
    owner: str
    transcript_id: str
    status: TranscriptStatus
    speakers: LiveSpeakers | None
    remember_voices: bool
    writer: SegmentWriter
    recording: RecordingWriter
    keeper: LeaseKeeper
    duration: float
    """Seconds of the transcript once this stream's audio is in."""
    not_audio: object
    """Why the stream's bytes were not audio (then no recording is kept), else None."""
    opened_names: Mapping[str, str] = field(default_factory=dict)
    """The transcript's speaker names when the stream opened (not remembered again)."""
    forgotten: Collection[str] = ()
    """Voices deleted while the stream was live (casefolded): not remembered again."""

    async def close_within(self) -> None:
        """`_close` bounded by close_s: a hung store cannot keep the stream's lease, nor the
        server's stop waiting. Cut short (timeout, or the task cancelled as the process
        exits), `_close` still releases the lease in its `finally` (within RELEASE_S), so
        another server can resume the transcript at once instead of after it expires."""
        try:
            async with asyncio.timeout(self.deps.close_s):
                await self._close()
        except TimeoutError:
            logger.error(
                "transcript %s: storing the stream's last results took over %g s; given up "
                "with segments %s not stored",
                self.transcript_id,
                self.deps.close_s,
                self.writer.unsaved,
            )

    async def _close(self) -> None:
        epoch = self.keeper.lease.epoch
        try:
            try:
                if self.not_audio is not None:  # garbage is not a recording: the client was told
                    await self.recording.discard()
                    logger.info(
                        "transcript %s: the stream's audio was not decodable, not stored: %s",
                        self.transcript_id,
                        self.not_audio,
                    )
                else:
                    await self.recording.finish()
                await self.deps.store.set_recording(
                    self.owner, self.transcript_id, self._recording_mime(), epoch=epoch
                )
            except LeaseLostError as exc:
                self.keeper.mark_lost()
                logger.warning("transcript %s: recording not stored: %s", self.transcript_id, exc)
            except Exception:
                logger.exception("transcript %s: storing the recording failed", self.transcript_id)
            await self.keeper.stop_speaker_state()  # no renewal's older state lands after
            state = await self.speakers.state() if self.speakers is not None else None
            unsaved = await self.writer.close(
                self.status, datetime.now(UTC), self.duration, speaker_state=state
            )
            if state is not None and self.remember_voices:
                await voices.after_stream(
                    self.deps.store,
                    self.owner,
                    self.transcript_id,
                    state,
                    self.opened_names,
                    self.forgotten,
                )
            if unsaved:
                logger.error(
                    "transcript %s: segments %s could not be stored", self.transcript_id, unsaved
                )
        finally:
            await self.keeper.release()
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

    def _recording_mime(self) -> str:
        return self.deps.recordings.mime_type(self.transcript_id)


def ranges(indices: list[int]) -> str:
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
