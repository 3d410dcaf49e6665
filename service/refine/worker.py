"""The refinement queue: one transcript at a time, claimed through the store.

A transcript is queued (PENDING) when its stream ends or its upload arrives. Every
server runs one Refiner; it takes transcripts from its own wake-ups and, every
`poll_s`, from the store (which also returns RUNNING jobs whose lease expired: a
server that died mid-job, or this one before a restart). A job is claimed with a
conditional write, so two replicas sharing DynamoDB never refine one transcript at
once, and the claim is renewed while the decode runs. Jobs that cannot succeed (no
recording, undecodable, longer than `max_seconds`) end FAILED with the reason and are
not retried; a job that hit a storage outage is left to its lease and tried again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.domain import (
    Decoding,
    Refinement,
    RefinementState,
    Segment,
    TranscriptMeta,
    TranscriptStatus,
    Word,
)
from service.errors import NotFoundError
from service.keywords import extract_keywords
from service.models import ModelChoiceError
from service.policy.words import ends_sentence, text_of
from service.recordings import RecordingStore
from service.refine.align import align_to_segments, changed
from service.refine.decoder import Decoded, RefineDecoders

logger = logging.getLogger(__name__)

RevisionListener = Callable[[str, Sequence[Segment]], None]


class RefinementStore(Protocol):
    """What refinement needs from a TranscriptStore (both backends implement it)."""

    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta: ...

    async def get_segments(self, owner: str, transcript_id: str) -> list[Segment]: ...

    async def finish_transcript(
        self,
        owner: str,
        transcript_id: str,
        status: TranscriptStatus,
        ended_at: datetime,
        duration_s: float,
        keywords: Sequence[str],
    ) -> None: ...

    async def append_segments(
        self, owner: str, transcript_id: str, segments: Sequence[Segment]
    ) -> None: ...

    async def set_refinement(self, owner: str, transcript_id: str, value: Refinement) -> None:
        """Store the state (and progress, detail) of a transcript's refinement."""

    async def claim_refinement(
        self, owner: str, transcript_id: str, worker: str, lease_s: float
    ) -> bool:
        """Become (or stay) the one refining it: True if it was PENDING, RUNNING with an
        expired lease, or already this worker's; False if another worker holds it."""

    async def pending_refinements(self, limit: int) -> list[tuple[str, str]]:
        """(owner, transcript id) of PENDING jobs and RUNNING ones whose lease expired."""

    async def update_transcript(
        self,
        owner: str,
        transcript_id: str,
        *,
        language: str | None = None,
        language_detected: bool | None = None,
    ) -> TranscriptMeta:
        """Store the language a refinement detected (uploads with language auto, and a
        stream's detection the whole recording corrects)."""


def _load_audio(path: Path) -> npt.NDArray[np.float32]:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path)), dtype=np.float32)


KEEP_SECOND_PASS = False
"""Whether refinement keeps second-passed segments (see `kept`). Measured with
benchmarks/refine_bench.py (docs/benchmarks.md, "Keeping the second pass"): 0.7 points
better on the tuning speakers, 0.3 worse on the held-out ones, so off by default; the
segments' marks are stored either way."""


def kept(
    live: Sequence[Segment], meta: TranscriptMeta, model: str, language: str
) -> frozenset[int]:
    """Indexes of the live segments refinement may leave as they are: those the live
    second pass decoded (and changed), when the refining model is the stream's and refines
    in the stream's language. The second pass hears each sentence with beam 5 and the
    sentences before it, as the whole-recording decode does; a more accurate model, or a
    corrected language, replaces it."""
    if model != meta.model or (language and meta.language and language != meta.language):
        return frozenset()
    return frozenset(s.index for s in live if s.decoding is Decoding.SECOND_PASS)


def segments_from_words(words: Sequence[Word], first_index: int = 0) -> list[Segment]:
    """Segments for a transcript that has no live ones (an upload): a segment per
    sentence (a word ending in . ? !) or per pause over 1 s, whichever comes first."""
    out: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        if current:
            conf = sum(w.probability for w in current) / len(current)
            text = text_of(current)
            out.append(
                Segment(first_index + len(out), current[0].start, current[-1].end, text,
                        tuple(current), conf, decoding=Decoding.REFINED)
            )  # fmt: skip
            current.clear()

    for w in words:
        if current and w.start - current[-1].end > 1.0:
            close()
        current.append(w)
        if ends_sentence(w):
            close()
    close()
    return out


