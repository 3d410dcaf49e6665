"""A store write that must not be left half done when its caller is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def await_or_undo(aw: Awaitable[T], undo: Callable[[T], Awaitable[None]]) -> T:
    """Await `aw` as a task of its own. A store write, once sent, lands even if its caller
    goes away (a DynamoDB put, a SQLite statement on the store's thread): cancelled while
    it runs, this waits for it and, if it succeeded, `undo`es its result (both shielded:
    a second cancellation cannot skip the undo), then re-raises. If `aw` itself fails,
    nothing landed and its error is raised."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.shield(_undo_after(task, undo))
        raise


async def _undo_after(task: asyncio.Future[T], undo: Callable[[T], Awaitable[None]]) -> None:
    await asyncio.wait([task])
    if task.cancelled() or task.exception() is not None:
        return  # nothing landed
    await undo(task.result())
