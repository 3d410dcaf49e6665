"""Voices remembered across a principal's transcripts (opt-in per stream).

A stream with `remember_voices` stores the flag with its speaker state. Naming a
speaker of such a transcript (UpdateTranscript, or while it is live) stores that
speaker's voice print (the centroid of its windows, from the stored state) under the
name, for the principal. When a later stream with the flag ends, each of its speakers
not yet named is compared with the principal's voices: a speaker whose centroid has
cosine similarity of at least MATCH_THRESHOLD with a voice (the best pairs first, each
voice and speaker used once) gets that name in the transcript's `speaker_names`.
Labels stay S1, S2 ...: names are metadata, so the API shape holds.

Forgetting a voice (DeleteVoice) deletes its print, and it stays forgotten: at a
stream's end only names given while it was live are remembered (`after_stream`), not
those its transcript had when it opened (a resume of the meeting the voice was named
in), nor one whose voice was deleted through this server while the stream was live
(the registry tells the stream: forget wins). A rename to a forgotten name is a new
naming and is remembered. Forgetting does not touch transcripts: the names given stay,
and each transcript's own speaker state (its clustering centroids, needed for stable
labels when it is resumed) stays with it and goes when the transcript is deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from service.domain import TranscriptMeta, Voice
from service.errors import ResourceExhaustedError
from service.speakers.clustering import OnlineClusterer
from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)

MAX_VOICES = 100
"""Voices one principal may have remembered (a person names a few dozen at most)."""
MATCH_THRESHOLD = 0.75
"""Cosine similarity of a speaker's centroid to a remembered voice print at which it is
that voice. Not the clustering's 0.6 (a window against a centroid): centroids average
away the noise, so every pair scores higher. Measured (`python -m
benchmarks.voice_match_bench`, docs/benchmarks.md) on centroids of 30-40 s of one
speaker (3 dev utterances each, 8 groups per speaker, plus 40 s of each long/ recording,
another chapter): same speaker min 0.767 (cross-chapter min 0.767, median 0.906),
different speakers median 0.41, max 0.797 (the two female voices, 4088 and 5652). At
0.6, 21 % of different-speaker pairs would match; at 0.75 none of the same-speaker
pairs is missed and 1.7 % of different-speaker pairs match; at 0.8, 4.4 % of
same-speaker pairs are missed. A wrong name is worse than none, but a user corrects
either with one rename; 0.75 misses no one measured."""
MIN_WINDOWS = 6
"""A speaker heard for less than this many windows (about 3 s of speech) is not
matched: its centroid is too noisy to name it."""

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Heard:
    """A speaker of a transcript as its stored state knows it."""

    centroid: Vector
    windows: int


def remembers(state: str) -> bool:
    """True when the stream that stored this speaker state opted in to remembering."""
    try:
        return bool(state) and bool(json.loads(state).get("remember"))
    except ValueError:
        return False


def speakers_of(state: str) -> dict[str, Heard]:
    """Label -> centroid of each speaker in a tracker's stored state."""
    clusterer = OnlineClusterer.from_json(json.loads(state)["clusterer"])
    return {s.label: Heard(s.centroid(), s.count) for s in clusterer.speakers if s.count}


def print_of(voice: Voice) -> Vector:
    v = np.frombuffer(voice.embedding, dtype="<f4").astype(np.float64)
    return v / (np.linalg.norm(v) + 1e-12)


def match(
    heard: Mapping[str, Heard], voices: list[Voice], threshold: float = MATCH_THRESHOLD
) -> dict[str, tuple[str, float]]:
    """Label -> (voice name, similarity) for the speakers that sound like a remembered
    voice, best pairs first, each label and voice at most once."""
    pairs = sorted(
        (
            (float(h.centroid @ print_of(v)), label, v.name)
            for label, h in heard.items()
            for v in voices
            if h.windows >= MIN_WINDOWS and len(v.embedding) == 4 * len(h.centroid)
        ),
        reverse=True,
    )
    out: dict[str, tuple[str, float]] = {}
    used: set[str] = set()
    for sim, label, name in pairs:
        if sim >= threshold and label not in out and name.casefold() not in used:
            out[label] = (name, sim)
            used.add(name.casefold())
    return out