class Refiner:
    """Re-decodes stored transcripts on the low-priority decoder, one at a time."""

    def __init__(
        self,
        store: RefinementStore,
        recordings: RecordingStore,
        decoders: RefineDecoders,
        *,
        lease_s: float = 60.0,
        poll_s: float = 30.0,
        max_seconds: float = 4 * 3600,
        keep_second_pass: bool = KEEP_SECOND_PASS,
    ) -> None:
        self.store = store
        self.recordings = recordings
        self.decoders = decoders
        """A decoder per refining model (`decoders.model_for` says which refines what)."""
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.max_seconds = max_seconds
        self.keep_second_pass = keep_second_pass
        """Keep second-passed segments (`kept`) rather than refine them."""
        self.worker = f"refiner-{uuid.uuid4().hex[:12]}"
        self.listeners: dict[str, set[RevisionListener]] = {}
        self.done = 0
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=1024)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="refiner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.decoders.close()

    async def submit(self, owner: str, transcript_id: str) -> None:
        """Queue a transcript (durably: PENDING in the store) and wake the worker."""
        await self.store.set_refinement(owner, transcript_id, Refinement(RefinementState.PENDING))
        try:
            self._queue.put_nowait((owner, transcript_id))
        except asyncio.QueueFull:  # the store's poll finds it
            pass

    async def _next(self) -> tuple[str, str] | None:
        try:
            return await asyncio.wait_for(self._queue.get(), self.poll_s)
        except TimeoutError:
            return None

    async def _run(self) -> None:
        while True:
            job = await self._next()
            jobs = [job] if job else []
            if not jobs:
                try:
                    jobs = await self.store.pending_refinements(16)
                except Exception as exc:  # storage down: try again at the next poll
                    logger.warning("listing refinement jobs failed: %s", exc)
            for owner, tid in jobs:
                try:
                    await self.refine(owner, tid)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("refining %s failed; its lease lets it be retried", tid)

    async def _fail(self, owner: str, tid: str, detail: str) -> None:
        logger.warning("refinement of %s not possible: %s", tid, detail)
        await self.store.set_refinement(owner, tid, Refinement(RefinementState.FAILED, 0.0, detail))

    async def refine(self, owner: str, tid: str) -> bool:
        """Refine one transcript if this worker can claim it; True when it ended DONE."""
        if not await self.store.claim_refinement(owner, tid, self.worker, self.lease_s):
            return False
        try:
            meta = await self.store.get_transcript(owner, tid)
        except NotFoundError:
            return False  # deleted meanwhile
        if meta.status is TranscriptStatus.LIVE:  # resumed: its stream's end queues it again
            await self.store.set_refinement(owner, tid, Refinement(RefinementState.NONE))
            return False
        if meta.duration_s > self.max_seconds:
            await self._fail(owner, tid, f"{meta.duration_s / 60:.0f} min is longer than the "
                             f"{self.max_seconds / 60:.0f} min refinement limit")  # fmt: skip
            return False
        try:
            info = await asyncio.to_thread(self.recordings.info, tid)
        except NotFoundError:
            await self._fail(owner, tid, "the transcript has no stored recording")
            return False
        try:
            audio = await asyncio.to_thread(_load_audio, info.path)
        except Exception as exc:
            await self._fail(owner, tid, f"the recording could not be decoded: {exc}")
            return False
        if len(audio) / SAMPLE_RATE > self.max_seconds:
            await self._fail(owner, tid, "the recording is longer than the refinement limit")
            return False
        try:
            decoder = self.decoders.get(self.decoders.model_for(meta.model, meta.language))
        except ModelChoiceError as exc:
            await self._fail(owner, tid, str(exc))
            return False
        # A language a stream detected is checked again on the whole recording; one it
        # was given is kept; none (an upload with language auto) is detected now.
        recheck = bool(meta.language) and meta.language_detected
        decoded = await self._decode(
            owner, tid, functools.partial(decoder.decode, recheck=recheck), audio, meta.language
        )
        if decoded.language and decoded.language != meta.language:
            await self.store.update_transcript(
                owner, tid, language=decoded.language, language_detected=True
            )
        words = decoded.words
        live = await self.store.get_segments(owner, tid)
        keep = frozenset[int]()
        if self.keep_second_pass:
            keep = kept(live, meta, decoder.spec.name, decoded.language)
        refined = align_to_segments(live, words, keep) if live else segments_from_words(words)
        updates = changed(live, refined)
        if updates:
            await self.store.append_segments(owner, tid, updates)
            await self._update_keywords(owner, tid, refined)
        await self.store.set_refinement(owner, tid, Refinement(RefinementState.DONE, 1.0))
        self.done += 1
        logger.info(
            "refined %s: %d of %d segments changed (%d second-passed kept)",
            tid, len(updates), len(refined), len(keep),
        )  # fmt: skip
        for listener in list(self.listeners.get(tid, ())):
            listener(tid, updates)
        return True

    async def _update_keywords(self, owner: str, tid: str, segments: list[Segment]) -> None:
        """Keywords from the refined text (a transcript resumed meanwhile keeps its own)."""
        meta = await self.store.get_transcript(owner, tid)
        if meta.status is TranscriptStatus.LIVE:
            return
        ended = meta.ended_at or datetime.now(UTC)
        words = extract_keywords(s.text for s in segments)
        await self.store.finish_transcript(owner, tid, meta.status, ended, meta.duration_s, words)

    async def _decode(
        self,
        owner: str,
        tid: str,
        decode: Callable[..., Future[Decoded]],
        audio: npt.NDArray[np.float32],
        language: str,
    ) -> Decoded:
        """The decode, with the claim renewed and progress stored as it goes."""
        loop = asyncio.get_running_loop()
        latest = [0.0]

        def report(progress: float) -> None:  # on the decoder's thread
            loop.call_soon_threadsafe(latest.__setitem__, 0, progress)

        future = asyncio.wrap_future(decode(audio, language, report))
        renew_every = self.lease_s / 3
        last = time.monotonic()
        while True:
            done, _ = await asyncio.wait({future}, timeout=min(5.0, renew_every))
            if done:
                return future.result()
            if time.monotonic() - last >= renew_every:
                if not await self.store.claim_refinement(owner, tid, self.worker, self.lease_s):
                    future.cancel()
                    raise RuntimeError(f"lost the refinement claim on {tid}")
                last = time.monotonic()
            await self.store.set_refinement(
                owner, tid, Refinement(RefinementState.RUNNING, round(latest[0], 3))
            )
