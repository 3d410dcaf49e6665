"""`SpeakerTracker`: one stream's speaker labels, from audio pushed as it arrives.

The session pushes the stream's 16 kHz audio with its stream time. Every 0.5 s a new
0.82 s model input is complete; if it is sound (not a pause) it is embedded. A window
is the last two inputs (1.32 s): its voice print is their mean, it is labelled by the
online clusterer, and it decides the label of its middle 0.5 s (the first window of a
stream from its start). Silence gets no label. A change of speaker shows about 0.9 s
after the audio (the window's end) and is confirmed one window later (1.4 s), about as
much as finals lag (`SHOW_TENTATIVE`); `settled_until` says up to where labels no
longer change.

Everything here is synchronous and CPU-bound (~0.04 CPU-s per audio second): the
session calls it from an executor, one call at a time per tracker.
"""

from __future__ import annotations

import base64
import bisect
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.speakers import features
from service.speakers.clustering import (
    MERGE_THRESHOLD,
    SIMILARITY_THRESHOLD,
    TYPICAL_MARGIN,
    OnlineClusterer,
    Speaker,
)
from service.speakers.config import DiarizationSettings
from service.speakers.embedder import (
    STEP_S,
    STEP_SAMPLES,
    SUB_WINDOW_SAMPLES,
    WINDOW_S,
    WINDOW_SUBS,
    SpeakerEmbedder,
    shared_embedder,
)
from service.speakers.recluster import FIRST_PASS_THRESHOLD, RECLUSTER_THRESHOLD, recluster

VOICE_DBFS = -50.0
"""A 10 ms frame louder than this (RMS, dB full scale) counts as sound."""
VOICED_FRACTION = 0.3
"""A window is embedded when at least this share of its frames is sound; quieter
windows (pauses, breaths) carry no reliable voice print."""
MIN_VOICED_SUBS = 1
"""Model inputs of a window that must be speech for the window to be labelled."""
CONTINUITY_S = 0.05
"""Audio pushed more than this away from where the last push ended starts afresh."""
SHOW_TENTATIVE = True
"""Labels read while a change of speaker is unconfirmed (its window matched another
voice, the next window has not yet agreed) show the new voice for that window, not
the previous one; the clusterer still waits for the next window before a centroid
learns from it, and takes the label back if it was a single-window flip. A final is
labelled when its decode returns, about 0.8 s of audio after its end, while the change
is confirmed 1-1.5 s after it starts: without this, a final ending in the first
second of a turn took the previous speaker's label or was not split there (A-4spk-3's
4088 -> 8226 change: one such final made the run 8.2 % live instead of 6.6 %).
Replaying a real-time API run's finals (benchmarks/diarization_replay.py): live error
on the 4-speaker mixes, half A 4.4 -> 3.2 %, half B 3.3 -> 2.6 % (mean per mix, lower
on 7 of 8 mixes, the eighth equal); the tracker alone (label 1 s after each frame,
int16) A 4.6 -> 3.4 %, B 6.5 -> 5.5 %, AMI 35.8 -> 37.2 % (docs/benchmarks.md,
2 Dec 2026)."""

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class LabelSpan:
    """From `start_s` to `end_s` (stream time) the speaker is `label`."""

    start_s: float
    end_s: float
    label: str


