"""Console entry point `transcribe-bridge`."""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence

from aiohttp import web

from web_bridge.app import SHUTDOWN_S, create_app, leave_on_sigterm
from web_bridge.config import BridgeSettings, build_bridge_settings
from web_bridge.guard import server_ssl_context


def _cannot_listen(settings: BridgeSettings, exc: OSError) -> SystemExit:
    why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
    return SystemExit(
        f"transcribe-bridge cannot listen on {settings.host}:{settings.port}: {why}. "
        "Stop what is there, or choose another port for the page with --port N "
        "(environment: TRANSCRIBE_BRIDGE_PORT=N)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    settings = build_bridge_settings(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ssl_context = server_ssl_context(settings)
    scheme = "https" if ssl_context else "http"

    def listening(_: str) -> None:  # run_app calls it once the port is bound
        print(f"Open {scheme}://{settings.host}:{settings.port}/ in your browser", flush=True)

    app = create_app(settings)
    app.on_startup.append(leave_on_sigterm)  # after run_app's own signal handlers
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            ssl_context=ssl_context,
            print=listening,
            shutdown_timeout=SHUTDOWN_S,
        )
    except OSError as exc:  # binding is the only OSError run_app lets out (handlers' stay in)
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        raise _cannot_listen(settings, exc) from None
