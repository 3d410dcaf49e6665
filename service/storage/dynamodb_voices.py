"""Remembered voices on DynamoDB: items of the transcripts table, one per voice.

pk `V#<owner>`, sk `<name folded to lower case>`; attributes name, embedding (B, the
float32 voice print, ~1 KB), windows (N), transcript_id, speaker_label, updated (N).
Listing a principal's voices is one Query of its partition (a person names a few
dozen voices at most); forgetting one is a DeleteItem, so its print is gone. The items
carry no GSI keys: lists of transcripts and the refinement queue never see them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from service.domain import Voice
from service.errors import NotFoundError
from service.storage.sqlite_voices import voice_key


def _pk(owner: str) -> str:
    return f"V#{owner}"


def put(table: Any, owner: str, voice: Voice) -> None:
    table.put_item(
        Item={
            "pk": _pk(owner),
            "sk": voice_key(voice.name),
            "name": voice.name,
            "embedding": voice.embedding,
            "windows": voice.windows,
            "transcript_id": voice.transcript_id,
            "speaker_label": voice.speaker_label,
            "updated": Decimal(str(round(voice.updated_at.timestamp(), 6))),
        }
    )


def list_voices(table: Any, owner: str) -> list[Voice]:
    from boto3.dynamodb.conditions import Key

    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(_pk(owner))}
    while True:
        resp = table.query(**kwargs)
        items += resp["Items"]
        if "LastEvaluatedKey" not in resp:
            break
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    return [
        Voice(
            name=i["name"],
            embedding=bytes(i["embedding"]),  # boto3's Binary
            windows=int(i["windows"]),
            transcript_id=i["transcript_id"],
            speaker_label=i["speaker_label"],
            updated_at=datetime.fromtimestamp(float(i["updated"]), UTC),
        )
        for i in items
    ]


def delete(table: Any, owner: str, name: str) -> None:
    """Delete the voice and its print; NotFoundError if the owner has no such voice."""
    try:
        table.delete_item(
            Key={"pk": _pk(owner), "sk": voice_key(name)},
            ConditionExpression="attribute_exists(pk)",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise NotFoundError(f"no voice named {name!r} is remembered") from exc
        raise
