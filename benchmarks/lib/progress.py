"""A one-line progress display on stderr (rewritten in place on a terminal, a line every
`log_every` seconds otherwise), for the benchmark's long real-time runs."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO


def bar(fraction: float, width: int = 24) -> str:
    fraction = min(1.0, max(0.0, fraction))
    full = int(fraction * width)
    return "#" * full + "-" * (width - full)


class Progress:
    """Streams report audio sent and results received; a task redraws the line."""

    def __init__(
        self,
        label: str,
        total_audio_s: float,
        streams: int,
        out: TextIO = sys.stderr,
        log_every: float = 15.0,
    ) -> None:
        self.label = label
        self.total = max(total_audio_s, 1e-9)
        self.streams = streams
        self.sent_s = 0.0
        self.active = 0
        self.done = 0
        self.finals = 0
        self.errors = 0
        self.out = out
        self.tty = out.isatty()
        self.log_every = log_every
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def line(self) -> str:
        f = self.sent_s / self.total
        return (
            f"{self.label} [{bar(f)}] {f:4.0%} audio {self.sent_s:5.0f}/{self.total:.0f} s "
            f"streams {self.active} active {self.done}/{self.streams} done "
            f"finals {self.finals} errors {self.errors} "
            f"{time.monotonic() - self.started:4.0f} s"
        )

    def _draw(self, end: bool = False) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K" + self.line() + ("\n" if end else ""))
        else:
            self.out.write(self.line() + "\n")
        self.out.flush()

    async def _run(self) -> None:
        every = 0.5 if self.tty else self.log_every
        while True:
            await asyncio.sleep(every)
            self._draw()

    def __enter__(self) -> Progress:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        self._draw(end=True)
