"""Decoding of every accepted encoding into 16 kHz mono float32.

Raw PCM (LINEAR16) is converted as it arrives. Containers (WebM/Ogg Opus from a
browser's MediaRecorder, FLAC, WAV, MP3) are decoded by PyAV on a dedicated
thread that reads from a blocking pipe, so frames come out as soon as their
bytes arrive, whatever the chunking. Both paths resample with PyAV.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from service.errors import InvalidArgumentError

SAMPLE_RATE = 16000
"""Hz of all audio inside the service: what the decoder yields, the VAD and model take."""
Samples = npt.NDArray[np.float32]

# encoding name -> (PyAV/FFmpeg demuxer name or None to probe, human name)
CONTAINERS: dict[str, str | None] = {
    "webm": "matroska",
    "ogg": "ogg",
    "flac": "flac",
    "wav": "wav",
    "mp3": "mp3",
    "auto": None,
}


@dataclass(frozen=True)
class AudioFormat:
    """What the client said its bytes are."""

    container: str  # "pcm" or a key of CONTAINERS
    sample_rate: int = 0  # pcm only
    channels: int = 1  # pcm only
    label: str = ""  # the encoding as the client named it, for error messages


def _resampler() -> av.AudioResampler:
    return av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)


def _frames_to_array(frames: list[av.AudioFrame]) -> Samples:
    arrays = [f.to_ndarray().reshape(-1) for f in frames if f.samples]
    if not arrays:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(arrays).astype(np.float32, copy=False)


class _Pipe:
    """A blocking, bounded byte pipe read by PyAV on the decoder thread."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._closed = False
        self._cond = threading.Condition()

    def write(self, data: bytes) -> None:
        with self._cond:
            while self._size > self._limit and not self._closed:
                self._cond.wait()
            if self._closed:
                return
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._closed:
                self._cond.wait()
            if not self._chunks:
                return b""
            out = bytearray()
            while self._chunks and (n < 0 or len(out) < n):
                chunk = self._chunks.popleft()
                take = chunk if n < 0 else chunk[: n - len(out)]
                if len(take) < len(chunk):
                    self._chunks.appendleft(chunk[len(take) :])
                out += take
            self._size -= len(out)
            self._cond.notify_all()
            return bytes(out)


