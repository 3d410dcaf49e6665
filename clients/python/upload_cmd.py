"""`transcribe upload FILE`: send a recorded file, then follow its transcription.

The file goes up in 1 MiB chunks (UploadRecording is client-streaming, so its size is
not capped by the message limit), then `end` with the size sent, which the server
checks (a read error or Ctrl-C mid-file sends no `end`, so no partial file is stored);
the server answers once the file is stored, and the
command then polls the transcript until its refinement is done, drawing progress on one
status line. With --no-wait it prints the transcript id as soon as the file is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from clients.python.audio import AudioFileError
from clients.python.models import Transcript
from clients.python.terminal import StatusLine, clock
from clients.python.transcripts import TranscriptClient

CHUNK = 1 << 20


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    u = sub.add_parser(
        "upload",
        help="transcribe a recorded file in the background and store it",
        description="Upload a file (any container the server decodes: WebM, Ogg, FLAC, "
        "WAV, MP3...) and wait until its transcript is done.",
    )
    u.add_argument("file", help="audio file")
    u.add_argument("--title", default="", help="title (default: the file name)")
    u.add_argument("--tag", action="append", help="tag the stored transcript (repeatable)")
    u.add_argument("--language", default="", help="BCP-47 code, e.g. de (default: detect, or en)")
    u.add_argument("--model", default="", help="model name (see `transcribe models`)")
    u.add_argument("--no-wait", action="store_true", help="print the id once stored; do not wait")


async def _chunks(
    path: Path, sent: Callable[[int], None], failed: list[OSError]
) -> AsyncIterator[bytes]:
    """The file's bytes; a read error is kept in `failed` (gRPC only cancels the call)."""
    try:
        with path.open("rb") as fh:
            while data := await asyncio.to_thread(fh.read, CHUNK):
                sent(len(data))
                yield data
    except OSError as err:
        failed.append(err)
        raise


async def cmd_upload(
    args: argparse.Namespace,
    channel: grpc.aio.Channel,
    emit: Callable[[argparse.Namespace, object, str], None],
    show_text: Callable[[Transcript], str],
) -> Transcript:
    path = Path(args.file)
    if not await asyncio.to_thread(path.is_file):
        raise FileNotFoundError(f"no such file: {path}")
    size = (await asyncio.to_thread(path.stat)).st_size
    client = TranscriptClient(channel)
    status = StatusLine(sys.stderr, enabled=sys.stderr.isatty())
    done = [0]

    def sent(n: int) -> None:
        done[0] += n
        status.note = f"uploading {done[0] / 2**20:.1f} of {size / 2**20:.1f} MiB"
        status.draw()

    failed: list[OSError] = []
    try:
        t = await client.upload(
            _chunks(path, sent, failed), title=args.title or path.name, tags=args.tag or [],
            language_code=args.language, model=args.model,
        )  # fmt: skip
    except (asyncio.CancelledError, grpc.aio.AioRpcError):
        if failed:  # not an interrupt: the file could not be read
            raise AudioFileError(f"{path}: {failed[0].strerror or failed[0]}") from None
        raise
    if args.no_wait:
        status.clear()
        emit(args, t, f"{t.id}  stored ({clock(t.duration)}); transcribing in the background")
        return t

    def progress(cur: Transcript) -> None:
        state = "transcribing" if cur.refinement == "running" else "queued for transcription"
        status.note = f"{state} {cur.refinement_progress:.0%}"
        status.draw()

    status.clear()  # the id at once, as `stream` does: Ctrl-C while waiting loses nothing
    print(
        f"transcript {t.id} stored ({clock(t.duration)}); transcribing", file=sys.stderr, flush=True
    )
    try:
        t = await client.wait_refined(t.id, progress)
    except asyncio.CancelledError:  # Ctrl-C: the file is stored and is being transcribed
        status.clear()
        print(f"transcribe: stopped waiting; transcript {t.id} is stored and goes on being "
              f"transcribed (see `transcribe show {t.id}`)", file=sys.stderr)  # fmt: skip
        raise
    status.clear()
    emit(args, t, show_text(t))
    return t
