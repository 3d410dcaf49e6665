"""The audio on its way from one browser socket to its gRPC call: a FIFO bounded in chunks
and in bytes, so a service that falls behind stops the socket being read (web_bridge.relay)."""

from __future__ import annotations

import asyncio
from collections import deque


class AudioQueue:
    """FIFO of audio chunks bounded in count and in bytes; `put` waits while full.
    A chunk larger than the byte bound still passes alone, so nothing can wedge it."""

    def __init__(self, max_chunks: int, max_bytes: int) -> None:
        self.max_chunks, self.max_bytes = max_chunks, max_bytes
        self._items: deque[bytes | None] = deque()
        self._bytes = 0
        self._cond = asyncio.Condition()
        self.peak_bytes = 0
        """Most audio bytes ever queued at once (the bridge's buffer for this socket)."""
        self.blocked = False
        """A put is waiting for room: the socket is not being read."""
        self.taken = 0
        """Chunks taken so far (the service's progress, seen by a waiting put)."""

    async def end_now(self) -> None:
        """End the audio after what is queued, whatever the room (no put may follow)."""
        async with self._cond:
            self._items.append(None)
            self._cond.notify_all()

    def _room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_chunks and self._bytes + size <= self.max_bytes

    async def put(self, chunk: bytes | None) -> None:
        """Queue a chunk (None ends the audio), waiting while there is no room."""
        size = len(chunk) if chunk else 0
        async with self._cond:
            if not self._room(size):
                self.blocked = True
                try:
                    await self._cond.wait_for(lambda: self._room(size))
                finally:
                    self.blocked = False
            self._items.append(chunk)
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._cond.notify_all()

    async def get(self) -> bytes | None:
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._items))
            chunk = self._items.popleft()
            self.taken += 1
            self._bytes -= len(chunk) if chunk else 0
            self._cond.notify_all()
            return chunk
