"""`LiveSpeakers`: a stream's SpeakerTracker, as the session uses it.

The tracker is CPU-bound and not thread-safe: every push (and the end-of-stream
re-clustering) runs in an executor under a lock, and the session awaits it before it
decodes or reads a label, so one call at a time touches the tracker, never on the
event loop. Reading labels (bisects over a few windows) is cheap and runs on the loop
between pushes.

What it adds to the tracker: the split points of a final (so that the policy never
makes a final span a change of speaker), labels on results, and at the end the finals
of this stream whose label the re-clustering changed, as revisions.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from service.domain import Word
from service.policy import ResultUpdate
from service.speakers.clustering import Speaker
from service.speakers.config import DiarizationSettings
from service.speakers.tracker import SpeakerTracker

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Sent:
    """A final of this stream as last sent: its words, label and revision, and the span
    it was first sent with (what its label is decided by)."""

    words: tuple[Word, ...]
    label: str
    revision: int
    start_s: float
    end_s: float


class LiveSpeakers:
    """Speaker labels of one stream (see the module docstring)."""

    def __init__(
        self,
        settings: DiarizationSettings,
        executor: Executor | None,
        state: str | None = None,
        tracker: SpeakerTracker | None = None,
    ) -> None:
        """`state` is what an earlier stream of the transcript stored (`state`)."""
        self._tracker = tracker or SpeakerTracker(settings, state=state or None)
        self._executor = executor
        self._lock = threading.Lock()
        """Held by every call in the executor: a call that outlives its stream's cancelled
        await (the thread runs on) still finishes before the state is read."""
        self._sent: dict[int, _Sent] = {}

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        def locked() -> T:
            with self._lock:
                return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(self._executor, locked)

    async def push(self, samples: npt.NDArray[np.float32], start_s: float) -> None:
        """Add the stream's next audio (16 kHz) starting at `start_s` on the transcript clock."""
        await self._run(self._tracker.push, samples, start_s)

    # ---- labels (on the loop, between pushes) -------------------------------
    def split_points(self, words: Sequence[Word]) -> list[int]:
        """Indexes of the words that start another speaker's turn (the policy's splitter)."""
        if len(words) < 2:
            return []
        mids = [(w.start + w.end) / 2 for w in words]
        cuts = {
            bisect.bisect_left(mids, t)
            for t, _ in self._tracker.turns_between(words[0].start, words[-1].end)
        }
        return sorted(c for c in cuts if 0 < c < len(words))

    def speakers(self) -> list[Speaker]:
        """The voices heard so far, for naming them (speakers/live_names.py)."""
        return self._tracker.speakers()

    def label(self, update: ResultUpdate) -> ResultUpdate:
        """The update with its speaker's label; a final is remembered for `finish`.

        A second pass's revision keeps the label its segment was sent with: its words
        replace the segment's, and their times at a window's edge can stretch far into
        the next speaker's turn (a first-pass final was split there already)."""
        if not update.words:
            return update
        sent = self._sent.get(update.segment_index) if update.is_final else None
        if sent is not None:
            update = replace(update, speaker_label=sent.label)
            sent.words, sent.revision = update.words, update.revision
            return update
        label = self._tracker.label_for(update.start_s, update.end_s)
        update = replace(update, speaker_label=label)
        if update.is_final:
            self._sent[update.segment_index] = _Sent(
                update.words, label, update.revision, update.start_s, update.end_s
            )
        return update

    # ---- end of stream --------------------------------------------------------
    async def finish(self) -> list[ResultUpdate]:
        """Re-cluster the whole stream (in the executor); the finals whose label changed,
        as revisions (one higher than last sent), in segment order."""
        await self._run(self._tracker.finish)
        out: list[ResultUpdate] = []
        for index in sorted(self._sent):
            sent = self._sent[index]
            label = self._tracker.label_for(sent.start_s, sent.end_s)
            if label and label != sent.label:
                sent.label, sent.revision = label, sent.revision + 1
                out.append(ResultUpdate(sent.words, True, 0.0, index, sent.revision, label))
        if out:
            logger.info("speaker labels corrected on %d final(s) at the stream's end", len(out))
        return out

    async def state(self) -> str | None:
        """What the next stream of this transcript needs to keep the labels (a few KB);
        after any call still running in the executor (a cancelled stream's push). None
        if it cannot be had (the executor shut down): the stored state stays as it was,
        and closing the transcript must not fail for it."""
        try:
            return await self._run(self._tracker.state_json, False)
        except Exception:
            logger.exception("the speaker state could not be read; the stored one is kept")
            return None
