"""Scoring in any language (benchmarks/lib/scoring.py) and the language-aware parts of the
benchmarks' alignment and model selection. No model, no server."""

from __future__ import annotations

import argparse
import unicodedata

import pytest
from transcribe.v1 import streaming_pb2

from benchmarks.lib.analysis import word_timings
from benchmarks.lib.clips import by_speakers
from benchmarks.lib.measure import server_args, stream_model
from benchmarks.lib.scoring import (
    Utterance,
    clip_errors,
    detected_language,
    error_rate,
    metric,
    normalize,
    per_language,
    primary,
    tokenizer,
    tokens,
)


def resp(text: str, final: bool, language: str = "") -> streaming_pb2.StreamingTranscribeResponse:
    r = streaming_pb2.StreamingTranscribeResponse()
    res = r.results.add(is_final=final, language_code=language)
    res.alternatives.add(transcript=text)
    return r


def test_punctuation_of_any_script_is_a_word_break_and_case_is_folded() -> None:
    assert normalize("« L'Accident », dit-il ¿No?", "fr") == "l accident dit il no"
    assert normalize("Straße – ÉTATS-UNIS!", "de") == "strasse états unis"
    assert normalize("qu’« on", "fr") == normalize("qu'on", "fr")


def test_accents_are_kept_and_composed_the_same_way() -> None:
    decomposed = unicodedata.normalize("NFD", "Café à São Paulo")
    assert decomposed != "Café à São Paulo"
    assert normalize(decomposed, "pt") == normalize("café à são paulo", "pt") == "café à são paulo"
    assert normalize("cafe", "fr") != normalize("café", "fr")  # an accent is part of the word


def test_character_languages_drop_spaces_and_fold_full_width_forms() -> None:
    assert normalize("桥下垂直净空 15 米。", "zh") == "桥下垂直净空15米"
    assert normalize("復興努力に対する、 リベラル派", "ja") == "復興努力に対するリベラル派"
    assert normalize("２０１１年", "zh-CN") == "2011年"  # NFKC: full-width digits
    assert tokens("净空 15米", "zh") == ["净", "空", "1", "5", "米"]
    assert tokens("Hola, ¿qué tal?", "es") == ["hola", "qué", "tal"]
    assert metric("ja") == "CER" and metric("zh-TW") == "CER" and metric("de") == "WER"


def test_cer_for_chinese_counts_characters_not_spaces() -> None:
    ref = "桥下垂直净空 15 米"  # 9 characters without spaces
    assert error_rate([ref], ["桥下垂直净空15米"], "zh") == 0.0
    assert error_rate([ref], ["桥下垂直净空16米"], "zh") == pytest.approx(1 / 9, abs=1e-4)
    assert error_rate([ref], ["桥下垂直净"], "zh") == pytest.approx(4 / 9, abs=1e-4)
    # Word-level scoring would have called the whole unspaced sentence one wrong word.
    assert error_rate(["リベラル派からの批判"], ["リベラル派からの批評"], "ja") == 0.1


def test_wer_for_spaced_languages_ignores_punctuation_and_case() -> None:
    ref = "l'accident a eu lieu en terrain montagneux"
    assert error_rate([ref], ["L’accident a eu lieu, en terrain montagneux."], "fr") == 0.0
    assert error_rate([ref], ["l'accident a eu lieu en terrain montagneuse"], "fr") == 0.125
    assert error_rate([], [], "de") is None


def test_english_keeps_whispers_english_normalizer() -> None:
    # The English normalizer spells out "Mr." and numbers; the plain one would not.
    assert error_rate(["mister smith is twenty"], ["Mr. Smith is 20."], "en") == 0.0
    assert (error_rate(["mister smith is twenty"], ["Mr. Smith is 20."], "de") or 0) > 0


def test_detected_language_is_that_of_the_first_final() -> None:
    responses = [
        (0.5, resp("hallo", False, "en")),  # an interim guess before detection settles
        (1.0, resp("hallo welt", True, "de")),
        (2.0, resp("noch", False, "de")),
        (3.0, resp("noch mehr", True, "de-DE")),
    ]
    assert detected_language(responses) == "de"
    assert detected_language([(0.5, resp("hola", False, "es"))]) == "es"  # no final: the guess
    assert detected_language([(0.5, resp("", True))]) == ""
    assert primary("pt-BR") == "pt" and primary("zh_Hans") == "zh"


