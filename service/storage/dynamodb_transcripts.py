"""Transcript metadata on DynamoDB: the META item of each transcript (dynamodb.py has the
table design), its conversion to TranscriptMeta, the owner check every read and write
starts with, the fenced update of its attributes, and listing an owner's transcripts
through the `by-owner` index. Segments: dynamodb_segments.py.

Functions are blocking boto3 calls; the store runs them on its threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from service.domain import TranscriptMeta, TranscriptStatus
from service.errors import InvalidArgumentError, NotFoundError
from service.storage import dynamodb_refine
from service.storage.dynamodb_lease import conditional_failed
from service.storage.dynamodb_tables import GSI
from service.storage.lease import LeaseLostError, lost_message
from service.storage.query import decode_page_token, encode_page_token

MAX_CREATED = 10**17
BAD_PAGE_TOKEN = "page_token is not valid; pass the next_page_token of the previous response"


def created_key(created: datetime) -> str:
    return f"{round(created.timestamp() * 1e6):017d}"


def rev(created: Decimal) -> str:
    """Sort key prefix that lists newer transcripts first (from the stored timestamp)."""
    return f"{MAX_CREATED - int(Decimal(created) * 10**6):017d}"


def dec(x: float) -> Decimal:
    return Decimal(str(round(x, 6)))


def meta(item: dict[str, Any]) -> TranscriptMeta:
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
        language_detected=bool(item.get("language_detected", False)),
    )


def owned_item(table: Any, owner: str, transcript_id: str) -> dict[str, Any]:
    """The owner's META item; NotFoundError if missing or another owner's."""
    item = table.get_item(Key={"pk": f"T#{transcript_id}", "sk": "META"}).get("Item")
    if item is None or item.get("owner") != owner:
        raise NotFoundError(f"transcript {transcript_id!r} not found")
    return item  # type: ignore[no-any-return]


def set_values(
    table: Any, transcript_id: str, values: dict[str, Any], epoch: int | None = None
) -> None:
    """SET values on the metadata item; with an epoch, only while it is current."""
    names = {f"#f{i}": k for i, k in enumerate(values)}
    args: dict[str, Any] = {f":v{i}": v for i, v in enumerate(values.values())}
    cond = "attribute_exists(pk)"
    if epoch is not None:
        names["#e"] = "epoch"
        args[":e"] = epoch
        cond += " AND #e = :e"
    try:
        table.update_item(
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


def name_unnamed(
    table: Any, owner: str, transcript_id: str, names: Mapping[str, str]
) -> dict[str, str]:
    """TranscriptStore.name_unnamed_speakers: per label one UpdateItem conditional on the
    label being absent or "" (a failed condition is a name given meanwhile: kept);
    ReturnValues gives the map after the write without another read."""
    item = owned_item(table, owner, transcript_id)
    key = {"pk": f"T#{transcript_id}", "sk": "META"}
    if "speaker_names" not in item:  # a nested SET needs the map to exist
        table.update_item(
            Key=key,
            UpdateExpression="SET #n = if_not_exists(#n, :m)",
            ExpressionAttributeNames={"#n": "speaker_names"},
            ExpressionAttributeValues={":m": {}},
        )
    current = dict(item.get("speaker_names", {}))
    for label, name in names.items():
        try:
            resp = table.update_item(
                Key=key,
                UpdateExpression="SET #n.#l = :name",
                ConditionExpression="#o = :owner AND (attribute_not_exists(#n.#l) OR #n.#l = :e)",
                ExpressionAttributeNames={"#n": "speaker_names", "#l": label, "#o": "owner"},
                ExpressionAttributeValues={":name": name, ":e": "", ":owner": owner},
                ReturnValues="ALL_NEW",
            )
            current = dict(resp["Attributes"].get("speaker_names", {}))
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
            current = dict(owned_item(table, owner, transcript_id).get("speaker_names", {}))
    return current


def create(table: Any, m: TranscriptMeta) -> None:
    item = {
        "pk": f"T#{m.id}",
        "sk": "META",
        "gpk": f"O#{m.owner}",
        "gsk": f"{created_key(m.created_at)}#{m.id}",
        "id": m.id,
        "owner": m.owner,
        "created": dec(m.created_at.timestamp()),
        "status": m.status.value,
        "language": m.language,
        "model": m.model,
        "title": m.title,
        "tags": list(m.tags),
        "keywords": list(m.keywords),
        "speaker_names": dict(m.speaker_names),
        "segment_count": m.segment_count,
        "duration": dec(m.duration_s),
        "recording_mime": m.recording_mime_type,
    }
    if m.language_detected:  # absent: given (as on items stored before the attribute)
        item["language_detected"] = True
    table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")


def set_recording(
    table: Any, owner: str, transcript_id: str, mime_type: str, epoch: int | None
) -> None:
    owned_item(table, owner, transcript_id)
    set_values(table, transcript_id, {"recording_mime": mime_type}, epoch)


def list_page(
    table: Any,
    owner: str,
    page_size: int,
    page_token: str,
    tags: Sequence[str],
    created_after: datetime | None,
    created_before: datetime | None,
) -> tuple[list[TranscriptMeta], str]:
    """A page of the owner's transcripts, newest first: one Query of the `by-owner`
    index (more while tag filters leave the page short), paged by its last key."""
    from boto3.dynamodb.conditions import Attr, Key

    lo = created_key(created_after) if created_after else "0" * 17
    hi = created_key(created_before) if created_before else "9" * 17
    cond = Key("gpk").eq(f"O#{owner}") & Key("gsk").between(lo, hi + "~")
    keys = {k: (str,) for k in ("pk", "sk", "gpk", "gsk")}
    start = decode_page_token(page_token, keys) if page_token else None
    if start is not None and start["gpk"] != f"O#{owner}":
        raise InvalidArgumentError(BAD_PAGE_TOKEN)
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
    try:
        while True:
            resp = table.query(**kwargs)
            for item in resp["Items"]:
                m = meta(item)
                if created_before is not None and m.created_at >= created_before:
                    continue
                out.append(m)
                if len(out) == page_size:
                    key = {k: item[k] for k in ("pk", "sk", "gpk", "gsk")}
                    return out, encode_page_token(key)
            if "LastEvaluatedKey" not in resp:
                return out, ""
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ValidationException" and page_token:
            raise InvalidArgumentError(BAD_PAGE_TOKEN) from exc
        raise


def query_all(table: Any, pk: str) -> list[dict[str, Any]]:
    """Every item of one partition (a transcript's META and segments), page by page."""
    from boto3.dynamodb.conditions import Key

    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk)}
    while True:
        resp = table.query(**kwargs)
        out += resp["Items"]
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
