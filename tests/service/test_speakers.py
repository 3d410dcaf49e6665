"""Speaker labels with the real embedder on mixes of the test speakers (4088, 4406, 5652,
8226): each clip's first part in one turn and its rest when that speaker comes back.

The mixes are built here: turns of a few seconds joined with short pauses or none,
pushed to the tracker in 100 ms chunks as a stream's audio arrives.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

from service.errors import InvalidArgumentError
from service.speakers import features
from service.speakers.config import DiarizationSettings, diarization_settings
from service.speakers.tracker import SpeakerTracker
from tests.helpers import DATA, decode_16k

SR = 16000
Audio = npt.NDArray[np.float32]


@cache
def voice(name: str) -> Audio:
    files = {
        "4088": "4088-158077-0000.flac",
        "4406": "4406-16882-0000.flac",
        "5652": "5652-19215-0000.flac",
        "8226": "8226-274369-0000.flac",
    }
    return decode_16k(DATA / files[name])


def mix(turns: list[tuple[str, float, float, float]]) -> tuple[Audio, list[tuple[float, str]]]:
    """(voice, from s, to s, pause after s) -> audio and the (start time, speaker) of each turn."""
    parts: list[Audio] = []
    starts: list[tuple[float, str]] = []
    t = 0.0
    for name, a, b, pause in turns:
        piece = voice(name)[int(a * SR) : int(b * SR)]
        starts.append((t, name))
        parts += [piece, np.zeros(int(pause * SR), dtype=np.float32)]
        t += (len(piece) + int(pause * SR)) / SR
    return np.concatenate(parts), starts


def feed(tracker: SpeakerTracker, audio: Audio, start_s: float = 0.0) -> None:
    for i in range(0, len(audio), SR // 10):
        tracker.push(audio[i : i + SR // 10], start_s + i / SR)


def turn_labels(tracker: SpeakerTracker, starts: list[tuple[float, str]], end: float) -> list[str]:
    """The label of the middle of each turn."""
    bounds = [t for t, _ in starts[1:]] + [end]
    return [tracker.label_for(a + 1.0, b - 1.0) for (a, _), b in zip(starts, bounds, strict=True)]


def assert_changes_at_turns(
    tracker: SpeakerTracker, starts: list[tuple[float, str]], end: float
) -> None:
    changes = [t for t, _ in tracker.turns_between(0.0, end)]
    truth = [t for t, _ in starts[1:]]
    assert len(changes) == len(truth), (changes, truth)
    for found, true in zip(changes, truth, strict=True):
        assert abs(found - true) <= 1.0, (changes, truth)


def test_two_speakers_labels_change_at_the_turns_and_a_returning_voice_keeps_its_label() -> None:
    audio, starts = mix(
        [("4088", 0, 6, 0.5), ("4406", 0, 7, 0.0), ("4088", 6, 12.7, 0.3), ("4406", 7, 13, 0.0)]
    )
    tracker = SpeakerTracker()
    feed(tracker, audio)
    end = len(audio) / SR
    labels = turn_labels(tracker, starts, end)
    assert labels == ["S1", "S2", "S1", "S2"]
    assert_changes_at_turns(tracker, starts, end)
    assert tracker.speaker_count() == 2
    assert end - 1.5 <= tracker.settled_until() <= end
    # A final covering a turn change is split there, and each side has its speaker.
    (t, label), *_ = tracker.turns_between(starts[1][0] - 3, starts[1][0] + 3)
    assert label == "S2"
    assert tracker.label_for(starts[1][0] - 3, t) == "S1"
    assert tracker.label_for(t, starts[1][0] + 3) == "S2"


FOUR: list[tuple[str, float, float, float]] = [
    ("4088", 0, 6, 0.4),
    ("4406", 0, 7, 0.0),
    ("5652", 0, 7, 0.8),
    ("8226", 0, 3, 0.0),
    ("4088", 6, 12.7, 0.2),
    ("5652", 7, 13.5, 0.0),
    ("4406", 7, 14.4, 0.0),
]
"""Four voices in turns, two of them coming back."""


def test_four_speakers() -> None:
    audio, starts = mix(FOUR)
    tracker = SpeakerTracker()
    feed(tracker, audio)
    end = len(audio) / SR
    assert turn_labels(tracker, starts, end) == ["S1", "S2", "S3", "S4", "S1", "S3", "S2"]
    assert_changes_at_turns(tracker, starts, end)
    corrections = tracker.finish()  # little to correct: at most a window or two at a turn
    assert sum(c.end_s - c.start_s for c in corrections) <= 1.0, corrections
    assert turn_labels(tracker, starts, end) == ["S1", "S2", "S3", "S4", "S1", "S3", "S2"]
    assert tracker.speaker_count() == 4


def test_max_speaker_count_is_never_exceeded() -> None:
    audio, starts = mix([("4088", 0, 6, 0.3), ("4406", 0, 6, 0.3), ("5652", 0, 6, 0.0)])
    tracker = SpeakerTracker(diarization_settings(True, 0, 2))
    feed(tracker, audio)
    tracker.finish()
    assert tracker.speaker_count() == 2
    assert set(turn_labels(tracker, starts, len(audio) / SR)) == {"S1", "S2"}


def test_a_resumed_stream_continues_with_the_same_labels() -> None:
    first, _ = mix([("4088", 0, 6, 0.3), ("4406", 0, 7, 0.0)])
    tracker = SpeakerTracker()
    feed(tracker, first)
    state = tracker.state_json()
    json.loads(state)  # plain JSON, to store with the transcript
    # Another server: a new tracker from the stored state, audio continuing later on.
    second, starts = mix([("4406", 7, 14.4, 0.5), ("4088", 6, 12.7, 0.0)])
    offset = len(first) / SR + 2.0
    resumed = SpeakerTracker(state=state)
    feed(resumed, second, start_s=offset)
    shifted = [(t + offset, name) for t, name in starts]
    assert turn_labels(resumed, shifted, offset + len(second) / SR) == ["S2", "S1"]
    # The earlier stream's labels are still known to the resumed tracker.
    assert resumed.label_for(1.0, 5.0) == "S1"
    assert resumed.label_for(len(first) / SR - 5, len(first) / SR - 1) == "S2"
    # Without the history (voices only, a few KB) the labels continue all the same.
    small = tracker.state_json(history=False)
    assert len(small) < 10_000 < len(state)
    lean = SpeakerTracker(state=small)
    feed(lean, second, start_s=offset)
    assert turn_labels(lean, shifted, offset + len(second) / SR) == ["S2", "S1"]


def test_the_end_of_stream_pass_fixes_a_wrong_label() -> None:
    audio, starts = mix([("4088", 0, 7, 0.3), ("4406", 0, 10, 0.0), ("4088", 7, 12.7, 0.0)])
    tracker = SpeakerTracker()
    feed(tracker, audio)
    end = len(audio) / SR
    assert turn_labels(tracker, starts, end) == ["S1", "S2", "S1"]
    # Damage the online result: two seconds in the middle of the first turn said S2.
    labels = tracker._clusterer.labels
    spans = list(zip(tracker._starts, tracker._ends, strict=True))
    wrong = [i for i, (a, b) in enumerate(spans) if 3.0 <= a and b <= 5.0]
    assert len(wrong) >= 3
    for i in wrong:
        labels[i] = "S2"
    assert tracker.label_for(3.0, 5.0) == "S2"
    corrections = tracker.finish()
    assert any(c.label == "S1" and c.start_s <= 3.5 and c.end_s >= 4.5 for c in corrections)
    assert tracker.label_for(3.0, 5.0) == "S1"
    assert turn_labels(tracker, starts, end) == ["S1", "S2", "S1"]


def test_silence_has_no_label_and_no_cost() -> None:
    tracker = SpeakerTracker()
    feed(tracker, np.zeros(5 * SR, dtype=np.float32))
    assert tracker.label_for(0.0, 5.0) == ""
    assert tracker.speaker_count() == 0
    assert tracker.finish() == []


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((True, -1, 0), "config.diarization_config.min_speaker_count is -1"),
        ((True, 0, -2), "config.diarization_config.max_speaker_count is -2"),
        ((True, 9, 0), "config.diarization_config.min_speaker_count is 9; at most 8"),
        ((True, 0, 20), "config.diarization_config.max_speaker_count is 20; at most 8"),
        ((True, 3, 2), "config.diarization_config.min_speaker_count (3) is greater than"),
        ((False, 5, 4), "config.diarization_config.min_speaker_count (5) is greater than"),
    ],
)
def test_bad_diarization_config_is_rejected_naming_the_field(
    args: tuple[bool, int, int], field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        diarization_settings(*args)
    assert field in str(err.value)


def test_diarization_config_defaults() -> None:
    assert diarization_settings(False, 0, 0) == DiarizationSettings(False, 1, 8)
    assert diarization_settings(True, 2, 0) == DiarizationSettings(True, 2, 8)
    assert diarization_settings(True, 0, 3) == DiarizationSettings(True, 1, 3)


def test_mel_scale_matches_librosa_documented_values() -> None:
    # librosa.mel_frequencies(n_mels=40) as printed in librosa's docstring (fmax 11025).
    documented = [0.0, 85.317, 170.635, 255.952, 341.269, 426.586, 511.904, 597.221]
    documented += [682.538, 767.855, 853.173, 938.49, 1024.856, 1119.114, 1222.042]
    documented += [1334.436, 1457.167, 1591.187, 1737.532, 1897.337, 2071.84, 2262.393]
    documented += [2470.47, 2697.686, 2945.799, 3216.731, 3512.582, 3835.643, 4188.417]
    documented += [4573.636, 4994.285, 5453.621, 5955.205, 6502.92, 7101.009, 7754.107]
    documented += [8467.272, 9246.028, 10096.408, 11025.0]
    got = features.mel_frequencies(40, 0.0, 11025.0)
    assert np.abs(got - np.array(documented)).max() < 6e-4
    fb = features.mel_filterbank()
    assert fb.shape == (40, 257) and (fb.max(axis=1) > 0).all()
    assert features.log_mel(np.zeros(SR, dtype=np.float32)).shape == (97, 40)
