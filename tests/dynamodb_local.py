"""The `dynamodb_local` fixture: one real DynamoDB Local for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.lib.dynamodb_local import DynamoDBLocal

__all__ = ["DynamoDBLocal", "dynamodb_local"]


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    server = DynamoDBLocal()
    server.start()
    yield server
    server.stop()
