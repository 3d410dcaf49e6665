"""The first pass through the whole policy (scripted engine output, production configuration):
when it decodes, what it commits and makes final, what it drops as hallucination."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from service.domain import Word
from service.engine import DecodeResult
from service.policy import (
    FRAME,
    SAMPLE_RATE,
    JobKind,
    Policy,
    PolicyConfig,
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