def test_character_timing_aligns_unspaced_text_to_offline_words() -> None:
    responses = [(2.0, resp("桥下", False)), (3.5, resp("桥下垂直。", True))]
    ends = [("桥下", 1.0), ("垂直", 2.5)]
    ts = word_timings(responses, ends, tokenizer("zh"))
    assert [(t.word, t.end_s, t.interim_s, t.final_s) for t in ts] == [
        ("桥", 1.0, 2.0, 3.5), ("下", 1.0, 2.0, 3.5), ("垂", 2.5, 3.5, 3.5), ("直", 2.5, 3.5, 3.5),
    ]  # fmt: skip
    # Whitespace splitting (the English default) would see one word that matches nothing.
    assert word_timings(responses, ends) == []


def test_per_language_rows_detection_over_5s_and_what_was_detected_instead() -> None:
    utts = [
        Utterance("de1", "de", 8.0, "ein hund", "Ein Hund.", "ein hund", "de", "de", [0.5, 1.5]),
        Utterance("de2", "de", 4.0, "eine katze", "a cat", "eine katze", "en", "de", [2.0]),
        Utterance("de3", "de", 6.0, "das haus", "das Haus", "das maus", "nl", "de", []),
        Utterance("ja1", "ja", 15.0, "日本語", "日本語。", "日本", "ja", "ja", [1.0]),
    ]
    r = per_language(utts)
    de, ja = r["languages"]
    assert de["language"] == "de" and de["utterances"] == 3 and de["audio_seconds"] == 18.0
    assert de["detection"] == {"n": 3, "correct": 1, "accuracy": 0.3333}
    assert de["detection_5s"] == {"n": 2, "correct": 1, "accuracy": 0.5}  # the 4 s one left out
    assert de["detected_instead"] == {"en": 1, "nl": 1}
    assert de["offline_detection_accuracy"] == 1.0
    assert de["metric"] == "WER"
    assert de["streaming"] == pytest.approx(2 / 6, abs=1e-4)  # "a cat" for "eine katze"
    assert de["offline"] == pytest.approx(1 / 6, abs=1e-4)
    assert de["gap_points"] == pytest.approx(16.67, abs=0.02)  # of the rounded rates
    assert de["final_latency_s"] == {"median": 1.5, "p90": 1.9}
    assert ja["metric"] == "CER" and ja["streaming"] == 0.0
    assert ja["offline"] == pytest.approx(1 / 3, abs=1e-4)
    a = r["all"]
    assert a["utterances"] == 4 and a["detection_5s"] == {"n": 3, "correct": 2, "accuracy": 0.6667}
    assert a["wrong_detections"] == {"de->en": 1, "de->nl": 1}
    assert a["units_timed"] == 4


def test_no_final_counts_as_a_wrong_detection() -> None:
    r = per_language([Utterance("fr1", "fr", 9.0, "oui", "", "oui", "", "fr")])
    assert r["languages"][0]["detected_instead"] == {"(none)": 1}
    assert r["languages"][0]["final_latency_s"] == {"median": None, "p90": None}


def test_stream_model_and_server_args() -> None:
    ns = argparse.Namespace
    assert stream_model(ns(models="", model="")) == "tiny.en"
    assert stream_model(ns(models="tiny.en,base", model="")) == "tiny.en"
    assert stream_model(ns(models="tiny.en,base", model="base")) == "base"
    assert server_args(ns(models="tiny.en,base", model="base", server_arg=["--x=1"])) == [
        "--models=tiny.en,base", "--x=1",
    ]  # fmt: skip
    assert server_args(ns(models="", model="base", server_arg=[])) == ["--models=base"]
    assert server_args(ns(server_arg=[])) == []


def test_by_speakers_keeps_the_named_half() -> None:
    entries = [{"id": str(i), "speaker": s} for i, s in enumerate(["4088", "5652", "4406", "8226"])]
    assert [e["id"] for e in by_speakers(entries, "4088, 4406")] == ["0", "2"]
    assert by_speakers(entries, "") == entries


def test_clip_errors_count_what_error_rate_rates() -> None:
    """One clip's errors and units, scored as the corpus rate scores them."""
    ref = "ele também estava envolvido na gravação de cédulas para muitos países e exemplos"
    hyp = "Ele também estava envolvido na gravação de cédulas para muitos palmas, países e exemplos"
    assert clip_errors(ref, hyp, "pt") == (1, 13)  # one word inserted at a pause
    assert error_rate([ref], [hyp], "pt") == round(1 / 13, 4)
    assert clip_errors("桥下垂直净空 15 米", "桥下垂直净空16米", "zh") == (1, 9)
    assert clip_errors("mister smith is twenty", "Mr. Smith is 20.", "en") == (0, 4)
    assert clip_errors("", "anything", "de") == (0, 0)
