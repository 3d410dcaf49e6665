"""One browser WebSocket <-> one gRPC StreamingTranscribe call (messages: web_bridge.messages).

Back-pressure both ways: audio goes through a queue bounded in chunks and in bytes,
and the socket is not read while it is full (aiohttp then stops reading the TCP
connection, so the browser's sends wait); results are sent with `send_json`, which
waits while the browser is slow to read. A malformed control frame after `start` is
answered with an error message and the stream goes on. A socket that closes without
`stop` is a dropped connection: the gRPC call is cancelled, so the server stores the
transcript as interrupted and the page can resume it.

A bridge shutting down hands each live stream over without losing audio (on SIGTERM,
web_bridge.app `leave`, while sockets are still read): it tells the page at once
(`leaving`); the page starts a new recording for the stream that will resume the
transcript, flushes the old one and sends `stop` on this socket. The bridge then ends the
call's audio with `suspend` (the service makes every word it heard final, stores it and
keeps the transcript resumable), relays those finals, and only then tells the page to
resume (UNAVAILABLE, close 1001). A page that does not answer within HANDOVER_S has its
audio ended by the bridge. A stream the service has not answered yet may still be
refused: its page hands it over only once it is answered and sends on meanwhile (each
chunk kept, to go again on its next socket if this one closes first), so HANDOVER_S
counts from the answer; a refusal then tells the page to resume, as above. Once
aiohttp's own shutdown has begun it reads no socket: a stream still live then has its
audio ended at once (what its page sends after that is not transcribed), the rest as
above, within the shutdown timeout; a call still running then is cancelled, as a
dropped one. A stream whose page already sent `stop` finishes.

Failover: a server that refuses the stream before its session answer (at its stream
limit: RESOURCE_EXHAUSTED; draining or down: UNAVAILABLE) never started it, so the
call is made again, and the channel's round robin sends it to the next replica. Every
chunk taken from the browser so far goes again, first chunk (the WebM header) first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import grpc
from aiohttp import WSCloseCode, WSMsgType, web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from web_bridge.audio_queue import AudioQueue
from web_bridge.guard import grpc_message
from web_bridge.messages import ProtocolError, control_kind, error, start_config, to_json

logger = logging.getLogger(__name__)
Request = streaming_pb2.StreamingTranscribeRequest
Call = grpc.aio.StreamStreamCall[Request, streaming_pb2.StreamingTranscribeResponse]
FAILOVER = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
"""Statuses of a stream a server refused before starting it: another replica may take it."""
ATTEMPTS = 3
"""Calls made for one page stream while servers refuse it (then the page gets the error)."""
FAILOVER_BACKOFF_S = 0.1
RESUME_ELSEWHERE = (
    "this bridge is shutting down; every final result shown is stored. "
    "Reconnect to continue the same transcript (resume_transcript_id)"
)
HANDING_OVER = (
    "this bridge is shutting down: send stop once the audio for this stream is sent (every "
    "word of it is made final and stored), then send the rest on a new connection that "
    "resumes the transcript"
)
HANDOVER_S = 3.0
"""A page told `leaving` has this long to send `stop` (not counting time the socket is not
read because the service is behind: the stop waits behind the audio); then the bridge
ends its audio."""
WATCH_S = 1.0
"""While the audio queue is full the socket is not read, so its close is not seen: the
connection is checked this often instead."""
STALL_S = 5.0
"""A browser gone while the service takes no audio for this long is given up on; while
the service takes audio, what the browser sent before leaving (a `stop` too) goes on."""
ANSWER_WAIT_S = 1.0
"""Audio waits this long at most for the server's first answer: a stream it refuses then
ends with the refusal's status, where a write racing it would be reported as INTERNAL."""


