"""`transcribe`: stream a file or stdin and manage stored transcripts from a terminal.

Exit codes: 0 success, 2 usage error, 3 not found, 1 any other server error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from clients.python.client import (
    Enc,
    StreamingTranscriber,
    TranscriptClient,
    connect,
    encoding_for,
    file_chunks,
)

EXIT_SERVER, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3


def _clock(t: float) -> str:
    return f"{int(t // 60):02d}:{t % 60:05.2f}"


async def _stdin_chunks(size: int) -> AsyncIterator[bytes]:
    while data := await asyncio.to_thread(sys.stdin.buffer.read, size):
        yield data


def _bytes_per_second(path: Path) -> float:
    """For --realtime pacing of a file: its byte rate from its size and duration."""
    import av

    with av.open(str(path)) as c:
        duration = float(c.duration or 0) / 1e6
    return path.stat().st_size / duration if duration > 0 else 0.0


async def cmd_stream(args: argparse.Namespace, channel: grpc.aio.Channel) -> int:
    if args.file == "-":
        tr = StreamingTranscriber(
            channel,
            encoding=Enc.AUDIO_ENCODING_LINEAR16,
            sample_rate_hertz=args.rate,
            channels=args.channels,
        )
        chunks: AsyncIterator[bytes] = _stdin_chunks(args.rate * 2 * args.channels // 10)
        total = 0
    else:
        path = Path(args.file)
        if not await asyncio.to_thread(path.exists):
            print(f"transcribe: no such file: {path}", file=sys.stderr)
            return EXIT_USAGE
        tr = StreamingTranscriber(channel, encoding=encoding_for(path))
        rate = await asyncio.to_thread(_bytes_per_second, path) if args.realtime else 0.0
        chunks = file_chunks(path, 16000, realtime=args.realtime, bytes_per_second=rate)
        total = (await asyncio.to_thread(path.stat)).st_size
    tr.title, tr.tags = args.title, args.tag or []
    progress = None
    if total and not args.json and sys.stderr.isatty():
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

        progress = tqdm(total=total, unit="B", unit_scale=True, desc="sent", leave=False)

    async def counted(src: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for c in src:
            if progress is not None:
                progress.update(len(c))
            yield c

    width = 0
    async for r in tr.transcribe(counted(chunks)):
        if args.json:
            print(json.dumps(asdict(r)), flush=True)
        elif r.transcript_id:
            print(f"transcript {r.transcript_id}", file=sys.stderr)
        elif r.is_final:
            print("\r" + " " * width + "\r", end="")
            print(f"[{_clock(r.start)}] {r.text}", flush=True)
            width = 0
        elif r.text and sys.stdout.isatty():
            line = "… " + r.text[-100:]
            print("\r" + line.ljust(width), end="", flush=True)
            width = len(line)
    if progress is not None:
        progress.close()
    return 0


def _print(args: argparse.Namespace, message: Any, human: str) -> None:
    print(json.dumps(MessageToDict(message)) if args.json else human)


async def cmd_manage(args: argparse.Namespace, channel: grpc.aio.Channel) -> int:
    c = TranscriptClient(channel)
    if args.cmd == "list":
        resp = await c.list_transcripts(page_size=args.limit)
        lines = [
            f"{t.id}  {t.create_time.ToDatetime():%Y-%m-%d %H:%M}  {t.title or '(untitled)'}"
            for t in resp.transcripts
        ]
        _print(args, resp, "\n".join(lines))
    elif args.cmd == "search":
        found = await c.search(args.query, page_size=args.limit)
        lines = [
            f"{h.transcript_id}  {_clock(h.start_offset.seconds + h.start_offset.nanos / 1e9)}"
            f"  {h.snippet}"
            for h in found.hits
        ]
        _print(args, found, "\n".join(lines) or "no matches")
    elif args.cmd == "show":
        t = await c.get(args.id)
        body = "\n".join(
            f"[{_clock(s.start_offset.seconds + s.start_offset.nanos / 1e9)}] {s.text}"
            for s in t.segments
        )
        _print(args, t, f"{t.title or '(untitled)'}\n{body}")
    elif args.cmd == "export":
        exported = await c.export(args.id, args.format)
        if args.output:
            await asyncio.to_thread(Path(args.output).write_bytes, exported.content)
        else:
            sys.stdout.write(exported.content.decode())
    elif args.cmd == "rename":
        _print(args, await c.update(args.id, title=args.title), "renamed")
    elif args.cmd == "tag":
        _print(args, await c.update(args.id, tags=args.tags), "tagged")
    elif args.cmd == "delete":
        await c.delete(args.id)
        print(json.dumps({"deleted": args.id}) if args.json else "deleted")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="transcribe", description="Live transcription client.")
    p.add_argument("--server", default=os.environ.get("TRANSCRIBE_SERVER", "localhost:50051"))
    p.add_argument("--api-key", default=os.environ.get("TRANSCRIBE_API_KEY", ""))
    p.add_argument("--tls", action="store_true", help="use TLS")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser(
        "stream", help="transcribe a file (any format PyAV reads) or - for stdin PCM"
    )
    s.add_argument("file")
    s.add_argument("--realtime", action="store_true", help="send at the audio's own pace")
    s.add_argument("--rate", type=int, default=16000, help="stdin PCM sample rate")
    s.add_argument("--channels", type=int, default=1, help="stdin PCM channels")
    s.add_argument("--title", default="")
    s.add_argument("--tag", action="append")
    for name in ("list", "search"):
        q = sub.add_parser(name)
        if name == "search":
            q.add_argument("query")
        q.add_argument("--limit", type=int, default=20)
    sub.add_parser("show").add_argument("id")
    e = sub.add_parser("export")
    e.add_argument("id")
    e.add_argument("--format", choices=["txt", "srt", "vtt", "json"], default="txt")
    e.add_argument("-o", "--output")
    r = sub.add_parser("rename")
    r.add_argument("id")
    r.add_argument("title")
    t = sub.add_parser("tag")
    t.add_argument("id")
    t.add_argument("tags", nargs="+")
    sub.add_parser("delete").add_argument("id")
    return p


async def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    async with connect(args.server, api_key=args.api_key, tls=args.tls) as channel:
        try:
            if args.cmd == "stream":
                return await cmd_stream(args, channel)
            return await cmd_manage(args, channel)
        except grpc.aio.AioRpcError as err:
            print(f"transcribe: {err.code().name}: {err.details()}", file=sys.stderr)
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return EXIT_NOT_FOUND
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return EXIT_USAGE
            return EXIT_SERVER


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(asyncio.run(run(argv)))
