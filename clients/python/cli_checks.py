"""Checks of `transcribe` arguments and local errors, so a mistake is a message and exit
code 2 rather than a traceback."""

from __future__ import annotations

import argparse

from clients.python.channel import checked_api_key


def positive_int(text: str) -> int:
    """An argparse type: an integer of 1 or more (`--channels 0` divided by zero)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def api_key(text: str) -> str:
    """An argparse type for --api-key (and TRANSCRIBE_API_KEY, its default)."""
    try:
        return checked_api_key(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} (--api-key or TRANSCRIBE_API_KEY)") from None


def describe(err: OSError) -> str:
    """A local file error as "path: reason" (`-o` into a missing directory, say)."""
    return f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
