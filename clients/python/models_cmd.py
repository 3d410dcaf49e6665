"""`transcribe models`: which models the server has loaded, and the languages of each.

One line per model, the default first and marked, so a user sees what `--model` and
`--language` accept: an English-only model lists its language, a multilingual one its
count and the first few codes (`--json` has them all).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import grpc

from clients.python.models import ModelInfo
from clients.python.streaming import list_models

FIRST_FEW = 8


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "models",
        help="the models the server has loaded and their languages",
        description="Each model the server loaded (the default first, marked), its "
        "languages and a description. Choose one with --model, a language with --language.",
    )


def languages(m: ModelInfo) -> str:
    """ "en" for a one-language model; "99 languages, auto-detect: af am ar ..." otherwise."""
    codes = m.language_codes
    if len(codes) <= 1 and not m.detects_language:
        return ", ".join(codes) or "?"
    few = " ".join(codes[:FIRST_FEW]) + (" …" if len(codes) > FIRST_FEW else "")
    detect = ", auto-detect" if m.detects_language else ""
    return f"{len(codes)} languages{detect}: {few}"


def model_lines(models: list[ModelInfo]) -> str:
    if not models:
        return "no models loaded"
    rows = [(m.name + (" (default)" if m.is_default else ""), languages(m), m.description)
            for m in models]  # fmt: skip
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows)


async def cmd_models(
    args: argparse.Namespace,
    channel: grpc.aio.Channel,
    emit: Callable[[argparse.Namespace, object, str], None],
) -> None:
    models = await list_models(channel)
    emit(args, models, model_lines(models))
