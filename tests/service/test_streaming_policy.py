"""The streaming policy alone, driven with scripted engine output (no model)."""

from __future__ import annotations

import numpy as np

from service.domain import Word
from service.engine import DecodeResult
from service.streaming import (
    FRAME,
    SAMPLE_RATE,
    DecodeJob,
    JobKind,
    PolicyConfig,
    ResultUpdate,
    StreamingPolicy,
    align_revision,
)


def result(*words: tuple[str, float, float], no_speech: float = 0.01) -> DecodeResult:
    """Engine output with word times relative to the job's audio start."""
    return DecodeResult(tuple(Word(t, s, e, 0.9) for t, s, e in words), no_speech, -0.2)


def push(policy: StreamingPolicy, seconds: float, speech: bool) -> list[object]:
    n = int(seconds * SAMPLE_RATE)
    frames = n // FRAME
    return list(policy.push(np.zeros(n, np.float32), [0.9 if speech else 0.05] * frames))


def rel(job: DecodeJob, t: float) -> float:
    """Absolute stream time t relative to the job's audio."""
    return t - job.start_s


def decode_next(
    policy: StreamingPolicy, seconds: float, *words: tuple[str, float, float]
) -> list[ResultUpdate]:
    """`seconds` more speech, then the next decode answered with words at stream times."""
    push(policy, seconds, speech=True)
    job = policy.next_job()
    assert job is not None
    return policy.on_result(job, result(*[(t, rel(job, s), rel(job, e)) for t, s, e in words]))


def test_silence_never_decodes_and_keeps_only_a_preroll() -> None:
    p = StreamingPolicy(PolicyConfig())
    for _ in range(60):
        push(p, 1.0, speech=False)
        assert p.next_job() is None
    assert len(p._audio) <= (p.cfg.preroll_s + p.cfg.min_speech_s) * SAMPLE_RATE + FRAME
    assert p.finish_job() is None


def test_local_agreement_commits_the_common_prefix_then_finalizes_sentences() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, final_on_commit=False))
    events = push(p, 1.0, speech=True)
    assert events and events[0].begin  # type: ignore[attr-defined]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.INTERIM and job.beam_size == 1
    ups = p.on_result(job, result(("Hello", 0.1, 0.4), ("word", 0.5, 0.9)))
    assert [u.is_final for u in ups] == [False]
    assert ups[0].stability < 0.2  # nothing agreed yet
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = p.on_result(
        job, result(("Hello", 0.1, 0.4), ("world.", 0.5, 0.9), ("How", 1.2, 1.5), ("are", 1.6, 1.9))
    )
    # "Hello" agreed; "word" vs "world." disagree: nothing else committed, nothing final yet.
    assert [u.is_final for u in ups] == [False]
    assert ups[0].text == "Hello world. How are"
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = p.on_result(
        job,
        result(
            ("Hello", 0.1, 0.4),
            ("world.", 0.5, 0.9),
            ("How", 1.2, 1.5),
            ("are", 1.6, 1.9),
            ("you", 2.1, 2.4),
        ),
    )
    finals = [u for u in ups if u.is_final]
    assert [u.text for u in finals] == ["Hello world."]
    assert finals[0].segment_index == 0
    # The buffer now starts at the end of the final sentence: it is never decoded again.
    assert abs(p._buf_start / SAMPLE_RATE - 0.9) < 0.01
    interim = next(u for u in ups if not u.is_final)
    assert interim.text == "How are you"
    assert interim.stability > finals[0].stability


def test_endpoint_finalizes_the_utterance_with_the_final_beam_and_no_repeats() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, silence_s=0.5, final_beam=5))
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    p.on_result(job, result(("one", 0.1, 0.3), ("two", 0.4, 0.7)))
    push(p, 0.3, speech=True)
    assert p.next_job() is None  # less than min_step of new audio
    events = push(p, 0.7, speech=False)
    assert any(not e.begin for e in events)  # type: ignore[attr-defined]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL and job.beam_size == 5
    ups = p.on_result(job, result(("one", 0.1, 0.3), ("two", 0.4, 0.7), ("three", 0.8, 1.2)))
    assert [(u.is_final, u.text) for u in ups] == [(True, "one two three")]
    # Next utterance: a decode that repeats the previous final's words does not repeat them.
    ups = decode_next(p, 1.0, ("three", 0.8, 1.2), ("four", 2.1, 2.5))
    assert all("three" not in u.text for u in ups)