class Relay:
    """The session of one socket: its audio queue, its gRPC call, and its figures."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        stub: streaming_pb2_grpc.TranscriptionServiceAsyncStub,
        max_chunks: int,
        max_bytes: int,
        metadata: tuple[tuple[str, str], ...] = (),
        connected: Callable[[], bool] = lambda: True,
    ) -> None:
        self.ws, self.stub, self.metadata = ws, stub, metadata
        self.connected = connected
        """Whether the browser's TCP connection is still there."""
        self.audio = AudioQueue(max_chunks, max_bytes)
        self.read_bytes = 0
        """Audio bytes taken off the socket so far."""
        self.forwarded_bytes = 0
        """Audio bytes handed to gRPC so far."""
        self._send_lock = asyncio.Lock()  # results and reader errors share the socket
        self._stopped = False
        self._dropped = False
        self._gone = False
        """The socket broke after `stop`: results are no longer sent, the call goes on."""
        self._started = False
        """The start message was read: a call is (or is about to be) made."""
        self._leaving = False
        """The bridge is shutting down: this live stream is being handed over (going_away)."""
        self._stop_read = asyncio.Event()
        """Set with `_stopped`: the page's audio is complete."""
        self._reader: asyncio.Task[None] | None = None
        self._handover: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._call: Call | None = None
        self._unanswered: list[bytes] = []
        """Chunks sent on calls that have not answered yet: a refusing replica's next one
        gets them again."""
        self._unanswered_bytes = 0
        self._audio_ended = False
        self._taken = False
        """A replica answered this stream: a failure from now on is not a refusal."""
        self._answered = asyncio.Event()
        """A replica answered this stream (its page has its session)."""

    @property
    def stopped(self) -> bool:
        """The browser's `stop` was read: its audio is complete."""
        return self._stopped

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(message)

    async def _relay(self, message: dict[str, Any]) -> None:
        """Send a result; after `stop` a browser that left is no reason to cancel: the
        audio is complete, so the call runs to its end and the service stores every
        last word (cancelled, it would store the transcript as interrupted, tail lost)."""
        if self._stopped and self._gone:
            return
        try:
            await self.send(message)
        except ConnectionResetError:
            if not self._stopped:
                raise
            self._gone = True

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
            if self._leaving:  # the page resumes the transcript: keep it resumable
                await call.write(Request(suspend=True))
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
                    if not await self._put(msg.data):  # waits while gRPC is behind
                        break  # the browser left meanwhile
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
                self._stop_read.set()
                await self.audio.put(None)
                return
            else:
                break
        if not self._stopped:  # dropped without stop: abandon the call (transcript interrupted)
            self._dropped = True
            if self._call is not None:
                self._call.cancel()

    async def _put(self, chunk: bytes) -> bool:
        """Queue a chunk; False if the browser left while the queue was full and the
        service stalled: noticed then, not never (its call would run on for nobody)."""
        put = asyncio.ensure_future(self.audio.put(chunk))
        taken, idle = self.audio.taken, 0.0
        try:
            while not put.done():
                await asyncio.wait({put}, timeout=WATCH_S)
                idle = idle + WATCH_S if self.audio.taken == taken else 0.0
                taken = self.audio.taken
                if not put.done() and idle >= STALL_S and not self.connected():
                    return False
        finally:
            put.cancel()
        return True

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
                    self._answered.set()
                    self._taken = True
                    self._unanswered.clear()  # this replica took the stream
                    self._unanswered_bytes = 0
                for message in to_json(resp):
                    await self._relay(message)
        finally:
            writer.cancel()
            call.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _transcribe(self, config: streaming_pb2.StreamingTranscriptionConfig) -> None:
        """Calls until one is taken, up to ATTEMPTS while replicas refuse before answering."""
        for attempt in range(1, ATTEMPTS + 1):
            if self._dropped or self._leaving:  # the browser or the bridge left meanwhile
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

    async def going_away(self) -> None:
        """The bridge is shutting down: hand a live stream over (module docstring) rather
        than cut it, which lost what the service had heard but not yet made final; `run`
        tells the page to resume once the call has ended. A stopped stream is left to
        finish its last words."""
        if self._stopped or self._leaving:
            return
        self._leaving = True
        if not self._started:  # still waiting for the start message
            await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"bridge shutting down")
            return
        self._handover = asyncio.create_task(self._end_audio_soon())
        with contextlib.suppress(ConnectionResetError):  # gone: the reader notices
            await self.send({"type": "leaving", "message": HANDING_OVER})

    async def _end_audio_soon(self) -> None:
        """The page's `stop` ends the audio; without it in HANDOVER_S, the bridge does. The
        count starts at the service's answer: the page hands over only a stream the service
        took (live.js), and sends on until then. Ending an unanswered stream's audio early
        lost what its page sent after `leaving` if the service then took it."""
        stop = asyncio.ensure_future(self._stop_read.wait())
        answer = asyncio.ensure_future(self._answered.wait())
        try:
            await asyncio.wait({stop, answer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            answer.cancel()
        waited = 0.0
        while waited < HANDOVER_S and not self._stop_read.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCH_S):
                    await self._stop_read.wait()
            waited = 0.0 if self.audio.blocked else waited + WATCH_S
        if not self._stopped:
            logger.info("the page did not end its audio when told the bridge is leaving")
        await self._end_audio()

    async def _end_audio(self) -> None:
        """The call's audio ends after what was read from the page so far."""
        if self._stopped or self._dropped:
            return
        if self._reader is not None:  # no more chunks from the page for this call
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if not self._stopped:
            await self.audio.end_now()

    async def unread(self) -> None:
        """aiohttp's shutdown has begun: it reads no socket any more, so a live stream's
        audio ends with what was read (the page's `stop` can no longer arrive)."""
        if not self._leaving:
            await self.going_away()
        if self._handover is not None and not self._handover.done():
            self._handover.cancel()
            await self._end_audio()

    @property
    def finished(self) -> asyncio.Event:
        """Set when `run` has returned: both sides are closed."""
        return self._finished

    async def _tell_leaving(self) -> None:
        """A handed-over stream's call ended: the page resumes the transcript elsewhere."""
        with contextlib.suppress(ConnectionResetError):
            await self.send(error("UNAVAILABLE", RESUME_ELSEWHERE))

    async def run(self) -> None:
        """Run the session until either side ends; always closes both."""
        try:
            await self._run()
        finally:
            self._finished.set()

    async def _run(self) -> None:
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
            # 1008, not 1000: the stream was refused; the reason fits a close frame (123 bytes)
            reason = str(exc).encode()[:123].decode(errors="ignore").encode()
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason)
            return

        self._started = True
        reader = self._reader = asyncio.create_task(self._read_socket())
        try:
            await self._transcribe(config)
            if self._leaving:  # handed over: every final is stored and shown
                await self._tell_leaving()
            else:
                await self._relay({"type": "end"})
        except grpc.aio.AioRpcError as err:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionResetError):  # the browser left too
                    await self.send(error(err.code().name, grpc_message(err)))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # our own task is cancelled
                if self._leaving and not self.ws.closed:  # the shutdown timeout ran out
                    await self._tell_leaving()
                raise
            if self._leaving:  # the page shows it, reconnects and resumes
                await self._tell_leaving()
            elif not self._dropped:  # not a call we cancelled: propagate
                raise
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            if self._handover is not None:
                self._handover.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self._call is not None:
                self._call.cancel()
            if not self.ws.closed:
                code = WSCloseCode.GOING_AWAY if self._leaving else WSCloseCode.OK
                await self.ws.close(code=code)
