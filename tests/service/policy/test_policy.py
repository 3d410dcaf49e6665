"""The whole policy, driven with scripted engine output (no model), in the production
configuration: phases, the decodes it asks for, and the text it makes final."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from service.domain import Word
from service.engine import DecodeResult
from service.policy import (
    FRAME,
    SAMPLE_RATE,
    DecodeJob,
    Decoding,
    JobKind,
    Phase,
    Policy,
    PolicyConfig,
    ResultUpdate,
)
from tests.service.policy.scripted import (
    answer,
    decode_next,
    push,
    rel,
    result,
    run,
    utterance,
)

# ---- the phase machine ---------------------------------------------------


def phases(p: Policy) -> Phase:
    return p.phase  # a call, so that mypy does not narrow the property between steps


def decoding(p: Policy) -> Decoding:
    return p.decoding


def test_phases_follow_speech_pauses_and_the_end_of_the_stream(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    assert phases(p) is Phase.QUIET
    push(p, 1.0, speech=True)
    assert phases(p) is Phase.SPEAKING
    push(p, 0.6, speech=False)
    assert phases(p) is Phase.PAUSED
    push(p, 0.3, speech=True)  # speech again before the final decode: still one utterance
    assert phases(p) is Phase.SPEAKING
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    answer(p, job, ("Yes.", 0.2, 0.6))
    assert phases(p) is Phase.QUIET
    push(p, 1.0, speech=True)
    p.finish()
    assert phases(p) is Phase.ENDING  # an utterance is open: its final decode is due
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    answer(p, job)
    assert phases(p) is Phase.ENDED


def test_finishing_with_nothing_pending_goes_straight_to_ended(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 2.0, speech=False)
    p.finish()
    assert p.phase is Phase.ENDED and p.next_job() is None


def test_next_job_changes_nothing_job_started_does(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 1.0, speech=True)
    push(p, 0.6, speech=False)
    first, again = p.next_job(), p.next_job()
    assert first is not None and again is not None
    assert (first.kind, first.start_s, first.end_s) == (again.kind, again.start_s, again.end_s)
    assert p.phase is Phase.PAUSED and p.decoding is Decoding.NONE
    p.job_started(first)
    assert decoding(p) is Decoding.FIRST_PASS
    assert p.next_job() is None  # one decode of a stream at a time
    with pytest.raises(ValueError):
        p.job_started(again)
    p.on_result(first, result())
    assert decoding(p) is Decoding.NONE


def test_a_result_needs_its_job_started(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    with pytest.raises(ValueError):
        p.on_result(job, result())


def test_only_one_second_pass_is_in_flight(cfg: PolicyConfig) -> None:
    """Two complete sentences wait; while the first one's second pass runs, no job at all
    (the second pass of the next sentence waits for its result)."""
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    utterance(p, 2.0, ("Two.", 2.9, 3.3))
    assert p.second_pass.waiting == 2
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    p.job_started(job)
    assert p.decoding is Decoding.SECOND_PASS
    assert p.second_pass.waiting == 1
    assert p.next_job() is None
    push(p, 1.0, speech=True)  # speech goes on while the second pass runs
    assert p.next_job() is None
    p.on_result(job, result())
    job = p.next_job()
    assert job is not None and job.kind is JobKind.INTERIM  # speech first
    run(p, job, result())
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    run(p, job, result())
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE  # then "Two."


def test_speech_flags_stay_bounded_over_a_long_stream(cfg: PolicyConfig) -> None:
    """Ten minutes of speech and pauses: the gate keeps only the flags of the window."""
    p = Policy(cfg)
    for _ in range(120):
        push(p, 4.0, speech=True)
        job = p.next_job()
        assert job is not None
        run(p, job, result())
        push(p, 1.0, speech=False)
        while (job := p.next_job()) is not None:
            run(p, job, result())
    assert p.gate.frames > 18000
    assert p.gate.kept_frames * FRAME / SAMPLE_RATE < cfg.max_buffer_s + 2.0


# ---- first pass ----------------------------------------------------------


def test_silence_never_decodes_and_keeps_only_a_preroll(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    for _ in range(60):
        push(p, 1.0, speech=False)
        assert p.next_job() is None
    assert len(p.window.audio) <= (cfg.preroll_s + cfg.min_speech_s) * SAMPLE_RATE + FRAME
    p.finish()
    assert p.next_job() is None


def test_local_agreement_commits_the_common_prefix_and_trims_at_a_sentence_end(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)
    events = push(p, 1.0, speech=True)
    assert events and events[0].begin
    job = p.next_job()
    assert job is not None and job.kind is JobKind.INTERIM and job.beam_size == cfg.interim_beam
    ups = answer(p, job, ("Hello", 0.1, 0.4), ("word", 0.5, 0.9))
    assert [u.is_final for u in ups] == [False]
    assert ups[0].stability < 0.2  # nothing agreed yet
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = answer(p, job, ("Hello", 0.1, 0.4), ("world.", 0.5, 0.9), ("How", 1.2, 1.5))
    # "Hello" agreed and final at once; "word" vs "world." disagree: tentative.
    assert [(u.is_final, u.text) for u in ups] == [(True, "Hello"), (False, "world. How")]
    assert ups[0].segment_index == 0
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = answer(
        p, job, ("world.", 0.5, 0.9), ("How", 1.2, 1.5), ("are", 1.6, 1.9), ("you", 2.1, 2.4)
    )
    finals = [u for u in ups if u.is_final]
    assert [(u.text, u.segment_index) for u in finals] == [("world. How", 1)]
    # The buffer now starts at the end of the sentence: it is never decoded again.
    assert abs(p.window.start / SAMPLE_RATE - 0.9) < 0.01
    interim = next(u for u in ups if not u.is_final)
    assert interim.text == "are you"
    assert interim.stability > finals[0].stability


def test_endpoint_finalizes_the_utterance_with_the_final_beam_and_no_repeats(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    answer(p, job, ("one", 0.1, 0.3), ("two", 0.4, 0.7))
    push(p, 0.3, speech=True)
    assert p.next_job() is None  # less than min_step of new audio
    events = push(p, 0.7, speech=False)
    assert any(not e.begin for e in events)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL and job.beam_size == cfg.final_beam
    ups = answer(p, job, ("one", 0.1, 0.3), ("two", 0.4, 0.7), ("three", 0.8, 1.2))
    assert [(u.is_final, u.text) for u in ups] == [(True, "one two three")]
    # Next utterance: a decode that repeats the previous final's words does not repeat them.
    ups = decode_next(p, 1.0, ("three", 0.8, 1.2), ("four", 2.1, 2.5))
    assert all("three" not in u.text for u in ups)


def test_a_lone_stream_decodes_with_its_beams_a_shared_one_with_the_shared_beam(
    cfg: PolicyConfig,
) -> None:
    """Alone, the wide beam decides the final text; shared, one beam keeps one generate call.
    (The final beam differs from the interim one here so that each job's beam tells which
    it took; the jobs are only asked for, never run.)"""
    p = Policy(replace(cfg, final_beam=cfg.interim_beam - 1))
    assert cfg.shared_beam not in (cfg.interim_beam, cfg.interim_beam - 1)
    push(p, 1.0, speech=True)
    job = p.next_job(shared=False)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.INTERIM, cfg.interim_beam)
    push(p, 1.0, speech=True)
    job = p.next_job(shared=True)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.INTERIM, cfg.shared_beam)
    push(p, 1.0, speech=False)
    job = p.next_job(shared=True)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.FINAL, cfg.shared_beam)
    p.finish()
    job = p.next_job(shared=False)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.FINAL, cfg.interim_beam - 1)


def test_a_long_repeat_of_committed_words_is_dropped_a_short_one_kept(cfg: PolicyConfig) -> None:
    """Whisper sometimes says the committed words again over new audio (prompt loop)."""
    p = Policy(cfg)
    push(p, 3.0, speech=True)
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    said = [("became", 0.1, 0.5), ("lawless", 0.6, 1.0), ("in", 1.1, 1.2), ("the", 1.3, 1.4),
            ("extreme.", 1.5, 2.0)]  # fmt: skip
    answer(p, job, *said)
    again = [(t, 3.6 + s, 3.6 + e) for t, s, e in said]
    ups = decode_next(p, 3.0, *again, ("meanwhile", 5.8, 6.2))
    assert all("lawless" not in u.text for u in ups) and "meanwhile" in ups[-1].text
    # "the extreme" again, seconds later: maybe said twice; kept
    ups = decode_next(p, 3.0, ("the", 8.6, 8.8), ("extreme.", 8.9, 9.4))
    assert ups and "the extreme." in ups[-1].text


def test_words_outside_speech_and_no_speech_decodes_are_dropped(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    push(p, 1.0, speech=True)
    push(p, 2.0, speech=False)  # endpoint inside
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    # "Thank you." placed in the silent part is a hallucination.
    ups = answer(p, job, ("Yes.", 0.2, 0.6), ("Thank", 2.4, 2.6), ("you.", 2.6, 2.9))
    assert [u.text for u in ups] == ["Yes."]
    p2 = Policy(cfg)
    push(p2, 1.0, speech=True)
    job = p2.next_job()
    assert job is not None
    bad = DecodeResult((Word("you", 0.0, 0.9, 0.2),), 0.95, -1.6)
    assert run(p2, job, bad) == []


def test_a_decode_looping_past_the_audio_keeps_its_real_words(cfg: PolicyConfig) -> None:
    """Seen on the long recordings: the final decode said the whole buffer again where the
    speech stopped, in zero-length words; judged on the whole text the loop cost the
    utterance."""
    p = Policy(cfg)
    push(p, 3.0, speech=True)
    push(p, 1.0, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    said = ["entirely", "new", "lines", "of", "procedure."]
    real = [(w, 0.2 + 0.5 * i, 0.6 + 0.5 * i) for i, w in enumerate(said)]
    end = real[-1][2]  # where the speech stops, 1.4 s before the audio ends
    loop = [(w, end, end) for w in said * 4]
    ups = run(p, job, result(*real, *loop))
    assert [(u.is_final, u.text) for u in ups] == [(True, "entirely new lines of procedure.")]
    # The same loop spread over the speech (not past its end) is still dropped whole.
    push(p, 4.0, speech=True)
    push(p, 1.0, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    spread = [(w, 0.1 + 0.15 * i, 0.2 + 0.15 * i) for i, w in enumerate(said * 5)]
    assert run(p, job, result(*spread)) == []


def test_an_unsure_final_decode_of_the_leftover_tail_adds_nothing(cfg: PolicyConfig) -> None:
    """Seen on the long recordings: 'Psalm 55.' was final, and the final decode of the
    second left after it heard 'Five, five.' (avg log-prob -1.33)."""
    p = Policy(cfg)
    ups = decode_next(p, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    ups = decode_next(p, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    assert [u.text for u in ups if u.is_final] == ["Psalm 55."]
    push(p, 1.0, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    tail = [Word("Five,", rel(job, 0.65), rel(job, 0.8), 0.3),
            Word("five.", rel(job, 0.8), rel(job, 1.0), 0.3)]  # fmt: skip
    assert run(p, job, DecodeResult(tuple(tail), 0.16, -1.33)) == []
    # The same words decoded with confidence are kept: a short last word is real speech.
    p2 = Policy(cfg)
    decode_next(p2, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    decode_next(p2, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    push(p2, 1.0, speech=False)
    job = p2.next_job()
    assert job is not None
    tail = [Word("Yes.", rel(job, 0.7), rel(job, 1.0), 0.9)]
    ups = run(p2, job, DecodeResult(tuple(tail), 0.1, -0.4))
    assert [u.text for u in ups] == ["Yes."]


def test_buffer_stays_bounded_during_endless_speech(cfg: PolicyConfig) -> None:
    p = Policy(cfg)
    finals = []
    longest = 0.0
    for second in range(120):
        push(p, 1.0, speech=True)
        job = p.next_job()
        if job is None:
            continue
        longest = max(longest, len(job.audio) / SAMPLE_RATE)
        # The model always hears a new word every 0.5 s, each decode differing in its last word.
        start = job.start_s
        words = []
        t = np.ceil(start * 2) / 2
        while t + 0.4 <= job.end_s:
            words.append((f"w{int(t * 2)}", t - start, t + 0.4 - start))
            t += 0.5
        if words:
            words[-1] = (f"x{second}", words[-1][1], words[-1][2])
        for u in run(p, job, result(*words)):
            if u.is_final:
                finals.append(u)
    assert longest <= cfg.max_buffer_s + 1.0
    texts = " ".join(u.text for u in finals).split()
    assert len(texts) == len(set(texts)), "no word is finalized twice"
    assert len(texts) > 150  # most of the 240 words made it into finals


def test_agreed_words_are_final_at_once_but_audio_stays_until_a_sentence_ends(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)
    decode_next(p, 1.0, ("We", 0.1, 0.3), ("can", 0.4, 0.6))
    ups = decode_next(p, 1.0, ("We", 0.1, 0.3), ("can", 0.4, 0.6), ("go", 0.7, 1.2))
    assert [(u.is_final, u.text) for u in ups] == [(True, "We can"), (False, "go")]
    assert p.window.start == 0  # no sentence end yet: the audio stays for context
    ups = decode_next(
        p,
        1.0,
        ("We", 0.1, 0.3),
        ("can", 0.4, 0.6),
        ("go", 0.7, 1.2),
        ("home.", 1.3, 1.8),
        ("Now", 2.2, 2.5),
    )
    # "We can" is not repeated; "go" was agreed and is now final; the buffer is unchanged
    # because "home." is only tentative.
    assert [(u.is_final, u.text) for u in ups] == [(True, "go"), (False, "home. Now")]
    ups = decode_next(
        p,
        1.0,
        ("We", 0.1, 0.3),
        ("can", 0.4, 0.6),
        ("go", 0.7, 1.2),
        ("home.", 1.3, 1.8),
        ("Now", 2.2, 2.5),
        ("then", 2.6, 3.0),
    )
    assert [(u.is_final, u.text) for u in ups] == [(True, "home. Now"), (False, "then")]
    assert abs(p.window.start / SAMPLE_RATE - 1.8) < 0.01  # trimmed at the sentence end
    assert p.window.context == "We can go home."  # what left the buffer primes the decoder
    assert [u.segment_index for u in ups if u.is_final] == [2]


def test_a_resumed_stream_continues_the_clock_and_the_segment_indexes(cfg: PolicyConfig) -> None:
    p = Policy(cfg, start_offset_s=100.0, first_segment_index=7)
    events = push(p, 1.0, speech=True)
    assert events[0].begin and 100.0 <= events[0].offset_s < 100.1
    ups = utterance(p, 1.0, ("Again.", 100.2, 100.8))
    assert [(u.text, u.segment_index, u.start_s) for u in ups] == [("Again.", 7, 100.2)]
    assert p.origin_s == 100.0 and p.received_s == pytest.approx(2.6, abs=0.01)


# ---- second pass ---------------------------------------------------------


def test_a_complete_sentence_is_decoded_again_after_the_one_before_and_changes_are_revisions(
    cfg: PolicyConfig,
) -> None:
    """The first pass heard "not with standing" without the sentence before it; the second
    pass hears both, and only the segment whose text changes is sent again."""
    p = Policy(cfg)
    first = utterance(p, 2.0, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe.", 1.0, 1.6))
    assert [(u.text, u.segment_index, u.revision) for u in first] == [("Keep it safe.", 0, 0)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE and job.beam_size == cfg.final_beam
    assert len(job.audio) == round((job.end_s - job.start_s) * SAMPLE_RATE)
    same = answer(p, job, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe.", 1.0, 1.6))
    assert same == []  # nothing changed: nothing sent
    assert p.next_job() is None
    second = utterance(
        p, 2.0, ("Yet", 2.9, 3.1), ("not", 3.2, 3.4), ("with", 3.4, 3.6), ("standing.", 3.6, 4.2)
    )
    assert [(u.text, u.segment_index) for u in second] == [("Yet not with standing.", 1)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    assert job.start_s <= 0.4  # the sentence before is in the window
    assert job.end_s == p.received_s
    revised = answer(
        p,
        job,
        ("Keep", 0.4, 0.7),
        ("it", 0.8, 0.9),
        ("safe.", 1.0, 1.6),
        ("Yet", 2.9, 3.1),
        ("notwithstanding.", 3.2, 4.2),
    )
    assert [(u.text, u.segment_index, u.revision, u.is_final) for u in revised] == [
        ("Yet notwithstanding.", 1, 1, True)
    ]
    assert revised[0].start_s == 2.9 and revised[0].end_s == 4.2
    assert p.next_job() is None


def test_a_sentence_in_several_segments_keeps_its_segments_when_revised(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)

    def finals(ups: list[ResultUpdate]) -> list[tuple[str, int]]:
        return [(u.text, u.segment_index) for u in ups if u.is_final]

    assert finals(decode_next(p, 1.0, ("Hello", 0.1, 0.4))) == []
    assert finals(decode_next(p, 1.0, ("Hello", 0.1, 0.4), ("word", 0.5, 0.8))) == [("Hello", 0)]
    ups = decode_next(p, 1.0, ("Hello", 0.1, 0.4), ("word", 0.5, 0.8), ("there.", 0.9, 1.2))
    assert finals(ups) == [("word", 1)]
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    assert finals(answer(p, job, ("there.", 0.9, 1.2))) == [("there.", 2)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    ups = answer(p, job, ("Hello,", 0.1, 0.4), ("world", 0.5, 0.8), ("there.", 0.9, 1.2))
    assert [(u.text, u.segment_index, u.revision) for u in ups] == [
        ("Hello,", 0, 1),
        ("world", 1, 1),
    ]


def test_a_second_pass_that_loops_is_unsure_or_unlike_the_sentence_changes_nothing(
    cfg: PolicyConfig,
) -> None:
    def after_one_sentence() -> tuple[Policy, DecodeJob]:
        p = Policy(cfg)
        utterance(p, 2.0, ("The", 0.4, 0.6), ("cap", 0.7, 1.0), ("fits.", 1.1, 1.6))
        job = p.next_job()
        assert job is not None and job.kind is JobKind.REVISE
        return p, job

    p, job = after_one_sentence()  # something else entirely: a misalignment, not a correction
    assert answer(p, job, ("Thank", 0.4, 0.9), ("you", 1.0, 1.2), ("all.", 1.2, 1.6)) == []
    p, job = after_one_sentence()  # the model unsure of the whole decode
    unsure = DecodeResult(tuple(Word(t, rel(job, s), rel(job, e), 0.3) for t, s, e in [
        ("The", 0.4, 0.6), ("cat", 0.7, 1.0), ("fits.", 1.1, 1.6)]), 0.01, -1.3)  # fmt: skip
    assert run(p, job, unsure) == []
    p, job = after_one_sentence()  # a loop past the speech, zero-length words
    end = job.end_s - 0.3
    looped = [("The", 0.4, 0.6), ("cat", 0.7, 1.0), ("fits.", 1.1, 1.6)]
    looped += [(w, end, end) for w in ("The", "cat", "fits.")] * 3
    assert [u.text for u in answer(p, job, *looped)] == ["The cat fits."]
    p, job = after_one_sentence()  # and one that only repeats what the first pass heard
    assert answer(p, job, ("The", 0.4, 0.6), ("cap", 0.7, 1.0), ("fits.", 1.1, 1.6)) == []


def test_the_end_of_a_stream_runs_its_final_decode_then_every_second_pass(
    cfg: PolicyConfig,
) -> None:
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    push(p, 2.0, speech=True)
    p.finish()
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    assert [u.text for u in answer(p, job, ("Two", 2.8, 3.2))] == ["Two"]
    kinds = []
    while (job := p.next_job()) is not None:
        kinds.append(job.kind)
        answer(p, job)
    assert kinds == [JobKind.REVISE, JobKind.REVISE]  # "One." and "Two", each once


def test_no_second_pass_when_revisions_are_off(cfg: PolicyConfig) -> None:
    p = Policy(replace(cfg, revise=False))
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    assert p.next_job() is None
    p.finish()
    assert p.next_job() is None


def test_a_segment_whose_words_merge_into_a_neighbours_keeps_a_word_of_it(
    cfg: PolicyConfig,
) -> None:
    """ "not with" | "standing" heard as "notwithstanding": no segment may end up empty."""
    p = Policy(cfg)
    ups = decode_next(p, 1.0, ("Yet", 0.1, 0.3), ("not", 0.4, 0.6))
    ups += decode_next(p, 1.0, ("Yet", 0.1, 0.3), ("not", 0.4, 0.6), ("with", 0.6, 0.8))
    ups += decode_next(
        p, 1.0, ("not", 0.4, 0.6), ("with", 0.6, 0.8), ("standing", 0.8, 1.2), ("it", 1.3, 1.4)
    )
    assert [(u.text, u.segment_index) for u in ups if u.is_final] == [("Yet not", 0), ("with", 1)]
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    answer(p, job, ("standing", 0.8, 1.2), ("it", 1.3, 1.4), ("was.", 1.5, 1.8))
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE
    ups = answer(
        p,
        job,
        ("Yet", 0.1, 0.3),
        ("notwithstanding", 0.4, 1.2),
        ("it", 1.3, 1.4),
        ("was.", 1.5, 1.8),
    )
    assert [(u.segment_index, u.text) for u in ups] == [
        (0, "Yet"),
        (1, "notwithstanding"),
        (2, "it was."),
    ]


def test_no_second_pass_while_streams_share_the_model(cfg: PolicyConfig) -> None:
    """A second pass's long window would pad every stream's encoder input in a shared batch."""
    p = Policy(cfg)
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    assert p.next_job(shared=True) is None
    job = p.next_job(shared=False)  # alone again: the sentence gets its second pass
    assert job is not None and job.kind is JobKind.REVISE
    answer(p, job, ("One.", 0.4, 0.8))
    utterance(p, 2.0, ("Two.", 2.8, 3.2))
    p.finish()
    assert p.next_job(shared=True) is None  # ending under load: the first pass stands


def test_sentences_waiting_for_a_second_pass_stay_bounded_while_the_model_is_shared(
    cfg: PolicyConfig,
) -> None:
    """Ten minutes of sentences under load: those whose audio left the history are dropped."""
    p = Policy(cfg)
    for i in range(230):  # whole VAD frames, so that the frames keep pace with the audio
        push(p, 64 * FRAME / SAMPLE_RATE, speech=True)
        job = p.next_job(shared=True)
        assert job is not None and job.kind is JobKind.INTERIM
        run(p, job, result())
        push(p, 20 * FRAME / SAMPLE_RATE, speech=False)
        job = p.next_job(shared=True)
        assert job is not None and job.kind is JobKind.FINAL
        ups = answer(p, job, (f"Number {i}.", job.end_s - 2.2, job.end_s - 1.0))
        assert [u.text for u in ups] == [f"Number {i}."]
    assert p.second_pass.waiting <= 12  # 30 s of history / 2.7 s per sentence
    job = p.next_job(shared=False)  # alone again: only a recent sentence gets a second pass
    assert job is not None and job.kind is JobKind.REVISE
    assert job.end_s - job.start_s <= 20.0
