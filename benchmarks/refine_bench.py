"""The stored transcript after refinement, and what refinement costs live streams.

    python -m benchmarks.refine_bench --streams 1,8,12 --limit 24
    python -m benchmarks.refine_bench --speakers 5652,8226 --streams 8 --limit 16
    python -m benchmarks.refine_bench --upload /tmp/long30/long.wav --streams 0
    python -m benchmarks.refine_bench --server-arg=--models=tiny.en,base --offline-model base

For each N in `--streams` a fresh server (its own data directory) gets the clips N at a
time at real-time pace, as stream_bench sends them. While later clips stream, earlier
ones are being refined on the same machine, so the live figures are those of live
streams sharing the CPU with refinement. After the last stream the benchmark polls
GetTranscript until every transcript is refined and reports: the live WER (finals as
sent, revisions applied) and the stored WER after refinement, both against the same
references, with offline Whisper (same model, beam 5, whole clip) beside them; live
final-word latency; the time from each stream's end to "refined"; and refinement
throughput (audio minutes refined per wall minute once the streams ended).
`--upload FILE` also uploads one file and reports the time to a complete stored
transcript and its WER (the reference comes from a one-line manifest beside FILE,
as benchmarks/long_manifest.py writes it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from benchmarks.lib.analysis import corpus_wer, summary
from benchmarks.lib.client import ClipRun, run_streams
from benchmarks.lib.clips import DEFAULT_MANIFEST, Clip, Offline, load_clip, pick, read_manifest
from benchmarks.lib.machine import machine_speed
from benchmarks.lib.measure import speech_figures
from benchmarks.lib.server import Server, git_version

pb = transcripts_pb2
DONE = (pb.REFINEMENT_STATE_DONE, pb.REFINEMENT_STATE_FAILED)


def transcript_id(run: ClipRun) -> str:
    for _, resp in run.responses:
        if resp.HasField("session"):
            return str(resp.session.transcript_id)
    return ""


async def wait_refined(
    stub: Any, ids: list[str], timeout_s: float
) -> dict[str, tuple[float, pb.Transcript]]:
    """transcript id -> (monotonic time it was first seen refined, the transcript)."""
    seen: dict[str, tuple[float, pb.Transcript]] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(ids) and time.monotonic() < deadline:
        for tid in ids:
            if tid in seen:
                continue
            t = (await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))).transcript
            if t.refinement_state in DONE:
                seen[tid] = (time.monotonic(), t)
        await asyncio.sleep(0.5)
    return seen


def segment_rows(t: pb.Transcript) -> list[list[Any]]:
    """[index, start s, end s, text] of each stored segment."""
    return [
        [s.index, round(s.start_offset.ToTimedelta().total_seconds(), 2),
         round(s.end_offset.ToTimedelta().total_seconds(), 2), s.text]
        for s in sorted(t.segments, key=lambda s: s.index)
    ]  # fmt: skip


def stored_text(t: pb.Transcript) -> str:
    return " ".join(s.text for s in sorted(t.segments, key=lambda s: s.index))


def second_passed(run: ClipRun) -> dict[int, str]:
    """Segment index -> text of the segments the stream sent a second-pass revision of."""
    out: dict[int, str] = {}
    for _, resp in run.responses:
        for r in resp.results:
            if r.is_final and r.revision:
                out[r.segment_index] = r.alternatives[0].transcript
    return out


def keeping_second_pass(t: pb.Transcript, revised: dict[int, str]) -> str:
    """The stored text with each second-passed segment's text as the stream sent it: what
    refinement stores when it keeps them (service/refine/worker.py `kept`), from a run of
    either rule, so one live run gives both figures paired."""
    return " ".join(revised.get(s.index, s.text) for s in sorted(t.segments, key=lambda s: s.index))


async def one_load(
    args: argparse.Namespace, clips: list[Clip], streams: int, other: dict[str, str]
) -> dict[str, Any]:
    """One run of `clips` at `streams` at a time; `other`: clip id -> the offline text of
    `--offline-model` (scored beside the streams' own model's)."""
    server = Server(args.server_arg, sample_every=args.sample_every)
    port = await server.start()
    try:
        origin, cpu0 = server.sample()
        runs = await run_streams(port, clips, streams, 1.0, args.stagger, origin, f"{streams}x")
        streams_end = time.monotonic()
        _, cpu1 = server.sample()
        samples = [(t - origin, c - cpu0) for t, c in server.samples if t >= origin]
        live, _ = speech_figures(
            runs, {c.id: c for c in clips}, cpu1 - cpu0, server.peak_rss(),
            streams_end - origin, samples, 1.0,
        )  # fmt: skip
        ids = [transcript_id(r) for r in runs]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            refined = await wait_refined(stub, [i for i in ids if i], args.timeout)
    finally:
        errors = await server.stop()
    ends = {r.id: origin + r.start_s + r.duration_s for r in runs}
    offline = {c.id: c.offline_text for c in clips}
    scored = [(r, tid) for r, tid in zip(runs, ids, strict=True) if r.reference and tid]
    refs = [r.reference for r, _ in scored]
    stored = [stored_text(refined[tid][1]) if tid in refined else "" for _, tid in scored]
    revised = [second_passed(r) for r, _ in scored]
    kept = [
        keeping_second_pass(refined[tid][1], texts) if tid in refined else ""
        for (_, tid), texts in zip(scored, revised, strict=True)
    ]
    lags = [refined[tid][0] - ends[r.id] for r, tid in scored if tid in refined]
    audio_after = sum(r.duration_s for r, tid in scored if tid in refined
                      and refined[tid][0] > streams_end)  # fmt: skip
    audio_during = sum(r.duration_s for r, tid in scored if tid in refined
                       and refined[tid][0] <= streams_end)  # fmt: skip
    live_s = max(streams_end - origin, 1e-6)
    other_wer = (
        {f"wer_offline_{args.offline_model}": corpus_wer(refs, [other[r.id] for r, _ in scored])}
        if other
        else {}
    )
    last_done = max((v[0] for v in refined.values()), default=streams_end)
    return {
        "streams": streams,
        "clips": len(runs),
        "audio_seconds": live["audio_seconds"],
        "wer_offline": live["wer_offline"],
        "wer_live": live["wer_streaming"],
        "wer_live_first_pass": live["wer_first_pass"],
        "wer_stored_refined": corpus_wer(refs, stored),
        **other_wer,
        # The same run's stored text with every second-passed segment as the stream sent it.
        "wer_stored_keeping_second_pass": corpus_wer(refs, kept),
        "second_passed_segments": sum(len(texts) for texts in revised),
        "final_latency_s": live["final_latency_s"],
        "refined": sum(1 for v in refined.values() if v[1].refinement_state == DONE[0]),
        "refine_failed": [
            v[1].refinement_detail for v in refined.values() if v[1].refinement_state == DONE[1]
        ],
        "not_refined_in_time": len(scored) - len(refined),
        "stream_end_to_refined_s": summary(lags) if lags else None,
        # Refined while streams were still live (bounded by what had ended by then too).
        "refine_audio_min_per_wall_min_during_streams": round(audio_during / live_s, 2),
        "refine_audio_min_per_wall_min_after_streams": (
            round(audio_after / (last_done - streams_end), 2) if last_done > streams_end else None
        ),
        "server_cpu_s_per_audio_s": live["server_cpu_s_per_audio_s"],
        "server_peak_rss_mb": live["server_peak_rss_mb"],
        "errors": live["errors"],
        "server_log_errors": errors[:10],
        # Texts and stored segments, for finding where a stored error comes from.
        "transcripts": [
            {
                "id": r.id,
                "offline": offline.get(r.id, ""),
                "live": r.final_text,
                "stored": text,
                "stored_keeping_second_pass": kept_text,
                "stored_segments": segment_rows(refined[tid][1]) if tid in refined else [],
            }
            for (r, tid), text, kept_text in zip(scored, stored, kept, strict=True)
        ],
    }


async def upload(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """Upload one file to an idle server; time to a refined transcript and its WER."""
    manifest = path.parent / "manifest.jsonl"
    reference = read_manifest(manifest)[0]["text"] if manifest.exists() else ""
    server = Server(args.server_arg)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)

            async def requests() -> Any:
                yield pb.UploadRecordingRequest(config=pb.UploadConfig(title=path.name))
                sent = 0
                with path.open("rb") as fh:
                    while data := fh.read(1 << 20):
                        sent += len(data)
                        yield pb.UploadRecordingRequest(audio_content=data)
                yield pb.UploadRecordingRequest(end=pb.UploadEnd(total_bytes=sent))

            t0 = time.monotonic()
            resp = await stub.UploadRecording(requests())
            stored_s = time.monotonic() - t0
            tid = resp.transcript.id
            refined = await wait_refined(stub, [tid], args.timeout)
    finally:
        await server.stop()
    duration = resp.transcript.duration.seconds + resp.transcript.duration.nanos / 1e9
    done = refined.get(tid)
    out: dict[str, Any] = {"file": str(path), "audio_seconds": round(duration, 1),
                           "upload_stored_s": round(stored_s, 1)}  # fmt: skip
    if done:
        total = done[0] - t0
        out["time_to_refined_s"] = round(total, 1)
        out["real_time_factor"] = round(total / duration, 3) if duration else None
        out["state"] = pb.RefinementState.Name(done[1].refinement_state)
        if reference:
            out["wer_stored"] = corpus_wer([reference], [stored_text(done[1])])
            offline_text, _ = Offline()(load_clip_audio(path))
            out["wer_offline"] = corpus_wer([reference], [offline_text])
    return out


def load_clip_audio(path: Path) -> Any:
    from benchmarks.lib.clips import load_audio

    return load_audio(path)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    manifest = Path(args.manifest)
    result: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.refine_bench", *sys.argv[1:]]),
        "service_version": git_version(),
        "cpus": os.cpu_count(),
        "machine_speed": await asyncio.to_thread(machine_speed),
        "loads": [],
    }
    loads = [int(n) for n in args.streams.split(",") if n.strip() and int(n) > 0]
    if loads:
        entries = read_manifest(manifest)
        if args.speakers:
            keep = {s.strip() for s in args.speakers.split(",")}
            entries = [e for e in entries if str(e.get("speaker", "")) in keep]
        offline = Offline()
        clips = [load_clip(manifest, e, offline) for e in pick(entries, args.limit)]
        result["manifest"] = str(manifest)
        other: dict[str, str] = {}
        if args.offline_model:  # e.g. base, when the server refines with it
            more = Offline(model=args.offline_model)
            other = {c.id: more.transcribe(c.audio, "en").text for c in clips}
        for n in loads:
            result["loads"].append(await one_load(args, clips, n, other))
    if args.upload:
        result["upload"] = await upload(args, Path(args.upload))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--speakers", default="", help="only these speakers (comma-separated)")
    p.add_argument("--streams", default="1,8,12", help="concurrent streams, one run per value")
    p.add_argument("--stagger", type=float, default=0.37)
    p.add_argument("--sample-every", type=float, default=2.0)
    p.add_argument("--timeout", type=float, default=1800.0, help="longest wait for refinement")
    p.add_argument("--upload", default="", help="also upload this file to an idle server")
    p.add_argument("--server-arg", action="append", default=[], help="extra server flag")
    p.add_argument(
        "--offline-model",
        default="",
        help="also score this model's offline text (base, with --server-arg=--models=tiny.en,base)",
    )
    p.add_argument("--out", help="write the result as JSON")
    args = p.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
