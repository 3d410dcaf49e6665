"""Agreement, commit and segment indexes on their own."""

from __future__ import annotations

from service.domain import Word
from service.policy.commit import CUT_KEEP_S, Agreement


def words(*said: tuple[str, float, float]) -> list[Word]:
    return [Word(t, s, e, 0.9) for t, s, e in said]


def test_the_common_prefix_of_two_decodes_is_agreed_up_to_the_margin() -> None:
    a = Agreement()
    first = words(("Hello", 0.1, 0.4), ("world", 0.5, 0.9), ("again", 1.0, 1.8))
    assert a.agreed(first, end_s=2.0, margin_s=0.6, cut=False) == 0  # nothing to agree with
    a.tentative = first
    second = words(("hello,", 0.1, 0.4), ("world", 0.5, 0.9), ("again", 1.0, 1.8), ("x", 2, 3))
    assert a.agreed(second, end_s=3.0, margin_s=0.6, cut=False) == 3  # case and commas aside
    assert a.agreed(second, end_s=2.2, margin_s=0.6, cut=False) == 2  # "again" ends too late
    other = words(("Yellow", 0.1, 0.4), ("world", 0.5, 0.9))
    assert a.agreed(other, end_s=3.0, margin_s=0.6, cut=False) == 0


def test_a_cut_keeps_the_words_that_end_well_before_it() -> None:
    a = Agreement()
    heard = words(("a", 0.0, 1.0), ("b", 1.0, 2.0), ("c", 2.0, 3.1), ("d", 3.2, 3.5))
    assert a.agreed(heard, end_s=4.0, margin_s=0.6, cut=True) == 2
    assert heard[1].end <= 4.0 - CUT_KEEP_S < heard[2].end


def test_finals_take_the_next_segment_index_and_leave_the_rest_committed() -> None:
    a = Agreement(start_offset_s=30.0, first_segment_index=4)
    assert a.committed_end == 30.0
    a.commit(words(("one", 31.0, 31.2), ("two", 31.3, 31.5), ("three", 31.6, 31.9)))
    assert a.committed_end == 31.9 and [w.text for w in a.pending] == ["one", "two", "three"]
    assert a.finalize(0) is None
    first = a.finalize(2)
    assert first is not None and (first.text, first.segment_index, first.is_final) == (
        "one two",
        4,
        True,
    )
    second = a.finalize(1)
    assert second is not None and (second.text, second.segment_index) == ("three", 5)
    assert a.committed == [] and a.next_index == 6


def test_the_interim_is_sent_once_per_text_more_stable_the_more_is_committed() -> None:
    a = Agreement()
    a.tentative = words(("maybe", 0.0, 0.4))
    first = a.interim()
    assert first is not None and first.stability == 0.05 and not first.is_final
    assert a.interim() is None  # the same text again: nothing to send
    a.commit(words(("surely", 0.0, 0.4)))
    a.tentative = []
    update = a.interim()
    assert update is not None and update.stability == 0.9


def test_recent_words_are_the_last_five_committed() -> None:
    a = Agreement()
    a.commit(words(*[(str(i), i, i + 0.5) for i in range(8)]))
    assert [w.text for w in a.recent] == ["3", "4", "5", "6", "7"]


def test_a_chinese_or_japanese_piece_both_decodes_heard_last_is_not_agreed() -> None:
    """The pieces the aligner cuts Japanese into agree easily while the word is still
    being said (FLEURS ja, base: "はから" was committed where the speaker said "派から")."""
    a = Agreement()
    a.hold(words(("リベ", 1.0, 1.3), ("ラル", 1.3, 1.6), ("はから", 1.6, 2.3)), end_s=2.5)
    later = words(("リベ", 1.0, 1.3), ("ラル", 1.3, 1.6), ("はから", 1.6, 2.3), ("の", 2.4, 2.5))
    # "はから" ends 0.6 s before this decode's end, but only 0.2 s before the last one's.
    assert a.agreed(later, end_s=2.9, margin_s=0.6, cut=False) == 2
    a.hold(later[2:], end_s=2.9)
    a.commit(later[:2])
    settled = words(("はから", 1.6, 2.3), ("の", 2.4, 2.5), ("批判", 2.6, 3.0))
    assert a.agreed(settled, end_s=3.4, margin_s=0.6, cut=False) == 1  # heard twice, settled


def test_a_word_of_a_spaced_language_needs_only_this_decodes_margin() -> None:
    a = Agreement()
    a.hold(words(("Hello", 0.1, 0.4), ("world", 0.5, 0.9), ("again", 1.0, 1.8)), end_s=2.0)
    later = words(("Hello", 0.1, 0.4), ("world", 0.5, 0.9), ("again", 1.0, 1.8), ("x", 2, 2.2))
    # "again" ends 0.2 s before the last decode's end: no matter for a spaced word.
    assert a.agreed(later, end_s=2.5, margin_s=0.6, cut=False) == 3