def named_only(names: Mapping[str, str]) -> dict[str, str]:
    """The labels that have a name ("" or white space is unnamed)."""
    return {k: v for k, v in names.items() if v.strip()}


def unnamed_matches(
    heard: Mapping[str, Heard], voices: list[Voice], named: Mapping[str, str]
) -> dict[str, tuple[str, float]]:
    """`match` for the speakers not in `named` (label -> a non-empty name) against the
    voices whose names the transcript does not use yet: the one rule for naming speakers
    from remembered voices, live (live_names.py) and when a stream ends (after_stream)."""
    taken = {n.casefold() for n in named.values()}
    return match(
        {k: h for k, h in heard.items() if k not in named},
        [v for v in voices if v.name.casefold() not in taken],
    )


def _voice(name: str, label: str, heard: Heard, transcript_id: str) -> Voice:
    emb = heard.centroid.astype("<f4").tobytes()
    return Voice(name.strip(), emb, heard.windows, transcript_id, label, datetime.now(UTC))


async def remember_named(
    store: TranscriptStore, owner: str, meta: TranscriptMeta, names: Mapping[str, str]
) -> None:
    """After a user names speakers (`names`, the whole new map) of a transcript made with
    `remember_voices`: remember each speaker whose name changed, and forget a voice this
    transcript gave that the user has now named otherwise (a correction).
    RESOURCE_EXHAUSTED (before anything is stored) past MAX_VOICES."""
    if not remembers(meta.speaker_state):
        return
    heard = speakers_of(meta.speaker_state)
    old = meta.speaker_names
    new = {
        label: name.strip()
        for label, name in names.items()
        if name.strip() and label in heard and name.strip() != old.get(label, "").strip()
    }
    existing = await store.list_voices(owner)
    stale = [
        v
        for v in existing
        if v.transcript_id == meta.id and names.get(v.speaker_label, "").strip() != v.name
    ]
    keys = {v.name.casefold() for v in existing} - {v.name.casefold() for v in stale}
    if len(keys | {n.casefold() for n in new.values()}) > MAX_VOICES:
        raise ResourceExhaustedError(
            f"at most {MAX_VOICES} voices are remembered; forget some with DeleteVoice"
        )
    for v in stale:
        await store.delete_voice(owner, v.name)
    for label, name in new.items():
        await store.put_voice(owner, _voice(name, label, heard[label], meta.id))


async def after_stream(
    store: TranscriptStore,
    owner: str,
    transcript_id: str,
    state: str,
    opened: Mapping[str, str],
    forgotten: Collection[str] = (),
) -> None:
    """When a stream with `remember_voices` ends: name its unnamed speakers after the
    principal's voices they match, and remember the speakers named while it was live
    (those whose name differs from `opened`, the names the transcript had when the
    stream opened), under names not taken by another transcript's voice and not in
    `forgotten` (casefolded names of voices deleted while the stream was live; a voice
    stored at the rename and deleted since is gone: forget wins). A name the transcript
    already had is not stored again: a voice forgotten stays forgotten when the
    transcript is resumed. Never raises: the transcript is stored either way."""
    try:
        meta = await store.get_transcript(owner, transcript_id)
        heard = speakers_of(state)
        voices = await store.list_voices(owner)
        named = named_only(meta.speaker_names)
        known = {v.name.casefold(): v for v in voices}
        for label, name in named.items():  # named live: remember them now
            if label not in heard or opened.get(label) == name:
                continue
            mine = known.get(name.casefold())
            if mine is None and name.casefold() in forgotten:
                continue
            if mine is None or mine.transcript_id == transcript_id:
                if len(known) < MAX_VOICES or mine is not None:
                    await store.put_voice(owner, _voice(name, label, heard[label], transcript_id))
        found = unnamed_matches(heard, voices, named)
        if found:
            names = {label: name for label, (name, _) in found.items()}  # a rename since wins
            await store.name_unnamed_speakers(owner, transcript_id, names)
            logger.info(
                "transcript %s: speakers named from remembered voices: %s",
                transcript_id,
                ", ".join(f"{k} as {n!r} ({s:.2f})" for k, (n, s) in sorted(found.items())),
            )
    except Exception:
        logger.exception("transcript %s: remembered voices were not applied", transcript_id)
