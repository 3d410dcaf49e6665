"""A finished transcript as refinement finds it: its metadata, live segments and
recording stored, its refinement PENDING."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from service.domain import Refinement, RefinementState, Segment, TranscriptMeta, TranscriptStatus
from service.recordings import RecordingStore
from service.storage.base import TranscriptStore

OWNER = "alice"


async def finished_transcript(
    store: TranscriptStore,
    recordings: RecordingStore,
    recording: Path,
    *,
    language: str,
    model: str,
    duration_s: float,
    segments: Sequence[Segment] = (),
) -> str:
    """Store a COMPLETE transcript of OWNER made with `model` in `language`, its live
    `segments`, and `recording` (a FLAC file) as its recording; queue it for refinement.
    Returns its id."""
    tid = uuid.uuid4().hex
    await store.create_transcript(
        TranscriptMeta(tid, OWNER, datetime.now(UTC), TranscriptStatus.COMPLETE, language,
                       model, duration_s=duration_s)
    )  # fmt: skip
    if segments:
        await store.append_segments(OWNER, tid, list(segments))
    writer = recordings.open_writer(tid, "flac")
    await writer.write(await asyncio.to_thread(recording.read_bytes))
    await writer.finish()
    await store.set_refinement(OWNER, tid, Refinement(RefinementState.PENDING))
    return tid
