"""Stored recordings: the audio a stream received, as one seekable file per transcript.

While a stream runs its bytes are appended, as received, to a part file. When
it ends the parts become one playable file: a single WebM part is remuxed (same
Opus packets; the muxer adds the duration and cues MediaRecorder leaves out, so
players can seek), Ogg/FLAC/WAV/MP3 are kept as they are, raw PCM is encoded as
FLAC, and several parts (a client that reconnected) are joined into Ogg/Opus.

A part is named by its stream's lease epoch (service/storage/lease.py), so parts sort
in the order the streams held the transcript. Assembly runs under an exclusive lock
on the transcript's folder (flock: also against other server processes sharing the
directory), takes only parts up to its own epoch (a newer stream may be writing its
part), and is refused with LeaseLostError once a newer epoch has assembled or started
a part: a stale writer never touches a newer writer's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import av

from service.audio import SAMPLE_RATE
from service.errors import NotFoundError
from service.storage.lease import LeaseLostError, lost_message

logger = logging.getLogger(__name__)

MIME = {
    "webm": "audio/webm",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
}
CHUNK = 64 * 1024
_EPOCH_PART = re.compile(r"part-e(\d+)\.bin$")


def _epoch_of(part: Path) -> int:
    """The lease epoch in a part's name (0 for parts named before epochs existed)."""
    m = _EPOCH_PART.fullmatch(part.name)
    return int(m.group(1)) if m else 0


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Exclusive across threads and processes (each open() is its own lock holder)."""
    with (folder / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RecordingInfo:
    """What GetRecording and HTTP Range need to know."""

    path: Path
    mime_type: str
    size: int
    duration_s: float


def _safe_id(transcript_id: str) -> str:
    if not transcript_id or not all(c.isalnum() or c in "-_" for c in transcript_id):
        raise NotFoundError(f"transcript {transcript_id!r} not found")
    return transcript_id


def _open_input(path: Path, meta: dict[str, object]) -> av.container.InputContainer:
    if meta.get("container") == "pcm":
        return av.open(
            str(path),
            format="s16le",
            options={
                "sample_rate": str(meta["sample_rate"]),
                "ch_layout": "mono" if meta.get("channels", 1) == 1 else f"{meta['channels']}c",
            },
        )
    return av.open(str(path))


def _duration(path: Path) -> float:
    """Duration by decoding (MediaRecorder files carry none in their headers)."""
    total = 0.0
    try:
        with av.open(str(path)) as c:
            for frame in c.decode(audio=0):
                total += frame.samples / (frame.sample_rate or 1)
    except av.FFmpegError:
        pass
    return total


def _transcode(inputs: list[tuple[Path, dict[str, object]]], dst: Path, codec: str) -> None:
    """Decode every input in turn and encode one continuous file (Ogg/Opus or FLAC)."""
    fmt = "ogg" if codec == "libopus" else "flac"
    rate = 48000 if codec == "libopus" else SAMPLE_RATE
    with av.open(str(dst), "w", format=fmt) as out:
        stream = cast(av.AudioStream, out.add_stream(codec, rate=rate, layout="mono"))
        if codec == "libopus":
            stream.bit_rate = 32000
        for path, meta in inputs:
            # One resampler per input: PyAV's keeps the format of the first frame it sees,
            # and the inputs differ (an earlier joined Ogg/Opus is 48 kHz float, a part of
            # PCM 16 kHz s16).
            resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
            try:
                with _open_input(path, meta) as inp:
                    for frame in inp.decode(audio=0):
                        frame.pts = None
                        for f in resampler.resample(frame):
                            out.mux(stream.encode(f))
            except av.FFmpegError as exc:  # a part cut off mid-file: keep what decoded
                logger.warning("recording part %s decoded partially: %s", path.name, exc)
            for f in resampler.resample(None):
                out.mux(stream.encode(f))
        out.mux(stream.encode(None))


def _remux_webm(src: Path, dst: Path) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="webm") as out:
        s = inp.streams.audio[0]
        o = out.add_stream_from_template(s)
        for packet in inp.demux(s):
            if packet.dts is None:
                continue
            packet.stream = o
            out.mux(packet)


class RecordingWriter:
    """Appends one stream's bytes to its part file."""

    def __init__(self, store: RecordingStore, transcript_id: str, part: Path, epoch: int) -> None:
        self._store = store
        self._tid = transcript_id
        self._part = part
        self.epoch = epoch
        self._fh: BinaryIO | None = None
        self.bytes = 0

    async def write(self, data: bytes) -> None:
        def do() -> None:
            if self._fh is None:
                self._fh = self._part.open("ab")
            self._fh.write(data)

        self.bytes += len(data)
        await asyncio.to_thread(do)

    async def finish(self) -> str:
        """Close the part and assemble the transcript's recording; returns its MIME type."""

        def do() -> str:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            return self._store.assemble(self._tid, self.epoch)

        return await asyncio.to_thread(do)

    async def discard(self) -> None:
        """Drop this stream's part (its bytes were not audio); earlier recordings stay."""

        def do() -> None:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._part.unlink(missing_ok=True)
            self._part.with_suffix(".json").unlink(missing_ok=True)

        await asyncio.to_thread(do)


