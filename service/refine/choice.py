"""Which loaded model refines a transcript.

Refinement exists to make the stored transcript as good as the machine can (issue 19):
when the server has loaded a catalogue model more accurate than the one a stream used,
and that model knows the transcript's language, it refines instead. Measured offline on
dev (beam 5, whole clips, `language: en` for base; docs/benchmarks.md, "English: base
against tiny.en"): base 3.8 % / 6.7 % WER on the tuning / confirmation speakers against
tiny.en's 6.8 % / 9.2 %, at ~3x tiny.en's CPU, which refinement takes only from what live
streams leave (nice 19). `--refine-model same` keeps each transcript on its own model
(cheaper, and no second copy of the larger model in memory).

A model directory (not in the catalogue) has no known rank: its transcripts are refined
by it, and it never refines others'.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

MOST_ACCURATE_FIRST = ("base", "tiny.en")
"""Catalogue models, the most accurate first (offline WER above)."""


def refining_model(
    made_with: str, language: str, loaded: Mapping[str, Collection[str]], mode: str
) -> str:
    """The model to refine a transcript made with `made_with` in `language` (its stored
    primary subtag): with `mode` "best", the most accurate model in `loaded` (each loaded
    model's languages, as the engine lists them) that ranks above `made_with` and
    transcribes the language; otherwise (or when none does) `made_with` itself."""
    if mode != "best" or made_with not in MOST_ACCURATE_FIRST:
        return made_with
    for model in MOST_ACCURATE_FIRST[: MOST_ACCURATE_FIRST.index(made_with)]:
        if language in loaded.get(model, ()):
            return model
    return made_with
