"""`transcribe name`, `transcribe voices` and `transcribe forget-voice`: name the speakers
of a transcript, and list or forget the voices the server remembers for you (streams
made with `transcribe stream --remember-voices`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import grpc

from clients.python.transcripts import TranscriptClient

COMMANDS = ("name", "voices", "forget-voice")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    n = sub.add_parser(
        "name",
        help="name speakers: LABEL=NAME ... (e.g. S1=Alice); an empty NAME removes one",
    )
    n.add_argument("id")
    n.add_argument("names", nargs="+", metavar="LABEL=NAME")
    sub.add_parser("voices", help="the voices remembered for you, by name")
    f = sub.add_parser("forget-voice", help="forget a remembered voice (its print is deleted)")
    f.add_argument("name")


def _pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        label, sep, name = item.partition("=")
        if not sep or not label.strip():
            raise ValueError(f"{item!r} is not LABEL=NAME (e.g. S1=Alice)")
        out[label.strip()] = name.strip()
    return out


async def cmd_voices(
    args: argparse.Namespace,
    channel: grpc.aio.Channel,
    emit: Callable[[argparse.Namespace, object, str], None],
) -> None:
    """Run one of COMMANDS; ValueError for a malformed LABEL=NAME."""
    c = TranscriptClient(channel)
    if args.cmd == "name":
        names = dict((await c.get(args.id)).speaker_names)
        for label, name in _pairs(args.names).items():
            if name:
                names[label] = name
            else:
                names.pop(label, None)
        t = await c.update(args.id, speaker_names=names)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(t.speaker_names.items()))
        emit(args, t, f"speakers of {t.id}: {shown or '(none named)'}")
    elif args.cmd == "voices":
        found = await c.list_voices()
        lines = [
            f"{v.name}  (named as {v.speaker_label} in {v.transcript_id}, "
            f"{v.updated.astimezone():%Y-%m-%d %H:%M})"
            for v in found
        ]
        emit(args, list(found), "\n".join(lines) or "no voices remembered")
    elif args.cmd == "forget-voice":
        await c.forget_voice(args.name)
        emit(args, {"forgotten": args.name}, f"forgot the voice of {args.name}")