class AudioInput:
    """Bytes in (feed/end), 16 kHz mono float32 out (async iteration)."""

    def __init__(self, fmt: AudioFormat, max_queued: int = 64) -> None:
        self.fmt = fmt
        self._out: asyncio.Queue[Samples | BaseException | None] = asyncio.Queue(max_queued)
        self.queued_samples = 0
        self.decoded_samples = 0
        """Every sample decoded so far (taken or still queued)."""
        self.bytes_in = 0
        self._remainder = b""
        self._thread: threading.Thread | None = None
        self._pipe: _Pipe | None = None
        self._loop = asyncio.get_running_loop()
        self._resampler = _resampler()
        self._ended = False

    async def _put(self, item: Samples | BaseException | None) -> None:
        if isinstance(item, np.ndarray):
            if not len(item):
                return
            self.queued_samples += len(item)
            self.decoded_samples += len(item)
        await self._out.put(item)

    # ---- input ----------------------------------------------------------
    async def feed(self, data: bytes) -> None:
        """Accept the next bytes; waits (back-pressure) while output is queued up."""
        if not data:
            return
        self.bytes_in += len(data)
        if self.fmt.container == "pcm":
            await self._put(self._pcm(data))
            return
        if self._pipe is None:
            self._pipe = _Pipe()
            self._thread = threading.Thread(
                target=self._decode_container, name="audio-decoder", daemon=True
            )
            self._thread.start()
        await asyncio.to_thread(self._pipe.write, data)

    async def end(self) -> None:
        """No more bytes: flush what is buffered and finish the output."""
        if self._ended:
            return
        self._ended = True
        if self.fmt.container == "pcm":
            if self._remainder:
                await self._put(
                    InvalidArgumentError(
                        f"LINEAR16 audio ended with {len(self._remainder)} stray byte(s): "
                        "the stream must hold whole 16-bit samples for every channel"
                    )
                )
                return
            await self._put(_frames_to_array(self._resampler.resample(None)))
            await self._put(None)
        elif self._pipe is None:
            await self._put(None)
        else:
            self._pipe.close()

    def close(self) -> None:
        """Stop the decoder thread (on cancel or error); safe to call twice."""
        self._ended = True
        if self._pipe is not None:
            self._pipe.close()

    # ---- output ---------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Samples]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Samples]:
        held: Samples | BaseException | None = None
        have_held = False
        while True:
            item = held if have_held else await self._out.get()
            have_held = False
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            # Everything queued meanwhile (audio that arrived during a decode) comes out as
            # one array: one VAD call instead of one per message, so the stream is ready
            # for its next decode at once and joins the next batch.
            parts = [item]
            while not self._out.empty():
                nxt = self._out.get_nowait()
                if not isinstance(nxt, np.ndarray):
                    held, have_held = nxt, True
                    break
                parts.append(nxt)
            chunk = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self.queued_samples -= len(chunk)
            yield chunk

    # ---- decoding -------------------------------------------------------
    def _pcm(self, data: bytes) -> Samples:
        data = self._remainder + data
        width = 2 * self.fmt.channels
        usable = len(data) - len(data) % width
        self._remainder = data[usable:]
        if not usable:
            return np.zeros(0, dtype=np.float32)
        pcm = np.frombuffer(data[:usable], dtype="<i2").reshape(1, -1)
        layout = "mono" if self.fmt.channels == 1 else "stereo"
        if self.fmt.channels > 2:  # mix down ourselves; PyAV layouts stop being simple
            mixed = pcm.reshape(-1, self.fmt.channels).mean(axis=1)
            pcm = np.round(mixed).astype("<i2").reshape(1, -1)
            layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
        frame.sample_rate = self.fmt.sample_rate
        return _frames_to_array(self._resampler.resample(frame))

    def _emit(self, item: Samples | BaseException | None) -> None:
        """From the decoder thread: hand an item to the loop, blocking while the queue is full."""
        fut = asyncio.run_coroutine_threadsafe(self._put(item), self._loop)
        fut.result()

    def _decode_container(self) -> None:
        assert self._pipe is not None
        name = self.fmt.label or self.fmt.container
        try:
            try:
                container = av.open(
                    self._pipe, mode="r", format=CONTAINERS[self.fmt.container], timeout=None
                )
            except (av.FFmpegError, ValueError, OSError) as exc:
                if self.bytes_in == 0:
                    self._emit(None)
                    return
                raise InvalidArgumentError(
                    f"audio could not be opened as {name}: {exc}. Check that the encoding in "
                    "the config matches the bytes sent (a whole file or MediaRecorder stream "
                    "from its first chunk)"
                ) from exc
            with container:
                if not container.streams.audio:
                    raise InvalidArgumentError(f"the {name} data holds no audio stream")
                stream = container.streams.audio[0]
                try:
                    for frame in container.decode(stream):
                        # Timestamps are ignored: only sample continuity matters here, and a
                        # browser's recorder can start at a large offset that would otherwise
                        # make the resampler pad the gap with silence.
                        frame.pts = None
                        self._emit(_frames_to_array(self._resampler.resample(frame)))
                except av.FFmpegError as exc:
                    raise InvalidArgumentError(
                        f"audio could not be decoded as {name} after {self.bytes_in} bytes: {exc}"
                    ) from exc
                self._emit(_frames_to_array(self._resampler.resample(None)))
            self._emit(None)
        except InvalidArgumentError as exc:
            self._emit(exc)
        except Exception as exc:  # loop closed or unexpected: surface it to the consumer
            try:
                self._emit(exc)
            except Exception:
                return
        finally:
            self._pipe.close()
