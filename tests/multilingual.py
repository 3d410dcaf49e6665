"""A server with tiny.en (the default) and the multilingual base loaded, shared by the client,
CLI and page tests of a run (base costs ~1 s to load and ~600 MB while it does, so once),
and the German clip they send it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.config import ModelSettings, Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer
from tests.helpers import DATA, Clip

GERMAN = Clip(
    "fleurs_de_005",
    DATA / "fleurs_de_005.flac",
    "dieses sediment war nötig um sandbänke und strände zu bilden die als lebensräume für "
    "wildtiere dienten",
    8.4,
)
"""FLEURS test speech (CC BY 4.0, see tests/data/README.md), 8.4 s."""


def german_clip() -> Clip:
    return GERMAN


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
