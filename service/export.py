"""Rendering a stored transcript as plain text, SRT, WebVTT or JSON.

Final results can be short (a few words agreed at a time), so subtitle cues
join consecutive segments into readable lines: a cue ends at a sentence end, a
pause of a second or more, 7 seconds, 84 columns (two subtitle lines; a Chinese or
Japanese character takes two), or a change of speaker. Segments are joined the way words
are (service.text.join_words): without a space between two Chinese or Japanese ones.

Speakers are shown by name: the transcript's `speaker_names[label]` when the user
named the label, else the label ("S1"). VTT marks every cue with a voice span
(`<v Alice>`); SRT and TXT prefix "Alice: " where the speaker changes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.domain import Segment, TranscriptMeta
from service.policy.words import sentence_ended
from service.text import join_words

MAX_CUE_S = 7.0
MAX_CUE_COLUMNS = 84


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    speaker: str = ""
    """The speaker's name (or label); empty when speakers were not labelled."""


def speaker_name(label: str, names: Mapping[str, str] | None) -> str:
    """The name the user gave a label, else the label itself."""
    return (names or {}).get(label, "").strip() or label


def columns(text: str) -> int:
    """Width of the text on screen: wide (CJK) characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def cues(segments: Sequence[Segment], names: Mapping[str, str] | None = None) -> list[Cue]:
    """Consecutive segments grouped into subtitle-sized cues (one speaker each)."""
    out: list[Cue] = []
    cur: list[Segment] = []

    def close() -> None:
        text = join_words(s.text for s in cur)
        who = speaker_name(cur[0].speaker_label, names)
        out.append(Cue(cur[0].start, cur[-1].end, text, who))

    for seg in segments:
        if cur:
            text = join_words(s.text for s in [*cur, seg])
            if (
                sentence_ended(cur[-1].text)
                or seg.start - cur[-1].end >= 1.0
                or seg.end - cur[0].start > MAX_CUE_S
                or columns(text) > MAX_CUE_COLUMNS
                or seg.speaker_label != cur[-1].speaker_label
            ):
                close()
                cur = []
        cur.append(seg)
    if cur:
        close()
    return out


def _turn_prefixes(cue_list: list[Cue]) -> list[str]:
    """ "Name: " on each cue where the speaker changes (and on the first), else ""."""
    out: list[str] = []
    prev = ""
    for c in cue_list:
        out.append(f"{c.speaker}: " if c.speaker and c.speaker != prev else "")
        prev = c.speaker
    return out


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clock(seconds: float, sep: str) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: Sequence[Segment], names: Mapping[str, str] | None = None) -> str:
    cue_list = cues(segments, names)
    blocks = [
        f"{i}\n{_clock(c.start, ',')} --> {_clock(max(c.end, c.start + 0.001), ',')}\n"
        f"{who}{c.text}\n"
        for i, (c, who) in enumerate(zip(cue_list, _turn_prefixes(cue_list), strict=True), 1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Segment], names: Mapping[str, str] | None = None) -> str:
    blocks = []
    for c in cues(segments, names):
        text = c.text.replace("-->", "->")
        if c.speaker:  # a voice span per cue: players show each cue on its own
            text = f"<v {_vtt_escape(c.speaker)}>{_vtt_escape(text)}</v>"
        blocks.append(
            f"{_clock(c.start, '.')} --> {_clock(max(c.end, c.start + 0.001), '.')}\n{text}\n"
        )
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(meta: TranscriptMeta, segments: Sequence[Segment]) -> str:
    title = meta.title or f"Transcript {meta.id}"
    lines = [title, meta.created_at.strftime("%Y-%m-%d %H:%M UTC"), ""]
    cue_list = cues(segments, meta.speaker_names)
    lines += [
        f"[{_clock(c.start, '.')[:8]}] {who}{c.text}"
        for c, who in zip(cue_list, _turn_prefixes(cue_list), strict=True)
    ]
    return "\n".join(lines) + "\n"


def to_json(meta: TranscriptMeta, segments: Sequence[Segment]) -> str:
    doc = {
        "id": meta.id,
        "title": meta.title,
        "created_at": meta.created_at.isoformat(),
        "ended_at": meta.ended_at.isoformat() if meta.ended_at else None,
        "duration_s": meta.duration_s,
        "language": meta.language,
        "model": meta.model,
        "status": meta.status.name.lower(),
        "tags": list(meta.tags),
        "keywords": list(meta.keywords),
        "speaker_names": meta.speaker_names,
        "segments": [
            {
                "index": s.index,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "confidence": s.confidence,
                "speaker": s.speaker_label,
                "speaker_name": speaker_name(s.speaker_label, meta.speaker_names),
                "words": [
                    {
                        "word": w.text,
                        "start": w.start,
                        "end": w.end,
                        "probability": w.probability,
                        "speaker": s.speaker_label,
                    }
                    for w in s.words
                ],
            }
            for s in segments
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


FORMATS = {
    "txt": ("text/plain", "txt"),
    "srt": ("application/x-subrip", "srt"),
    "vtt": ("text/vtt", "vtt"),
    "json": ("application/json", "json"),
}


def render(fmt: str, meta: TranscriptMeta, segments: Sequence[Segment]) -> tuple[str, str, str]:
    """(content, MIME type, suggested file name) for fmt in txt, srt, vtt, json."""
    mime, ext = FORMATS[fmt]
    if fmt == "srt":
        content = to_srt(segments, meta.speaker_names)
    elif fmt == "vtt":
        content = to_vtt(segments, meta.speaker_names)
    elif fmt == "json":
        content = to_json(meta, segments)
    else:
        content = to_txt(meta, segments)
    stem = re.sub(r"[^a-z0-9]+", "-", (meta.title or meta.id).lower()).strip("-") or meta.id
    return content, mime, f"{stem[:60]}.{ext}"
