"""DynamoDB transcript store, for deployments that outgrow one machine.

Table design (two tables, on-demand capacity; names prefixed by settings):

`<prefix>-transcripts`, keys `pk` (S) and `sk` (S):
- transcript metadata: pk `T#<id>`, sk `META`; attributes owner, created (N), status,
  title, tags (L), keywords (L), speaker_names (M), segment_count (N), ... and the
  GSI keys `gpk` = `O#<owner>`, `gsk` = `<created, 17 digits>#<id>`. About 1 KB, plus
  `speaker_state` (S) on a diarized transcript: the speaker tracker's voices as JSON,
  ~1.4 KB per speaker (at most 8: ~12 KB, whatever the length), written under the
  stream's lease epoch by its lease renewals (in the same conditional update, when it
  changed: a server that dies leaves it for the next stream) and by its end-of-stream
  write, and read when a stream resumes the transcript; `language_detected`
  (BOOL, absent: false) once a stream or refinement detected the language.
- each final segment: pk `T#<id>`, sk `S#<index, 8 digits>`; start, end, text,
  confidence, speaker, its words as compact JSON, `decoding` (N, domain.Decoding:
  0 first pass, 1 second pass, 2 refined; absent: first pass), and `posted`: the words
  that may have a posting for it (see below). A segment is a few seconds of speech, so an
  item stays around 1-3 KB, far below the 400 KB limit.
- GSI `by-owner` (gpk, gsk), projecting all: ListTranscripts is one Query,
  newest first, paged with LastEvaluatedKey.
- each remembered voice: pk `V#<owner>`, sk its name case-folded; the voice print
  (~1 KB binary) and where it was named (dynamodb_voices.py).

`<prefix>-index`, keys `pk` (S) and `sk` (S): the inverted index for search.
- one posting per distinct token of a segment (query.tokenize: words with case and
  accents folded; Chinese, Japanese ... characters and character pairs):
  pk `W#<owner>#<token>`,
  sk `<inverted created>#<id>#<index>` so a Query returns the newest transcripts
  first; it carries the segment's text and start, and the speaker labels of the
  segment (`spk`) and of the one before (`pspk`), so hits need no further reads
  except one BatchGetItem for the current titles and speaker names.

Search queries the postings of the query's longest word (usually the rarest)
and checks every word and phrase against the posting's text: never a Scan. A
speaker filter is applied to those postings (dynamodb_search.py says why).

Page tokens are the base64 of the last evaluated key, opaque to clients.

A segment may be written again with the same index (a revision): its items and
postings are replaced in three idempotent steps (dynamodb_segments.py says how).
botocore retries throttling and transient errors with exponential backoff.

This class is the async face of the store: each method runs on the store's threads,
mostly as one blocking function of the module that owns its concern. The tables: dynamodb_tables;
transcript metadata and listing: dynamodb_transcripts; segments and their postings:
dynamodb_segments; search: dynamodb_search; the writer lease: dynamodb_lease;
refinement jobs: dynamodb_refine; remembered voices: dynamodb_voices.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from service.config import StorageSettings
from service.domain import (
    Refinement,
    SearchHit,
    Segment,
    TranscriptMeta,
    TranscriptStatus,
    Voice,
)
from service.errors import InvalidArgumentError, UnavailableError
from service.storage import (
    dynamodb_refine,
    dynamodb_search,
    dynamodb_segments,
    dynamodb_tables,
    dynamodb_transcripts,
    dynamodb_voices,
)
from service.storage.dynamodb_lease import acquire, release, renew
from service.storage.dynamodb_transcripts import dec, set_values
from service.storage.lease import Lease
from service.storage.query import decode_page_token, parse_query
from service.storage.speaker_filter import check_speaker
from service.threads import named_executor

T = TypeVar("T")

UNAVAILABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


class DynamoDBTranscriptStore:
    """TranscriptStore on two DynamoDB tables (see the module docstring)."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.tables = dynamodb_tables.connect(settings)
        # Its own threads: during an outage botocore's retries block them for many
        # seconds, and that must not starve the default executor (VAD, audio decoding).
        self._executor = named_executor(8, "dynamodb")

    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kw))
        except (BotoConnectionError, HTTPClientError) as exc:
            raise UnavailableError(
                f"transcript storage (DynamoDB) is unreachable ({type(exc).__name__}); "
                "retry shortly"
            ) from exc
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in UNAVAILABLE_CODES:
                raise UnavailableError(
                    f"transcript storage (DynamoDB) is overloaded or unavailable "
                    f"({exc.response['Error']['Code']}); retry shortly"
                ) from exc
            raise

    async def open(self) -> DynamoDBTranscriptStore:
        if self.settings.dynamodb_create_tables:
            await self._run(dynamodb_tables.create_tables, self.tables)
        return self

    def _owned_item(self, owner: str, transcript_id: str) -> dict[str, Any]:
        return dynamodb_transcripts.owned_item(self.tables.main, owner, transcript_id)

    # ---- the writer lease -----------------------------------------------
    async def acquire_lease(
        self, owner: str, transcript_id: str, holder: str, lease_s: float
    ) -> Lease:
        main = self.tables.main
        return await self._run(
            acquire, main, owner, transcript_id, holder, lease_s, self._owned_item
        )

    async def renew_lease(
        self,
        owner: str,
        transcript_id: str,
        epoch: int,
        lease_s: float,
        speaker_state: str | None = None,
    ) -> Lease:
        main = self.tables.main
        return await self._run(
            renew, main, owner, transcript_id, epoch, lease_s, self._owned_item, speaker_state
        )

    async def release_lease(self, owner: str, transcript_id: str, epoch: int) -> None:
        await self._run(release, self.tables.main, owner, transcript_id, epoch)

    # ---- writes ---------------------------------------------------------
    async def create_transcript(self, meta: TranscriptMeta) -> None:
        await self._run(dynamodb_transcripts.create, self.tables.main, meta)

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        await self._run(
            dynamodb_segments.append, self.tables, owner, transcript_id, segments, epoch
        )

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
        def do() -> None:
            meta = self._owned_item(owner, transcript_id)
            values: dict[str, Any] = {
                "status": status.value,
                "ended": dec(ended_at.timestamp()),
                "duration": dec(max(duration_s, float(meta.get("duration", 0)))),
                "keywords": list(keywords),
            }
            if speaker_state is not None:  # a few KB: well inside the 400 KB item limit
                values["speaker_state"] = speaker_state
            if epoch is not None:  # the writer is done: its lease ends with this write
                values["lease_until"] = dec(0)
            set_values(self.tables.main, transcript_id, values, epoch)

        await self._run(do)

    async def set_recording(
        self, owner: str, transcript_id: str, mime_type: str, epoch: int | None = None
    ) -> None:
        await self._run(
            dynamodb_transcripts.set_recording,
            self.tables.main,
            owner,
            transcript_id,
            mime_type,
            epoch,
        )

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
        def do() -> TranscriptMeta:
            self._owned_item(owner, transcript_id)
            values: dict[str, Any] = {}
            if title is not None:
                values["title"] = title
            if tags is not None:
                values["tags"] = list(tags)
            if speaker_names is not None:
                values["speaker_names"] = dict(speaker_names)
            if language is not None:
                values["language"] = language
            if language_detected is not None:
                values["language_detected"] = language_detected
            if values:
                set_values(self.tables.main, transcript_id, values)
            return dynamodb_transcripts.meta(self._owned_item(owner, transcript_id))

        return await self._run(do)

    async def name_unnamed_speakers(
        self, owner: str, transcript_id: str, names: Mapping[str, str]
    ) -> dict[str, str]:
        return await self._run(
            dynamodb_transcripts.name_unnamed, self.tables.main, owner, transcript_id, dict(names)
        )

    async def delete_transcript(self, owner: str, transcript_id: str) -> None:
        await self._run(dynamodb_segments.delete_transcript, self.tables, owner, transcript_id)

    # ---- reads ----------------------------------------------------------
    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta:
        return dynamodb_transcripts.meta(await self._run(self._owned_item, owner, transcript_id))

    async def get_segments(self, owner: str, transcript_id: str) -> list[Segment]:
        return await self._run(dynamodb_segments.get, self.tables, owner, transcript_id)

    async def list_transcripts(
        self,
        owner: str,
        page_size: int,
        page_token: str,
        tags: Sequence[str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[TranscriptMeta], str]:
        args = (owner, page_size, page_token, tags, created_after, created_before)
        return await self._run(dynamodb_transcripts.list_page, self.tables.main, *args)

    async def search(
        self, owner: str, query: str, page_size: int, page_token: str, speaker: str = ""
    ) -> tuple[list[SearchHit], str]:
        from boto3.dynamodb.conditions import Key

        parsed = parse_query(query)
        speaker = check_speaker(speaker)
        driver = max(parsed.tokens, key=len)
        start = decode_page_token(page_token, {"pk": (str,), "sk": (str,)}) if page_token else None
        if start is not None and start["pk"] != f"W#{owner}#{driver}":
            raise InvalidArgumentError(
                "page_token is not valid for this query; pass the next_page_token of the "
                "previous response to the same query"
            )
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"W#{owner}#{driver}")}
        if start:
            kwargs["ExclusiveStartKey"] = start
        tables = self.tables

        def do() -> tuple[list[SearchHit], str]:
            found, token = dynamodb_search.segment_hits(
                tables.index, tables.client, tables.main_name, kwargs, parsed, page_size, speaker
            )
            if page_token or speaker:  # title hits: first page, and a title has no speaker
                return found, token
            return dynamodb_search.title_hits(tables.main, owner, parsed, page_size) + found, token

        return await self._run(do)

    # ---- refinement jobs (service/refine) --------------------------------
    async def set_refinement(self, owner: str, transcript_id: str, value: Refinement) -> None:
        def do() -> None:
            meta = self._owned_item(owner, transcript_id)
            dynamodb_refine.set_refinement(
                self.tables.main, owner, transcript_id, value, meta["gsk"]
            )

        await self._run(do)

    async def claim_refinement(
        self, owner: str, transcript_id: str, worker: str, lease_s: float
    ) -> bool:
        return await self._run(
            dynamodb_refine.claim, self.tables.main, owner, transcript_id, worker, lease_s
        )

    async def pending_refinements(self, limit: int) -> list[tuple[str, str]]:
        return await self._run(dynamodb_refine.pending, self.tables.main, limit)

    # ---- remembered voices (service/speakers/voices.py) -------------------
    async def put_voice(self, owner: str, voice: Voice) -> None:
        await self._run(dynamodb_voices.put, self.tables.main, owner, voice)

    async def list_voices(self, owner: str) -> list[Voice]:
        return await self._run(dynamodb_voices.list_voices, self.tables.main, owner)

    async def delete_voice(self, owner: str, name: str) -> None:
        await self._run(dynamodb_voices.delete, self.tables.main, owner, name)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
