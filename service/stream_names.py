"""Renames reach a live stream: the speaker names its client has been sent, and the
renames still to send.

A user names speakers with UpdateTranscript while the transcript may still be recorded;
the stream recording it then sends the transcript's whole `speaker_names` map (a
`SpeakerNames` output), so every page showing the live stream follows, not only the
one that renamed. Two ways a rename reaches the stream:

- On this server, at once: the transcripts servicer hands the map it stored to the
  registry (`StreamRegistry.names_changed`), which offers it to the transcript's live
  streams (`StreamSlot.follow_names`). The stream sends it at its next step (each chunk
  of audio, each decode): a live client sends audio every 0.1-0.25 s, so well within a
  second.
- From another replica (storage shared through DynamoDB, or one SQLite file): a stream
  with speaker labels re-reads the transcript's names every POLL_S (`poll`). Chosen
  over piggybacking on the lease renewal (every lease_s / 3 = 10 s, no extra request)
  because that would change the storage contract's lease for a metadata nicety and
  bound the delay at 10 s; one GetItem of the metadata item (about 1 KB, 0.5 read unit
  eventually consistent) every 5 s per labelled stream is about 0.1 read unit per
  second per stream, and a stream without labels has no speakers to name, so it does
  not poll. A rename made on another replica reaches the stream within POLL_S.

A label renamed back to empty (or dropped from the map) is sent as "" (unnamed): a proto
map cannot say "no longer in the map", and an empty map is no message at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from service.speakers.voices import named_only
from service.storage.base import TranscriptStore

logger = logging.getLogger(__name__)

POLL_S = 5.0
"""How often a stream with speaker labels re-reads its transcript's names (renames made
through another replica)."""


class StreamNames:
    """One live stream's speaker names: what its client was last sent, and the latest map
    read or pushed (module docstring). Single event loop; no locking needed."""

    def __init__(self, known: Mapping[str, str]) -> None:
        self._sent = named_only(known)
        """The names the client knows (at the start: the transcript's, e.g. a resume's)."""
        self._sent_at = time.monotonic()
        self._latest: dict[str, str] | None = None
        self._latest_at = 0.0

    def offer(self, names: Mapping[str, str], read_at: float | None = None) -> None:
        """The transcript's whole map as stored at `read_at` (monotonic; None: now). A map
        read before the stream last sent names, or before the map already waiting, is
        stale (it may lack a name given since) and is dropped; the next read brings it."""
        at = time.monotonic() if read_at is None else read_at
        if at < self._sent_at or at < self._latest_at:
            return
        self._latest, self._latest_at = dict(names), at

    def sent(self, names: Mapping[str, str]) -> None:
        """The stream sent this map itself (names from remembered voices)."""
        self._sent = named_only(names)
        self._sent_at = time.monotonic()
        self._latest = None

    def take(self) -> dict[str, str] | None:
        """The map to send now if the names differ from those last sent, else None; each
        label named before and unnamed now is in it with ""."""
        latest, self._latest = self._latest, None
        if latest is None:
            return None
        now = named_only(latest)
        if now == self._sent:
            return None
        out = dict(latest) | {k: "" for k in self._sent if k not in now}
        self.sent(out)
        return out

    async def poll(
        self, store: TranscriptStore, owner: str, transcript_id: str, every_s: float = POLL_S
    ) -> None:
        """Re-read the transcript's names every `every_s` until cancelled. Storage errors
        are skipped: names are metadata, and the next read tries again."""
        while True:
            await asyncio.sleep(every_s)
            read_at = time.monotonic()
            try:
                meta = await store.get_transcript(owner, transcript_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("transcript %s: names not re-read: %s", transcript_id, exc)
                continue
            self.offer(meta.speaker_names, read_at)
