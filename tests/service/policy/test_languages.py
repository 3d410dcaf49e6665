"""The policy's text rules in the languages the multilingual model speaks: sentence ends,
the comparison key, joining words, and the hallucination filters. The Chinese and
Japanese sentences are FLEURS references (../shared/speech/multilingual, CC-BY-4.0)."""

from __future__ import annotations

import numpy as np
import pytest

from service.domain import Word
from service.engine import DecodeResult
from service.policy.commit import Agreement
from service.policy.filters import (
    LOOP_RATIO,
    NO_SPEECH_PROB,
    UNSURE_LOGPROB,
    clean,
    compression_ratio,
    heard,
    looped,
)
from service.policy.jobs import DecodeJob, JobKind, ResultUpdate
from service.policy.phrases import cut_credits, only_closer
from service.policy.revise import align_revision
from service.policy.window import Window
from service.policy.words import ends_sentence, normalize, text_of

ZH = "桥下垂直净空 15 米该项目于 2011 年 8 月完工但直到 2017 年 3 月才开始通车"
"""The FLEURS reference as it is (spaces only around the numbers, as join_words puts them)."""
JA = (
    "復興努力に対するリベラル派からの批判では、ワシントンの内部関係者と思われる人物と"
    "復興契約を交わしたことに焦点を当てています。"
)
"""The FLEURS reference, punctuated as Whisper writes Japanese (the reference has a space
for the comma)."""


def spoken(texts: list[str], start: float = 0.0, step: float = 0.3) -> list[Word]:
    """Words one after another, `step` seconds each."""
    return [Word(t, start + i * step, start + (i + 1) * step, 0.9) for i, t in enumerate(texts)]


def chars(text: str, start: float = 0.0) -> list[Word]:
    """A Chinese or Japanese sentence as the aligner cuts it: a word or two characters
    at a time, a number whole, punctuation stuck to the word before."""
    out: list[str] = []
    for part in text.split():
        if part.isascii():
            out.append(part)
            continue
        fresh = True
        for c in part:
            if not fresh and (c in "。、，" or len(out[-1]) < 2):
                out[-1] += c
            else:
                out.append(c)
            fresh = False
    return spoken(out, start, 0.2)


def job(start_s: float = 10.0, end_s: float = 30.0) -> DecodeJob:
    audio = np.zeros(round((end_s - start_s) * 16000), np.float32)
    return DecodeJob(JobKind.INTERIM, audio, start_s, end_s, 5, "", "", "")


def result(words: list[Word], no_speech: float = 0.02, logprob: float = -0.3) -> DecodeResult:
    """A decode of `job()`: word times relative to its start (10 s)."""
    rel = [Word(w.text, w.start - 10.0, w.end - 10.0, w.probability) for w in words]
    return DecodeResult(tuple(rel), no_speech, logprob)


def cleaned(res: DecodeResult) -> list[Word]:
    return clean(
        job(), res, pending=True, has_speech=lambda s, e: True, committed_end=0.0, recent=()
    )


@pytest.mark.parametrize(
    "text",
    [
        "通车。",
        "是吗？",
        "好！",
        "「そうです。」",
        "（終わり。）",
        "『本当？』",
        "“好。”",
        "Hallo.",
        "¿Qué?",
        "fin…»",
    ],
)
def test_cjk_and_latin_sentence_ends_close_a_sentence(text: str) -> None:
    assert ends_sentence(Word(text, 0.0, 0.5, 0.9))


@pytest.mark.parametrize("text", ["我们", "东京、", "但是，", "「そう", "Hallo,", "U.S"])
def test_commas_and_open_quotes_do_not(text: str) -> None:
    assert not ends_sentence(Word(text, 0.0, 0.5, 0.9))


def test_the_comparison_key_keeps_every_script_and_tells_punctuation_apart() -> None:
    assert normalize("東京、") == "東京"
    assert normalize("Café,") == normalize("café") == "café"
    assert normalize("ＡＢＣ") == "abc"  # full-width letters are the same word
    assert normalize("ที่") == "ที่"  # Thai vowel and tone marks are part of the word
    assert normalize("don’t") == normalize("don't")
    # A word of punctuation alone is not "" (which would make any two of them agree).
    assert normalize("、") != normalize("。")
    a = Agreement()
    a.hold(spoken(["我们", "、", "今天"]), end_s=9.0)
    assert a.agreed(spoken(["我们", "。", "今天"]), end_s=9.0, margin_s=0.5, cut=False) == 1


