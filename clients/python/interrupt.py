"""Ctrl-C for the commands that do not handle it themselves (all but `stream`, whose
second Ctrl-C uses `cancel_until_done`).

asyncio.run's own SIGINT handler cancels the main task once, and a second Ctrl-C raises
KeyboardInterrupt. One cancellation is not always enough: grpc.aio runs each unary call
as a task of its own that catches CancelledError, so a Ctrl-C landing while a call
completes is swallowed, and `transcribe upload` went on polling its transcript (the CI
runs ci20 and ci21 each saw it hang: faulthandler put the main thread in the event loop's
select, between polls). Here the first Ctrl-C cancels the command and cancels it again
until it has ended; a second one stops at once (KeyboardInterrupt, exit 130).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

RECANCEL_S = 0.5
"""How long a cancelled command has to end before it is cancelled again."""


async def interruptible(command: Coroutine[Any, Any, T]) -> T:
    """Run `command` until it ends or Ctrl-C ends it (CancelledError out of here)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(command)
    presses = 0
    pressed = asyncio.Event()

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt  # out of the event loop: asyncio.run ends
        pressed.set()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    waiter = asyncio.ensure_future(pressed.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            cancel_until_done(task)
            await asyncio.wait({task})
        return task.result()
    finally:
        waiter.cancel()
        loop.remove_signal_handler(signal.SIGINT)


def cancel_until_done(task: asyncio.Task[Any]) -> None:
    """Cancel `task` now and again every RECANCEL_S until it has ended: a cancellation
    that a gRPC call's task swallows is not the end of it. `stream`'s second Ctrl-C uses
    it too (it cancelled once)."""
    loop = task.get_loop()

    def again() -> None:
        if not task.done():
            task.cancel()
            loop.call_later(RECANCEL_S, again)

    again()
