"""A transcript store for the refinement tests (SQLite in the test's directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.config import StorageSettings
from service.storage.base import TranscriptStore
from service.storage.factory import open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TranscriptStore]:
    s = await open_store(StorageSettings(data_dir=tmp_path))
    yield s
    await s.close()
