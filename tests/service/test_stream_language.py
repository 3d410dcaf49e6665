"""A detecting stream fixes its language only on clear evidence, else at a bound.

The decodes' guesses count by probability x seconds of speech; the language is fixed at
the first final where the leading one's margin is clear, or at the BOUND_FINALS-th final
(the best so far). Meanwhile results carry the leading language and the transcript stores
it whenever it changes at a final.
"""

from __future__ import annotations

from service.stream_language import (
    BOUND_FINALS,
    LanguageState,
    StreamLanguage,
)


def test_clear_evidence_fixes_the_language_at_the_first_final() -> None:
    lang = StreamLanguage("")
    assert (lang.state, lang.forced) == (LanguageState.DETECTING, "")
    lang.heard("es", 0.6, 1.0)
    assert lang.on_result(is_final=False) == ("es", False)  # an interim's guess
    lang.heard("de", 0.95, 6.0)
    lang.heard("de", 0.9, 7.0)
    lang.heard("en", 0.9, 0.0)  # a guess on silence counts for nothing
    assert lang.on_result(is_final=True) == ("de", True)  # fixed, to be stored
    assert (lang.state, lang.forced, lang.clear) == (LanguageState.FIXED, "de", True)
    lang.heard("fr", 1.0, 10.0)  # fixed: no more evidence
    assert lang.on_result(is_final=False) == ("de", False)
    assert lang.on_result(is_final=True) == ("de", False)


def test_a_weak_first_guess_keeps_detecting_and_the_next_finals_correct_it() -> None:
    """Modelled on FLEURS pt_004: the first sentence's decodes half-heard English."""
    lang = StreamLanguage("")
    lang.heard("en", 0.55, 3.0)
    lang.heard("pt", 0.5, 2.0)
    assert lang.on_result(is_final=True) == ("en", True)  # the best guess so far, stored
    assert (lang.state, lang.forced, lang.clear) == (LanguageState.DETECTING, "", False)
    for _ in range(3):
        lang.heard("pt", 0.95, 6.0)
    assert lang.on_result(is_final=False) == ("pt", False)
    assert lang.on_result(is_final=True) == ("pt", True)  # changed: stored again
    assert (lang.state, lang.forced, lang.clear) == (LanguageState.FIXED, "pt", True)


def test_without_clear_evidence_the_best_guess_is_fixed_at_the_bound() -> None:
    lang = StreamLanguage("")
    said = []
    for i in range(BOUND_FINALS):
        lang.heard("fr", 0.5, 4.0)
        lang.heard("br", 0.45, 4.0)
        said.append(lang.on_result(is_final=True))
        assert lang.state is (
            LanguageState.FIXED if i == BOUND_FINALS - 1 else LanguageState.DETECTING
        )
    assert said == [("fr", True)] + [("fr", False)] * (BOUND_FINALS - 1)  # stored once
    assert (lang.forced, lang.clear) == ("fr", False)


def test_a_given_language_is_never_detected_nor_stored() -> None:
    fixed = StreamLanguage("en")
    fixed.heard("de", 1.0, 5.0)
    assert fixed.on_result(is_final=True) == ("en", False)
    assert (fixed.state, fixed.forced, fixed.clear) == (LanguageState.FIXED, "en", True)
