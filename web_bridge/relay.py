"""One browser WebSocket <-> one gRPC StreamingTranscribe call (messages: web_bridge.messages).

Back-pressure both ways: audio goes through a queue bounded in chunks and in bytes,
and the socket is not read while it is full (aiohttp then stops reading the TCP
connection, so the browser's sends wait); results are sent with `send_json`, which
waits while the browser is slow to read. A malformed control frame after `start` is
answered with an error message and the stream goes on. A socket that closes without
`stop` is a dropped connection: the gRPC call is cancelled, so the server stores the
transcript as interrupted and the page can resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import WSMsgType, web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from web_bridge.messages import ProtocolError, control_kind, error, start_config, to_json

logger = logging.getLogger(__name__)
Request = streaming_pb2.StreamingTranscribeRequest


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
            self._bytes -= len(chunk) if chunk else 0
            self._cond.notify_all()
            return chunk


class Relay:
    """The session of one socket: its audio queue, its gRPC call, and its figures."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        stub: streaming_pb2_grpc.TranscriptionServiceAsyncStub,
        max_chunks: int,
        max_bytes: int,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.ws, self.stub, self.metadata = ws, stub, metadata
        self.audio = AudioQueue(max_chunks, max_bytes)
        self.read_bytes = 0
        """Audio bytes taken off the socket so far."""
        self.forwarded_bytes = 0
        """Audio bytes handed to gRPC so far."""
        self._send_lock = asyncio.Lock()  # results and reader errors share the socket
        self._stopped = False
        self._dropped = False

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(message)

    async def _requests(
        self, config: streaming_pb2.StreamingTranscriptionConfig
    ) -> AsyncIterator[Request]:
        yield Request(config=config)
        while (chunk := await self.audio.get()) is not None:
            self.forwarded_bytes += len(chunk)
            yield Request(audio_content=chunk)

    async def _read_socket(self, call: Any) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    self.read_bytes += len(msg.data)
                    await self.audio.put(msg.data)  # waits while gRPC is behind
            elif msg.type == WSMsgType.TEXT:
                try:
                    kind = control_kind(msg.data)
                    if kind != "stop":
                        raise ProtocolError(f"unexpected message type {kind[:40]!r} after start")
                except ProtocolError as exc:  # answered, ignored: the stream goes on
                    with contextlib.suppress(ConnectionResetError):  # closing: loop ends
                        await self.send(error("INVALID_ARGUMENT", f"{exc}; ignored"))
                    continue
                self._stopped = True
                await self.audio.put(None)
                return
            else:
                break
        if not self._stopped:  # dropped without stop: abandon the call (transcript interrupted)
            self._dropped = True
            call.cancel()

    async def run(self) -> None:
        """Run the session until either side ends; always closes both."""
        first = await self.ws.receive()
        if first.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return
        try:
            if first.type != WSMsgType.TEXT:
                raise ProtocolError("the first message must be a JSON start message")
            config = start_config(first.data)
        except ProtocolError as exc:
            with contextlib.suppress(ConnectionResetError):  # the browser left already
                await self.send(error("INVALID_ARGUMENT", str(exc)))
            await self.ws.close()
            return

        call = self.stub.StreamingTranscribe(self._requests(config), metadata=self.metadata)
        reader = asyncio.create_task(self._read_socket(call))
        try:
            async for resp in call:
                for message in to_json(resp):
                    await self.send(message)
            await self.send({"type": "end"})
        except grpc.aio.AioRpcError as err:
            if not self.ws.closed:
                await self.send(error(err.code().name, err.details() or ""))
        except asyncio.CancelledError:
            if not self._dropped:  # our own task is being cancelled (shutdown): propagate
                raise
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            call.cancel()
            if not self.ws.closed:
                await self.ws.close()
