"""Shared test helpers: test clips, scoring, and streaming through the real gRPC API."""

from __future__ import annotations

import asyncio
import difflib
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

import av
import jiwer
import numpy as np
import numpy.typing as npt
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2_grpc
from whisper_normalizer.english import EnglishTextNormalizer

DATA = Path(__file__).parent / "data"
Enc = streaming_pb2.AudioEncoding
if TYPE_CHECKING:
    # A stub built on a grpc.aio channel is the asyncio variant (the generated .pyi's
    # `__new__` overloads); those classes exist for type checking only, so at run time
    # the names are the generated classes the stubs are instances of.
    Stub: TypeAlias = streaming_pb2_grpc.TranscriptionServiceAsyncStub
    TStub: TypeAlias = transcripts_pb2_grpc.TranscriptServiceAsyncStub
else:
    Stub = streaming_pb2_grpc.TranscriptionServiceStub
    TStub = transcripts_pb2_grpc.TranscriptServiceStub


@dataclass(frozen=True)
class Clip:
    id: str
    path: Path
    text: str
    duration_s: float
    segments: tuple[dict[str, object], ...] = ()


@cache
def clips() -> dict[str, Clip]:
    out = {}
    for line in (DATA / "manifest.jsonl").read_text().splitlines():
        e = json.loads(line)
        out[e["id"]] = Clip(
            e["id"], DATA / e["wav"], e["text"], e["duration_s"], tuple(e.get("segments", ()))
        )
    return out


def dev_clips() -> list[Clip]:
    return [c for c in clips().values() if not c.id.endswith("-long")]


def long_clip() -> Clip:
    return next(c for c in clips().values() if c.id.endswith("-long"))


_norm = EnglishTextNormalizer()


def normalize(text: str) -> str:
    return str(_norm(text))


def latest_finals(results: Iterable[streaming_pb2.StreamingTranscriptionResult]) -> dict[int, str]:
    """Final text by segment index in index order, each as last sent: a revision (the second
    pass over a complete sentence) replaces the segment's first final."""
    out = {r.segment_index: r.alternatives[0].transcript for r in results if r.is_final}
    return dict(sorted(out.items()))


def assert_seen_finals_stored(seen: dict[int, str], stored: dict[int, str]) -> None:
    """Every final a client saw is stored under its index. A stream cut off mid-way may have
    stored a revision of a segment it then could not deliver: that text may differ from the
    one seen, as a revision does (mostly the same letters), never more. A revision may move
    a word between the segments of its sentence, so each differing stretch is compared with
    a segment of context on either side, as the server compares the whole sentence."""
    for index, text in seen.items():
        assert index in stored, f"segment {index} ({text!r}) was seen but is not stored"
    differ = sorted(i for i in seen if stored[i] != seen[i])
    while differ:
        first = last = differ.pop(0)
        while differ and differ[0] <= last + 2:  # one unchanged segment between: same stretch
            last = differ.pop(0)
        span = [i for i in range(first - 1, last + 2) if i in seen]
        a = normalize(" ".join(seen[i] for i in span)).replace(" ", "")
        b = normalize(" ".join(stored[i] for i in span)).replace(" ", "")
        similar = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
        assert similar >= 0.6, f"segments {span}: saw {a!r}, stored {b!r}"


def wer(refs: Iterable[str], hyps: Iterable[str]) -> float:
    """Corpus WER after Whisper's English normalizer on both sides."""
    r = [normalize(x) for x in refs]
    h = [normalize(x) for x in hyps]
    return float(jiwer.wer(r, h))


def decode_16k(path: Path) -> npt.NDArray[np.float32]:
    """A file as 16 kHz mono float32 (the reference decoding used by tests)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    parts = []
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32)


def pcm16(audio: npt.NDArray[np.float32]) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def encode_container(audio: npt.NDArray[np.float32], fmt: str) -> bytes:
    """Encode 16 kHz mono audio as webm/ogg (Opus, 48 kHz as browsers do) or flac/wav."""
    import io

    buf = io.BytesIO()
    # Literal codec names: PyAV's stubs then type the stream as an audio stream.
    codecs: dict[str, tuple[Literal["libopus", "flac", "pcm_s16le"], int]] = {
        "webm": ("libopus", 48000),
        "ogg": ("libopus", 48000),
        "flac": ("flac", 16000),
        "wav": ("pcm_s16le", 16000),
    }
    codec, rate = codecs[fmt]
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (np.clip(audio, -1, 1) * 32767).astype("<i2").reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class StreamRun:
    """Everything a stream returned, with arrival times relative to the first audio sent."""

    responses: list[tuple[float, streaming_pb2.StreamingTranscribeResponse]] = field(
        default_factory=list
    )
    code: object = None
    details: str = ""

    @property
    def transcript_id(self) -> str:
        return next(r.session.transcript_id for _, r in self.responses if r.HasField("session"))

    def results(
        self, final: bool | None = None
    ) -> list[streaming_pb2.StreamingTranscriptionResult]:
        out = []
        for _, r in self.responses:
            for res in r.results:
                if final is None or res.is_final == final:
                    out.append(res)
        return out

    @property
    def segments(self) -> dict[int, str]:
        """Final text by segment index, each as last sent (a revision replaces it)."""
        return latest_finals(self.results(True))

    @property
    def final_text(self) -> str:
        return " ".join(self.segments.values())


class StreamingStub(Protocol):
    """What `stream` calls: an asyncio stub, or a wrapper of one that adds call metadata."""

    @property
    def StreamingTranscribe(
        self,
    ) -> Callable[
        [AsyncIterator[streaming_pb2.StreamingTranscribeRequest]],
        AsyncIterable[streaming_pb2.StreamingTranscribeResponse],
    ]: ...


def config(**kw: object) -> streaming_pb2.StreamingTranscriptionConfig:
    """A stream config with revised finals on, as every client here asks for them."""
    kw.setdefault("enable_revisions", True)
    return streaming_pb2.StreamingTranscriptionConfig(**kw)  # type: ignore[arg-type]


async def stream(
    stub: StreamingStub,
    cfg: streaming_pb2.StreamingTranscriptionConfig | None,
    payloads: list[bytes],
    pace_s: float = 0.0,
    extra_first: list[streaming_pb2.StreamingTranscribeRequest] | None = None,
    on_response: Callable[[streaming_pb2.StreamingTranscribeResponse], None] | None = None,
) -> StreamRun:
    """Send config then payloads (optionally `pace_s` apart); collect responses and status."""
    import grpc

    run = StreamRun()
    t0 = time.monotonic()

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        for req in extra_first or []:
            yield req
        if cfg is not None:
            yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
        for i, p in enumerate(payloads):
            if pace_s:
                delay = t0 + i * pace_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the sender like a live source
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=p)

    call = stub.StreamingTranscribe(requests())
    try:
        async for resp in call:
            run.responses.append((time.monotonic() - t0, resp))
            if on_response is not None:
                on_response(resp)
        run.code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as err:
        run.code = err.code()
        run.details = err.details() or ""
    return run


async def until(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Wait for `condition` (polled every 10 ms); fail naming `what` after `seconds`."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def thread_nices() -> dict[int, int]:
    """Thread id -> nice value of this process's threads (Linux keeps one per thread)."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = int(fields[16])
    return out
