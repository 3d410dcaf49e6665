"""The one owner of server-wide stream state: admission, drain, and memory release.

A call is admitted before it reads anything (so a call that never sends its config
counts, and is ended by the idle timeout): `admit` checks the limit and registers the
stream in one synchronous step, with no await between, so calls arriving at the same
instant can never pass the limit together. It counts streams (calls), not transcripts.
When the last stream ends, the memory the streams freed is handed back to the OS
(glibc keeps freed heap pages otherwise); that is a process-wide act, so it is done
here and not by a session. It also knows which streams are live on which transcript,
so that a rename made through this server reaches them at once (service.stream_names),
and which principal's streams remember voices, so that a voice forgotten through this
server is not stored again when such a stream ends (voices.after_stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from service.errors import ResourceExhaustedError, UnavailableError
from service.memory import release_free_memory
from service.metrics import Metrics

logger = logging.getLogger(__name__)

ENDED_KEPT = 32
"""Summaries of ended streams kept for tests and diagnostics (bounded)."""

NamesListener = Callable[[Mapping[str, str]], None]
"""Takes a transcript's whole speaker names map just stored (StreamNames.offer)."""
ForgetListener = Callable[[str], None]
"""Takes the name of a voice just deleted (DeleteVoice) for the stream's principal."""


def _unfollow(table: dict[str, set[Any]], key: str, listener: Any) -> None:
    """Take a stream's listener off `table` (and the key once no listener is left)."""
    listeners = table.get(key, set())
    listeners.discard(listener)
    if not listeners:
        table.pop(key, None)


