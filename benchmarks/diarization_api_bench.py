"""Speaker labels through the real gRPC API, at real-time pace (issue 18).

    nice python -m benchmarks.diarization_api_bench --speech ../shared/speech \
        --out benchmarks/results/diarization_api.json

Builds the mixes of `benchmarks.diarization_bench` (`--mix` picks them by name, of
half A, the tuning half, or B, the confirmation half: B-2spk-0 is the one where the
tracker alone already merges the two closest voices, 28 % corrected), starts an
in-process server (tiny.en, SQLite in a temporary folder), and streams each mix as
LINEAR16 in 100 ms messages at real-time pace (`--pace 0.5`: half speed, for a loaded
machine where the server would fall behind and decide labels with more audio than
it has live) with `diarization_config { enable_speaker_diarization: true }`, the mixes
one after the other (one stream at a time).

Scoring, on the same 50 ms frames and 0.25 s collars as diarization_bench: a frame
takes the label of the final segment containing its middle, else of the nearest one
(what a reader of the transcript sees; with `--off` no labels: only the lag and CPU
figures mean anything, the baseline). *Live*: each segment's label as first sent;
*corrected*: as last sent (after the end-of-stream revisions), which must equal the
stored one. Also: each first-sent final's lag (its arrival, in audio time, minus the
audio time its last word ends; median and p90: near 1 s means the server kept up, and
the live labels were decided with the audio a live stream has), speaker changes
between consecutive segments within ±1 s of a true change, finals spanning a true
change by more than 1 s on both sides, and the CPU per audio second of the whole
process (server with the model, and the client). Each row keeps its finals (start,
end, arrival, label first and last sent).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from benchmarks.diarization_bench import (
    ROOT,
    SR,
    Mix,
    ami,
    build_mix,
    change_points,
    dev_pools,
    error_rate,
    reference_frames,
)

CHUNK_S = 0.1


def frame_labels(
    ref: list[tuple[float, set[str]]], segs: list[tuple[float, float, str]]
) -> list[str]:
    out = []
    for t, _ in ref:
        mid = t + 0.025
        inside = [lb for a, b, lb in segs if a <= mid <= b]
        if inside:
            out.append(inside[0])
        elif segs:
            out.append(min(segs, key=lambda s: min(abs(mid - s[0]), abs(mid - s[1])))[2])
        else:
            out.append("")
    return out


def mixes_by_name(speech: Path, seed: int, names: list[str]) -> dict[str, Mix]:
    """Every mix of the halves (A, B) that `names` mention, as diarization_bench builds
    them (all twelve of a half: each name's mix depends on those built before it), and
    the meeting excerpt if "ami" is named (../shared/speech/conversation)."""
    mixes = []
    if "ami" in names:
        mixes.append(ami(speech))
    for half in sorted({name.split("-")[0] for name in names} & {"A", "B"}):
        rng = random.Random(f"{seed}-{half}")
        pools = dev_pools(speech, half)
        mixes += [
            build_mix(rng, pools, n, f"{half}-{n}spk-{k}") for n in (2, 3, 4) for k in range(4)
        ]
    return {m.name: m for m in mixes}


async def stream_mix(
    stub: Any, mix: Mix, pace: float, diarize: bool
) -> tuple[str, list[streaming_pb2.StreamingTranscriptionResult], dict[int, float]]:
    """Stream one mix; its transcript id, its finals, and each first-sent final's
    arrival (audio time of the stream when it arrived)."""
    pcm = (mix.audio.clip(-1, 1) * 32767).astype("<i2").tobytes()
    step = int(CHUNK_S * SR) * 2
    cfg = streaming_pb2.StreamingTranscriptionConfig(
        encoding=streaming_pb2.AUDIO_ENCODING_LINEAR16,
        sample_rate_hertz=SR,
        enable_word_time_offsets=True,
        enable_revisions=True,
        live=pace == 1.0,
        diarization_config=streaming_pb2.SpeakerDiarizationConfig(
            enable_speaker_diarization=diarize
        ),
    )
    t0 = time.monotonic()

    async def requests() -> Any:
        yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
        for i, k in enumerate(range(0, len(pcm), step)):
            delay = t0 + i * CHUNK_S / pace - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=pcm[k : k + step])

    tid = ""
    results = []
    arrivals: dict[int, float] = {}
    async for resp in stub.StreamingTranscribe(requests()):
        now = (time.monotonic() - t0) * pace
        tid = resp.session.transcript_id or tid
        results += [r for r in resp.results if r.is_final]
        for r in resp.results:
            if r.is_final and not r.revision:
                arrivals[r.segment_index] = now
    return tid, results, arrivals


def secs(d: Any) -> float:
    return float(d.seconds + d.nanos / 1e9)


def score(
    mix: Mix, results: list[Any], stored: list[Any], arrivals: dict[int, float]
) -> dict[str, Any]:
    first: dict[int, tuple[float, float, str]] = {}
    last: dict[int, str] = {}
    for r in results:
        span = (secs(r.result_start_offset), secs(r.result_end_offset), r.speaker_label)
        if not r.revision:
            first[r.segment_index] = span
        last[r.segment_index] = r.speaker_label
    ref = reference_frames(mix)
    live = [first[i] for i in sorted(first)]
    corrected = [(a, b, last[i]) for i, (a, b, _) in sorted(first.items())]
    true = change_points(mix.turns)
    seams = [(x[1] + y[0]) / 2 for x, y in itertools.pairwise(corrected) if x[2] != y[2]]
    spanning = sum(any(a < c - 1.0 and b > c + 1.0 for c in true) for a, b, _ in live)
    return {
        "mix": mix.name,
        "speakers": mix.speakers,
        "duration_s": round(len(mix.audio) / SR, 1),
        "segments": len(first),
        "der_live": round(error_rate(ref, frame_labels(ref, live)), 4),
        "der_corrected": round(error_rate(ref, frame_labels(ref, corrected)), 4),
        "count_corrected": len({lb for *_, lb in corrected if lb}),
        "changes": len(true),
        "changes_found_1s": sum(any(abs(s - c) <= 1.0 for s in seams) for c in true),
        "extra_changes": sum(all(abs(s - c) > 1.0 for c in true) for s in seams),
        "finals_spanning_a_change": spanning,
        "label_revisions": sum(
            1
            for r in results
            if r.revision and r.speaker_label != first.get(r.segment_index, (0, 0, ""))[2]
        ),
        "stored_equals_sent": {s.index: s.speaker_label for s in stored} == last,
        # Each final as first sent: start, end, arrival (audio time), label first and last
        # sent (for replaying the label decision offline in diarization_bench).
        "finals": [
            [round(a, 3), round(b, 3), round(arrivals.get(i, b), 3), lb, last[i]]
            for i, (a, b, lb) in sorted(first.items())
        ],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from service.config import ModelSettings, Settings, StorageSettings
    from service.engine import WhisperEngine
    from service.server import start_server

    by_name = mixes_by_name(args.speech, args.seed, args.mix)
    unknown = [name for name in args.mix if name not in by_name]
    if unknown:
        raise SystemExit(f"unknown mix names: {unknown}")
    chosen = [by_name[name] for name in dict.fromkeys(args.mix)]  # in the order given
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = WhisperEngine(ModelSettings())
        server = await start_server(
            Settings(port=0, storage=StorageSettings(data_dir=Path(tmp))), engine=engine
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
                tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
                for mix in chosen:
                    cpu = time.process_time()
                    tid, results, arrivals = await stream_mix(stub, mix, args.pace, not args.off)
                    cpu = time.process_time() - cpu
                    got = await tstub.GetTranscript(
                        transcripts_pb2.GetTranscriptRequest(transcript_id=tid)
                    )
                    row = score(mix, results, list(got.transcript.segments), arrivals)
                    lags = [arrival - end for _, end, arrival, *_ in row["finals"]]
                    row["cpu_s_per_audio_s"] = round(cpu / row["duration_s"], 3)
                    row["final_lag_median_s"] = round(float(np.median(lags)), 3)
                    row["final_lag_p90_s"] = round(float(np.percentile(lags, 90)), 3)
                    print(json.dumps({k: v for k, v in row.items() if k != "finals"}), flush=True)
                    rows.append(row)
                    if args.out:  # after every mix: a long run stopped early keeps its rows
                        args.out.write_text(json.dumps(summary(args, rows), indent=1) + "\n")
        finally:
            await server.stop(1.0)
    return summary(args, rows)


def summary(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "command": "python -m benchmarks.diarization_api_bench",
        "pace": args.pace,
        "diarization": not args.off,
        "mixes": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--mix",
        nargs="+",
        default=["B-2spk-1", "B-4spk-1"],
        help="mixes by name, as diarization_bench names them (A-2spk-0 .. B-4spk-3; half A "
        "is the tuning half, B the confirmation half; ami: the meeting excerpt)",
    )
    parser.add_argument("--pace", type=float, default=1.0, help="1.0 = real time")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument(
        "--off", action="store_true", help="diarization off: the latency and CPU baseline"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
