"""Refinement jobs on DynamoDB: attributes of the transcript's META item.

`refine_state`, `refine_progress`, `refine_detail`, and the claim (`refine_worker`,
`refine_until`). While a job is PENDING or RUNNING the item also carries `rq` = "Q" and
`rqs` (its creation key), the keys of the sparse GSI `refine-queue`: finding the jobs
nobody runs is one Query of that index, whose size is the number of open jobs, never a
Scan. A claim is one conditional UpdateItem, so two replicas never refine one
transcript at once. A table made before this index existed gets it from
`--dynamodb-create-tables` (UpdateTable); without it, jobs still run on the server
where their stream ended, but one that died mid-job is not picked up by another.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from service.domain import Refinement, RefinementState
from service.errors import NotFoundError

logger = logging.getLogger(__name__)

QUEUE_GSI = "refine-queue"
OPEN = (RefinementState.PENDING, RefinementState.RUNNING)


def _key(tid: str) -> dict[str, str]:
    return {"pk": f"T#{tid}", "sk": "META"}


def _failed_condition(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def refinement(item: dict[str, Any]) -> Refinement:
    return Refinement(
        RefinementState(int(item.get("refine_state", 0))),
        float(item.get("refine_progress", 0)),
        str(item.get("refine_detail", "")),
    )


def gsi_definition() -> dict[str, Any]:
    return {
        "IndexName": QUEUE_GSI,
        "KeySchema": [
            {"AttributeName": "rq", "KeyType": "HASH"},
            {"AttributeName": "rqs", "KeyType": "RANGE"},
        ],
        "Projection": {
            "ProjectionType": "INCLUDE",
            "NonKeyAttributes": ["id", "owner", "refine_state", "refine_until"],
        },
    }


def ensure_gsi(client: Any, table: str) -> None:
    """Add the queue index to a table made before it existed."""
    desc = client.describe_table(TableName=table)["Table"]
    if any(g["IndexName"] == QUEUE_GSI for g in desc.get("GlobalSecondaryIndexes", [])):
        return
    client.update_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "rq", "AttributeType": "S"},
            {"AttributeName": "rqs", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexUpdates=[{"Create": gsi_definition()}],
    )


def set_refinement(table: Any, owner: str, tid: str, value: Refinement, queue_key: str) -> None:
    expr = "SET refine_state = :s, refine_progress = :p, refine_detail = :d"
    values: dict[str, Any] = {
        ":s": value.state.value,
        ":p": Decimal(str(round(value.progress, 4))),
        ":d": value.detail,
        ":o": owner,
    }
    if value.state in OPEN:
        expr += ", rq = :q, rqs = :k"
        values |= {":q": "Q", ":k": queue_key}
    else:
        expr += " REMOVE rq, rqs"
    try:
        table.update_item(
            Key=_key(tid),
            UpdateExpression=expr,
            ConditionExpression="attribute_exists(pk) AND #o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if _failed_condition(exc):
            raise NotFoundError(f"transcript {tid!r} not found") from exc
        raise


def claim(table: Any, owner: str, tid: str, worker: str, lease_s: float) -> bool:
    now = time.time()
    try:
        table.update_item(
            Key=_key(tid),
            UpdateExpression="SET refine_state = :run, refine_worker = :w, refine_until = :u",
            ConditionExpression=(
                "attribute_exists(pk) AND #o = :o AND (refine_state = :pend OR "
                "(refine_state = :run AND (refine_until < :now OR refine_worker = :w)))"
            ),
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={
                ":o": owner,
                ":w": worker,
                ":u": Decimal(str(round(now + lease_s, 3))),
                ":now": Decimal(str(round(now, 3))),
                ":pend": RefinementState.PENDING.value,
                ":run": RefinementState.RUNNING.value,
            },
        )
    except ClientError as exc:
        if _failed_condition(exc):
            return False
        raise
    return True


def pending(table: Any, limit: int) -> list[tuple[str, str]]:
    now = time.time()
    try:
        resp = table.query(
            IndexName=QUEUE_GSI,
            KeyConditionExpression="rq = :q",
            ExpressionAttributeValues={":q": "Q"},
            Limit=max(limit * 4, 16),
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationException":
            logger.warning("the %s index is missing: run once with --dynamodb-create-tables "
                           "to add it", QUEUE_GSI)  # fmt: skip
            return []
        raise
    out = []
    for item in resp.get("Items", []):
        state = RefinementState(int(item.get("refine_state", 0)))
        expired = float(item.get("refine_until", 0)) < now
        if state is RefinementState.PENDING or (state is RefinementState.RUNNING and expired):
            out.append((str(item["owner"]), str(item["id"])))
    return out[:limit]
