"""Turn passes (service/policy/turns.py): when a turn ends, it is decoded once more whole,
as offline Whisper decodes a window, after its sentences' second passes; scripted engine
output, production configuration with `revise_turns` on (base's default)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from service.audio import SAMPLE_RATE
from service.domain import Word
from service.policy import JobKind, Policy, PolicyConfig, ResultUpdate
from service.policy.revise import align_revision
from service.policy.turns import TURN_MAX_S, TURN_PAUSE_S, TurnPass
from service.policy.window import History
from tests.service.policy.scripted import answer, push, utterance


@pytest.fixture
def turns_cfg(cfg: PolicyConfig) -> PolicyConfig:
    return replace(cfg, revise_turns=True)


def segment(index: int, *said: tuple[str, float, float], revision: int = 0) -> ResultUpdate:
    words = tuple(Word(t, s, e, 0.9) for t, s, e in said)
    return ResultUpdate(words, True, 0.0, index, revision)


def history(seconds: float, start_s: float = 0.0) -> History:
    h = History(start_s, 40.0)
    h.append(np.zeros(round(seconds * SAMPLE_RATE), np.float32))
    return h


def two_sentences_with_a_pause_seam(p: Policy) -> None:
    """A reader pauses inside "die Sedimente im Fluss verteilen": the pause makes a final,
    and the words after it are heard without those before. Each sentence's second pass
    hears the same as the first pass (nothing sent)."""
    first = utterance(p, 2.0, ("Die", 0.4, 0.6), ("Sedimente.", 0.7, 1.5))
    assert [(u.text, u.segment_index) for u in first] == [("Die Sedimente.", 0)]
    job = p.next_job()
    assert job is not None and job.target is not None and not job.target.turn
    assert answer(p, job, ("Die", 0.4, 0.6), ("Sedimente.", 0.7, 1.5)) == []
    second = utterance(p, 1.6, ("Influss", 2.8, 3.4), ("fatellen.", 3.4, 3.9))
    assert [(u.text, u.segment_index) for u in second] == [("Influss fatellen.", 1)]
    job = p.next_job()
    assert job is not None and job.target is not None and not job.target.turn
    assert answer(p, job, ("Influss", 2.8, 3.4), ("fatellen.", 3.4, 3.9)) == []


def test_a_turn_is_decoded_whole_after_a_long_pause_and_its_changes_are_revisions(
    turns_cfg: PolicyConfig,
) -> None:
    p = Policy(turns_cfg)
    two_sentences_with_a_pause_seam(p)
    assert p.next_job() is None  # a short pause: the turn goes on
    push(p, TURN_PAUSE_S, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    assert job.target is not None and job.target.turn
    assert job.request().whole  # decoded as offline Whisper decodes a window
    assert job.beam_size == turns_cfg.revise_beam
    assert job.start_s == 0.0  # the silence before it since the stream's start, as offline
    assert job.end_s >= 3.9 + TURN_PAUSE_S - 0.1  # to where nothing more was said
    revised = answer(
        p,
        job,
        ("Die", 0.4, 0.6),
        ("Sedimente", 0.7, 1.5),
        ("im", 2.8, 3.0),
        ("Fluss", 3.0, 3.4),
        ("verteilen.", 3.4, 3.9),
    )
    assert [(u.text, u.segment_index, u.revision) for u in revised] == [
        ("Die Sedimente", 0, 1),
        ("im Fluss verteilen.", 1, 1),
    ]
    assert p.next_job() is None  # once per turn


def test_a_segment_revised_by_its_sentence_is_revised_again_one_higher(
    turns_cfg: PolicyConfig,
) -> None:
    p = Policy(turns_cfg)
    utterance(p, 2.0, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("save.", 1.0, 1.6))
    job = p.next_job()
    assert job is not None and job.target is not None and not job.target.turn
    sentence = answer(p, job, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe.", 1.0, 1.6))
    assert [(u.text, u.revision) for u in sentence] == [("Keep it safe.", 1)]
    p.finish()  # the stream's end ends the turn
    job = p.next_job()
    assert job is not None and job.target is not None and job.target.turn
    assert job.target.unit[0].text == "Keep it safe."  # the turn holds the revised text
    turn = answer(p, job, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe,", 1.0, 1.4))
    assert [(u.text, u.segment_index, u.revision) for u in turn] == [("Keep it safe,", 0, 2)]
    assert p.next_job() is None


def test_words_after_the_last_first_pass_word_are_the_turns() -> None:
    """The first pass timed "ein Pub" to end early; a sentence's second pass takes only the
    decoded words that end by then (its window runs on into the next sentence), a turn's
    pass every word its audio holds."""
    first = [Word("wenn", 0.0, 0.3, 0.9), Word("es", 0.3, 0.5, 0.9), Word("ein", 0.5, 0.7, 0.9)]
    decoded = [
        Word("wenn", 0.0, 0.3, 0.9),
        Word("es", 0.3, 0.5, 0.9),
        Word("ein", 0.5, 0.7, 0.9),
        Word("Publikum", 0.8, 1.3, 0.9),
        Word("gibt.", 1.3, 1.6, 0.9),
    ]
    sentence = align_revision((), first, decoded)
    assert sentence is not None and [w.text for w, _ in sentence] == ["wenn", "es", "ein"]
    turn = align_revision((), first, decoded, whole=True)
    assert turn is not None
    assert [(w.text, k) for w, k in turn] == [
        ("wenn", 0), ("es", 1), ("ein", 2), ("Publikum", 2), ("gibt.", 2)
    ]  # fmt: skip


def test_a_long_pause_ends_a_turn_and_speech_too_long_for_one_gets_no_pass(
    turns_cfg: PolicyConfig,
) -> None:
    """Speech that runs on past TURN_MAX_S without a pause is not cut into turns (a cut
    without a pause falls inside words): it stands, and the turn after the next pause
    is decoded with it as previous text."""
    turns = TurnPass()
    turns.add_final(segment(0, ("One.", 0.0, 1.0)))
    turns.add_final(segment(1, ("Two.", 1.0 + TURN_PAUSE_S - 0.5, 2.0 + TURN_PAUSE_S)))
    assert turns.waiting == 0
    t = 4.0 + 2 * TURN_PAUSE_S
    turns.add_final(segment(2, ("Three.", t, t + 1.0)))
    assert turns.waiting == 1  # "One. Two." ended at the pause
    turns.add_final(segment(3, ("Four.", t + 1.0, t + TURN_MAX_S)))  # on, without a pause
    turns.add_final(segment(4, ("Five.", t + TURN_MAX_S, t + TURN_MAX_S + 1.0)))
    turns.quiet(t + TURN_MAX_S + 1.0 + TURN_PAUSE_S)
    assert turns.waiting == 1  # "Three. Four. Five." was too long for a pass
    u = t + TURN_MAX_S + 2.0 + 2 * TURN_PAUSE_S
    turns.add_final(segment(5, ("Six.", u, u + 1.0)))
    turns.quiet(u + 1.0 + TURN_PAUSE_S)
    assert turns.waiting == 2
    h = history(40.0, start_s=u + 1.0 + TURN_PAUSE_S - 40.0)
    job = turns.job(h, h.start_s + h.seconds, turns_cfg)
    assert job is not None and job.target is not None
    assert [u.segment_index for u in job.target.unit] == [5]  # "One. Two." left the history
    assert "Three. Four. Five." in job.context
    assert job.start_s >= t + TURN_MAX_S + 1.0 + TURN_PAUSE_S - 0.01  # after the long speech


def test_a_turn_whose_audio_left_the_history_stands(turns_cfg: PolicyConfig) -> None:
    turns = TurnPass()
    turns.add_final(segment(0, ("Old.", 1.0, 2.0)))
    turns.quiet(2.0 + TURN_PAUSE_S)
    turns.add_final(segment(1, ("New.", 30.0, 31.0)))
    turns.quiet(31.0 + TURN_PAUSE_S)
    assert turns.waiting == 2
    h = history(30.0, start_s=5.0)  # 5-35 s: "Old." is gone
    job = turns.job(h, 35.0, turns_cfg)
    assert job is not None and job.target is not None
    assert [u.text for u in job.target.unit] == ["New."]
    assert [[u.text for u in t] for t in job.target.skipped] == [["Old."]]
    assert "Old." in job.context  # what was said before is the pass's previous text
    turns.start(job.target)
    assert turns.waiting == 0


def test_no_turn_pass_while_streams_share_the_model_or_without_the_setting(
    cfg: PolicyConfig, turns_cfg: PolicyConfig
) -> None:
    for c in (cfg, turns_cfg):
        p = Policy(c)
        utterance(p, 2.0, ("Keep", 0.4, 0.7), ("it.", 0.8, 1.6))
        job = p.next_job()
        assert job is not None and job.target is not None and not job.target.turn
        answer(p, job, ("Keep", 0.4, 0.7), ("it.", 0.8, 1.6))
        push(p, TURN_PAUSE_S, speech=False)
        assert p.next_job(shared=True) is None
        job = p.next_job()
        assert (job is not None) is c.revise_turns


def test_turns_waiting_stay_bounded_while_the_model_is_shared(turns_cfg: PolicyConfig) -> None:
    """Shared, no turn gets its pass; turns whose audio left the history are let go."""
    p = Policy(turns_cfg)
    for i in range(30):
        t = p.received_s
        utterance(p, 1.0, (f"Word{i}.", t + 0.2, t + 0.9))
        push(p, TURN_PAUSE_S, speech=False)
        assert p.next_job(shared=True) is None
    assert p.received_s > 80.0
    assert p.turn_pass is not None
    assert 0 < p.turn_pass.waiting <= 40.0 / (1.0 + 0.6 + TURN_PAUSE_S) + 1
