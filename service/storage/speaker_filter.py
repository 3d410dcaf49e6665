"""Limiting search hits to one speaker, shared by the storage backends.

A speaker is asked for by label ("S2", exactly) or by the name a transcript gives a
label ("alice" finds "Alice", compared case-folded). Names belong to each transcript
(`speaker_names`) and change after the fact, so they are resolved when searching,
never stored in an index.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.errors import InvalidArgumentError

MAX_SPEAKER = 100


def check_speaker(value: str) -> str:
    """The speaker filter as given, trimmed; InvalidArgumentError if too long."""
    value = value.strip()
    if len(value) > MAX_SPEAKER:
        raise InvalidArgumentError(
            f"speaker is {len(value)} characters; at most {MAX_SPEAKER} (a label or a name)"
        )
    return value


def name_of(label: str, names: Mapping[str, str]) -> str:
    """The transcript's name for a label, or "" when it has none."""
    return names.get(label, "") if label else ""


def speaker_matches(label: str, names: Mapping[str, str], wanted: str) -> bool:
    """True when no speaker is asked for, or the label is it, or its name is it."""
    if not wanted:
        return True
    if not label:
        return False
    return label == wanted or name_of(label, names).casefold() == wanted.casefold()
