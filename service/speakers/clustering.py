"""Online speaker clustering: each new voice print joins a running centroid or starts one.

Windows arrive every 0.5 s. A window joins the most similar speaker when its cosine
similarity to that speaker's centroid reaches `SIMILARITY_THRESHOLD`. These keep
the labels calm (three rules):

- a new speaker starts only after `NEW_SPEAKER_WINDOWS` unmatched windows in a row
  that also resemble each other (one odd window, e.g. a cough or a window straddling
  a turn, is not a new person), one more when they are near misses of a known voice
  (`NEAR_MISS`); a window the most similar voice turns away may join the next one;
- a change of speaker is confirmed by the next window: a single window that flips to
  another speaker and back is relabelled (smoothed), and while a change is unconfirmed
  the window keeps the previous label;
- two voices whose windows turn out alike on average (`MERGE_THRESHOLD`) are merged
  under the older label: one voice split in two live is mended as soon as it shows.

Centroids only learn from confirmed windows. The whole state (centroids, the label
counter, every window's voice print and label) serialises to JSON so a stream resumed
on another server continues with the same labels, and so that `recluster.py` can
correct the labels of the whole session when it ends.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SIMILARITY_THRESHOLD = 0.6
"""Cosine similarity to a centroid at which a window is that speaker's. Windows of a
dev speaker score about 0.76-0.94 against their own centroid, of other speakers
0.2-0.58 (the two female voices are the closest pair). Swept on mixes of half the dev
utterances (docs/benchmarks.md, "Speaker labels"): 0.5 and 0.55 merge speakers (live
error 18 % and 12 %), 0.65 and 0.7 split them (11 % and 19 %), 0.6 gave 5.3 %."""
TYPICAL_MARGIN = 0.2
"""A window matches a voice only if it is at most this much less similar to the
centroid than that voice's own windows typically are: a voice whose windows score
0.85 does not take in a window at 0.62, which is most likely a similar other voice.
On the 4-speaker mixes of the tuning half this halved the live error (12.6 % -> 6.3 %:
a similar voice was no longer merged), at the cost of more splits on 2- and
3-speaker mixes (live 5.3 % -> 8.2 % over all mixes); 0.15 split too much (19 %)."""
ADAPT_MIN_WINDOWS = 6
"""Windows a voice needs before its typical similarity is trusted."""
YOUNG_THRESHOLD = 0.75
"""Until then (a voice heard for less than 3 s), a window that would change the
speaker to it joins it only at this similarity. A voice's first turn can be short,
and its centroid is then near any similar voice: on A-4spk-3, 8226 spoke 3.5 s first
and 4406's first turn scored 0.66 against those 5 windows, joined them, and the two
shared S1 (12.7 % live). A young voice's own turn goes on at the plain threshold.
Swept on half A (live, all mixes / A-4spk-3): off 6.3 / 12.7 %, 0.7 6.0 / 8.0 %,
**0.75 5.5 / 8.7 %**, 0.8 5.5 / 10.1 %; half B unchanged (7.2 %, B-4spk-0 9.9 ->
9.3 %)."""
NEW_SPEAKER_WINDOWS = 2
"""Unmatched windows in a row (1 s of speech) before a new speaker is started."""
PENDING_SIMILARITY = 0.5
"""Unmatched windows must resemble each other this much to start a speaker together."""
MERGE_THRESHOLD = 0.6
"""Two live voices whose windows average this cosine similarity with each other
(average linkage, as the end-of-stream pass merges) are one voice: the newer one is
folded into the older one at once, so that a voice split in two live (windows below
its typical similarity start a "new" speaker) does not keep two labels until the
stream ends. On the tuning half live error 8.2 % -> 6.3 % over all mixes (4-speaker
mixes unchanged, 6.3 %); confirmed on the other half (8.6 % -> 7.2 %, 4-speaker
7.5 % -> 4.8 %). 0.55 and 0.5 merged the two female voices (4-speaker live 14 % and
21 %); 0.65 and 0.7 merged nothing that mattered (docs/benchmarks.md)."""
MERGE_MIN_WINDOWS = 4
"""Windows (2 s of speech) each of two voices needs before they may be merged."""
NO_MERGE = 2.0
"""A merge threshold no pair reaches (the end-of-stream pass's strict first pass)."""
MAX_SUPPORTED_SPEAKERS = 8
NEAR_MISS = 0.55
"""Unmatched windows of which one is at least this similar to a known voice's centroid
need `NEW_SPEAKER_WINDOWS` + 1 in a row (1.5 s) to start a new speaker: within a
voice's turn, two windows just below its floor (0.60, 0.58 against 0.65 on B-4spk-0's
8226), or two windows straddling a turn change, had started short-lived voices that
took 1-1.5 s of the turn each. Swept on half A (live, all mixes / A-4spk-3): off 5.3 /
8.0 %, 0.45 4.9 / 7.2 %, 0.5 4.7 / 7.2 %, **0.55 4.6 / 7.2 %**, 0.6 4.6 / 8.7 %;
confirmed on half B: 6.9 -> 6.4 %, B-4spk-0 7.2 -> 5.0 % (int16 audio 8.8 -> 5.5 %)."""

FloatArray = npt.NDArray[np.float32]


@dataclass
class Speaker:
    """A running centroid: the sum of its windows' unit voice prints."""

    label: str
    total: npt.NDArray[np.float64]
    count: int

    def centroid(self) -> npt.NDArray[np.float64]:
        return self.total / (np.linalg.norm(self.total) + 1e-12)

    def typical_similarity(self) -> float:
        """Mean cosine similarity of its windows to its centroid (|sum| / count for
        unit vectors): how alike this voice's own windows are."""
        return float(np.linalg.norm(self.total)) / max(self.count, 1)


@dataclass(frozen=True)
class Assignment:
    """Window `index` now has `label` (a later window may have relabelled it)."""

    index: int
    label: str


@dataclass
class OnlineClusterer:
    """Labels voiced windows in order; see the module docstring for the rules."""

    max_speakers: int = MAX_SUPPORTED_SPEAKERS
    threshold: float = SIMILARITY_THRESHOLD
    margin: float = TYPICAL_MARGIN
    merge: float = MERGE_THRESHOLD
    speakers: list[Speaker] = field(default_factory=list)
    next_number: int = 1
    embeddings: list[FloatArray] = field(default_factory=list)
    """Every window's voice print, in order (for the end-of-stream re-clustering)."""
    labels: list[str] = field(default_factory=list)
    """Every window's current label."""
    raw: list[int] = field(default_factory=list)
    """Per window: index into `speakers` it matched, or -1 when it matched none."""
    pending: list[int] = field(default_factory=list)
    """Windows since the last confirmed one that matched no speaker."""
    tentative: int = -1
    """A window that matched another speaker than the one before it, unconfirmed."""
    fallback: bool = True
    """A window that the most similar voice turns away (its floor: a young voice's
    `YOUNG_THRESHOLD`, a grown one's typical similarity less the margin) may join the
    next most similar voice that takes it. Without this, a window of the current
    voice (0.72 to it) that was a bit more like a young split-off of that voice (0.75,
    just below 0.75) matched nobody, and two such started yet another voice: on half A
    live 5.5 -> 5.3 % (A-4spk-3 8.7 -> 8.0 %), half B 7.2 -> 6.9 % (B-4spk-0 9.3 ->
    7.2 %). Off in the end-of-stream first pass (there it moved A-4spk-2's corrected
    error 0.1 -> 2.1 %)."""
    near_miss: bool = True
    """Apply `NEAR_MISS` (off in the end-of-stream first pass, which is tuned without)."""

    def _similarities(self, emb: FloatArray) -> npt.NDArray[np.float64]:
        """The window's cosine similarity to each speaker's centroid."""
        return np.stack([s.centroid() for s in self.speakers]) @ emb.astype(np.float64)

    def _best(self, emb: FloatArray) -> tuple[int, float]:
        if not self.speakers:
            return -1, -1.0
        sims = self._similarities(emb)
        j = int(np.argmax(sims))
        return j, float(sims[j])

    def _floor(self, spk: Speaker, current: str) -> float:
        """The similarity a window needs to join `spk` (besides `threshold`)."""
        if spk.count >= ADAPT_MIN_WINDOWS:
            return spk.typical_similarity() - self.margin
        # a young voice: another's turn needs a clear match to join it
        return YOUNG_THRESHOLD if spk.label != current else 0.0

    def _match(self, emb: FloatArray, current: str) -> tuple[int, bool]:
        """The speaker the window joins, most similar first: when the most similar
        voice turns the window away (its floor), the next one may take it."""
        sims = self._similarities(emb)
        order = [int(k) for k in np.argsort(-sims)]
        for k in order if self.fallback else order[:1]:
            if sims[k] < self.threshold:
                break
            if sims[k] >= self._floor(self.speakers[k], current):
                return k, True
        return order[0], False

    def _current(self) -> str:
        """Label of the last window whose label is settled."""
        for i in range(len(self.labels) - 1, -1, -1):
            if i != self.tentative and i not in self.pending:
                return self.labels[i]
        return ""

    def _confirm(self, index: int, speaker: int) -> list[Assignment]:
        spk = self.speakers[speaker]
        spk.total += self.embeddings[index]
        spk.count += 1
        changed = self.labels[index] != spk.label
        self.labels[index] = spk.label
        return [Assignment(index, spk.label)] if changed else []

    def _new_speaker(self, windows: list[int]) -> list[Assignment]:
        label = f"S{self.next_number}"
        self.next_number += 1
        dim = self.embeddings[windows[0]].shape
        self.speakers.append(Speaker(label, np.zeros(dim, dtype=np.float64), 0))
        out: list[Assignment] = []
        for i in windows:
            self.raw[i] = len(self.speakers) - 1
            out += self._confirm(i, len(self.speakers) - 1)
        return out

    def add(self, emb: FloatArray) -> list[Assignment]:
        """Label the next voiced window; returns every window whose label changed."""
        emb = np.asarray(emb, dtype=np.float32)
        index = len(self.embeddings)
        self.embeddings.append(emb)
        if not self.speakers:
            self.raw.append(-1)
            self.labels.append("")
            return self._new_speaker([index])
        current = self._current()
        j, matched = self._match(emb, current)
        self.raw.append(j if matched else -1)
        self.labels.append(current)
        out = [Assignment(index, current)]
        if not matched:
            return out + self._unmatched(index)
        self.pending.clear()
        t, self.tentative = self.tentative, -1
        if t >= 0 and self.raw[t] == j:
            # Two windows in a row agree: the change is real, from window t on.
            out += self._confirm(t, j)
            current = self.speakers[j].label
        # (Otherwise window t was a single-window flip: it keeps the label around it
        # and does not teach any centroid.)
        if self.speakers[j].label == current:
            out += self._confirm(index, j)
            return out + self._merge_into_older(j)
        self.tentative = index  # a change of speaker: the next window decides
        return out

    def _unmatched(self, index: int) -> list[Assignment]:
        t, self.tentative = self.tentative, -1
        if t >= 0:  # a tentative change followed by nobody known: both are candidates
            self.pending = [t]
        if self.pending and self._similar(self.pending[-1], index):
            self.pending.append(index)
        else:
            self.pending = [index]
        near = max(self._best(self.embeddings[i])[1] for i in self.pending)
        if len(self.pending) < NEW_SPEAKER_WINDOWS + (self.near_miss and near >= NEAR_MISS):
            return []
        windows, self.pending = self.pending, []
        if len(self.speakers) < self.max_speakers:
            return self._new_speaker(windows)
        out: list[Assignment] = []
        for i in windows:  # no room for another speaker: the closest one it is
            self.raw[i] = self._best(self.embeddings[i])[0]
            out += self._confirm(i, self.raw[i])
        return out

    def _merge_into_older(self, j: int) -> list[Assignment]:
        """Fold speaker `j` and the most alike other voice together when their windows
        average `merge` similarity (both with `MERGE_MIN_WINDOWS`): the newer voice's
        windows take the older one's label. Returns the windows relabelled."""
        a = self.speakers[j]
        if a.count < MERGE_MIN_WINDOWS or len(self.speakers) < 2:
            return []
        best, best_sim = -1, -1.0
        for k, b in enumerate(self.speakers):
            if k == j or b.count < MERGE_MIN_WINDOWS:
                continue
            sim = float(a.total @ b.total) / (a.count * b.count)
            if sim >= self.merge and sim > best_sim:
                best, best_sim = k, sim
        if best < 0:
            return []
        keep, gone = min(j, best), max(j, best)
        old, new = self.speakers[keep], self.speakers.pop(gone)
        old.total = old.total + new.total
        old.count += new.count
        out: list[Assignment] = []
        for i, label in enumerate(self.labels):
            if label == new.label:
                self.labels[i] = old.label
                out.append(Assignment(i, old.label))
        self.raw = [keep if r == gone else r - (r > gone) for r in self.raw]
        return out

    def _similar(self, a: int, b: int) -> bool:
        return float(self.embeddings[a] @ self.embeddings[b]) >= PENDING_SIMILARITY

    # ---- serialisation: a resumed stream continues with the same labels
    def to_json(self, history: bool = True) -> str:
        """The state as JSON: about 2 KB per speaker, plus with `history` every window's
        voice print (base64 float16) and label, about 1.4 KB per second of speech (5 MB
        per hour), which only the end-of-stream correction of earlier windows needs."""
        if not history:
            return OnlineClusterer(
                self.max_speakers,
                self.threshold,
                self.margin,
                self.merge,
                self.speakers,
                self.next_number,
            ).to_json()
        emb = np.asarray(self.embeddings, dtype=np.float16).reshape(-1)
        state = {
            "version": 1,
            "max_speakers": self.max_speakers,
            "threshold": self.threshold,
            "margin": self.margin,
            "merge": self.merge,
            "next_number": self.next_number,
            "speakers": [
                {"label": s.label, "count": s.count, "total": _b64(s.total.astype(np.float32))}
                for s in self.speakers
            ],
            "embeddings": base64.b64encode(emb.tobytes()).decode("ascii"),
            "labels": self.labels,
            "raw": self.raw,
            "pending": self.pending,
            "tentative": self.tentative,
        }
        return json.dumps(state, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OnlineClusterer:
        """Rebuild a clusterer from `to_json` (ValueError on another format)."""
        state = json.loads(text)
        if state.get("version") != 1:
            raise ValueError(f"unknown speaker state version {state.get('version')!r}")
        raw = np.frombuffer(base64.b64decode(state["embeddings"]), dtype=np.float16)
        n = len(state["labels"])
        embs = list(raw.astype(np.float32).reshape(n, -1)) if n else []
        return cls(
            max_speakers=int(state["max_speakers"]),
            threshold=float(state["threshold"]),
            margin=float(state["margin"]),
            merge=float(state.get("merge", MERGE_THRESHOLD)),
            speakers=[
                Speaker(s["label"], _unb64(s["total"]).astype(np.float64), int(s["count"]))
                for s in state["speakers"]
            ],
            next_number=int(state["next_number"]),
            embeddings=embs,
            labels=list(state["labels"]),
            raw=[int(r) for r in state["raw"]],
            pending=[int(p) for p in state["pending"]],
            tentative=int(state["tentative"]),
        )


def _b64(a: FloatArray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode("ascii")


def _unb64(s: str) -> FloatArray:
    return np.frombuffer(base64.b64decode(s), dtype=np.float32).copy()
