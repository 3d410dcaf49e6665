"""The speech gate on its own: hysteresis, events on the stream clock, bounded flags."""

from __future__ import annotations

from service.policy.speech import FRAME_S, HYSTERESIS, SpeechEvent, SpeechGate


def gate(origin_s: float = 0.0) -> SpeechGate:
    return SpeechGate(threshold=0.5, min_speech_s=0.25, silence_s=0.5, origin_s=origin_s)


def test_speech_opens_after_min_speech_and_closes_after_the_silence() -> None:
    g = gate(origin_s=10.0)
    assert g.feed([0.9] * 7) == []  # 7 frames: 0.22 s, less than min_speech
    events = g.feed([0.9])
    assert events == [SpeechEvent(True, 10.0)]  # dated at the run's first frame
    assert g.in_speech
    assert g.feed([0.1] * 15) == []  # 0.48 s of silence: not yet a pause
    events = g.feed([0.1])
    assert events == [SpeechEvent(False, 10.0 + 8 * 512 / 16000)]
    assert not g.in_speech and g.frames == 24


def test_once_in_speech_a_frame_stays_speech_down_to_the_lower_threshold() -> None:
    g = gate()
    g.feed([0.9] * 8)
    below = 0.5 - HYSTERESIS + 0.01
    assert g.feed([below] * 40) == []  # would be silence before speech began
    assert g.in_speech
    g2 = gate()
    assert g2.feed([below] * 40) == []
    assert not g2.in_speech


def test_a_short_dip_does_not_end_speech_nor_a_blip_start_it() -> None:
    g = gate()
    g.feed([0.9] * 2 + [0.1] * 3 + [0.9] * 2)  # runs shorter than min_speech
    assert not g.in_speech
    g.feed([0.9] * 8)
    g.feed([0.1] * 10 + [0.9] + [0.1] * 10)  # a dip of 0.32 s, then one of 0.32 s
    assert g.in_speech


def test_has_speech_looks_a_margin_around_the_word() -> None:
    g = gate()
    g.feed([0.1] * 31 + [0.9] * 31 + [0.1] * 62)  # speech from ~1.0 s to ~2.0 s
    assert g.has_speech(1.2, 1.5)
    assert g.has_speech(2.1, 2.25)  # within 0.3 s of the speech
    assert not g.has_speech(2.6, 3.0)
    assert not g.has_speech(0.0, 0.6)
    assert not g.has_speech(5.0, 6.0)  # not heard yet


def test_forgotten_flags_are_gone_and_the_rest_answer_as_before() -> None:
    probs = ([0.9] * 31 + [0.1] * 31) * 300  # 10 minutes of 1 s speech, 1 s silence
    g, whole = gate(), gate()
    g.feed(probs)
    whole.feed(probs)
    g.forget_before(590.0)
    assert g.kept_frames * FRAME_S < 12.0 and whole.kept_frames == whole.frames
    for i in range(100):  # every word that can still be checked: from 590 s on
        start = 590.0 + i * 0.1
        assert g.has_speech(start, start + 0.2) == whole.has_speech(start, start + 0.2)
    assert any(g.has_speech(590.0 + i * 0.1, 590.2 + i * 0.1) for i in range(100))
    g.forget_before(10.0)  # never un-forgets
    assert g.kept_frames * FRAME_S < 12.0
