"""Decoding of every accepted encoding into 16 kHz mono float32.

Raw PCM (LINEAR16) is converted as it arrives. Containers (WebM/Ogg Opus from a
browser's MediaRecorder, FLAC, WAV, MP3) are decoded by PyAV on a dedicated
thread that reads from a blocking pipe, so frames come out as soon as their
bytes arrive, whatever the chunking. Both paths resample with PyAV.
Bytes from which no audio comes out (by their end, or within NO_AUDIO_LIMIT), and
headers declaring absurd rates or channel counts, are INVALID_ARGUMENT, whatever
the container: a stream is never accepted as an empty transcript of garbage.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from service.errors import InvalidArgumentError

SAMPLE_RATE = 16000
"""Hz of all audio inside the service: what the decoder yields, the VAD and model take."""
Samples = npt.NDArray[np.float32]

NO_AUDIO_LIMIT = 1 << 20
"""Bytes a container decoder may read before its first audio. Past it, what is sent is not
the declared encoding: the stream is refused instead of read to its end. Headers (even a
file's embedded cover art) are smaller; garbage scanned for a sync code never ends."""
MIN_RATE, MAX_RATE = 4000, 384000
"""Sample rates a container may declare: beyond these a header is garbage, not audio."""
MAX_CHANNELS = 8
"""As for LINEAR16: the mix-down to mono has no layout for more (FFmpeg refuses it)."""

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
        self.consumed = 0
        """Bytes handed to the decoder so far."""
        self.cutoff: int | None = NO_AUDIO_LIMIT
        """Read no further than this (None once audio came out): the decoder then sees the end."""
        self.cut = False
        """The server stopped reading (a drain), wherever the client's bytes were: a frame
        cut short at the end is not the client's error."""

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
            if self.cutoff is not None:
                if self.consumed >= self.cutoff:
                    return b""
                left = self.cutoff - self.consumed
                n = left if n < 0 else min(n, left)
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
            self.consumed += len(out)
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
        self.undecodable: InvalidArgumentError | None = None
        """Why the bytes could not be decoded, if they could not (set on the decoder thread)."""

    @property
    def ended(self) -> bool:
        """The source sent its last bytes: what is queued is all that is left."""
        return self._ended

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

    async def fail(self, error: BaseException) -> None:
        """The input stopped on `error` (e.g. a message over the size limit): the consumer
        gets that error next, not the end-of-audio checks (a stray byte left by the message
        that was refused would otherwise be reported instead, depending on timing)."""
        if self._ended:
            return
        self._ended = True
        await self._put(error)
        if self._pipe is not None:
            self._pipe.close()

    async def end(self, cut: bool = False) -> None:
        """No more bytes: flush what is buffered and finish the output. `cut`: the server
        stopped reading (it drains), so the bytes may end inside a sample or a frame: what
        decodes is the audio, the rest is dropped instead of refused."""
        if self._ended:
            return
        self._ended = True
        if self.fmt.container == "pcm":
            if self._remainder and not cut:
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
            self._pipe.cut = cut
            self._pipe.close()

    @property
    def not_audio(self) -> InvalidArgumentError | None:
        """Why the bytes are not audio at all (nothing decoded from them), else None: such a
        stream's bytes are not worth keeping as its recording."""
        if self.undecodable is None or self._pipe is None or self._pipe.cutoff is None:
            return None
        return self.undecodable

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
            self._decode(self._pipe, name)
            self._emit(None)
        except InvalidArgumentError as exc:
            self.undecodable = exc
            self._emit(exc)
        except Exception as exc:  # loop closed or unexpected: surface it to the consumer
            try:
                self._emit(exc)
            except Exception:
                return
        finally:
            self._pipe.close()

    def _decode(self, pipe: _Pipe, name: str) -> None:
        """Decode the container on this thread; InvalidArgumentError for what is not audio."""

        def refuse(why: str) -> InvalidArgumentError:
            return InvalidArgumentError(
                f"the {name} audio could not be decoded after {_size(pipe.consumed)}: {why}"
            )

        try:
            container = av.open(pipe, mode="r", format=CONTAINERS[self.fmt.container], timeout=None)
        except (av.FFmpegError, ValueError, OSError) as exc:
            if pipe.consumed == 0 or pipe.cut:
                return
            raise refuse(
                f"it does not open as {name} ({exc}). Check that the encoding in the config "
                "matches the bytes sent (a whole file or MediaRecorder stream from its first "
                "chunk)"
            ) from exc
        with container:
            if not container.streams.audio:
                raise refuse("the data holds no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None:  # a header naming no codec FFmpeg can open
                raise refuse("its audio codec cannot be decoded")
            _check_declared(stream.sample_rate, stream.codec_context.channels, refuse)
            try:
                for frame in container.decode(stream):
                    _check_declared(frame.sample_rate, frame.layout.nb_channels, refuse)
                    if frame.samples:
                        pipe.cutoff = None  # audio came out: the input is what it says
                    # Timestamps are ignored: only sample continuity matters here, and a
                    # browser's recorder can start at a large offset that would otherwise
                    # make the resampler pad the gap with silence.
                    frame.pts = None
                    self._emit(_frames_to_array(self._resampler.resample(frame)))
            except av.FFmpegError as exc:
                if not pipe.cut:  # else the server stopped reading inside a frame (drain)
                    raise refuse(str(exc)) from exc
            if pipe.cutoff is not None and not pipe.cut:  # no audio from all read (or the cap)
                raise refuse(
                    "no audio came out of it. Check that the encoding in the config matches "
                    "the bytes sent"
                )
            self._emit(_frames_to_array(self._resampler.resample(None)))


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1000 else f"{n / 1000:.0f} KB"


def _check_declared(rate: int, channels: int, refuse: Callable[[str], Exception]) -> None:
    """Refuse a header's absurd sample rate or channel count (0 means not known yet)."""
    if rate and not MIN_RATE <= rate <= MAX_RATE:
        raise refuse(f"it declares {rate} Hz; audio from {MIN_RATE} to {MAX_RATE} Hz is accepted")
    if channels > MAX_CHANNELS:
        raise refuse(f"it declares {channels} channels; audio with 1 to {MAX_CHANNELS} is accepted")
