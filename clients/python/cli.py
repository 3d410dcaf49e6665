"""`transcribe`: stream audio and manage stored transcripts from a shell.

Exit codes, so scripts can tell failures apart:
  0    success
  1    server error or server unreachable (worth retrying later)
  2    usage error: bad arguments, unreadable file, or a request the server rejected as
       invalid (INVALID_ARGUMENT)
  3    not found: no such transcript (or not yours)
  4    authentication failed: missing or wrong API key
  130  interrupted (a second Ctrl-C; the first one ends the audio and waits for the
       final text)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from clients.python import cli_checks, models_cmd, upload_cmd, voices_cmd
from clients.python.audio import (
    PCM_BYTES_PER_SECOND,
    AudioFileError,
    audio_chunks,
    probe_duration,
)
from clients.python.channel import connect
from clients.python.cli_checks import describe, positive_int
from clients.python.interrupt import cancel_until_done, interruptible
from clients.python.models import Result, SearchHit, Transcript, to_json
from clients.python.paragraphs import paragraphs
from clients.python.stdin_audio import stdin_chunks
from clients.python.streaming import Enc, StreamingTranscriber
from clients.python.terminal import FinalLines, StatusLine, clock
from clients.python.transcripts import TranscriptClient

EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_EXIT_FOR_STATUS = {
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_USAGE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
}


class UsageError(Exception):
    """A problem with what the user asked for, found before calling the server."""


def _emit(args: argparse.Namespace, value: Any, human: str) -> None:
    print(json.dumps(to_json(value), ensure_ascii=False) if args.json else human, flush=True)


async def cmd_stream(args: argparse.Namespace, channel: grpc.aio.Channel) -> int:
    options: dict[str, Any] = {
        "title": args.title,
        "tags": args.tag or [],
        "speakers": args.speakers or args.remember_voices,
        "remember_voices": args.remember_voices,
    }
    if args.language:
        options["language_code"] = args.language
    if args.model:
        options["model"] = args.model
    stopping = asyncio.Event()  # the first Ctrl-C: end the audio, keep the text
    if args.file == "-":
        bytes_per_s = args.rate * 2 * args.channels
        transcriber = StreamingTranscriber(
            channel, encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=args.rate,
            channels=args.channels, **options,
        )  # fmt: skip
        frame = 2 * args.channels  # 100 ms reads, whole samples
        size = max(frame, bytes_per_s // 10 // frame * frame)
        total_s = None
        source: AsyncIterator[bytes] = stdin_chunks(frame, size, stopping)
    else:
        path = Path(args.file)
        if not await asyncio.to_thread(path.is_file):
            raise UsageError(f"no such file: {path}")
        total_s = await asyncio.to_thread(probe_duration, path)
        bytes_per_s = PCM_BYTES_PER_SECOND
        transcriber = StreamingTranscriber(
            channel, encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, channels=1,
            **options,
        )  # fmt: skip
        source = audio_chunks(path, realtime=args.realtime)
        transcriber.live = args.realtime
        transcriber.title = args.title or path.name  # findable in `list` without a title

    status = StatusLine(sys.stderr, enabled=sys.stderr.isatty() and not args.json, total_s=total_s)
    sent_s = 0.0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal sent_s
        async for chunk in source:
            if stopping.is_set():
                return
            sent_s += len(chunk) / bytes_per_s
            yield chunk

    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def on_interrupt() -> None:
        if stopping.is_set() and task is not None:
            cancel_until_done(task)
        stopping.set()
        status.note = "finishing the text heard so far (Ctrl-C again to abort)"
        status.draw()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    lines = FinalLines(sys.stdout, in_place=sys.stdout.isatty() and not args.json)
    try:
        async for r in transcriber.transcribe(counted()):
            show(args, r, status, sent_s, lines)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        status.clear()
    return EXIT_OK


def show(
    args: argparse.Namespace, r: Result, status: StatusLine, sent_s: float, lines: FinalLines
) -> None:
    """Prints one streaming result: JSON lines, or finals below the status line.

    A revision (a final sent again for its `segment_index` with new text) replaces its
    line in place on a terminal, or is printed as a "(revised)" line naming the time range
    it corrects (terminal.FinalLines). `--json` lines carry `segment_index` and
    `revision`, and a revision's line also `"event": "revision"` with the index it replaces.
    With speakers, a final starts with its speaker's name once the stream named it (a
    remembered voice, `--remember-voices`), else its label; "speakers: S1 is Alice" on
    stderr says from when.
    """
    if args.json:
        data = to_json(r)
        if r.kind == "final" and r.revision:
            data = {"event": "revision", "replaces_segment": r.segment_index, **data}
        print(json.dumps(data, ensure_ascii=False), flush=True)
        return
    if r.kind == "session":
        status.clear()
        about = ", ".join(filter(None, [r.model, r.language_code or "detecting the language"]))
        print(f"transcript {r.transcript_id} ({about})", file=sys.stderr, flush=True)
        lines.language = r.language_code
    elif r.kind == "final":
        status.clear()
        if r.language_code and not lines.language:  # the first final says what was detected
            print(f"language {r.language_code} (detected)", file=sys.stderr, flush=True)
            lines.language = r.language_code
        who = f"{lines.names.get(r.speaker, r.speaker)}: " if r.speaker else ""
        lines.final(r.segment_index, r.start, r.end, f"{who}{r.text}", r.revision)
        if not r.revision:  # a revision is of an older sentence than the interim text
            status.interim = ""
    elif r.kind == "interim":
        status.interim = r.text
    elif r.kind == "speaker_names":  # a remembered voice recognised: its name from now on
        status.clear()
        new = {k: v for k, v in r.speaker_names.items() if lines.names.get(k) != v}
        lines.names = dict(r.speaker_names)
        shown = ", ".join(f"{k} is {v}" for k, v in sorted(new.items()))
        if shown:
            print(f"speakers: {shown}", file=sys.stderr, flush=True)
    status.done_s = max(status.done_s, min(r.end, sent_s) if r.end else 0.0)
    status.draw()


def _transcript_line(t: Transcript) -> str:
    tags = f"  [{', '.join(t.tags)}]" if t.tags else ""
    return (
        f"{t.id}  {t.created.astimezone():%Y-%m-%d %H:%M}  {clock(t.duration)[:5]:>7}  "
        f"{t.status:<11}  {t.title or '(untitled)'}{tags}"
    )


def _hit_line(h: SearchHit, bold: bool) -> str:
    snippet = h.snippet
    if bold:  # highlight from the end so earlier ranges keep their positions
        for start, end in sorted(h.highlights, reverse=True):
            snippet = f"{snippet[:start]}\x1b[1m{snippet[start:end]}\x1b[0m{snippet[end:]}"
    title = h.transcript_title or "(untitled)"
    who = f"{h.speaker}: " if h.speaker else ""
    return f"{h.transcript_id}  {clock(h.start)}  {title}: {who}{snippet}"


def _show_text(t: Transcript, segments: bool = False) -> str:
    head = [
        t.title or "(untitled)",
        f"id {t.id}, {t.status}, {clock(t.duration)}, created {t.created.astimezone():%c}",
    ]
    if t.language_code or t.model:
        detected = " (detected)" if t.language_detected and t.language_code else ""
        head.append(f"language {t.language_code or '?'}{detected}, model {t.model or '?'}")
    if t.tags:
        head.append("tags: " + ", ".join(t.tags))
    if t.keywords:
        head.append("keywords: " + ", ".join(t.keywords))
    if t.refinement:
        note = {"pending": "refining soon", "running": f"refining ({t.refinement_progress:.0%})",
                "done": "refined", "failed": f"not refined: {t.refinement_detail}"}  # fmt: skip
        head.append(note.get(t.refinement, t.refinement))
    names = t.speaker_names
    if segments:
        body = [f"[{clock(s.start)}] {s.text}" for s in t.segments]
    else:  # paragraphs, a blank line between them
        body = []
        for p in paragraphs(t.segments):
            who = f"{names.get(p.speaker, p.speaker)}: " if p.speaker else ""
            body += [f"[{clock(p.start)}] {who}{p.text}", ""]
    return "\n".join([*head, "", *body]).rstrip("\n")


async def cmd_manage(args: argparse.Namespace, channel: grpc.aio.Channel) -> int:
    c = TranscriptClient(channel)
    if args.cmd == "list":
        items = [t async for t in c.iter_transcripts(limit=args.limit, tags=args.tag)]
        _emit(args, items, "\n".join(map(_transcript_line, items)) or "no transcripts")
    elif args.cmd == "search":
        page = await c.search(args.query, page_size=args.limit, speaker=args.speaker)
        bold = sys.stdout.isatty()
        _emit(args, page.items, "\n".join(_hit_line(h, bold) for h in page.items) or "no matches")
    elif args.cmd == "show":
        t = await c.get(args.id)
        _emit(args, t, _show_text(t, args.segments))
    elif args.cmd == "export":
        exported = await c.export(args.id, args.format)
        if args.output:
            out = Path(args.output)
            if await asyncio.to_thread(out.is_dir):
                out = out / (exported.file_name or f"{args.id}.{args.format}")
            await asyncio.to_thread(out.write_bytes, exported.content)
            print(f"wrote {out}", file=sys.stderr)
        else:
            sys.stdout.buffer.write(exported.content)
            sys.stdout.flush()
    elif args.cmd == "recording":
        info = await c.save_recording(args.id, args.output)
        _emit(args, info, f"wrote {args.output} ({info.mime_type}, {info.total_size} bytes)")
    elif args.cmd == "rename":
        t = await c.update(args.id, title=args.title)
        _emit(args, t, f"renamed {t.id}: {t.title}")
    elif args.cmd == "tag":
        tags = args.tags
        if not args.set:
            current = list((await c.get(args.id)).tags)
            removed = set(tags) if args.remove else set()
            tags = [x for x in current if x not in removed]
            tags += [] if args.remove else [x for x in args.tags if x not in current]
        t = await c.update(args.id, tags=tags)
        _emit(args, t, f"tags of {t.id}: {', '.join(t.tags) or '(none)'}")
    elif args.cmd == "delete":
        await c.delete(args.id)
        _emit(args, {"deleted": args.id}, f"deleted {args.id}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="transcribe",
        description="Live speech transcription client.",
        epilog=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env = os.environ.get
    p.add_argument(
        "--server",
        default=env("TRANSCRIBE_SERVER", "localhost:50051"),
        help="host:port (env TRANSCRIBE_SERVER; default %(default)s)",
    )
    p.add_argument(
        "--api-key",
        default=env("TRANSCRIBE_API_KEY", ""),
        type=cli_checks.api_key,
        help="API key (prefer env TRANSCRIBE_API_KEY: arguments show in ps)",
    )
    p.add_argument("--tls", action="store_true", help="use TLS (system root certificates)")
    p.add_argument("--ca-cert", type=Path, help="PEM root certificate for TLS (implies --tls)")
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    s = sub.add_parser(
        "stream",
        help="transcribe a file (any format PyAV reads) or - (stdin)",
        description="Interim text on one updating line, finals with times "
        "below. --json: one JSON object per result.",
    )
    s.add_argument("file", help="audio or video file, or - for raw s16le PCM on stdin")
    s.add_argument(
        "--realtime", action="store_true", help="send a file at its own pace, like a microphone"
    )
    s.add_argument("--rate", type=positive_int, default=16000, help="stdin PCM sample rate")
    s.add_argument("--channels", type=positive_int, default=1, help="stdin PCM channel count")
    s.add_argument(
        "--title", default="", help="title of the stored transcript (default: file name)"
    )
    s.add_argument("--tag", action="append", help="tag the stored transcript (repeatable)")
    s.add_argument("--language", default="", help="BCP-47 code, e.g. de (default: detect, or en)")
    s.add_argument("--model", default="", help="model name (see `transcribe models`)")
    s.add_argument(
        "--speakers", action="store_true", help='label who speaks: "S1: ..." on each final'
    )
    s.add_argument(
        "--remember-voices",
        action="store_true",
        help="with --speakers (implied): remember voices you name; name the ones named before "
        "as soon as they are heard",
    )
    ls = sub.add_parser("list", help="your transcripts, newest first")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--tag", action="append", help="only with this tag (repeatable)")
    q = sub.add_parser("search", help='search words or a "quoted phrase"')
    q.add_argument("query")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--speaker", default="", help='only this speaker: a label ("S2") or a name')
    sh = sub.add_parser("show", help="a transcript as paragraphs (or --segments)")
    sh.add_argument("id")
    sh.add_argument("--segments", action="store_true", help="one line per final segment, as stored")
    e = sub.add_parser("export", help="render as txt, srt, vtt or json")
    e.add_argument("id")
    e.add_argument("--format", choices=["txt", "srt", "vtt", "json"], default="txt")
    e.add_argument("-o", "--output", help="file or directory (default: stdout)")
    rec = sub.add_parser("recording", help="download the stored audio")
    rec.add_argument("id")
    rec.add_argument("-o", "--output", required=True)
    r = sub.add_parser("rename", help="set the title")
    r.add_argument("id")
    r.add_argument("title")
    t = sub.add_parser("tag", help="add tags (or --remove / --set them)")
    t.add_argument("id")
    t.add_argument("tags", nargs="+")
    how = t.add_mutually_exclusive_group()
    how.add_argument("--remove", action="store_true", help="remove these tags")
    how.add_argument("--set", action="store_true", help="replace all tags with these")
    sub.add_parser("delete", help="delete a transcript and its recording").add_argument("id")
    upload_cmd.add_parser(sub)
    voices_cmd.add_parsers(sub)
    models_cmd.add_parser(sub)
    return p


async def run(args: argparse.Namespace) -> int:
    root = None
    if args.ca_cert is not None:
        try:
            root = await asyncio.to_thread(args.ca_cert.read_bytes)
        except OSError as err:
            raise UsageError(f"--ca-cert: {err}") from err
    tls = args.tls or root is not None
    async with connect(args.server, api_key=args.api_key, tls=tls, root_certificates=root) as ch:
        try:
            if args.cmd == "stream":
                return await cmd_stream(args, ch)
            if args.cmd == "upload":
                try:
                    t = await upload_cmd.cmd_upload(args, ch, _emit, _show_text)
                except FileNotFoundError as err:
                    raise UsageError(str(err)) from err
                return EXIT_OK if t.refinement != "failed" else EXIT_SERVER
            if args.cmd in voices_cmd.COMMANDS:
                try:
                    await voices_cmd.cmd_voices(args, ch, _emit)
                except ValueError as err:
                    raise UsageError(str(err)) from err
                return EXIT_OK
            if args.cmd == "models":
                await models_cmd.cmd_models(args, ch, _emit)
                return EXIT_OK
            return await cmd_manage(args, ch)
        except grpc.aio.AioRpcError as err:
            where = "" if err.code() in _EXIT_FOR_STATUS else f" (server {args.server})"
            print(f"transcribe: {err.code().name}: {err.details()}{where}", file=sys.stderr)
            return _EXIT_FOR_STATUS.get(err.code(), EXIT_SERVER)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`transcribe`)."""
    args = build_parser().parse_args(argv)  # exits 2 on a usage error
    try:
        # `stream` has its own two-step Ctrl-C (the first ends the audio, keeping the text)
        code = asyncio.run(run(args) if args.cmd == "stream" else interruptible(run(args)))
    except BrokenPipeError:  # e.g. `transcribe export ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    except (UsageError, AudioFileError, OSError) as err:  # OSError: e.g. -o in no directory
        print(f"transcribe: {describe(err) if isinstance(err, OSError) else err}", file=sys.stderr)
        code = EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        code = EXIT_INTERRUPTED
    sys.exit(code)