class RecordingStore:
    """Recordings in a local directory, one folder per transcript."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, transcript_id: str) -> Path:
        return self.root / _safe_id(transcript_id)

    def open_writer(
        self,
        transcript_id: str,
        container: str,
        sample_rate: int = 0,
        channels: int = 0,
        epoch: int = 0,
    ) -> RecordingWriter:
        """A writer for the part of the stream holding lease `epoch` (one part per stream)."""
        folder = self._dir(transcript_id)
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"part-e{epoch:08d}.bin"
        meta = {"container": container, "sample_rate": sample_rate, "channels": channels or 1}
        part.with_suffix(".json").write_text(json.dumps(meta))
        return RecordingWriter(self, transcript_id, part, epoch)

    def assemble(self, transcript_id: str, epoch: int = 0) -> str:
        """Turn the parts up to `epoch` (and any earlier recording) into one file; returns
        its MIME type. LeaseLostError if a newer epoch has a part or assembled already."""
        folder = self._dir(transcript_id)
        with _locked(folder):
            return self._assemble(transcript_id, folder, epoch)

    def _assemble(self, transcript_id: str, folder: Path, epoch: int) -> str:
        previous = self._info_file(folder)
        old = json.loads(previous.read_text()) if previous is not None else {}
        all_parts = sorted(folder.glob("part-*.bin"), key=lambda p: (_epoch_of(p), p.name))
        if int(old.get("epoch", 0)) > epoch or any(_epoch_of(p) > epoch for p in all_parts):
            raise LeaseLostError(lost_message(transcript_id, epoch))
        parts = [
            (p, json.loads(p.with_suffix(".json").read_text()))
            for p in all_parts
            if p.stat().st_size > 0
        ]
        inputs: list[tuple[Path, dict[str, object]]] = []
        if previous is not None:
            inputs.append((folder / old["file"], {"container": "auto"}))
        inputs += parts
        if not parts:
            self._cleanup_parts(folder, all_parts)
            return self.mime_type(transcript_id)
        if len(inputs) == 1:
            path, meta = inputs[0]
            container = str(meta["container"])
            if container == "pcm":
                name, mime = "recording.flac", MIME["flac"]
                _transcode(inputs, folder / name, "flac")
            elif container == "webm":
                name, mime = "recording.webm", MIME["webm"]
                try:
                    _remux_webm(path, folder / name)
                except (av.FFmpegError, IndexError) as exc:
                    logger.warning("remuxing %s failed (%s); re-encoding", path, exc)
                    name, mime = "recording.ogg", MIME["ogg"]
                    _transcode(inputs, folder / name, "libopus")
            elif container in MIME:
                name, mime = f"recording.{container}", MIME[container]
                shutil.copyfile(path, folder / name)
            else:
                name, mime = "recording.ogg", MIME["ogg"]
                _transcode(inputs, folder / name, "libopus")
        else:
            name, mime = "recording-joined.ogg", MIME["ogg"]
            tmp = folder / f"joining-e{epoch:08d}.ogg"
            _transcode(inputs, tmp, "libopus")
            for old_path, _ in inputs[:1] if previous is not None else []:
                if old_path.name != name:
                    old_path.unlink(missing_ok=True)
            tmp.replace(folder / name)
        info = {"file": name, "mime": mime, "duration": _duration(folder / name), "epoch": epoch}
        tmp_info = folder / "recording.json.tmp"
        tmp_info.write_text(json.dumps(info))
        tmp_info.replace(folder / "recording.json")  # readers never see half a file
        self._cleanup_parts(folder, all_parts)
        return mime

    @staticmethod
    def _cleanup_parts(folder: Path, parts: list[Path]) -> None:
        """Remove the parts this assembly took (and their .json), nothing newer."""
        for p in parts:
            p.unlink(missing_ok=True)
            p.with_suffix(".json").unlink(missing_ok=True)

    @staticmethod
    def _info_file(folder: Path) -> Path | None:
        path = folder / "recording.json"
        return path if path.exists() else None

    def mime_type(self, transcript_id: str) -> str:
        """MIME type of the assembled recording, or '' if there is none."""
        info = self._info_file(self._dir(transcript_id))
        return str(json.loads(info.read_text())["mime"]) if info else ""

    def info(self, transcript_id: str) -> RecordingInfo:
        """Path, type, size and duration; NotFoundError if no recording exists."""
        folder = self._dir(transcript_id)
        meta_path = self._info_file(folder)
        if meta_path is None:
            raise NotFoundError(f"transcript {transcript_id!r} has no recording")
        meta = json.loads(meta_path.read_text())
        path = folder / meta["file"]
        return RecordingInfo(path, meta["mime"], path.stat().st_size, float(meta["duration"]))

    async def read(
        self, transcript_id: str, start: int = 0, length: int = 0
    ) -> AsyncIterator[bytes]:
        """The bytes [start, start+length) of the recording (length 0 = to the end), in chunks."""
        info = await asyncio.to_thread(self.info, transcript_id)
        end = info.size if length <= 0 else min(info.size, start + length)
        with info.path.open("rb") as fh:
            fh.seek(start)
            pos = start
            while pos < end:
                data = await asyncio.to_thread(fh.read, min(CHUNK, end - pos))
                if not data:
                    break
                pos += len(data)
                yield data

    async def delete(self, transcript_id: str) -> None:
        """Remove the transcript's recording and parts."""
        await asyncio.to_thread(shutil.rmtree, self._dir(transcript_id), True)
