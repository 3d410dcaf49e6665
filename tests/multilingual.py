"""A server with tiny.en (the default) and the multilingual base loaded, shared by the client,
CLI and page tests of a run (base costs ~1 s to load and ~600 MB while it does, so once),
and the German clip they send it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import cache

import pytest

from service.config import ModelSettings, Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer
from tests.helpers import DATA, Clip

MULTI = DATA / "multilingual"


@cache
def german_clip() -> Clip:
    """FLEURS German test speech, 8.4 s (CC BY 4.0, see tests/data/README.md)."""
    for line in (MULTI / "manifest.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["language"] == "de":
            return Clip(e["id"], MULTI / e["wav"], e["text"], e["duration_s"])
    raise LookupError("no German clip in tests/data/multilingual")


@pytest.fixture(scope="session")
async def multilingual_server(
    engine: WhisperEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    from service.server import start_server

    settings = Settings(
        port=0,
        model=ModelSettings(models="tiny.en,base"),
        storage=StorageSettings(data_dir=tmp_path_factory.mktemp("multilingual-data")),
    )
    running = await start_server(settings, engine=engine)  # the run's tiny.en, base loaded
    yield running
    await running.stop(1.0)
