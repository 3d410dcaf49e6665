"""One browser WebSocket <-> one gRPC StreamingTranscribe call (messages: web_bridge.messages).

Back-pressure both ways: audio goes through a queue bounded in chunks and in bytes,
and the socket is not read while it is full (aiohttp then stops reading the TCP
connection, so the browser's sends wait); results are sent with `send_json`, which
waits while the browser is slow to read. A malformed control frame after `start` is
answered with an error message and the stream goes on. A socket that closes without
`stop` is a dropped connection: the gRPC call is cancelled, so the server stores the
transcript as interrupted and the page can resume it.

Failover: a server that refuses the stream before its session answer (at its stream
limit: RESOURCE_EXHAUSTED; draining or down: UNAVAILABLE) never started it, so the
call is made again, and the channel's round robin sends it to the next replica. Every
chunk taken from the browser so far goes again, first chunk (the WebM header) first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import grpc
from aiohttp import WSMsgType, web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from web_bridge.messages import ProtocolError, control_kind, error, start_config, to_json

logger = logging.getLogger(__name__)
Request = streaming_pb2.StreamingTranscribeRequest
Call = grpc.aio.StreamStreamCall[Request, streaming_pb2.StreamingTranscribeResponse]
FAILOVER = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
"""Statuses of a stream a server refused before starting it: another replica may take it."""
ATTEMPTS = 3
"""Calls made for one page stream while servers refuse it (then the page gets the error)."""
FAILOVER_BACKOFF_S = 0.1
ANSWER_WAIT_S = 1.0
"""Audio waits this long at most for the server's first answer: a stream it refuses then
ends with the refusal's status, where a write racing it would be reported as INTERNAL."""


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
        self._call: Call | None = None
        self._unanswered: list[bytes] = []
        """Chunks sent on calls that have not answered yet: a refusing replica's next one
        gets them again."""
        self._unanswered_bytes = 0
        self._audio_ended = False
        self._taken = False
        """A replica answered this stream: a failure from now on is not a refusal."""

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(message)

    async def _write(
        self,
        call: Call,
        config: streaming_pb2.StreamingTranscriptionConfig,
        answered: asyncio.Event,
    ) -> None:
        """Config, then the chunks an earlier refused call took, then the socket's audio.
        A task of our own (not grpc's reader of a request generator), so a refused call's
        writer is surely stopped before the next call replays what it took."""
        replay = list(self._unanswered)  # taken now: an answer clears the list
        try:
            await call.write(Request(config=config))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ANSWER_WAIT_S):
                    await answered.wait()
            for chunk in replay:
                await call.write(Request(audio_content=chunk))
            while not self._audio_ended:
                taken = await self.audio.get()
                if taken is None:
                    self._audio_ended = True
                    break
                if not answered.is_set() and not self._taken:
                    self._keep(taken)
                self.forwarded_bytes += len(taken)
                await call.write(Request(audio_content=taken))
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended: its status reaches the reader

    def _keep(self, chunk: bytes) -> None:
        """Keep a chunk for a next replica, within the socket's buffer bound: a server
        that reads that much without answering has taken the stream (no failover)."""
        self._unanswered.append(chunk)
        self._unanswered_bytes += len(chunk)
        if self._unanswered_bytes > self.audio.max_bytes:
            self._taken = True
            self._unanswered.clear()

    async def _read_socket(self) -> None:
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
            if self._call is not None:
                self._call.cancel()

    async def _attempt(self, config: streaming_pb2.StreamingTranscriptionConfig) -> None:
        """One StreamingTranscribe call, its responses relayed (raises its error status)."""
        answered = asyncio.Event()
        call: Call = self.stub.StreamingTranscribe(metadata=self.metadata)
        self._call = call
        writer = asyncio.create_task(self._write(call, config, answered))
        try:
            async for resp in call:
                if not answered.is_set():
                    answered.set()
                    self._taken = True
                    self._unanswered.clear()  # this replica took the stream
                    self._unanswered_bytes = 0
                for message in to_json(resp):
                    await self.send(message)
        finally:
            writer.cancel()
            call.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _transcribe(self, config: streaming_pb2.StreamingTranscriptionConfig) -> None:
        """Calls until one is taken, up to ATTEMPTS while replicas refuse before answering."""
        for attempt in range(1, ATTEMPTS + 1):
            if self._dropped:  # the browser left while we waited: nobody to serve
                raise asyncio.CancelledError
            try:
                await self._attempt(config)
                return
            except grpc.aio.AioRpcError as err:
                refused = not self._taken and err.code() in FAILOVER
                if not refused or attempt >= ATTEMPTS:
                    raise
                logger.info("stream refused (%s); trying another replica", err.code().name)
            await asyncio.sleep(FAILOVER_BACKOFF_S * attempt)

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

        reader = asyncio.create_task(self._read_socket())
        try:
            await self._transcribe(config)
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
            if self._call is not None:
                self._call.cancel()
            if not self.ws.closed:
                await self.ws.close()
