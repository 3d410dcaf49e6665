"""Blocking access for code without an event loop (scripts, notebooks, WSGI apps).

One implementation serves both worlds: a SyncClient runs the asyncio client on its own
event loop in a background thread and hands results across one at a time, so a slow
consumer slows the stream instead of filling memory.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from clients.python.channel import DEFAULT_KEEPALIVE_S, connect
from clients.python.models import (
    Export,
    ModelInfo,
    Page,
    RecordingInfo,
    Result,
    SearchHit,
    Transcript,
    Voice,
)
from clients.python.streaming import StreamingTranscriber, list_models
from clients.python.transcripts import ExportFormat, TranscriptClient

T = TypeVar("T")


class SyncClient:
    """`with SyncClient("localhost:50051") as c: for r in c.transcribe_file("a.wav"): ...`

    Takes the same arguments as `connect()`. Stream options (`title`, `interim_results`,
    `encoding`...) are the fields of StreamingTranscriber, passed as keywords.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str = "",
        tls: bool = False,
        root_certificates: bytes | None = None,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="transcribe-client", daemon=True
        )
        self._thread.start()

        async def open_channel() -> grpc.aio.Channel:  # the channel belongs to our loop
            return connect(
                target, api_key=api_key, tls=tls, root_certificates=root_certificates,
                keepalive_s=keepalive_s,
            )  # fmt: skip

        self._channel = self._run(open_channel())
        self._transcripts = TranscriptClient(self._channel)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: stop the call too
            raise

    def _iterate(self, items: AsyncIterator[T]) -> Generator[T, None, None]:
        async def step() -> T:
            return await anext(items)

        async def close() -> None:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

        try:
            while True:
                try:
                    item = self._run(step())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            if self._loop.is_running():
                self._run(close())

    def transcribe(self, chunks: Iterable[bytes], **options: Any) -> Generator[Result, None, None]:
        """Streams `chunks` (read in a worker thread, so they may block) with `options`."""
        transcriber = StreamingTranscriber(self._channel, **options)
        return self._iterate(transcriber.transcribe(chunks))

    def transcribe_file(
        self, path: str | Path, *, realtime: bool = False, **options: Any
    ) -> Generator[Result, None, None]:
        """Any file PyAV decodes, sent as PCM (`realtime`: at the audio's own pace)."""
        transcriber = StreamingTranscriber(self._channel, **options)
        return self._iterate(transcriber.transcribe_file(path, realtime=realtime))

    def list_models(self) -> list[ModelInfo]:
        """The server's loaded models, its default first; pass a name as `model=`."""
        return self._run(list_models(self._channel))

    def list_transcripts(
        self, *, page_size: int = 20, page_token: str = "", tags: list[str] | None = None,
        created_after: datetime | None = None, created_before: datetime | None = None,
    ) -> Page[Transcript]:  # fmt: skip
        return self._run(
            self._transcripts.list_transcripts(
                page_size=page_size,
                page_token=page_token,
                tags=tags,
                created_after=created_after,
                created_before=created_before,
            )
        )

    def iter_transcripts(
        self, *, limit: int | None = None, tags: list[str] | None = None
    ) -> Generator[Transcript, None, None]:
        return self._iterate(self._transcripts.iter_transcripts(limit=limit, tags=tags))

    def get(self, transcript_id: str) -> Transcript:
        return self._run(self._transcripts.get(transcript_id))

    def search(
        self, query: str, *, page_size: int = 20, page_token: str = "", speaker: str = ""
    ) -> Page[SearchHit]:
        return self._run(
            self._transcripts.search(
                query, page_size=page_size, page_token=page_token, speaker=speaker
            )
        )

    def update(
        self, transcript_id: str, *, title: str | None = None, tags: list[str] | None = None,
        speaker_names: dict[str, str] | None = None,
    ) -> Transcript:  # fmt: skip
        return self._run(
            self._transcripts.update(
                transcript_id, title=title, tags=tags, speaker_names=speaker_names
            )
        )

    def list_voices(self) -> tuple[Voice, ...]:
        return self._run(self._transcripts.list_voices())

    def forget_voice(self, name: str) -> None:
        self._run(self._transcripts.forget_voice(name))

    def delete(self, transcript_id: str) -> None:
        self._run(self._transcripts.delete(transcript_id))

    def export(self, transcript_id: str, fmt: ExportFormat) -> Export:
        return self._run(self._transcripts.export(transcript_id, fmt))

    def save_recording(self, transcript_id: str, path: str | Path) -> RecordingInfo:
        return self._run(self._transcripts.save_recording(transcript_id, path))

    def close(self) -> None:
        """Closes the channel and stops the background loop."""
        if not self._loop.is_running():
            return
        self._run(self._channel.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
