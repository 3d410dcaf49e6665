"""The one place that turns StorageSettings into a TranscriptStore."""

from __future__ import annotations

from service.config import StorageSettings
from service.errors import InvalidArgumentError
from service.storage.base import TranscriptStore


async def open_store(settings: StorageSettings) -> TranscriptStore:
    """Open the configured backend (creating its schema or tables as needed)."""
    if settings.backend == "sqlite":
        from service.storage.sqlite import SQLiteTranscriptStore

        return await SQLiteTranscriptStore(settings.data_dir / "transcripts.db").open()
    if settings.backend == "dynamodb":
        from service.storage.dynamodb import DynamoDBTranscriptStore

        return await DynamoDBTranscriptStore(settings).open()
    raise InvalidArgumentError(
        f"storage backend {settings.backend!r} is unknown; use sqlite or dynamodb"
    )
