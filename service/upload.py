"""UploadRecording: a file becomes a stored transcript through the refinement path.

The bytes go straight to the recording store as they arrive (nothing is held in
memory), the stored file is checked to be audio, and the transcript is queued for
the refiner, which decodes it faster than real time at the lowest CPU priority and
stores sentence segments. A client that goes away mid-upload, or stops sending for the
idle timeout (DEADLINE_EXCEEDED), leaves nothing behind.

The last message, `end`, says how many bytes the client sent: a cancelled client can
reach this handler as a plain end of its request stream, so only `end` with the right
count proves the file whole. A stream that ends without it (a client from before `end`)
is stored as received, and logged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TypeVar

from transcribe.v1 import transcripts_pb2

from service.audio import AudioFormat
from service.domain import TranscriptMeta, TranscriptStatus
from service.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from service.model_pool import ModelPool
from service.recordings import RecordingStore
from service.refine.worker import Refiner
from service.servicer import MAX_TAG, MAX_TAGS, MAX_TITLE, audio_format, check_text
from service.storage.base import TranscriptStore
from service.undo import await_or_undo

logger = logging.getLogger(__name__)
pb = transcripts_pb2
T = TypeVar("T")


def upload_format(cfg: pb.UploadConfig) -> AudioFormat:
    """The declared format of an upload: the same rules as a stream's config."""
    return audio_format(cfg.encoding, cfg.sample_rate_hertz, cfg.audio_channel_count)


class Uploads:
    """Stores uploaded files and queues them for transcription."""

    def __init__(
        self,
        store: TranscriptStore,
        recordings: RecordingStore,
        refiner: Refiner,
        models: ModelPool,
        max_bytes: int,
        idle_s: float = 60.0,
    ) -> None:
        self.store = store
        self.recordings = recordings
        self.refiner = refiner
        self.models = models
        """Checks config.model and config.language_code as for streams; the refiner then
        decodes with that model (a low-priority instance of it)."""
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        """A client silent this long is gone in all but name: its upload ends, undone."""

    async def _next(self, requests: AsyncIterator[T]) -> T | None:
        """The client's next message (None: it half-closed), within the idle timeout."""
        try:
            async with asyncio.timeout(self.idle_s):
                return await anext(requests, None)
        except TimeoutError:
            raise DeadlineExceededError(
                f"no upload data received for {self.idle_s:g} s; the upload was ended and "
                "nothing of it was kept. Send the file again",
                reason="idle",
            ) from None

    async def upload(
        self, owner: str, requests: AsyncIterator[pb.UploadRecordingRequest]
    ) -> TranscriptMeta:
        first = await self._next(requests)
        if first is None or first.WhichOneof("request") != "config":
            raise InvalidArgumentError("the first UploadRecording message must be the config")
        cfg = first.config
        fmt = upload_format(cfg)
        choice = self.models.choose(cfg.model, cfg.language_code)
        if len(cfg.tags) > MAX_TAGS:
            raise InvalidArgumentError(f"config.tags has {len(cfg.tags)} tags; at most {MAX_TAGS}")
        tags = tuple(check_text("tags", t.strip(), MAX_TAG) for t in cfg.tags if t.strip())
        title = check_text("title", cfg.title.strip(), MAX_TITLE)
        now = datetime.now(UTC)
        meta = TranscriptMeta(
            id=str(uuid.uuid4()), owner=owner, created_at=now, status=TranscriptStatus.LIVE,
            language=choice.language, model=choice.model.name,
            title=title or f"Upload {now:%Y-%m-%d %H:%M}", tags=tags,
        )  # fmt: skip

        # A client gone while the row is written (a store write lands once sent) must not
        # leave it behind, nor one whose upload fails or is abandoned after it.
        async def forget(_: None) -> None:
            await self._forget(owner, meta.id)

        await await_or_undo(self.store.create_transcript(meta), forget)
        try:
            return await self._receive(meta, fmt, requests)
        except BaseException:
            await asyncio.shield(self._forget(owner, meta.id))
            raise

    async def _receive(
        self,
        meta: TranscriptMeta,
        fmt: AudioFormat,
        requests: AsyncIterator[pb.UploadRecordingRequest],
    ) -> TranscriptMeta:
        writer = self.recordings.open_writer(meta.id, fmt.container, fmt.sample_rate, fmt.channels)
        while (req := await self._next(requests)) is not None:
            kind = req.WhichOneof("request")
            if kind == "end":
                await self._check_end(req.end, writer.bytes, requests)
                break
            if kind != "audio_content":
                raise InvalidArgumentError("only the first UploadRecording message is a config")
            if writer.bytes + len(req.audio_content) > self.max_bytes:
                raise ResourceExhaustedError(
                    f"the upload is larger than the server's limit of {self.max_bytes >> 20} MiB"
                )
            await writer.write(req.audio_content)
        else:  # the request stream ended without `end`
            logger.info(
                "upload %s ended without `end` (a client from before it?): stored as "
                "received, %d bytes, unchecked",
                meta.id,
                writer.bytes,
            )
        if writer.bytes == 0:
            raise InvalidArgumentError("the upload has no audio bytes after its config")
        try:
            mime = await writer.finish()
            info = await asyncio.to_thread(self.recordings.info, meta.id)
        except Exception as exc:
            logger.info("upload %s is not decodable audio: %s", meta.id, exc)
            raise InvalidArgumentError(
                f"the uploaded {fmt.label or fmt.container} file could not be decoded as audio"
            ) from None
        if info.duration_s <= 0:
            raise InvalidArgumentError(
                f"the uploaded {fmt.label or fmt.container} file could not be decoded as audio "
                "(no audio frames in it)"
            )
        await self.store.set_recording(meta.owner, meta.id, mime)
        ended = datetime.now(UTC)
        await self.store.finish_transcript(
            meta.owner, meta.id, TranscriptStatus.COMPLETE, ended, info.duration_s, ()
        )
        await self.refiner.submit(meta.owner, meta.id)
        return await self.store.get_transcript(meta.owner, meta.id)

    async def _check_end(
        self,
        end: pb.UploadEnd,
        received: int,
        requests: AsyncIterator[pb.UploadRecordingRequest],
    ) -> None:
        """The client's `end`: its count must be the bytes received, and only the end of
        the request stream may follow it (within the idle timeout)."""
        if end.total_bytes != received:
            raise InvalidArgumentError(
                f"the client sent {end.total_bytes} bytes but the server received {received}; "
                "nothing was stored, send the file again",
                reason="size_mismatch",
            )
        after = await self._next(requests)
        if after is not None:
            what = after.WhichOneof("request") or "an empty message"
            raise InvalidArgumentError(
                f"the upload sent {what} after its `end`, which must be its last message; "
                "nothing was stored, send the file again with `end` last",
                reason="after_end",
            )

    async def _forget(self, owner: str, tid: str) -> None:
        """Remove what a failed or abandoned upload stored (shielded as a whole by its
        callers: the call's second cancellation cannot skip a part)."""
        try:
            await self.store.delete_transcript(owner, tid)
        except NotFoundError:
            pass
        await self.recordings.delete(tid)
