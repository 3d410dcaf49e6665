"""A change of speaker is shown while it is tentative (tracker.SHOW_TENTATIVE).

A final is labelled when its decode returns, about 0.8 s of audio after its end, but the
clusterer confirms a change only with the window after the first one of the new turn:
labels read in between must already show the returning voice (and split there). (That
a single-window flip is taken back is the clusterer's smoothing, tested with it.) Two
tones stand in for two voices (a made-up embedder: exact geometry, no model), pushed in
100 ms chunks as a stream's audio.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.speakers.config import diarization_settings
from service.speakers.embedder import SpeakerEmbedder
from service.speakers.tracker import SpeakerTracker

SR = 16000
Audio = npt.NDArray[np.float32]


class ToneEmbedder(SpeakerEmbedder):
    """Voice A (a low tone) and voice B (a high one) as orthogonal unit prints."""

    def __init__(self) -> None:  # no model
        pass

    def embed_features(self, feats: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(feats), 4), dtype=np.float32)
        for k, f in enumerate(feats):
            low = int(np.argmax(f.mean(axis=0))) < 15
            out[k, 0 if low else 1] = 1.0
        return out


def tone(hz: float, seconds: float) -> Audio:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


A, B = 300.0, 3000.0


def tracker() -> SpeakerTracker:
    return SpeakerTracker(diarization_settings(True, 0, 8), embedder=ToneEmbedder())


def push_until_tentative(tr: SpeakerTracker, audio: Audio, after_s: float) -> float:
    """Push 100 ms chunks until a window after `after_s` is a tentative change; the
    stream time pushed so far."""
    step = SR // 10
    for i in range(0, len(audio), step):
        tr.push(audio[i : i + step], i / SR)
        t = tr._clusterer.tentative
        if t >= 0 and tr._starts[t] >= after_s:
            return (i + step) / SR
    raise AssertionError("no tentative change")


def test_a_returning_voice_is_shown_before_its_change_is_confirmed() -> None:
    audio = np.concatenate([tone(A, 6), tone(B, 6), tone(A, 6)])
    tr = tracker()
    pushed = push_until_tentative(tr, audio, 12.0)
    c = tr._clusterer
    t = c.tentative
    assert c.labels[t] == "S2"  # the clusterer has not confirmed it
    # What a final read now gets: the new turn's window shows A's label, and a final
    # spanning the change is split there.
    assert tr.label_for(tr._starts[t], tr._ends[t]) == "S1"
    changes = tr.turns_between(11.0, pushed)
    assert [lb for _, lb in changes] == ["S1"], changes
    assert abs(changes[0][0] - 12.0) <= 1.0
    # Confirmed by the next window: the label stays.
    step = SR // 10
    start = int(pushed * SR)
    for i in range(start, start + SR, step):
        tr.push(audio[i : i + step], i / SR)
    assert tr._clusterer.tentative == -1
    assert tr.label_for(12.5, 13.0) == "S1"
