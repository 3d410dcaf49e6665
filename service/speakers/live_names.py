"""`LiveNames`: a stream with `remember_voices` names its speakers while it runs.

The principal's remembered voices are loaded once, when the stream starts. After each
push of audio the session hands over the running speakers (label, sum of voice prints,
windows); a speaker heard for at least voices.MIN_WINDOWS windows and not yet named is
matched against the voices whose names the transcript does not use yet (voices.match:
MATCH_THRESHOLD, best pairs first, each voice once). Matching on every push would
repeat the same few dot products with almost the same centroids, so it runs only when
an unnamed speaker has RECHECK_WINDOWS more windows than when it was last tried (a
speaker that did not match at 3 s may at 5 s: its centroid gets less noisy), and not
at all once every voice is used.

A match is written to the transcript's `speaker_names` after reading them again (a
voice whose name a user gave another label meanwhile is not used), and the write itself
is conditional (TranscriptStore.name_unnamed_speakers: only labels still unnamed at the
moment of the write), so a user's rename (UpdateTranscript) landing between the read and
the write is kept, never overwritten; the session then sends the whole map. Renames the
stream hears of (service.stream_names) update what LiveNames knows (`renamed`). When
the stream ends, `finish` matches the re-clustered speakers once more (the correction
may name more). Storage errors are
logged and never fail the stream: the names are metadata, and voices.after_stream
tries again when the transcript is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from service.domain import Voice
from service.speakers.clustering import Speaker
from service.speakers.voices import MIN_WINDOWS, Heard, named_only, unnamed_matches
from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)

RECHECK_WINDOWS = 4
"""New windows (2 s of speech) an unnamed speaker needs before it is matched again."""


class LiveNames:
    """Names for one stream's speakers from the principal's voices (module docstring)."""

    def __init__(
        self,
        store: TranscriptStore,
        owner: str,
        transcript_id: str,
        voices: Sequence[Voice],
        names: dict[str, str],
    ) -> None:
        self._store = store
        self._owner = owner
        self._id = transcript_id
        self._voices = list(voices)
        self.names = named_only(names)
        """The transcript's names as last read or written."""
        self._tried: dict[str, int] = {}
        """Label -> its windows when it was last matched."""

    @classmethod
    async def open(cls, store: TranscriptStore, owner: str, transcript_id: str) -> LiveNames:
        """Load the principal's voices and the transcript's names (a resumed one has
        some); with storage failing, nobody is named live."""
        try:
            voices = await store.list_voices(owner)
            names = dict((await store.get_transcript(owner, transcript_id)).speaker_names)
        except Exception:
            logger.exception("transcript %s: remembered voices not loaded", transcript_id)
            voices, names = [], {}
        return cls(store, owner, transcript_id, voices, names)

    def renamed(self, names: dict[str, str]) -> None:
        """The transcript's names changed (a user's rename reached the stream)."""
        self.names = named_only(names)

    def _a_voice_is_free(self) -> bool:
        """Some remembered voice's name is not used by the transcript yet (else nobody can
        be named, and matching is skipped)."""
        taken = {n.casefold() for n in self.names.values()}
        return any(v.name.casefold() not in taken for v in self._voices)

    def _candidates(self, speakers: Sequence[Speaker]) -> dict[str, Heard]:
        return {
            s.label: Heard(s.centroid(), s.count)
            for s in speakers
            if s.count >= MIN_WINDOWS and s.label not in self.names
        }

    async def check(self, speakers: Sequence[Speaker]) -> dict[str, str] | None:
        """After a push: the transcript's whole name map if this named a speaker, else
        None. Cheap when there is nothing to do (no voice left, nobody due)."""
        due = any(
            s.count >= MIN_WINDOWS
            and s.label not in self.names
            and s.count - self._tried.get(s.label, 0) >= RECHECK_WINDOWS
            for s in speakers
        )
        if not due or not self._a_voice_is_free():
            return None
        heard = self._candidates(speakers)
        for label, h in heard.items():
            self._tried[label] = h.windows
        return await self._apply(heard)

    async def finish(self, speakers: Sequence[Speaker]) -> dict[str, str] | None:
        """After the end-of-stream correction: match every unnamed speaker once more."""
        heard = self._candidates(speakers)
        return await self._apply(heard) if heard and self._a_voice_is_free() else None

    async def _apply(self, heard: dict[str, Heard]) -> dict[str, str] | None:
        found = unnamed_matches(heard, self._voices, self.names)
        if not found:
            return None
        try:  # read again: a user may have named speakers since the stream started
            meta = await self._store.get_transcript(self._owner, self._id)
            stored = named_only(meta.speaker_names)
            taken = {v.casefold() for v in stored.values()}
            new = {
                label: name
                for label, (name, _) in found.items()
                if label not in stored and name.casefold() not in taken
            }
            self.names = stored
            if not new:
                return None
            names = await self._store.name_unnamed_speakers(self._owner, self._id, new)
        except Exception:
            logger.exception("transcript %s: names from remembered voices not stored", self._id)
            return None
        self.names = named_only(names)
        new = {k: n for k, n in new.items() if names.get(k) == n}  # a rename may have won
        if not new:
            return names
        logger.info(
            "transcript %s: named live from remembered voices: %s",
            self._id,
            ", ".join(f"{k} as {n!r} ({found[k][1]:.2f})" for k, n in sorted(new.items())),
        )
        return names
