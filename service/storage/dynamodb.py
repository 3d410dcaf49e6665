"""DynamoDB transcript store, for deployments that outgrow one machine.

Table design (two tables, on-demand capacity; names prefixed by settings):

`<prefix>-transcripts`, keys `pk` (S) and `sk` (S):
- transcript metadata: pk `T#<id>`, sk `META`; attributes owner, created (N), status,
  title, tags (L), keywords (L), speaker_names (M), segment_count (N), ... and the
  GSI keys `gpk` = `O#<owner>`, `gsk` = `<created, 17 digits>#<id>`. About 1 KB, plus
  `speaker_state` (S) on a diarized transcript: the speaker tracker's voices as JSON,
  ~2-3 KB per speaker (at most 8), written by the stream's end-of-stream write under
  its lease epoch and read when a stream resumes the transcript.
- each final segment: pk `T#<id>`, sk `S#<index, 8 digits>`; start, end, text,
  confidence, speaker, its words as compact JSON, and `posted`: the words that may
  have a posting for it (see below). A segment is a few seconds of speech, so an
  item stays around 1-3 KB, far below the 400 KB limit.
- GSI `by-owner` (gpk, gsk), projecting all: ListTranscripts is one Query,
  newest first, paged with LastEvaluatedKey.

`<prefix>-index`, keys `pk` (S) and `sk` (S): the inverted index for search.
- one posting per distinct token of a segment (query.tokenize: words with case and
  accents folded; Chinese, Japanese ... characters and character pairs):
  pk `W#<owner>#<token>`,
  sk `<inverted created>#<id>#<index>` so a Query returns the newest transcripts
  first; it carries the segment's text and start so hits need no further reads
  except one BatchGetItem for the current titles.

Search queries the postings of the query's longest word (usually the rarest)
and checks every word and phrase against the posting's text: never a Scan.
Page tokens are the base64 of the last evaluated key, opaque to clients.

A segment may be written again with the same index (a revision): it replaces the
stored one, and the postings of its window and of the next segment's window (which
starts with its text) are rewritten. A replacement is three steps, each idempotent:
items first, their `posted` widened to old and new words; then the postings (the
words no longer in a window deleted); then `posted` narrowed to the new words. An
attempt that fails part-way thus leaves no posting its retry cannot find, even if
the retried batch holds yet another revision. botocore retries throttling and
transient errors with exponential backoff.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from service.config import StorageSettings
from service.domain import Refinement, SearchHit, Segment, TranscriptMeta, TranscriptStatus, Word
from service.errors import InvalidArgumentError, NotFoundError, UnavailableError
from service.storage import dynamodb_refine
from service.storage.dynamodb_lease import (
    acquire,
    conditional_failed,
    fenced_items,
    release,
    renew,
)
from service.storage.lease import Lease, LeaseLostError, lost_message
from service.storage.query import (
    Located,
    SearchQuery,
    decode_page_token,
    encode_page_token,
    locate,
    matches,
    parse_query,
    tokenize,
    transcript_hit,
    window,
)
from service.threads import named_executor

T = TypeVar("T")
GSI = "by-owner"
MAX_CREATED = 10**17


def _created_key(created: datetime) -> str:
    return f"{round(created.timestamp() * 1e6):017d}"


def _rev(created: Decimal) -> str:
    """Sort key prefix that lists newer transcripts first (from the stored timestamp)."""
    return f"{MAX_CREATED - int(Decimal(created) * 10**6):017d}"


def _word_start(posting: dict[str, Any], where: Located) -> float:
    """When the first matched word is spoken (the posting keeps its window's word starts)."""
    starts = json.loads(posting.get("starts", "[]"))
    if where.word < len(starts):
        return float(starts[where.word])
    return float(posting["start"])


def _posted(item: dict[str, Any], prev: dict[str, Any] | None) -> set[str]:
    """Every token that may have a posting for this segment item. Items written before
    `posted` existed have exactly the postings of their window."""
    if "posted" in item:
        return set(json.loads(item["posted"]))
    return set(tokenize(window(prev["text"] if prev else "", item["text"])[0]))


def _posted_json(tokens: set[str]) -> str:
    return json.dumps(sorted(tokens), ensure_ascii=False)


def _dec(x: float) -> Decimal:
    return Decimal(str(round(x, 6)))


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
        kwargs: dict[str, Any] = {
            "region_name": settings.dynamodb_region,
            # Bounded: a session's writer and the clients retry further themselves.
            "config": Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=3,
                read_timeout=10,
            ),
        }
        if settings.dynamodb_endpoint:
            kwargs["endpoint_url"] = settings.dynamodb_endpoint
            kwargs.setdefault("aws_access_key_id", "local")
            kwargs.setdefault("aws_secret_access_key", "local")
        self._resource = boto3.resource("dynamodb", **kwargs)
        self._client = self._resource.meta.client
        self.main_name = f"{settings.dynamodb_table_prefix}-transcripts"
        self.index_name = f"{settings.dynamodb_table_prefix}-index"
        self._main = self._resource.Table(self.main_name)
        self._index = self._resource.Table(self.index_name)
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
            await self._run(self._create_tables)
        return self

    def _create_tables(self) -> None:
        existing = set(self._client.list_tables()["TableNames"])
        key_schema = [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
        if self.main_name not in existing:
            self._client.create_table(
                TableName=self.main_name,
                KeySchema=key_schema,
                AttributeDefinitions=[
                    {"AttributeName": n, "AttributeType": "S"}
                    for n in ("pk", "sk", "gpk", "gsk", "rq", "rqs")
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": GSI,
                        "KeySchema": [
                            {"AttributeName": "gpk", "KeyType": "HASH"},
                            {"AttributeName": "gsk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    },
                    dynamodb_refine.gsi_definition(),
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        if self.index_name not in existing:
            self._client.create_table(
                TableName=self.index_name,
                KeySchema=key_schema,
                AttributeDefinitions=[
                    {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        if self.main_name in existing:
            dynamodb_refine.ensure_gsi(self._client, self.main_name)
        waiter = self._client.get_waiter("table_exists")
        waiter.wait(TableName=self.main_name)
        waiter.wait(TableName=self.index_name)

    # ---- item <-> domain -----------------------------------------------
    @staticmethod
    def _meta(item: dict[str, Any]) -> TranscriptMeta:
        ended = item.get("ended")
        return TranscriptMeta(
            id=item["id"],
            owner=item["owner"],
            created_at=datetime.fromtimestamp(float(item["created"]), UTC),
            status=TranscriptStatus(int(item["status"])),
            language=item["language"],
            model=item["model"],
            title=item.get("title", ""),
            tags=tuple(item.get("tags", [])),
            ended_at=datetime.fromtimestamp(float(ended), UTC) if ended is not None else None,
            duration_s=float(item.get("duration", 0)),
            keywords=tuple(item.get("keywords", [])),
            speaker_names=dict(item.get("speaker_names", {})),
            segment_count=int(item.get("segment_count", 0)),
            recording_mime_type=item.get("recording_mime", ""),
            refinement=dynamodb_refine.refinement(item),
            speaker_state=item.get("speaker_state", ""),
        )

    @staticmethod
    def _segment(item: dict[str, Any]) -> Segment:
        return Segment(
            index=int(item["idx"]),
            start=float(item["start"]),
            end=float(item["end"]),
            text=item["text"],
            words=tuple(Word(str(t), s, e, p) for t, s, e, p in json.loads(item["words"])),
            confidence=float(item["confidence"]),
            speaker_label=item.get("speaker", ""),
        )

    def _owned_item(self, owner: str, transcript_id: str) -> dict[str, Any]:
        item = self._main.get_item(Key={"pk": f"T#{transcript_id}", "sk": "META"}).get("Item")
        if item is None or item.get("owner") != owner:
            raise NotFoundError(f"transcript {transcript_id!r} not found")
        return item  # type: ignore[no-any-return]

    # ---- writes ---------------------------------------------------------
    async def create_transcript(self, meta: TranscriptMeta) -> None:
        created = meta.created_at.timestamp()
        item = {
            "pk": f"T#{meta.id}",
            "sk": "META",
            "gpk": f"O#{meta.owner}",
            "gsk": f"{_created_key(meta.created_at)}#{meta.id}",
            "id": meta.id,
            "owner": meta.owner,
            "created": _dec(created),
            "status": meta.status.value,
            "language": meta.language,
            "model": meta.model,
            "title": meta.title,
            "tags": list(meta.tags),
            "keywords": list(meta.keywords),
            "speaker_names": dict(meta.speaker_names),
            "segment_count": meta.segment_count,
            "duration": _dec(meta.duration_s),
            "recording_mime": meta.recording_mime_type,
        }
        await self._run(
            self._main.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )

    async def append_segments(
        self,
        owner: str,
        transcript_id: str,
        segments: Sequence[Segment],
        epoch: int | None = None,
    ) -> None:
        latest = {s.index: s for s in segments}  # a later revision in the batch wins

        def do() -> None:
            meta = self._owned_item(owner, transcript_id)
            if not latest:
                return
            rev = _rev(meta["created"])
            nexts = {i + 1 for i in latest} - set(latest)
            stored = self._segment_items(
                transcript_id, set(latest) | {i - 1 for i in latest if i > 0} | nexts
            )
            # Text and word starts of each index as they are once this batch is stored.
            after = {
                i: (it["text"], [float(w[1]) for w in json.loads(it["words"])])
                for i, it in stored.items()
            }
            after |= {i: (s.text, [w.start for w in s.words]) for i, s in latest.items()}
            # The stored segment after a written one is re-indexed too, as its window starts
            # with the written text. Always, not only when that text changed: a failed
            # attempt may have stored the new text but not yet that window's postings.
            touched = sorted(set(latest) | (nexts & set(stored)))
            tokens: dict[int, list[str]] = {}
            for k in touched:
                indexed, _ = window(after.get(k - 1, ("", []))[0], after[k][0])
                tokens[k] = list(dict.fromkeys(tokenize(indexed)))
            # 1. Items first, each listing every token that may have a posting for it (the old
            #    ones and the new): an attempt that fails part-way leaves no posting unlisted.
            posted = {
                k: set(tokens[k])
                | (_posted(stored[k], stored.get(k - 1)) if k in stored else set())
                for k in touched
            }
            # Items and their count in transactions fenced by the writer's epoch: a stale
            # writer stores nothing, and a retry sees the items stored and does not count again.
            end = max(s.end for s in latest.values())
            duration = max(end, float(meta.get("duration", 0)))
            items = [self._segment_item(transcript_id, s, posted[s.index]) for s in latest.values()]
            fenced_items(
                self._client,
                self.main_name,
                transcript_id,
                items,
                new={s.index for s in latest.values()} - set(stored),
                duration=_dec(duration),
                epoch=epoch,
            )
            for k in touched:  # the next segments' `posted` widened as well
                if k not in latest and stored[k].get("posted") != _posted_json(posted[k]):
                    self._set_posted(transcript_id, k, posted[k])
            # 2. Postings: drop the tokens a segment's window no longer has, (re)write the rest.
            with self._index.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for k in touched:
                    sk = f"{rev}#{transcript_id}#{k:08d}"
                    for token in posted[k].difference(tokens[k]):
                        batch.delete_item(Key={"pk": f"W#{owner}#{token}", "sk": sk})
                    prev_text, prev_starts = after.get(k - 1, ("", []))
                    text, starts = after[k]
                    start = latest[k].start if k in latest else float(stored[k]["start"])
                    for token in tokens[k]:
                        batch.put_item(
                            Item={
                                "pk": f"W#{owner}#{token}",
                                "sk": sk,
                                "tid": transcript_id,
                                "idx": k,
                                "start": _dec(start),
                                "text": text,
                                "prev": prev_text,
                                "starts": json.dumps([round(t, 3) for t in prev_starts + starts]),
                                "created": meta["created"],
                            }
                        )
            # 3. The items list exactly their postings again.
            for k in touched:
                if posted[k] != set(tokens[k]):
                    self._set_posted(transcript_id, k, set(tokens[k]))

        await self._run(do)

    def _segment_items(self, transcript_id: str, indexes: set[int]) -> dict[int, dict[str, Any]]:
        """The stored items of these segment indexes (strongly consistent: a replacement
        computes which postings to delete from them)."""
        out: dict[int, dict[str, Any]] = {}
        keys = [{"pk": f"T#{transcript_id}", "sk": f"S#{i:08d}"} for i in sorted(indexes)]
        for n in range(0, len(keys), 100):
            request = {self.main_name: {"Keys": keys[n : n + 100], "ConsistentRead": True}}
            while request:
                resp = self._client.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.main_name, []):
                    out[int(item["idx"])] = item
                request = resp.get("UnprocessedKeys") or {}
        return out

    @staticmethod
    def _segment_item(transcript_id: str, seg: Segment, posted: set[str]) -> dict[str, Any]:
        return {
            "pk": f"T#{transcript_id}",
            "sk": f"S#{seg.index:08d}",
            "idx": seg.index,
            "start": _dec(seg.start),
            "end": _dec(seg.end),
            "text": seg.text,
            "confidence": _dec(seg.confidence),
            "speaker": seg.speaker_label,
            "words": json.dumps(
                [
                    [w.text, round(w.start, 3), round(w.end, 3), round(w.probability, 3)]
                    for w in seg.words
                ]
            ),
            "posted": _posted_json(posted),
        }

    def _set_posted(self, transcript_id: str, index: int, tokens: set[str]) -> None:
        self._main.update_item(
            Key={"pk": f"T#{transcript_id}", "sk": f"S#{index:08d}"},
            UpdateExpression="SET posted = :p",
            ExpressionAttributeValues={":p": _posted_json(tokens)},
            ConditionExpression="attribute_exists(pk)",
        )

    def _set(self, transcript_id: str, values: dict[str, Any], epoch: int | None = None) -> None:
        """SET values on the metadata item; with an epoch, only while it is current."""
        names = {f"#f{i}": k for i, k in enumerate(values)}
        args: dict[str, Any] = {f":v{i}": v for i, v in enumerate(values.values())}
        cond = "attribute_exists(pk)"
        if epoch is not None:
            names["#e"] = "epoch"
            args[":e"] = epoch
            cond += " AND #e = :e"
        try:
            self._main.update_item(
                Key={"pk": f"T#{transcript_id}", "sk": "META"},
                UpdateExpression="SET " + ", ".join(f"{n} = :v{n[2:]}" for n in names if n != "#e"),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=args,
                ConditionExpression=cond,
            )
        except ClientError as exc:
            if epoch is not None and conditional_failed(exc):
                raise LeaseLostError(lost_message(transcript_id, epoch)) from exc
            raise

    # ---- the writer lease -----------------------------------------------
    async def acquire_lease(
        self, owner: str, transcript_id: str, holder: str, lease_s: float
    ) -> Lease:
        def do() -> Lease:
            return acquire(self._main, owner, transcript_id, holder, lease_s, self._owned_item)

        return await self._run(do)

    async def renew_lease(
        self, owner: str, transcript_id: str, epoch: int, lease_s: float
    ) -> Lease:
        def do() -> Lease:
            return renew(self._main, owner, transcript_id, epoch, lease_s, self._owned_item)

        return await self._run(do)

    async def release_lease(self, owner: str, transcript_id: str, epoch: int) -> None:
        await self._run(release, self._main, owner, transcript_id, epoch)

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
                "ended": _dec(ended_at.timestamp()),
                "duration": _dec(max(duration_s, float(meta.get("duration", 0)))),
                "keywords": list(keywords),
            }
            if speaker_state is not None:  # a few KB: well inside the 400 KB item limit
                values["speaker_state"] = speaker_state
            if epoch is not None:  # the writer is done: its lease ends with this write
                values["lease_until"] = _dec(0)
            self._set(transcript_id, values, epoch)

        await self._run(do)

    async def set_recording(
        self, owner: str, transcript_id: str, mime_type: str, epoch: int | None = None
    ) -> None:
        def do() -> None:
            self._owned_item(owner, transcript_id)
            self._set(transcript_id, {"recording_mime": mime_type}, epoch)

        await self._run(do)

    async def update_transcript(
        self,
        owner: str,
        transcript_id: str,
        *,
        title: str | None = None,
        tags: Sequence[str] | None = None,
        speaker_names: dict[str, str] | None = None,
        language: str | None = None,
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
            if values:
                self._set(transcript_id, values)
            return self._meta(self._owned_item(owner, transcript_id))

        return await self._run(do)

    async def delete_transcript(self, owner: str, transcript_id: str) -> None:
        def do() -> None:
            self._owned_item(owner, transcript_id)
            items = self._query_all(self._main, f"T#{transcript_id}")
            rev = _rev(next(i["created"] for i in items if i["sk"] == "META"))
            by_index = {int(i["idx"]): i for i in items if i["sk"].startswith("S#")}
            with self._index.batch_writer() as batch:
                for idx, item in by_index.items():
                    for token in _posted(item, by_index.get(idx - 1)):
                        batch.delete_item(
                            Key={
                                "pk": f"W#{owner}#{token}",
                                "sk": f"{rev}#{transcript_id}#{idx:08d}",
                            }
                        )
            with self._main.batch_writer() as batch:
                for item in items:
                    batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})

        await self._run(do)

    @staticmethod
    def _query_all(table: Any, pk: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk)}
        while True:
            resp = table.query(**kwargs)
            out += resp["Items"]
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # ---- reads ----------------------------------------------------------
    async def get_transcript(self, owner: str, transcript_id: str) -> TranscriptMeta:
        return self._meta(await self._run(self._owned_item, owner, transcript_id))

    async def get_segments(self, owner: str, transcript_id: str) -> list[Segment]:
        def do() -> list[Segment]:
            self._owned_item(owner, transcript_id)
            items = self._query_all(self._main, f"T#{transcript_id}")
            segs = [self._segment(i) for i in items if i["sk"].startswith("S#")]
            return sorted(segs, key=lambda s: s.index)

        return await self._run(do)

    async def list_transcripts(
        self,
        owner: str,
        page_size: int,
        page_token: str,
        tags: Sequence[str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[TranscriptMeta], str]:
        from boto3.dynamodb.conditions import Attr, Key

        lo = _created_key(created_after) if created_after else "0" * 17
        hi = _created_key(created_before) if created_before else "9" * 17
        cond = Key("gpk").eq(f"O#{owner}") & Key("gsk").between(lo, hi + "~")
        keys = {k: (str,) for k in ("pk", "sk", "gpk", "gsk")}
        start = decode_page_token(page_token, keys) if page_token else None
        if start is not None and start["gpk"] != f"O#{owner}":
            raise InvalidArgumentError(
                "page_token is not valid; pass the next_page_token of the previous response"
            )

        def do() -> tuple[list[TranscriptMeta], str]:
            out: list[TranscriptMeta] = []
            kwargs: dict[str, Any] = {
                "IndexName": GSI,
                "KeyConditionExpression": cond,
                "ScanIndexForward": False,
                "Limit": max(page_size, 25),
            }
            if tags:
                f = Attr("tags").contains(tags[0])
                for t in tags[1:]:
                    f = f & Attr("tags").contains(t)
                kwargs["FilterExpression"] = f
            if start:
                kwargs["ExclusiveStartKey"] = start
            while True:
                resp = self._main.query(**kwargs)
                for item in resp["Items"]:
                    meta = self._meta(item)
                    if created_before is not None and meta.created_at >= created_before:
                        continue
                    out.append(meta)
                    if len(out) == page_size:
                        key = {k: item[k] for k in ("pk", "sk", "gpk", "gsk")}
                        return out, encode_page_token(key)
                if "LastEvaluatedKey" not in resp:
                    return out, ""
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

        try:
            return await self._run(do)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException" and page_token:
                raise InvalidArgumentError(
                    "page_token is not valid; pass the next_page_token of the previous response"
                ) from exc
            raise

    async def search(
        self, owner: str, query: str, page_size: int, page_token: str
    ) -> tuple[list[SearchHit], str]:
        from boto3.dynamodb.conditions import Key

        parsed = parse_query(query)
        driver = max(parsed.tokens, key=len)
        start = decode_page_token(page_token, {"pk": (str,), "sk": (str,)}) if page_token else None
        if start is not None and start["pk"] != f"W#{owner}#{driver}":
            raise InvalidArgumentError(
                "page_token is not valid for this query; pass the next_page_token of the "
                "previous response to the same query"
            )

        def do() -> tuple[list[SearchHit], str]:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": Key("pk").eq(f"W#{owner}#{driver}"),
                "Limit": 100,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            found: list[tuple[dict[str, Any], Located]] = []
            token = ""
            while len(found) < page_size:
                resp = self._index.query(**kwargs)
                for item in resp["Items"]:
                    where = locate(item.get("prev", ""), item["text"], parsed)
                    if where is not None and matches(
                        window(item.get("prev", ""), item["text"])[0], parsed
                    ):
                        found.append((item, where))
                        if len(found) == page_size:
                            token = encode_page_token({"pk": item["pk"], "sk": item["sk"]})
                            break
                if len(found) == page_size or "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
            titles = self._titles({i["tid"] for i, _ in found})
            hits = [] if page_token else self._title_hits(owner, parsed, page_size)
            hits += [
                SearchHit(
                    transcript_id=i["tid"],
                    transcript_title=titles.get(i["tid"], ""),
                    segment_index=int(i["idx"]) - 1 if w.in_previous else int(i["idx"]),
                    start=_word_start(i, w),
                    snippet=w.snippet,
                    highlights=w.highlights,
                    created_at=datetime.fromtimestamp(float(i["created"]), UTC),
                )
                for i, w in found
                if i["tid"] in titles  # a transcript deleted meanwhile is not a hit
            ]
            return hits, token

        return await self._run(do)

    def _title_hits(self, owner: str, parsed: SearchQuery, limit: int) -> list[SearchHit]:
        """Transcripts by title and tags, newest first (the first page of a search only).
        Reads every metadata item of the owner: fine for a person's meetings; a token
        index of titles would be the next step for owners with very many."""
        from boto3.dynamodb.conditions import Key

        hits: list[SearchHit] = []
        kwargs: dict[str, Any] = {
            "IndexName": GSI,
            "KeyConditionExpression": Key("gpk").eq(f"O#{owner}"),
            "ScanIndexForward": False,
        }
        while True:
            resp = self._main.query(**kwargs)
            for item in resp["Items"]:
                hit = transcript_hit(self._meta(item), parsed)
                if hit is not None:
                    hits.append(hit)
                    if len(hits) == limit:
                        return hits
            if "LastEvaluatedKey" not in resp:
                return hits
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _titles(self, ids: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        keys = [{"pk": f"T#{i}", "sk": "META"} for i in ids]
        for n in range(0, len(keys), 100):
            request = {self.main_name: {"Keys": keys[n : n + 100]}}
            while request:
                resp = self._client.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.main_name, []):
                    out[item["id"]] = item.get("title", "")
                request = resp.get("UnprocessedKeys") or {}
        return out

    # ---- refinement jobs (service/refine) --------------------------------
    async def set_refinement(self, owner: str, transcript_id: str, value: Refinement) -> None:
        def do() -> None:
            meta = self._owned_item(owner, transcript_id)
            dynamodb_refine.set_refinement(self._main, owner, transcript_id, value, meta["gsk"])

        await self._run(do)

    async def claim_refinement(
        self, owner: str, transcript_id: str, worker: str, lease_s: float
    ) -> bool:
        return await self._run(
            dynamodb_refine.claim, self._main, owner, transcript_id, worker, lease_s
        )

    async def pending_refinements(self, limit: int) -> list[tuple[str, str]]:
        return await self._run(dynamodb_refine.pending, self._main, limit)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
