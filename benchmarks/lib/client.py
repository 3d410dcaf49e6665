"""Streaming clips through the real gRPC API at a chosen pace, recording every response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from benchmarks.lib.analysis import SAMPLE_RATE, final_transcript, word_timings
from benchmarks.lib.clips import Clip
from benchmarks.lib.progress import Progress

CHUNK = 3200  # bytes of LINEAR16: 100 ms


@dataclass
class ClipRun:
    id: str
    reference: str
    duration_s: float
    kind: str = "speech"
    start_s: float = 0.0  # run time at which its first audio was sent
    responses: list[tuple[float, Any]] = field(default_factory=list)
    final_text: str = ""
    first_pass_text: str = ""
    error: str = ""


async def stream_clip(
    stub: Any,
    clip: Clip,
    pace: float,
    delay: float,
    origin: float,
    progress: Progress | None = None,
    model: str = "",
    labels: bool = False,
) -> ClipRun:
    """One clip at `pace`, asking for revised finals as the clients here do, with `model`
    ("": the server's default) and the clip's `language_code`."""
    run = ClipRun(clip.id, clip.reference, clip.duration_s, clip.kind)
    await asyncio.sleep(delay)
    # The clip's own 16-bit samples (decode_audio gave them as n / 32768): what the server
    # decodes is then exactly what the offline reference decoded. Scaled by 32767 and
    # truncated, every sample changed a little, and Whisper's close calls with them.
    pcm = np.clip(np.round(clip.audio * 32768), -32768, 32767).astype("<i2").tobytes()
    t0 = time.monotonic()
    run.start_s = t0 - origin
    if progress:
        progress.active += 1

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=streaming_pb2.StreamingTranscriptionConfig(
                encoding=streaming_pb2.AUDIO_ENCODING_LINEAR16,
                sample_rate_hertz=SAMPLE_RATE,
                interim_results=True,
                enable_word_time_offsets=True,
                enable_revisions=True,
                title=f"bench {clip.id}",
                model=model,
                language_code=clip.language_code,
                diarization_config=_labels(labels),
            )
        )
        for i in range(0, len(pcm), CHUNK):
            due = t0 + (i / (2 * SAMPLE_RATE)) / pace
            if (d := due - time.monotonic()) > 0:
                await asyncio.sleep(d)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=pcm[i : i + CHUNK])
            if progress:
                progress.sent_s += len(pcm[i : i + CHUNK]) / (2 * SAMPLE_RATE)

    try:
        async for resp in stub.StreamingTranscribe(requests()):
            run.responses.append(((time.monotonic() - t0) * pace, resp))
            if progress:
                progress.finals += sum(1 for r in resp.results if r.is_final)
    except grpc.aio.AioRpcError as err:
        run.error = f"{err.code().name}: {err.details()}"
        if progress:
            progress.errors += 1
    if progress:
        progress.active -= 1
        progress.done += 1
    run.final_text = final_transcript(run.responses)
    run.first_pass_text = final_transcript(run.responses, revised=False)
    return run


def _labels(on: bool) -> streaming_pb2.SpeakerDiarizationConfig | None:
    """The config that turns speaker labels on (None: unset, as clients send it when off)."""
    return streaming_pb2.SpeakerDiarizationConfig(enable_speaker_diarization=True) if on else None


async def run_streams(
    port: int,
    clips: Sequence[Clip],
    streams: int,
    pace: float,
    stagger: float,
    origin: float,
    label: str,
    model: str = "",
    labels: bool = False,
) -> list[ClipRun]:
    """Clips in groups of `streams` concurrent streams (staggered starts), group after group."""
    runs: list[ClipRun] = []
    total = sum(c.duration_s for c in clips)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
        with Progress(label, total, len(clips)) as progress:
            queue = list(clips)
            while queue:
                batch, queue = queue[:streams], queue[streams:]
                runs += await asyncio.gather(
                    *(
                        stream_clip(stub, c, pace, i * stagger, origin, progress, model, labels)
                        for i, c in enumerate(batch)
                    )
                )
    return runs


def word_latencies(
    run: ClipRun, word_ends: list[tuple[str, float]]
) -> tuple[list[float], list[float]]:
    """(interim, final) latencies of hypothesis words matched in order to the offline words."""
    ts = word_timings(run.responses, word_ends)
    return [t.interim_latency for t in ts], [t.final_latency for t in ts]