@dataclass
class DecodeStats:
    """A stream's decode cost per minute of its audio; bounded by the stream's length."""

    audio_s: list[float] = field(default_factory=list)
    """Seconds of audio passed through the model, by stream minute."""
    wall_s: list[float] = field(default_factory=list)
    """Wall seconds the decodes took, by stream minute."""
    longest_s: dict[str, float] = field(default_factory=dict)
    """Longest audio of one decode, by decode kind."""

    def add(self, stream_s: float, audio_s: float, wall_s: float, kind: str) -> None:
        minute = int(stream_s // 60)
        while len(self.audio_s) <= minute:
            self.audio_s.append(0.0)
            self.wall_s.append(0.0)
        self.audio_s[minute] += audio_s
        self.wall_s[minute] += wall_s
        self.longest_s[kind] = max(self.longest_s.get(kind, 0.0), audio_s)


@dataclass(frozen=True)
class StreamSummary:
    """What is left of an ended stream."""

    transcript_id: str
    status: str
    decodes: DecodeStats


class StreamSlot:
    """One admitted call's place in the registry; what a session sees of the server."""

    def __init__(self, registry: StreamRegistry) -> None:
        self._registry = registry
        self.transcribing = False
        self._following: tuple[str, NamesListener] | None = None
        self._forgets: tuple[str, ForgetListener] | None = None

    @property
    def draining(self) -> asyncio.Event:
        """Set on shutdown: streams stop reading audio, finalize what they have and end."""
        return self._registry.draining

    def started(self) -> None:
        """The call sent its config and its transcript is open."""
        if not self.transcribing:
            self.transcribing = True
            self._registry._transcribing += 1

    def follow_names(self, transcript_id: str, listener: NamesListener) -> None:
        """Hand `listener` every speaker names map stored for the transcript through this
        server until the stream ends (`end`)."""
        self._following = (transcript_id, listener)
        self._registry._listeners.setdefault(transcript_id, set()).add(listener)

    def follow_forgets(self, owner: str, listener: ForgetListener) -> None:
        """Hand `listener` the name of every voice of `owner` deleted through this server
        until the stream ends (`end`)."""
        self._forgets = (owner, listener)
        self._registry._forget_listeners.setdefault(owner, set()).add(listener)

    @property
    def shared(self) -> bool:
        """Other streams are transcribing too (they share the model)."""
        return self._registry._transcribing > 1

    def end(self) -> None:
        """The stream is over (what it still stores is tracked by keep_closing): its place
        is free for the next call. Also done when the call ends; the second time is a no-op."""
        self._registry._end(self)

    def keep_closing(self, task: asyncio.Task[None]) -> None:
        """Track a session's storing of its last results beyond its call (drain waits)."""
        self._registry._closing.add(task)
        task.add_done_callback(self._registry._closing.discard)

    def ended(self, summary: StreamSummary) -> None:
        self._registry.ended.append(summary)


class StreamRegistry:
    """Every admitted stream of this server process."""

    def __init__(
        self, max_streams: int, metrics: Metrics, executor: Executor | None = None
    ) -> None:
        self.max_streams = max_streams
        self._metrics = metrics
        self._executor = executor
        """Where memory release runs (a blocking libc call)."""
        self._slots: set[StreamSlot] = set()
        self._transcribing = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        """Set while no call is admitted."""
        self._idle.set()
        self.draining = asyncio.Event()
        self.ended: deque[StreamSummary] = deque(maxlen=ENDED_KEPT)
        self._listeners: dict[str, set[NamesListener]] = {}
        """Transcript id -> its live streams' names listeners (StreamSlot.follow_names)."""
        self._forget_listeners: dict[str, set[ForgetListener]] = {}
        """Principal -> its live streams' forget listeners (StreamSlot.follow_forgets)."""

    @property
    def active(self) -> int:
        """Admitted calls, including those still waiting for their config."""
        return len(self._slots)

    @property
    def closing(self) -> int:
        """Ended calls whose sessions are still storing their last results."""
        return len(self._closing)

    @contextmanager
    def admit(self) -> Iterator[StreamSlot]:
        """Admit a call for the duration of the block, or refuse it at once."""
        if self.draining.is_set():
            raise UnavailableError(
                "the server is shutting down; reconnect to another server", reason="shutdown"
            )
        if len(self._slots) >= self.max_streams:
            raise ResourceExhaustedError(
                f"the server is at its limit of {self.max_streams} concurrent streams; retry later",
                reason="max_streams",
            )
        slot = StreamSlot(self)
        self._slots.add(slot)  # same step as the check: nothing can run in between
        self._idle.clear()
        self._metrics.active_streams.inc()
        try:
            yield slot
        finally:
            self._end(slot)

    def _end(self, slot: StreamSlot) -> None:
        if slot._following is not None:
            _unfollow(self._listeners, *slot._following)
            slot._following = None
        if slot._forgets is not None:
            _unfollow(self._forget_listeners, *slot._forgets)
            slot._forgets = None
        if slot not in self._slots:
            return
        self._slots.discard(slot)
        if slot.transcribing:
            self._transcribing -= 1
        self._metrics.active_streams.dec()
        if not self._slots:  # idle: what the streams freed goes back to the OS
            self._idle.set()
            self._release_memory()

    def _release_memory(self) -> None:
        try:
            asyncio.get_running_loop().run_in_executor(self._executor, release_free_memory)
        except RuntimeError:  # the server is stopping and its pool is closed: the OS takes all
            return
        self._metrics.memory_releases.inc()

    def names_changed(self, transcript_id: str, names: Mapping[str, str]) -> int:
        """A transcript's speaker names were stored (UpdateTranscript): hand the whole map
        to its live streams on this server; how many there were."""
        listeners = list(self._listeners.get(transcript_id, ()))
        for listener in listeners:
            listener(names)
        return len(listeners)

    def voice_forgotten(self, owner: str, name: str) -> None:
        """A voice of `owner` was deleted (DeleteVoice): tell its live streams on this
        server, whose ends must not store it again."""
        for listener in list(self._forget_listeners.get(owner, ())):
            listener(name)

    def drain(self) -> None:
        """Refuse new calls; streams finalize what they have and end."""
        self.draining.set()

    async def wait_ended(self) -> None:
        """Wait until every admitted call has ended. A session hands its last writes to
        `keep_closing` in the same step as its slot ends, so `wait_closed` then sees them:
        a call the server cancelled is still unwinding when the server's stop returns."""
        await self._idle.wait()

    async def wait_closed(self) -> None:
        """Wait until every ended session has finished storing its results."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
