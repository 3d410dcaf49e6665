"""Console entry point `transcribe-bridge`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from web_bridge.app import create_app
from web_bridge.config import build_bridge_settings
from web_bridge.guard import server_ssl_context


def main(argv: Sequence[str] | None = None) -> None:
    settings = build_bridge_settings(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ssl_context = server_ssl_context(settings)
    scheme = "https" if ssl_context else "http"
    print(f"Open {scheme}://{settings.host}:{settings.port}/ in your browser", flush=True)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        print=None,
    )
