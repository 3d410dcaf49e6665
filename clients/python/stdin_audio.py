"""Raw PCM from standard input for `transcribe stream -`, read so that Ctrl-C is never stuck.

A read from a quiet pipe (a microphone tool that stalled, `nc -l` with nobody sending)
blocks until data comes. Read in asyncio's worker threads, it held up both Ctrl-Cs: the
first (end the audio) waited for the next chunk, and the second (abort) hung at exit,
where asyncio joins its workers. Here `iterate_in_thread`'s daemon thread does the reads
(it dies with the process), and the chunks stop the moment `stop` is set.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

from clients.python.audio import AudioFileError, iterate_in_thread

_READ_AHEAD = 16  # chunks read ahead: a slow server slows the reads


def _reads(fd: int, size: int) -> Iterator[bytes]:
    """Reads of up to `size` bytes until the end of `fd`; OSError if one fails."""
    while data := os.read(fd, size):  # os.read: no buffer lock left held at exit
        yield data


def stdin_chunks(frame: int, size: int, stop: asyncio.Event) -> AsyncIterator[bytes]:
    """Standard input in chunks of whole `frame`-byte samples (about `size` bytes each)
    until its end, or until `stop` is set. Raises OSError if a read fails, and at once
    AudioFileError if stdin is a terminal (a forgotten pipe would wait for typed audio)."""
    if os.isatty(0):
        raise AudioFileError(
            "standard input is a terminal: pipe raw s16le PCM in, e.g. "
            "`arecord -q -f S16_LE -r 16000 -c 1 | transcribe stream -`"
        )
    return _chunks(frame, size, stop)


async def _chunks(frame: int, size: int, stop: asyncio.Event) -> AsyncIterator[bytes]:
    stopped = asyncio.ensure_future(stop.wait())
    get: asyncio.Future[bytes | None] | None = None
    pending = b""
    async with aclosing(iterate_in_thread(_reads(0, size), read_ahead=_READ_AHEAD)) as reads:
        try:
            while True:
                get = asyncio.ensure_future(anext(reads, None))
                await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    return
                if (item := get.result()) is None:
                    return  # a partial sample at the end is not audio
                pending += item
                whole = len(pending) - len(pending) % frame
                if whole:
                    yield pending[:whole]
                    pending = pending[whole:]
        finally:
            stopped.cancel()
            if get is not None and not get.done():
                get.cancel()
                await asyncio.gather(get, return_exceptions=True)
