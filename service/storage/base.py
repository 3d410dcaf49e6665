"""The TranscriptStore Protocol every backend implements.

All methods are async; backends run blocking I/O in a thread. Every read and
write is scoped by `owner` (the principal): a transcript of another owner is
reported as NotFoundError, exactly as a missing one.

Writers hold a lease (service/storage/lease.py): the writes a stream makes carry its
`epoch`, and a backend refuses them with LeaseLostError once a newer epoch exists.
`epoch=None` writes unfenced (tools and tests that own the store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from service.domain import (
    Refinement,
    SearchHit,
    Segment,
    TranscriptMeta,
    TranscriptStatus,
    Voice,
)
from service.storage.lease import Lease


class TranscriptStore(Protocol):
    """Persistence of transcripts and their final segments."""

    async def create_transcript(self, meta: TranscriptMeta) -> None:
        """Store a new transcript (status LIVE, no segments)."""

    async def acquire_lease(
        self, owner: str, transcript_id: str, holder: str, lease_s: float
    ) -> Lease:
        """Take the transcript's writer lease in one conditional write: status LIVE, a new
        epoch, expiry in lease_s. TranscriptBusyError (ABORTED) while another unexpired
        lease is held, InvalidArgumentError if the transcript is complete, NotFoundError."""

    async def renew_lease(
        self,
        owner: str,
        transcript_id: str,
        epoch: int,
        lease_s: float,
        speaker_state: str | None = None,
    ) -> Lease:
        """Extend the lease of this epoch to lease_s from now; LeaseLostError if stale.
        `speaker_state` (the live stream's speaker tracker, see LeaseKeeper) replaces the
        stored one in the same fenced write; None leaves it as it is."""

    async def release_lease(self, owner: str, transcript_id: str, epoch: int) -> None:
        """End the lease of this epoch now; nothing if a newer epoch holds the transcript."""

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        """Add or replace final segments by index; idempotent, so retries are safe.

        A segment whose index is stored replaces it (a revision after re-decoding the
        sentence); within one batch the later of two with the same index wins. The
        segment count counts distinct indexes, the duration is the largest end seen, and
        search finds the new text (also across the seam with the next segment), not the old.
        """

    async def finish_transcript(
        self,
        owner: str,
        transcript_id: str,
        status: TranscriptStatus,
        ended_at: datetime,
        duration_s: float,
        keywords: Sequence[str],
        epoch: int | None = None,
        speaker_state: str | None = None,
    ) -> None:
        """Close a transcript with its final status, duration and keywords; with an epoch,
        fenced, and that epoch's lease ends in the same write. `speaker_state` (the speaker
        tracker's, for a later stream to continue the labels) replaces the stored one;
        None leaves it as it is."""

    async def set_recording(
        self, owner: str, transcript_id: str, mime_type: str, epoch: int | None = None
    ) -> None:
        """Record that a recording of this MIME type exists for the transcript."""

    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta:
        """Metadata of one transcript; NotFoundError if missing or not the owner's."""

    async def get_segments(self, owner: str, transcript_id: str) -> list[Segment]:
        """All final segments in index order."""

    async def list_transcripts(
        self,
        owner: str,
        page_size: int,
        page_token: str,
        tags: Sequence[str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[TranscriptMeta], str]:
        """A page of the owner's transcripts, newest first, and the next page token."""

    async def search(
        self, owner: str, query: str, page_size: int, page_token: str, speaker: str = ""
    ) -> tuple[list[SearchHit], str]:
        """Segments matching all words (or a quoted phrase) of query, and the next token.
        With `speaker`, only segments of that label, or of a label the transcript names so
        (case-folded); no title hits then (see service/storage/speaker_filter.py)."""

    async def update_transcript(
        self,
        owner: str,
        transcript_id: str,
        *,
        title: str | None = None,
        tags: Sequence[str] | None = None,
        speaker_names: dict[str, str] | None = None,
        language: str | None = None,
        language_detected: bool | None = None,
    ) -> TranscriptMeta:
        """Change the given fields; returns the updated metadata. `language` is set once a
        stream or refinement has detected it (a transcript detecting stores ""), with
        `language_detected` True: it was detected, not given (refinement checks it again)."""

    async def name_unnamed_speakers(
        self, owner: str, transcript_id: str, names: Mapping[str, str]
    ) -> dict[str, str]:
        """Name each label of `names` only if it is still unnamed (absent, or "") at the
        moment of the write, one conditional write per label, so a name given meanwhile
        (a user's rename through update_transcript) is kept, never overwritten. Returns
        the transcript's whole names map afterwards. NotFoundError for a missing or
        another owner's transcript. Used for names from remembered voices."""

    async def delete_transcript(self, owner: str, transcript_id: str) -> None:
        """Remove the transcript, its segments and its search index entries."""

    async def set_refinement(self, owner: str, transcript_id: str, value: Refinement) -> None:
        """Store where the transcript's refinement is (PENDING/DONE/FAILED also open or
        close its place in the job queue); NotFoundError if missing or not the owner's."""

    async def claim_refinement(
        self, owner: str, transcript_id: str, worker: str, lease_s: float
    ) -> bool:
        """Become (or stay) the one worker refining it, for lease_s: True if it was
        PENDING, RUNNING with an expired claim, or already this worker's."""

    async def pending_refinements(self, limit: int) -> list[tuple[str, str]]:
        """(owner, transcript id) of PENDING jobs and of RUNNING ones whose claim expired."""

    async def put_voice(self, owner: str, voice: Voice) -> None:
        """Remember a voice under its name (any case is one name), replacing one so named."""

    async def list_voices(self, owner: str) -> list[Voice]:
        """The owner's remembered voices, by name."""

    async def delete_voice(self, owner: str, name: str) -> None:
        """Forget a voice: its stored print is deleted. NotFoundError if there is none."""

    async def close(self) -> None:
        """Release connections and threads."""