def test_a_lone_stream_decodes_with_its_beams_a_shared_one_with_the_shared_beam() -> None:
    """Alone, the wide beam decides the final text; shared, one beam keeps one generate call."""
    cfg = PolicyConfig(min_step_s=1.0, shared_step_s=1.0, interim_beam=5, final_beam=4,
                       shared_beam=2)  # fmt: skip
    p = StreamingPolicy(cfg)
    push(p, 1.0, speech=True)
    job = p.next_job(shared=False)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.INTERIM, 5)
    push(p, 1.0, speech=True)
    job = p.next_job(shared=True)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.INTERIM, 2)
    push(p, 1.0, speech=False)
    job = p.next_job(shared=True)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.FINAL, 2)
    job = p.finish_job(shared=False)
    assert job is not None and (job.kind, job.beam_size) == (JobKind.FINAL, 4)


def test_a_long_repeat_of_committed_words_is_dropped_a_short_one_kept() -> None:
    """Whisper sometimes says the committed words again over new audio (prompt loop)."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, silence_s=0.5))
    push(p, 3.0, speech=True)
    said = [("became", 0.1, 0.5), ("lawless", 0.6, 1.0), ("in", 1.1, 1.2), ("the", 1.3, 1.4),
            ("extreme.", 1.5, 2.0)]  # fmt: skip
    p.on_result(p._job(JobKind.FINAL), result(*said))
    again = [(t, 3.0 + s, 3.0 + e) for t, s, e in said]
    ups = decode_next(p, 3.0, *again, ("meanwhile", 5.2, 5.6))
    assert all("lawless" not in u.text for u in ups) and "meanwhile" in ups[-1].text
    # "the extreme" again, seconds later: maybe said twice; kept
    ups = decode_next(p, 3.0, ("the", 8.0, 8.2), ("extreme.", 8.3, 8.8))
    assert ups and "the extreme." in ups[-1].text


def test_words_outside_speech_and_no_speech_decodes_are_dropped() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
    push(p, 1.0, speech=True)
    push(p, 2.0, speech=False)  # endpoint inside
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    # "Thank you." placed in the silent part is a hallucination.
    ups = p.on_result(
        job,
        result(
            ("Yes.", rel(job, 0.2), rel(job, 0.6)),
            ("Thank", rel(job, 2.4), rel(job, 2.6)),
            ("you.", rel(job, 2.6), rel(job, 2.9)),
        ),
    )
    assert [u.text for u in ups] == ["Yes."]
    p2 = StreamingPolicy(PolicyConfig(min_step_s=1.0))
    push(p2, 1.0, speech=True)
    job = p2.next_job()
    assert job is not None
    bad = DecodeResult((Word("you", 0.0, 0.9, 0.2),), 0.95, -1.6)
    assert p2.on_result(job, bad) == []


def test_a_decode_looping_past_the_audio_keeps_its_real_words() -> None:
    """Seen on the long recordings: the final decode said the whole buffer again where the
    speech stopped, in zero-length words; judged on the whole text the loop cost the
    utterance."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, silence_s=0.5))
    push(p, 3.0, speech=True)
    push(p, 1.0, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    said = ["entirely", "new", "lines", "of", "procedure."]
    real = [(w, 0.2 + 0.5 * i, 0.6 + 0.5 * i) for i, w in enumerate(said)]
    end = real[-1][2]  # where the speech stops, 1.4 s before the audio ends
    loop = [(w, end, end) for w in said * 4]
    ups = p.on_result(job, result(*real, *loop))
    assert [(u.is_final, u.text) for u in ups] == [(True, "entirely new lines of procedure.")]
    # The same loop spread over the speech (not past its end) is still dropped whole.
    push(p, 4.0, speech=True)
    push(p, 1.0, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    spread = [(w, 0.1 + 0.15 * i, 0.2 + 0.15 * i) for i, w in enumerate(said * 5)]
    assert p.on_result(job, result(*spread)) == []


def test_an_unsure_final_decode_of_the_leftover_tail_adds_nothing() -> None:
    """Seen on the long recordings: 'Psalm 55.' was final, and the final decode of the
    second left after it heard 'Five, five.' (avg log-prob -1.33)."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, silence_s=0.5))
    ups = decode_next(p, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    ups = decode_next(p, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    assert [u.text for u in ups if u.is_final] == ["Psalm 55."]
    push(p, 1.0, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    tail = [Word("Five,", rel(job, 0.65), rel(job, 0.8), 0.3),
            Word("five.", rel(job, 0.8), rel(job, 1.0), 0.3)]  # fmt: skip
    assert p.on_result(job, DecodeResult(tuple(tail), 0.16, -1.33)) == []
    # The same words decoded with confidence are kept: a short last word is real speech.
    p2 = StreamingPolicy(PolicyConfig(min_step_s=1.0, silence_s=0.5))
    decode_next(p2, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    decode_next(p2, 1.0, ("Psalm", 0.1, 0.5), ("55.", 0.5, 0.6))
    push(p2, 1.0, speech=False)
    job = p2.next_job()
    assert job is not None
    tail = [Word("Yes.", rel(job, 0.7), rel(job, 1.0), 0.9)]
    ups = p2.on_result(job, DecodeResult(tuple(tail), 0.1, -0.4))
    assert [u.text for u in ups] == ["Yes."]


def test_buffer_stays_bounded_during_endless_speech() -> None:
    cfg = PolicyConfig(min_step_s=1.0, max_utterance_s=12.0, max_buffer_s=15.0)
    p = StreamingPolicy(cfg)
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
        for u in p.on_result(job, result(*words)):
            if u.is_final:
                finals.append(u)
    assert longest <= cfg.max_buffer_s + 1.0
    texts = " ".join(u.text for u in finals).split()
    assert len(texts) == len(set(texts)), "no word is finalized twice"
    assert len(texts) > 150  # most of the 240 words made it into finals


def test_final_on_commit_sends_agreed_words_at_once_but_keeps_audio_until_a_sentence_ends() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    p.on_result(job, result(("We", 0.1, 0.3), ("can", 0.4, 0.6)))
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = p.on_result(job, result(("We", 0.1, 0.3), ("can", 0.4, 0.6), ("go", 0.7, 1.2)))
    assert [(u.is_final, u.text) for u in ups] == [(True, "We can"), (False, "go")]
    assert p._buf_start == 0  # no sentence end yet: the audio stays for context
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = p.on_result(
        job,
        result(
            ("We", 0.1, 0.3),
            ("can", 0.4, 0.6),
            ("go", 0.7, 1.2),
            ("home.", 1.3, 1.8),
            ("Now", 2.2, 2.5),
        ),
    )
    # "We can" is not repeated; "go" was agreed and is now final; the buffer is unchanged
    # because "home." is only tentative.
    assert [(u.is_final, u.text) for u in ups] == [(True, "go"), (False, "home. Now")]
    push(p, 1.0, speech=True)
    job = p.next_job()
    assert job is not None
    ups = p.on_result(
        job,
        result(
            ("We", 0.1, 0.3),
            ("can", 0.4, 0.6),
            ("go", 0.7, 1.2),
            ("home.", 1.3, 1.8),
            ("Now", 2.2, 2.5),
            ("then", 2.6, 3.0),
        ),
    )
    assert [(u.is_final, u.text) for u in ups] == [(True, "home. Now"), (False, "then")]
    assert abs(p._buf_start / SAMPLE_RATE - 1.8) < 0.01  # trimmed at the sentence end
    assert p._context == "We can go home."  # what left the buffer primes the decoder
    assert [u.segment_index for u in ups if u.is_final] == [2]


def utterance(
    p: StreamingPolicy, seconds: float, *words: tuple[str, float, float]
) -> list[ResultUpdate]:
    """`seconds` of speech then a pause; the pause's final decode hears `words` (stream times)."""
    push(p, seconds, speech=True)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.INTERIM
    assert p.on_result(job, result()) == []
    push(p, 0.6, speech=False)
    job = p.next_job()
    assert job is not None and job.kind is JobKind.FINAL
    return p.on_result(job, result(*[(t, rel(job, s), rel(job, e)) for t, s, e in words]))


def answer(
    p: StreamingPolicy, job: DecodeJob, *words: tuple[str, float, float]
) -> list[ResultUpdate]:
    return p.on_result(job, result(*[(t, rel(job, s), rel(job, e)) for t, s, e in words]))


def test_a_complete_sentence_is_decoded_again_after_the_one_before_and_changes_are_revisions() -> (
    None
):
    """The first pass heard "not with standing" without the sentence before it; the second
    pass hears both, and only the segment whose text changes is sent again."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, final_beam=5))
    first = utterance(p, 2.0, ("Keep", 0.4, 0.7), ("it", 0.8, 0.9), ("safe.", 1.0, 1.6))
    assert [(u.text, u.segment_index, u.revision) for u in first] == [("Keep it safe.", 0, 0)]
    job = p.next_job()
    assert job is not None and job.kind is JobKind.REVISE and job.beam_size == 5
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


def test_a_sentence_in_several_segments_keeps_its_segments_when_revised() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))

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


def test_a_second_pass_that_loops_is_unsure_or_unlike_the_sentence_changes_nothing() -> None:
    def after_one_sentence() -> tuple[StreamingPolicy, DecodeJob]:
        p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
        utterance(p, 2.0, ("The", 0.4, 0.6), ("cap", 0.7, 1.0), ("fits.", 1.1, 1.6))
        job = p.next_job()
        assert job is not None and job.kind is JobKind.REVISE
        return p, job

    p, job = after_one_sentence()  # something else entirely: a misalignment, not a correction
    assert answer(p, job, ("Thank", 0.4, 0.9), ("you", 1.0, 1.2), ("all.", 1.2, 1.6)) == []
    p, job = after_one_sentence()  # the model unsure of the whole decode
    unsure = DecodeResult(tuple(Word(t, rel(job, s), rel(job, e), 0.3) for t, s, e in [
        ("The", 0.4, 0.6), ("cat", 0.7, 1.0), ("fits.", 1.1, 1.6)]), 0.01, -1.3)  # fmt: skip
    assert p.on_result(job, unsure) == []
    p, job = after_one_sentence()  # a loop past the speech, zero-length words
    end = job.end_s - 0.3
    looped = [("The", 0.4, 0.6), ("cat", 0.7, 1.0), ("fits.", 1.1, 1.6)]
    looped += [(w, end, end) for w in ("The", "cat", "fits.")] * 3
    assert [u.text for u in answer(p, job, *looped)] == ["The cat fits."]  # the loop cut off
    p, job = after_one_sentence()  # and one that only repeats what the first pass heard
    assert answer(p, job, ("The", 0.4, 0.6), ("cap", 0.7, 1.0), ("fits.", 1.1, 1.6)) == []


def test_the_end_of_a_stream_runs_its_final_decode_then_every_second_pass() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    push(p, 2.0, speech=True)
    job = p.finish_job()
    assert job is not None and job.kind is JobKind.FINAL
    assert [u.text for u in answer(p, job, ("Two", 2.8, 3.2))] == ["Two"]
    kinds = []
    while (job := p.finish_job()) is not None:
        kinds.append(job.kind)
        answer(p, job)
    assert kinds == [JobKind.REVISE, JobKind.REVISE]  # "One." and "Two", each once


def test_no_second_pass_when_revisions_are_off() -> None:
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0, revise=False))
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    assert p.next_job() is None and p.finish_job() is None


def test_a_segment_whose_words_merge_into_a_neighbours_keeps_a_word_of_it() -> None:
    """ "not with" | "standing" heard as "notwithstanding": no segment may end up empty."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
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


def test_a_long_sentence_is_matched_to_its_revision() -> None:
    """Over 200 characters difflib's autojunk ignores common letters: a long sentence must
    still match its second pass that changes one word."""
    text = (
        "I offered the money to my master but he bade me keep it and with it I bought a piece "
        "of horse flesh and afterwards he asked me to make a cap for his boy for which he "
        "invited me to dinner and I went and he gave me a pancake about as big as two fingers "
        "it was made of parched wheat beaten and fried in bears grease but I thought never "
        "tasted pleasanter meat in my life"
    ).split()
    first = [Word(t, i * 0.3, i * 0.3 + 0.25, 0.9) for i, t in enumerate(text)]
    second = [Word("bid" if w.text == "bade" else w.text, w.start, w.end, 0.9) for w in first]
    assert len("".join(text)) > 200
    matched = align_revision([], first, second)
    assert matched is not None
    assert [w.text for w, _ in matched] == [w.text for w in second]
    assert [k for _, k in matched] == list(range(len(first)))


def test_the_next_sentences_first_word_is_not_taken_into_the_revision() -> None:
    """The window runs past the sentence: "It" of the next sentence matches the first pass's
    last word "it" by text, but starts after the sentence ended."""
    first = [
        Word(t, i * 0.3, i * 0.3 + 0.25, 0.9) for i, t in enumerate("He said no to it.".split())
    ]
    second = [
        Word(t, s, e, 0.9)
        for t, s, e in [
            ("He", 0.0, 0.25), ("said", 0.3, 0.55), ("no", 0.6, 0.85), ("to", 0.9, 1.15),
            ("that.", 1.2, 1.45), ("It", 1.8, 1.95), ("was", 2.0, 2.2), ("late.", 2.25, 2.6),
        ]
    ]  # fmt: skip
    matched = align_revision([], first, second)
    assert matched is not None
    assert [w.text for w, _ in matched] == ["He", "said", "no", "to", "that."]


def test_no_second_pass_while_streams_share_the_model() -> None:
    """A second pass's long window would pad every stream's encoder input in a shared batch."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
    utterance(p, 2.0, ("One.", 0.4, 0.8))
    assert p.next_job(shared=True) is None
    job = p.next_job(shared=False)  # alone again: the sentence gets its second pass
    assert job is not None and job.kind is JobKind.REVISE
    answer(p, job, ("One.", 0.4, 0.8))
    utterance(p, 2.0, ("Two.", 2.8, 3.2))
    assert p.finish_job(shared=True) is None  # ending under load: the first pass stands


def test_sentences_waiting_for_a_second_pass_stay_bounded_while_the_model_is_shared() -> None:
    """Ten minutes of sentences under load: those whose audio left the history are dropped."""
    p = StreamingPolicy(PolicyConfig(min_step_s=1.0))
    for i in range(230):  # whole VAD frames, so that the frames keep pace with the audio
        push(p, 64 * FRAME / SAMPLE_RATE, speech=True)
        job = p.next_job(shared=True)
        assert job is not None and job.kind is JobKind.INTERIM
        p.on_result(job, result())
        push(p, 20 * FRAME / SAMPLE_RATE, speech=False)
        job = p.next_job(shared=True)
        assert job is not None and job.kind is JobKind.FINAL
        ups = answer(p, job, (f"Number {i}.", job.end_s - 2.2, job.end_s - 1.0))
        assert [u.text for u in ups] == [f"Number {i}."]
    assert len(p._to_revise) <= 12  # 30 s of history / 2.7 s per sentence
    job = p.next_job(shared=False)  # alone again: only a recent sentence gets a second pass
    assert job is not None and job.kind is JobKind.REVISE
    assert job.end_s - job.start_s <= 20.0
