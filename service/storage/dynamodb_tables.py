"""The DynamoDB store's two tables (designed in dynamodb.py): the boto3 handles every
module of the store works on, and their creation with `--dynamodb-create-tables`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from service.config import StorageSettings
from service.storage import dynamodb_refine

GSI = "by-owner"
"""The transcripts table's index of an owner's transcripts, newest first."""


@dataclass(frozen=True)
class Tables:
    """boto3 handles of the two tables. `client` is the resource's own client, which
    serializes plain Python values as the Table handles do."""

    main: Any
    index: Any
    client: Any
    main_name: str
    index_name: str


def connect(settings: StorageSettings) -> Tables:
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
    resource = boto3.resource("dynamodb", **kwargs)
    main_name = f"{settings.dynamodb_table_prefix}-transcripts"
    index_name = f"{settings.dynamodb_table_prefix}-index"
    return Tables(
        main=resource.Table(main_name),
        index=resource.Table(index_name),
        client=resource.meta.client,
        main_name=main_name,
        index_name=index_name,
    )


def create_tables(tables: Tables) -> None:
    """Create the tables that do not exist (on-demand capacity), add the refinement
    queue's index to an older transcripts table, and wait until both are active."""
    client = tables.client
    existing = set(client.list_tables()["TableNames"])
    key_schema = [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    if tables.main_name not in existing:
        client.create_table(
            TableName=tables.main_name,
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
    if tables.index_name not in existing:
        client.create_table(
            TableName=tables.index_name,
            KeySchema=key_schema,
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
            BillingMode="PAY_PER_REQUEST",
        )
    if tables.main_name in existing:
        dynamodb_refine.ensure_gsi(client, tables.main_name)
    waiter = client.get_waiter("table_exists")
    waiter.wait(TableName=tables.main_name)
    waiter.wait(TableName=tables.index_name)
