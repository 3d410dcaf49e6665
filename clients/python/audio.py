"""Audio sources for a stream: any file PyAV decodes, a file's own bytes, real-time pacing.

Decoding runs in a worker thread (PyAV blocks), a second of audio at a time, so a long
file is never held in memory and the event loop never stalls.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import TypeVar

import av

T = TypeVar("T")
PCM_RATE = 16000
"""Sample rate of the PCM that `audio_chunks` produces (mono s16le): the model's own rate."""
PCM_BYTES_PER_SECOND = PCM_RATE * 2


class AudioFileError(ValueError):
    """A file that cannot be opened or decoded as audio."""


def probe_duration(path: str | Path) -> float | None:
    """The file's duration in seconds from its container, or None when it does not say."""
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return float(container.duration) / av.time_base
            stream = next(iter(container.streams.audio), None)
            if stream is not None and stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except av.FFmpegError as err:
        raise AudioFileError(f"{path}: {err}") from err
    return None


def _decode(path: str | Path, block_bytes: int) -> Iterator[bytes]:
    """16 kHz mono s16le PCM of the first audio stream, in blocks of about `block_bytes`."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise AudioFileError(f"{path}: {err}") from err
    with container:
        if not container.streams.audio:
            raise AudioFileError(f"{path}: no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
        pending = bytearray()
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pending += bytes(out.planes[0])[: out.samples * 2]
                if len(pending) >= block_bytes:
                    yield bytes(pending)
                    pending.clear()
            for out in resampler.resample(None):
                pending += bytes(out.planes[0])[: out.samples * 2]
        except av.FFmpegError as err:
            raise AudioFileError(f"{path}: {err}") from err
        if pending:
            yield bytes(pending)


def _serve(
    it: Iterator[T], credits: queue.SimpleQueue[bool], closed: threading.Event,
    loop: asyncio.AbstractEventLoop, results: asyncio.Queue[tuple[object, BaseException | None]],
    done: object,
) -> None:  # fmt: skip
    """Reads one item per credit and hands it (or `done`, or what next() raised) to the
    loop; once the consumer has closed, the iterator is over or the loop is gone, closes
    the iterator and ends."""
    while credits.get() and not closed.is_set():
        try:
            result: tuple[object, BaseException | None] = (next(it, done), None)
        except BaseException as exc:  # raised where the item is awaited
            result = (None, exc)
        try:
            loop.call_soon_threadsafe(results.put_nowait, result)
        except RuntimeError:  # the loop is closed: nobody waits any more
            break
        if result[0] is done or result[1] is not None:
            break
    close = getattr(it, "close", None)
    if close is not None:
        close()


async def iterate_in_thread(items: Iterable[T], read_ahead: int = 1) -> AsyncGenerator[T, None]:
    """A blocking iterator consumed from a daemon thread of its own, at most `read_ahead`
    items ahead of the consumer (1: an item is read only when it is asked for).

    Not asyncio's worker threads: an iterator left blocked (a stalled device, a pipe
    nobody writes to) after the stream is closed would hold up the program's exit,
    which joins those threads. The thread closes the iterator once its last read returns.
    """
    loop = asyncio.get_running_loop()
    credits: queue.SimpleQueue[bool] = queue.SimpleQueue()  # False: the consumer left
    closed = threading.Event()
    results: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
    done = object()
    threading.Thread(
        target=_serve, args=(iter(items), credits, closed, loop, results, done),
        name="transcribe-source", daemon=True,
    ).start()  # fmt: skip
    for _ in range(max(1, read_ahead) - 1):
        credits.put(True)
    try:
        while True:
            credits.put(True)  # the item asked for now (the others are read ahead)
            item, exc = await results.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item  # type: ignore[misc]
    finally:
        closed.set()
        credits.put(False)


async def paced(
    chunks: AsyncIterable[bytes], bytes_per_second: float
) -> AsyncGenerator[bytes, None]:
    """Chunks released no faster than `bytes_per_second`, as a live source would send them."""
    started = time.monotonic()
    sent = 0
    async for chunk in chunks:
        delay = started + sent / bytes_per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield chunk
        sent += len(chunk)


async def audio_chunks(
    path: str | Path, *, chunk_s: float = 0.1, realtime: bool = False
) -> AsyncGenerator[bytes, None]:
    """Any file PyAV decodes (WAV, FLAC, MP3, Opus, AAC/M4A, video...) as chunks of 16 kHz
    mono s16le PCM of `chunk_s` seconds; send with LINEAR16 at PCM_RATE. `realtime`
    paces them at the audio's own speed."""
    chunk_bytes = max(2, int(chunk_s * PCM_RATE) * 2)

    async def split() -> AsyncGenerator[bytes, None]:
        pending = b""
        async for block in iterate_in_thread(_decode(path, PCM_BYTES_PER_SECOND)):
            pending += block
            whole = len(pending) - len(pending) % chunk_bytes
            for i in range(0, whole, chunk_bytes):
                yield pending[i : i + chunk_bytes]
            pending = pending[whole:]
        if pending:
            yield pending

    source = paced(split(), PCM_BYTES_PER_SECOND) if realtime else split()
    async with aclosing(source):
        async for chunk in source:
            yield chunk


def _read_blocks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(chunk_bytes):
            yield block


async def file_chunks(
    path: str | Path,
    chunk_bytes: int = 16000,
    realtime: bool = False,
    bytes_per_second: float = 0.0,
) -> AsyncGenerator[bytes, None]:
    """A file's own bytes, for containers the server decodes itself (WAV, FLAC, MP3, WebM,
    Ogg). `realtime` paces them at `bytes_per_second`, by default the file's size over its
    duration."""
    path = Path(path)
    source = iterate_in_thread(_read_blocks(path, chunk_bytes))
    if realtime:
        if bytes_per_second <= 0:
            duration = await asyncio.to_thread(probe_duration, path)
            size = (await asyncio.to_thread(path.stat)).st_size
            bytes_per_second = size / duration if duration else float(PCM_BYTES_PER_SECOND)
        source = paced(source, bytes_per_second)
    async with aclosing(source):
        async for chunk in source:
            yield chunk
