"""Typed application state shared by the bridge's handlers (aiohttp AppKeys)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from aiohttp import web

from web_bridge.config import BridgeSettings
from web_bridge.sealed import SessionSealer

if TYPE_CHECKING:
    from web_bridge.relay import Relay

SETTINGS = web.AppKey("settings", BridgeSettings)
CHANNEL = web.AppKey("channel", grpc.aio.Channel)
SEALER = web.AppKey("sealer", SessionSealer)
RELAYS: web.AppKey[set[Relay]] = web.AppKey("relays")
"""The sockets being relayed now, each with its buffer figures (tests and diagnostics)."""
LEAVING = web.AppKey("leaving", asyncio.Event)
"""Set once the bridge is shutting down (SIGTERM, or aiohttp's shutdown): new sockets are
turned away and live streams handed over (web_bridge.app `leave`)."""
