"""`transcribe show` reads as paragraphs: split at speaker turns, long pauses, long text."""

from __future__ import annotations

from clients.python.models import Segment
from clients.python.paragraphs import MAX_WORDS, PAUSE_S, paragraphs


def seg(i: int, start: float, text: str, speaker: str = "") -> Segment:
    return Segment(i, start, start + 0.4 * len(text.split()), text, 0.9, speaker=speaker)


def test_short_finals_join_into_one_paragraph() -> None:
    segs = [seg(0, 0.0, "Hello there,"), seg(1, 1.0, "how are"), seg(2, 1.9, "you today?")]
    (p,) = paragraphs(segs)
    assert p.text == "Hello there, how are you today?" and p.start == 0.0


def test_a_pause_or_a_new_speaker_starts_a_paragraph() -> None:
    segs = [
        seg(0, 0.0, "First point.", "S1"),
        seg(1, 1.0 + PAUSE_S + 0.5, "After a pause.", "S1"),
        seg(2, 4.5, "Another voice.", "S2"),
    ]
    assert [(p.speaker, p.text) for p in paragraphs(segs)] == [
        ("S1", "First point."),
        ("S1", "After a pause."),
        ("S2", "Another voice."),
    ]


def test_a_long_paragraph_ends_at_a_sentence_end() -> None:
    long = " ".join(["word"] * MAX_WORDS) + "."
    first = seg(0, 0.0, long)
    segs = [first, seg(1, first.end + 0.1, "still the same"), seg(2, first.end + 1.4, "sentence."),
            seg(3, first.end + 1.9, "New one.")]  # fmt: skip
    assert [p.text for p in paragraphs(segs)] == [long, "still the same sentence. New one."]


def test_a_revision_rewrites_its_line_in_place_on_a_terminal() -> None:
    import io

    from clients.python.terminal import FinalLines

    out = io.StringIO()
    lines = FinalLines(out, in_place=True)
    lines.final(0, 0.0, 1.0, "the war massage", 0)
    lines.final(1, 1.0, 2.0, "concluded", 0)
    lines.final(0, 0.0, 1.0, "the war message", 1)
    text = out.getvalue()
    # two lines up, clear, the corrected line, two lines down: no new line is added
    assert text.endswith("\x1b[2A\r\x1b[2K[00:00.00 → 00:01.00] the war message\x1b[2B\r")
    assert text.count("\n") == 2 and "(revised)" not in text


def test_a_revision_is_a_marked_line_in_a_pipe() -> None:
    import io

    from clients.python.terminal import FinalLines

    out = io.StringIO()
    lines = FinalLines(out, in_place=False)
    lines.final(0, 0.0, 1.0, "the war massage", 0)
    lines.final(0, 0.0, 1.0, "the war message", 1)
    assert out.getvalue().splitlines()[-1] == "[00:00.00 → 00:01.00] (revised) the war message"
