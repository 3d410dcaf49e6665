"""Console entry point `transcribe-bridge`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from web_bridge.app import create_app
from web_bridge.config import build_bridge_settings


def main(argv: Sequence[str] | None = None) -> None:
    settings = build_bridge_settings(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(f"Open http://{settings.host}:{settings.port}/ in your browser", flush=True)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
