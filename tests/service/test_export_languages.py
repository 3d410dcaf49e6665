"""Export of a Chinese transcript: segments joined without spaces, cues still closed at
sentence ends (CJK punctuation) and kept to two subtitle lines."""

from __future__ import annotations

from datetime import UTC, datetime

from service.domain import Segment, TranscriptMeta, TranscriptStatus, Word
from service.export import MAX_CUE_COLUMNS, columns, cues, to_srt, to_txt, to_vtt


def seg(index: int, start: float, end: float, text: str) -> Segment:
    return Segment(index, start, end, text, (Word(text, start, end, 0.9),), 0.9)


# Final results of a Chinese stream: short pieces agreed a few words at a time.
SEGMENTS = [
    seg(0, 0.0, 1.0, "我们今天"),
    seg(1, 1.0, 2.0, "开会。"),
    seg(2, 2.2, 3.0, "好的，"),
    seg(3, 3.0, 4.0, "谢谢。"),
]
META = TranscriptMeta(
    "t1", "me", datetime(2026, 12, 1, tzinfo=UTC), TranscriptStatus.COMPLETE, "zh", "base"
)


def test_chinese_cues_have_no_spaces_and_end_at_chinese_sentence_ends() -> None:
    assert [c.text for c in cues(SEGMENTS)] == ["我们今天开会。", "好的，谢谢。"]
    srt = to_srt(SEGMENTS)
    assert "我们今天开会。\n" in srt and "好的，谢谢。\n" in srt
    vtt = to_vtt(SEGMENTS)
    assert "\n我们今天开会。\n" in vtt
    txt = to_txt(META, SEGMENTS)
    assert "] 我们今天开会。\n" in txt and "] 好的，谢谢。\n" in txt


def test_a_chinese_cue_is_two_subtitle_lines_wide_at_most() -> None:
    # Twenty segments of three characters, no punctuation, no pauses, within 7 s.
    long = [seg(i, i * 0.3, i * 0.3 + 0.3, "一二三") for i in range(20)]
    out = cues(long)
    assert len(out) > 1
    assert all(columns(c.text) <= MAX_CUE_COLUMNS for c in out)
    assert columns("一二三") == 6 and columns("abc") == 3
    # Latin text and the mixed seam keep their spaces.
    mixed = [seg(0, 0.0, 1.0, "Guten"), seg(1, 1.0, 2.0, "Tag"), seg(2, 2.0, 3.0, "用")]
    assert [c.text for c in cues(mixed)] == ["Guten Tag 用"]
