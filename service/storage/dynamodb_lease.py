"""The writer lease on DynamoDB (see service/storage/lease.py): conditional writes on the
transcript's metadata item, and segment items written in transactions that check the
writer's epoch on that item, so a stale writer's retries store nothing.

Attributes on the META item: `epoch` (N, absent = 0), `lease_until` (N, Unix time, absent
or 0 = free), `lease_holder` (S, for diagnostics).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from service.domain import TranscriptStatus
from service.errors import InvalidArgumentError, NotFoundError
from service.storage.lease import (
    Lease,
    LeaseLostError,
    TranscriptBusyError,
    busy_message,
    complete_message,
    lost_message,
)

MAX_TRANSACTION = 100
"""DynamoDB's limit of actions per TransactWriteItems (the META update is one of them)."""
OwnedItem = Callable[[str, str], dict[str, Any]]
_NAMES = {"#s": "status", "#o": "owner", "#e": "epoch", "#l": "lease_until", "#h": "lease_holder"}


def conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _key(transcript_id: str) -> dict[str, str]:
    return {"pk": f"T#{transcript_id}", "sk": "META"}


def _money(x: float) -> Decimal:
    return Decimal(str(round(x, 3)))


def acquire(
    table: Any, owner: str, transcript_id: str, holder: str, lease_s: float, owned: OwnedItem
) -> Lease:
    """One conditional update: not complete, no unexpired lease -> LIVE, epoch + 1."""
    now = time.time()
    until = now + lease_s
    try:
        resp = table.update_item(
            Key=_key(transcript_id),
            UpdateExpression="SET #s = :live, #l = :until, #h = :holder ADD #e :one",
            ConditionExpression="attribute_exists(pk) AND #o = :owner AND #s <> :complete"
            " AND (attribute_not_exists(#l) OR #l < :now)",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":live": TranscriptStatus.LIVE.value,
                ":complete": TranscriptStatus.COMPLETE.value,
                ":until": _money(until),
                ":holder": holder,
                ":one": 1,
                ":owner": owner,
                ":now": _money(now),
            },
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as exc:
        if not conditional_failed(exc):
            raise
        item = owned(owner, transcript_id)  # NotFoundError for a missing or foreign one
        if int(item["status"]) == TranscriptStatus.COMPLETE.value:
            raise InvalidArgumentError(complete_message(transcript_id)) from None
        remaining = float(item.get("lease_until", 0)) - now
        raise TranscriptBusyError(busy_message(transcript_id, remaining)) from None
    return Lease(transcript_id, int(resp["Attributes"]["epoch"]), until)


def renew(
    table: Any,
    owner: str,
    transcript_id: str,
    epoch: int,
    lease_s: float,
    owned: OwnedItem,
    speaker_state: str | None = None,
) -> Lease:
    """One conditional update on this epoch: the lease's expiry, and the speaker state if
    given (the same item and write, so it costs no request of its own)."""
    until = time.time() + lease_s
    update = "SET #l = :until"
    values: dict[str, Any] = {":until": _money(until), ":owner": owner, ":epoch": epoch}
    if speaker_state is not None:
        update += ", speaker_state = :state"
        values[":state"] = speaker_state
    try:
        table.update_item(
            Key=_key(transcript_id),
            UpdateExpression=update,
            ConditionExpression="#o = :owner AND #e = :epoch",
            ExpressionAttributeNames={"#o": "owner", "#e": "epoch", "#l": "lease_until"},
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if not conditional_failed(exc):
            raise
        owned(owner, transcript_id)
        raise LeaseLostError(lost_message(transcript_id, epoch)) from None
    return Lease(transcript_id, epoch, until)


def release(table: Any, owner: str, transcript_id: str, epoch: int) -> None:
    try:
        table.update_item(
            Key=_key(transcript_id),
            UpdateExpression="SET #l = :zero",
            ConditionExpression="#o = :owner AND #e = :epoch",
            ExpressionAttributeNames={"#o": "owner", "#e": "epoch", "#l": "lease_until"},
            ExpressionAttributeValues={":zero": 0, ":owner": owner, ":epoch": epoch},
        )
    except ClientError as exc:
        if not conditional_failed(exc):  # a newer writer holds it: nothing to release
            raise


def fenced_items(
    client: Any,
    table_name: str,
    transcript_id: str,
    items: list[dict[str, Any]],
    *,
    new: set[int],
    duration: Decimal,
    epoch: int | None,
) -> None:
    """Put segment items and count the new ones, in transactions that each also update the
    META item on the condition that `epoch` is still the transcript's. `client` is the
    resource's client, which serializes plain values itself."""
    cond = "attribute_exists(pk)"
    values: dict[str, Any] = {":d": duration}
    names = {"#d": "duration"}
    if epoch is not None:
        cond += " AND #e = :e"
        values[":e"] = epoch
        names["#e"] = "epoch"
    per = MAX_TRANSACTION - 1
    for n in range(0, len(items), per):
        chunk = items[n : n + per]
        counted = sum(1 for it in chunk if int(it["idx"]) in new)
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table_name,
                    "Key": _key(transcript_id),
                    "UpdateExpression": "ADD segment_count :n SET #d = :d",
                    "ConditionExpression": cond,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values | {":n": counted},
                }
            }
        ]
        actions += [{"Put": {"TableName": table_name, "Item": it}} for it in chunk]
        try:
            client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or [{}]
            if reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            if epoch is None:
                raise NotFoundError(f"transcript {transcript_id!r} not found") from None
            raise LeaseLostError(lost_message(transcript_id, epoch)) from None
