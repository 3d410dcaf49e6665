"""Fixtures: one real model per test session, in-process servers on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2_grpc

from service.config import LimitSettings, ModelSettings, Settings, StorageSettings
from service.engine import WhisperEngine

pytest_plugins = ["tests.dynamodb_local", "tests.multilingual"]

SERIAL = (
    # Cost per minute of a 5-minute stream: another test's decodes would be counted.
    "tests/service/test_long_session.py",
    # Chromium driving the real model through the bridge, with Playwright's waits:
    # under a second worker's load these missed words (runs at load 15-30).
    "tests/web_bridge/test_browser.py",
    "tests/web_bridge/test_page_keyboard.py",
    "tests/web_bridge/test_page_speakers.py",
    "tests/web_bridge/test_page_languages_live.py",
    "tests/web_bridge/test_page_voices.py",
    "tests/web_bridge/test_reconnect.py",
    # Resumes racing real-time streams and the 1 s idle limit.
    "tests/reliability/test_adversarial.py",
    "tests/storage/test_transcripts_api.py",
)
"""Test files that need the machine to themselves. scripts/check.sh runs every other test
on two workers (pytest-xdist, one per core: the suite is CPU-bound, 16 min of CPU in 16
min of wall time on one worker) and these afterwards, alone."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "serial: run alone, after the parallel tests (SERIAL)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)


if TYPE_CHECKING:
    from service.server import RunningServer


@pytest.fixture(scope="session")
def engine() -> WhisperEngine:
    """The bundled tiny.en model, loaded once and shared by every server in the run."""
    return WhisperEngine(ModelSettings())


@pytest.fixture(scope="session")
async def server(
    engine: WhisperEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    data_dir: Path = tmp_path_factory.mktemp("server-data")
    from service.server import start_server

    settings = Settings(port=0, storage=StorageSettings(data_dir=data_dir))
    running = await start_server(settings, engine=engine)
    yield running
    await running.stop(1.0)


@pytest.fixture(scope="session")
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> streaming_pb2_grpc.TranscriptionServiceStub:
    return streaming_pb2_grpc.TranscriptionServiceStub(channel)


@pytest.fixture(scope="session")
def transcripts_stub(channel: grpc.aio.Channel) -> transcripts_pb2_grpc.TranscriptServiceStub:
    return transcripts_pb2_grpc.TranscriptServiceStub(channel)


@pytest.fixture
async def full_and_free(
    engine: WhisperEngine, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two replicas: one that takes no stream at all (as if at its limit), one free
    (the failover tests of the Python client and of the bridge)."""

    def settings(name: str, max_streams: int) -> Settings:
        return Settings(
            port=0,
            storage=StorageSettings(data_dir=tmp_path / name),
            limits=LimitSettings(max_streams=max_streams),
        )

    from service.server import start_server

    full = await start_server(settings("full", 0), engine=engine)
    free = await start_server(settings("free", 4), engine=engine)
    try:
        yield full, free
    finally:
        await full.stop(1)
        await free.stop(1)