def test_chinese_and_japanese_words_are_joined_without_spaces() -> None:
    assert text_of(chars(ZH)) == ZH
    assert text_of(chars(JA)) == JA
    assert text_of(spoken(["用", "Python", "写"])) == "用 Python 写"
    assert text_of(spoken(["Guten", "Tag."])) == "Guten Tag."
    assert ResultUpdate(tuple(chars(ZH)), True, 0.0).text == ZH


def test_the_prompt_context_of_a_chinese_stream_has_no_spaces() -> None:
    w = Window()
    w.append(np.zeros(16000 * 3, np.float32))
    w.finals = chars("我们今天开会。")
    w.trim(w.sample(1.0))
    w.finals = [*w.finals, *chars("好的。", start=1.6)]
    w.trim(w.sample(3.0))
    assert w.context == "我们今天开会。好的。"


def test_real_chinese_and_japanese_sentences_are_not_taken_for_loops() -> None:
    # Measured on the FLEURS references and longer prose: see LOOP_RATIO's docstring.
    for text in (ZH, JA, ZH + ZH[:20] + JA):
        assert compression_ratio(text) < LOOP_RATIO - 0.5
    words = chars(ZH, start=10.5)
    assert not looped(words)
    assert text_of(cleaned(result(words))) == ZH
    # A loop is still a loop in Chinese.
    assert looped(chars("我认为你会不会" * 8, start=10.5))


def test_a_german_subtitle_credit_is_cut_wherever_it_is() -> None:
    said = spoken(["Wir", "sehen", "uns", "morgen."], 10.5)
    credit = spoken(["Untertitel", "der", "Amara.org-Community"], 12.0)
    assert text_of(heard(job(), result([*said, *credit]))) == "Wir sehen uns morgen."
    zdf = spoken(["Untertitelung", "des", "ZDF,", "2020."], 12.0)
    assert text_of(heard(job(), result([*said, *zdf]))) == "Wir sehen uns morgen."
    assert cleaned(result(credit)) == []
    # Chinese credits as the aligner cuts them, with the sentence before kept.
    zh = chars("字幕由Amara.org社区提供", start=14.0)
    assert text_of(cut_credits([*chars(ZH, start=10.5), *zh])) == ZH


def test_a_sign_off_alone_is_dropped_only_when_the_decode_suspects_no_speech() -> None:
    thanks = chars("ご視聴ありがとうございました", start=11.0)
    assert only_closer(thanks)
    assert cleaned(result(thanks, no_speech=NO_SPEECH_PROB + 0.1)) == []
    assert cleaned(result(thanks, logprob=UNSURE_LOGPROB - 0.2)) == []
    # Said for real (a sure decode of speech), or within a sentence, it stays.
    assert text_of(cleaned(result(thanks))) == "ご視聴ありがとうございました"
    vielen = spoken(["Vielen", "Dank."], 11.0)
    assert cleaned(result(vielen, no_speech=0.5)) == []
    assert text_of(cleaned(result(vielen))) == "Vielen Dank."
    more = spoken(["Vielen", "Dank", "für", "die", "Blumen."], 11.0)
    assert not only_closer(more)
    assert text_of(cleaned(result(more, no_speech=0.5))) == "Vielen Dank für die Blumen."


def test_a_second_pass_that_stops_before_the_sentence_ends_changes_nothing() -> None:
    # policy_sim on FLEURS ja with Whisper base: the second pass ended at "を", 6 of 55
    # characters short (similar enough by letters to pass for a correction).
    first = chars(JA, start=1.0)
    short = chars(JA.removesuffix("当てています。"), start=1.0)
    assert align_revision([], first, short) is None
    fixed = chars(JA.replace("焦点", "商店"), start=1.0)
    matched = align_revision([], first, fixed)
    assert matched is not None and text_of(w for w, _ in matched) == JA.replace("焦点", "商店")
