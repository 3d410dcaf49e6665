"""A stream's input side: waiting for the client's messages, and the limits on them.

Every wait for the client (its config, then each audio chunk) is bounded by the idle
timeout and ends early when the server drains. The pump copies audio bytes to the
recording and the decoder, one chunk at a time, so a slow decoder stops the reading
and HTTP/2 flow control slows the sender. Limits answer RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from service.audio import SAMPLE_RATE, AudioInput
from service.config import LimitSettings
from service.errors import ResourceExhaustedError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class InputEnd(enum.Enum):
    """Why there is no next message."""

    CLOSED = "closed"
    """The client half-closed: it has sent everything."""
    DRAINED = "drained"
    """The server is shutting down and stops reading."""


async def receive(
    messages: AsyncIterator[T], idle_s: float, draining: asyncio.Event, what: str = "audio"
) -> T | InputEnd:
    """The next message, or why there is none; ResourceExhaustedError after idle_s."""
    if draining.is_set():
        return InputEnd.DRAINED
    nxt = asyncio.ensure_future(anext(messages))
    nxt.add_done_callback(_retrieved)  # an end of input after we stopped waiting is fine
    drain = asyncio.ensure_future(draining.wait())
    try:
        done, _ = await asyncio.wait(
            {nxt, drain}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        drain.cancel()
        if not nxt.done():
            nxt.cancel()
    if nxt in done:
        try:
            return nxt.result()
        except StopAsyncIteration:
            return InputEnd.CLOSED
    if drain in done:
        return InputEnd.DRAINED
    raise ResourceExhaustedError(
        f"no {what} received for {idle_s:g} s; the stream was closed as idle", reason="idle"
    )


def _retrieved(future: asyncio.Future[T]) -> None:
    if not future.cancelled():
        future.exception()


def check_message_size(index: int, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ResourceExhaustedError(
            f"message {index} carries {size} bytes of audio, over this server's limit of "
            f"{max_bytes} per message; send smaller chunks (e.g. 100 ms)",
            reason="message_size",
        )


class AudioLimits:
    """The longest stream, and how far a live source may run ahead of the clock."""

    def __init__(self, limits: LimitSettings, live: bool) -> None:
        self._limits = limits
        self._live = live
        self._started = time.monotonic()

    def check(self, received_s: float) -> None:
        """Raise if a stream that has received received_s of audio is over a limit."""
        lim = self._limits
        if received_s > lim.max_stream_s:
            raise ResourceExhaustedError(
                f"stream longer than the limit of {lim.max_stream_s:g} s of audio; "
                "start a new stream (resume_transcript_id continues the same transcript)",
                reason="max_duration",
            )
        if not self._live:
            return
        # A live source cannot run ahead of the clock by more than a reconnect's backlog.
        elapsed = time.monotonic() - self._started
        if received_s > lim.live_max_speed * elapsed + lim.live_burst_s:
            raise ResourceExhaustedError(
                f"live stream sent {received_s:.1f} s of audio in {elapsed:.1f} s; a live stream "
                f"may run at most {lim.live_max_speed:g}x real time after a "
                f"{lim.live_burst_s:g} s burst. Send recorded files with config.live=false",
                reason="live_rate",
            )


class InputPump:
    """Reader task: request bytes -> recording and decoder, bounded by back-pressure.

    Limits are checked here, as audio arrives, not when the transcriber gets to it (a
    slow decode must not hide a flood); a breach ends the input and is kept in `error`
    for the session to raise before it decodes more."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        audio: AudioInput,
        record: Callable[[bytes], Awaitable[None]],
        idle_s: float,
        draining: asyncio.Event,
        transcript_id: str,
        limits: AudioLimits,
    ) -> None:
        self._chunks = chunks
        self._audio = audio
        self._record = record
        self._idle_s = idle_s
        self._draining = draining
        self._tid = transcript_id
        self._limits = limits
        self.error: ResourceExhaustedError | None = None
        self.drained = False
        """The audio ended because the server is draining, not because the client stopped."""

    async def run(self) -> None:
        try:
            while True:
                data = await receive(self._chunks, self._idle_s, self._draining)
                if data is InputEnd.DRAINED:
                    self.drained = True
                    logger.info("transcript %s: server draining, finalizing", self._tid)
                    return
                if data is InputEnd.CLOSED:
                    return
                await self._record(data)
                await self._audio.feed(data)
                self._limits.check(self._audio.decoded_samples / SAMPLE_RATE)
        except ResourceExhaustedError as exc:
            self.error = exc
            await self._audio.fail(exc)
        except asyncio.CancelledError:
            # The stream is over (the session cancels its reader once it stops reading the
            # audio): nothing will take the end of the audio from a full queue, so waiting
            # to put it there hung the call for good, its slot held (a client gone during a
            # burst: test_client_vanish). Closed, `end` below returns at once.
            self._audio.close()
            raise
        finally:
            await self._audio.end(cut=self.drained)
