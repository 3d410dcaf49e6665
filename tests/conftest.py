"""Fixtures: one real model per test session, in-process servers on port 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2_grpc

from service.config import LimitSettings, ModelSettings, Settings, StorageSettings
from service.engine import WhisperEngine

pytest_plugins = ["tests.dynamodb_local", "tests.multilingual"]

QUIET = (
    # Chromium driving the real model through the bridge, with Playwright's waits:
    # under the parallel phase's CPU-heavy tests these missed words (runs at load 15-30).
    # Two at a time they pass (three runs of the set at -n 2, 2 Dec 2026, 110-153 s
    # against ~190 s one at a time).
    "tests/web_bridge/test_browser.py",
    "tests/web_bridge/test_page_keyboard.py",
    "tests/web_bridge/test_page_speakers.py",
    "tests/web_bridge/test_page_languages_live.py",
    "tests/web_bridge/test_page_voices.py",
    # A page stream handed over by a bridge that stops: its words are judged (WER).
    "tests/web_bridge/test_bridge_shutdown.py",
    # A real bridge process stopped by SIGTERM mid-stream: its words are judged (WER).
    "tests/web_bridge/test_bridge_sigterm.py",
    # Chromium: a page stream not yet answered when the bridge leaves keeps its audio.
    "tests/web_bridge/test_page_handover_unanswered.py",
    # Resumes racing real-time streams and the 1 s idle limit.
    "tests/reliability/test_adversarial.py",
    "tests/storage/test_transcripts_api.py",
)
"""Test files that need the machine free of CPU-heavy tests but may share it with each
other: scripts/check.sh runs every other test on three workers (pytest-xdist; two kept
~1.5 of this host's 2 cores busy), then these on two workers, then the ALONE ones."""

ALONE = (
    # Cost per minute of a 5-minute stream at 4x real time, and its WER against a bound:
    # a stream starved by another test's decodes falls behind and decodes other windows.
    "tests/service/test_long_session.py",
    # The bridge dropped mid-recording: what the service had heard but not yet made final
    # is lost with the cancelled call, and under another test's load that was 6 s of a
    # 12 s clip (WER 0.38 against the 0.3 bound; ci16, two at a time).
    "tests/web_bridge/test_reconnect.py",
)
"""Test files that need the machine to themselves: run last, one at a time."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quiet: run after the parallel tests, two at a time")
    config.addinivalue_line("markers", "alone: run last, with nothing beside it (ALONE)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A `-m quiet` or `-m alone` run (scripts/check.sh's later phases) opens only the
    files of that list: no other file can hold such a test (the marks come from the lists
    alone), and importing the other ~120 cost each of those processes ~9 s of CPU."""
    files = {"quiet": QUIET, "alone": ALONE}.get(config.getoption("markexpr"))
    path = collection_path
    if files is None or path.suffix != ".py" or not path.name.startswith("test_"):
        return None
    if not path.is_relative_to(config.rootpath):
        return None
    return None if path.relative_to(config.rootpath).as_posix().startswith(files) else True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(QUIET):
            item.add_marker(pytest.mark.quiet)
        elif item.nodeid.startswith(ALONE):
            item.add_marker(pytest.mark.alone)


if TYPE_CHECKING:
    from service.server import RunningServer
    from tests.helpers import Stub, TStub


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
def stub(channel: grpc.aio.Channel) -> Stub:
    return streaming_pb2_grpc.TranscriptionServiceStub(channel)


@pytest.fixture(scope="session")
def transcripts_stub(channel: grpc.aio.Channel) -> TStub:
    return transcripts_pb2_grpc.TranscriptServiceStub(channel)


@pytest.fixture
async def refiner_held(engine: WhisperEngine, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server of its own (data in tmp_path) whose refiner never gets to an upload (as
    if busy with other files): an upload's test costs no decoding."""
    from service.server import start_server

    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )

    async def busy(owner: str, tid: str) -> bool:
        await asyncio.Event().wait()
        return False

    running.refiner.refine = busy  # type: ignore[method-assign]
    try:
        yield running
    finally:
        await running.stop(1)


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
