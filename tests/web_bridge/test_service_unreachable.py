"""A bridge whose transcription service is down: the page and API callers are told so in
words a person can act on, not gRPC's channel details (addresses, "last error: UNKNOWN")."""

from __future__ import annotations

import socket

import aiohttp

from tests.web_bridge.conftest import bridge_for
from web_bridge.guard import UNREACHABLE_MESSAGE


def closed_port() -> int:
    """A local port nothing listens on (bound for a moment, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_an_unreachable_service_is_explained_on_the_api_and_the_socket() -> None:
    async with bridge_for(closed_port()) as (_, url), aiohttp.ClientSession() as http:
        r = await http.get(f"{url}/api/transcripts")
        assert r.status == 503, await r.text()
        error = (await r.json())["error"]
        assert error == {"code": "UNAVAILABLE", "message": UNREACHABLE_MESSAGE}
        ws = await http.ws_connect(f"{url}/ws")
        await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
        told = await ws.receive_json(timeout=60)
        assert told == {"type": "error", "code": "UNAVAILABLE", "message": UNREACHABLE_MESSAGE}
        await ws.close()
