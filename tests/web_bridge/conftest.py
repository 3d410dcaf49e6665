"""A real bridge on a free port in front of the real in-process gRPC server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from service.server import RunningServer
from web_bridge.app import create_app
from web_bridge.config import BridgeSettings


@pytest.fixture(scope="session")
async def bridge_url(server: RunningServer) -> AsyncIterator[str]:
    app = create_app(BridgeSettings(grpc_target=f"127.0.0.1:{server.port}"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