def _voiced(window: FloatArray) -> bool:
    hop = features.HOP_LENGTH
    frames = window[: len(window) // hop * hop].reshape(-1, hop).astype(np.float64)
    db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return float(np.mean(db > VOICE_DBFS)) >= VOICED_FRACTION


class SpeakerTracker:
    """Speaker labels for one stream; see the module docstring."""

    def __init__(
        self,
        settings: DiarizationSettings | None = None,
        embedder: SpeakerEmbedder | None = None,
        state: str | None = None,
        threshold: float = SIMILARITY_THRESHOLD,
        recluster_threshold: float = RECLUSTER_THRESHOLD,
        first_pass_threshold: float = FIRST_PASS_THRESHOLD,
        margin: float = TYPICAL_MARGIN,
        merge: float = MERGE_THRESHOLD,
    ) -> None:
        """`state` is `state_json()` of the tracker of an earlier stream of the same
        transcript: the labels continue (S1 stays S1) and the old windows take part in
        the end-of-stream correction. The thresholds are for tuning (the benchmark)."""
        self._recluster_thresholds = (recluster_threshold, first_pass_threshold)
        self.settings = settings or DiarizationSettings(enabled=True)
        self._embedder = embedder  # the shared one, loaded on the first push (in the executor)
        self._starts: list[float] = []
        self._ends: list[float] = []
        if state:
            data = json.loads(state)
            self._clusterer = OnlineClusterer.from_json(data["clusterer"])
            self._starts = _floats(data["starts"])
            self._ends = _floats(data["ends"])
        else:
            self._clusterer = OnlineClusterer(self.settings.max_speakers, threshold, margin, merge)
        self._clusterer.max_speakers = self.settings.max_speakers
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0.0  # stream time of self._buf[0]
        self._first = True  # the next window is the first after a (re)start
        self._decided = self._ends[-1] if self._ends else 0.0
        """End of the last window's decided span (labelled or silent)."""
        self._recent: list[tuple[float, FloatArray | None]] = []
        """The last model inputs: (start time, voice print, None when not speech)."""

    # ---- feeding audio
    def push(self, audio: FloatArray, start_s: float) -> list[LabelSpan]:
        """Add audio starting at stream time `start_s`; returns spans whose label changed."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        end = self._buf_start + len(self._buf) / features.SAMPLE_RATE
        if len(self._buf) == 0 or abs(start_s - end) > CONTINUITY_S:
            self._buf, self._buf_start = audio, start_s
            self._first, self._recent = True, []
        else:
            self._buf = np.concatenate([self._buf, audio])
        subs: list[tuple[float, FloatArray]] = []
        offset = 0
        while offset + SUB_WINDOW_SAMPLES <= len(self._buf):
            t0 = self._buf_start + offset / features.SAMPLE_RATE
            subs.append((t0, self._buf[offset : offset + SUB_WINDOW_SAMPLES]))
            offset += STEP_SAMPLES
        self._buf = self._buf[offset:].copy()
        self._buf_start += offset / features.SAMPLE_RATE
        voiced = [i for i, (_, w) in enumerate(subs) if _voiced(w)]
        embs = dict(zip(voiced, self._embed([subs[i][1] for i in voiced]), strict=True))
        changed: list[LabelSpan] = []
        for i, (t0, _) in enumerate(subs):
            self._recent = [*self._recent, (t0, embs.get(i))][-WINDOW_SUBS:]
            if len(self._recent) == WINDOW_SUBS:
                changed += self._window()
        return _merge(changed)

    def _window(self) -> list[LabelSpan]:
        """The newest window is complete: label it if it holds enough speech."""
        first, self._first = self._first, False
        mid = self._recent[0][0] + WINDOW_S / 2
        self._decided = mid + STEP_S / 2
        heard = [e for _, e in self._recent if e is not None]
        if len(heard) < MIN_VOICED_SUBS:
            return []
        emb = np.mean(heard, axis=0)
        emb /= np.linalg.norm(emb) + 1e-12
        self._starts.append(self._recent[0][0] if first else mid - STEP_S / 2)
        self._ends.append(mid + STEP_S / 2)
        return self._spans([(a.index, a.label) for a in self._clusterer.add(emb)])

    def _embed(self, windows: list[FloatArray]) -> list[FloatArray]:
        if not windows:
            return []
        if self._embedder is None:
            self._embedder = shared_embedder()
        feats = np.stack([features.log_mel(w) for w in windows])
        return list(self._embedder.embed_features(feats))

    def _spans(self, assignments: list[tuple[int, str]]) -> list[LabelSpan]:
        return [LabelSpan(self._starts[i], self._ends[i], label) for i, label in assignments]

    # ---- reading labels
    def _labels(self) -> list[str]:
        """Every window's label as read now: with the tentative change shown
        (`SHOW_TENTATIVE`)."""
        c = self._clusterer
        labels = c.labels
        if SHOW_TENTATIVE and c.tentative >= 0 and c.raw[c.tentative] >= 0:
            labels = list(labels)
            labels[c.tentative] = c.speakers[c.raw[c.tentative]].label
        return labels

    def _overlapping(self, start_s: float, end_s: float) -> range:
        lo = bisect.bisect_right(self._ends, start_s)
        hi = bisect.bisect_left(self._starts, end_s)
        return range(lo, max(lo, hi))

    def label_for(self, start_s: float, end_s: float) -> str:
        """The speaker of most of [start_s, end_s]; the nearest labelled window's when
        none overlaps (a span in a pause, or not yet heard); "" before any speech."""
        labels = self._labels()
        weight: dict[str, float] = {}
        for i in self._overlapping(start_s, end_s):
            overlap = min(end_s, self._ends[i]) - max(start_s, self._starts[i])
            if labels[i]:
                weight[labels[i]] = weight.get(labels[i], 0.0) + max(overlap, 1e-6)
        if weight:
            return max(sorted(weight), key=lambda k: weight[k])
        if not self._starts:
            return ""
        mid = (start_s + end_s) / 2
        i = bisect.bisect_left(self._starts, mid)
        near = [j for j in (i - 1, i) if 0 <= j < len(self._starts)]
        j = min(near, key=lambda j: abs((self._starts[j] + self._ends[j]) / 2 - mid))
        return labels[j]

    def turns_between(self, start_s: float, end_s: float) -> list[tuple[float, str]]:
        """Speaker changes strictly inside (start_s, end_s): (time, label from then on).

        The time is where one speaker's last window meets the next one's first, or
        the middle of the pause between them: where to split a final.
        """
        labels = self._labels()
        out: list[tuple[float, str]] = []
        prev = -1
        for i in self._overlapping(start_s, end_s):
            if not labels[i]:
                continue
            if prev >= 0 and labels[i] != labels[prev]:
                t = (self._ends[prev] + self._starts[i]) / 2
                if start_s < t < end_s:
                    out.append((round(t, 3), labels[i]))
            prev = i
        return out

    def settled_until(self) -> float:
        """Stream time up to which online labels are final (the end-of-stream
        correction may still change them)."""
        c = self._clusterer
        unsettled = [i for i in [c.tentative, *c.pending] if i >= 0]
        return self._starts[min(unsettled)] if unsettled else self._decided

    def speakers(self) -> list[Speaker]:
        """The voices heard so far (label, sum of voice prints, windows)."""
        return list(self._clusterer.speakers)

    def speaker_count(self) -> int:
        return len({label for label in self._clusterer.labels if label})

    # ---- end of stream
    def finish(self) -> list[LabelSpan]:
        """Re-cluster the whole session's windows and return the spans whose label
        changed (label_for and turns_between answer with the corrected labels after)."""
        c = self._clusterer
        if not c.embeddings:
            return []
        new, c.next_number = recluster(
            np.stack(c.embeddings),
            c.labels,
            min_speakers=self.settings.min_speakers,
            max_speakers=self.settings.max_speakers,
            next_number=c.next_number,
            threshold=self._recluster_thresholds[0],
            first_pass_threshold=self._recluster_thresholds[1],
        )
        changed = [(i, b) for i, (a, b) in enumerate(zip(c.labels, new, strict=True)) if a != b]
        c.labels = new
        c.pending, c.tentative = [], -1
        # Centroids from the corrected labels, so that a resumed stream starts from them.
        order = sorted(set(new), key=lambda s: int(s[1:]))
        c.speakers = [
            Speaker(
                label,
                np.sum(
                    [e for e, lb in zip(c.embeddings, new, strict=True) if lb == label], axis=0
                ).astype(np.float64),
                new.count(label),
            )
            for label in order
        ]
        c.raw = [order.index(lb) for lb in new]
        return _merge(self._spans(changed))

    def state_json(self, history: bool = True) -> str:
        """What a later stream of the same transcript needs to keep the labels: the
        voices (~2 KB each), and with `history` every window (~1.5 KB per second of
        speech) so that its end-of-stream correction covers the earlier streams too."""
        state: dict[str, object] = {
            "clusterer": self._clusterer.to_json(history),
            "starts": _b64(self._starts if history else []),
            "ends": _b64(self._ends if history else []),
        }
        if self.settings.remember_voices:  # the stream opted in (speakers/voices.py)
            state["remember"] = True
        return json.dumps(state, separators=(",", ":"))


def _merge(spans: list[LabelSpan]) -> list[LabelSpan]:
    """Adjacent spans with one label become one span (the last word on a time wins)."""
    out: list[LabelSpan] = []
    for s in spans:
        if out and out[-1].label == s.label and abs(out[-1].end_s - s.start_s) < 1e-6:
            out[-1] = LabelSpan(out[-1].start_s, s.end_s, s.label)
        else:
            out.append(s)
    return out


def _b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype=np.float64).tobytes()).decode("ascii")


def _floats(text: str) -> list[float]:
    return [float(v) for v in np.frombuffer(base64.b64decode(text), dtype=np.float64)]
