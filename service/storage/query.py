"""Search query parsing and highlighting shared by the storage backends.

User text is never handed to a search engine as syntax: it is split into plain
word tokens and quoted phrases, which each backend turns into its own safe form.
"""

from __future__ import annotations

import base64
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from service.domain import SearchHit, SearchHitKind, TextRange, TranscriptMeta
from service.errors import InvalidArgumentError, ResourceExhaustedError

_PHRASE = re.compile(r'"([^"]*)"')
MAX_QUERY = 500
MAX_TERMS = 16


@dataclass(frozen=True)
class SearchQuery:
    """All `terms` must occur; each term is a sequence of tokens (a phrase if > 1)."""

    terms: tuple[tuple[str, ...], ...]

    @property
    def tokens(self) -> list[str]:
        return [t for term in self.terms for t in term]


# Scripts written without spaces between words (and Korean, whose particles attach to the
# word): indexed by character and character pair.
_UNSPACED = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables (spaced, but particles attach to words: 회의는)
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
_SEP, _WORD, _PAIRED = 0, 1, 2
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_HALF_MARKS = "\uff9e\uff9f"  # half-width (semi-)voiced sound marks: part of the kana before


class Token(NamedTuple):
    """A folded token and the code points of the original text it came from."""

    text: str
    start: int
    end: int


@lru_cache(maxsize=8192)
def _class(c: str) -> tuple[int, bool]:
    """(kind, joins the cluster before it) of one character."""
    mark = unicodedata.category(c)[0] == "M"
    if not (c.isalnum() or mark):
        return _SEP, False
    o = ord(c)
    kind = _PAIRED if any(lo <= o <= hi for lo, hi in _UNSPACED) else _WORD
    return kind, mark or c in _HALF_MARKS


def _kind(c: str) -> int:
    return _class(c)[0]


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case and accents folded (NFKD, combining marks dropped, casefold), so "Résumé",
    "RESUME" and "resume" are one token. Marks are dropped only after letters of the
    alphabetic scripts (Latin, Greek, Cyrillic, Hebrew, Arabic vowel points ...); in Indic
    scripts and Kana (が vs か) they are part of the letter and are kept."""
    out: list[str] = []
    strip = True
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Mc", "Me"):
            if not strip:
                out.append(ch)
            continue
        o = ord(ch)
        strip = o < 0x0800 or 0x1E00 <= o <= 0x1FFF
        out.append(ch)
    folded = unicodedata.normalize("NFC", "".join(out).casefold())
    return "".join(c for c in folded if c.isalnum() or unicodedata.category(c)[0] == "M")


def tokenize_spans(text: str) -> list[Token]:
    """The tokens of text in order, each with its span in text. Words of spaced scripts
    are one token each; a run of Chinese, Japanese, Thai ... characters (no spaces to
    split on) gives each character and each overlapping pair in turn ("会议很" -> 会 会议
    议 议很 很), so any substring of the run, one character or more, is a phrase of
    consecutive tokens, and the pairs keep the phrase selective in an index."""
    if text.isascii():  # the common case, 30x faster: ASCII letters and digits, lower-cased
        return [Token(m[0].lower(), m.start(), m.end()) for m in _ASCII_WORD.finditer(text)]
    # Clusters: a base character with the combining marks that follow it.
    clusters: list[tuple[int, int, int]] = []
    for i, c in enumerate(text):
        k, joins = _class(c)
        if joins and clusters:
            s, e, pk = clusters[-1]
            if pk != _SEP and e == i:
                clusters[-1] = (s, i + 1, pk)
                continue
        clusters.append((i, i + 1, k))
    tokens: list[Token] = []
    n = 0
    while n < len(clusters):
        kind = clusters[n][2]
        m = n
        while m < len(clusters) and clusters[m][2] == kind:
            m += 1
        run = clusters[n:m]
        spans: list[tuple[int, int]] = []
        if kind == _WORD:
            spans = [(run[0][0], run[-1][1])]
        elif kind == _PAIRED:
            pairs = [(a[0], b[1]) for a, b in pairwise(run)]
            spans = [x for c, p in zip(run, [*pairs, None], strict=True) for x in (c[:2], p) if x]
        for s, e in spans:
            folded = fold(text[s:e])
            if folded:
                tokens.append(Token(folded, s, e))
        n = m
    return tokens


def tokenize(text: str) -> list[str]:
    """Folded tokens, as the indexes store them (see tokenize_spans)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return [t.text for t in tokenize_spans(text)]


def _runs(text: str) -> list[tuple[str, ...]]:
    """The search terms of unquoted text: a word each, and a run of unspaced script as
    one phrase of its characters and pairs (consecutive tokens whose spans overlap)."""
    terms: list[tuple[str, ...]] = []
    prev: Token | None = None
    for tok in tokenize_spans(text):
        if prev is not None and tok.start < prev.end:
            terms[-1] += (tok.text,)
        else:
            terms.append((tok.text,))
        prev = tok
    return terms


def parse_query(query: str) -> SearchQuery:
    """Words and "quoted phrases" -> SearchQuery; InvalidArgumentError if nothing searchable."""
    if len(query) > MAX_QUERY:
        raise InvalidArgumentError(f"query is {len(query)} characters; at most {MAX_QUERY}")
    terms: list[tuple[str, ...]] = []
    for phrase in _PHRASE.findall(query):
        toks = tokenize(phrase)
        if toks:
            terms.append(tuple(toks))
    rest = _PHRASE.sub(" ", query).replace('"', " ")
    terms += _runs(rest)
    if not terms:
        raise InvalidArgumentError(
            'query has no words to search for; give words or a "quoted phrase"'
        )
    if len(terms) > MAX_TERMS:
        raise InvalidArgumentError(f"query has {len(terms)} terms; at most {MAX_TERMS}")
    return SearchQuery(tuple(dict.fromkeys(terms)))


def highlights(text: str, query: SearchQuery) -> tuple[TextRange, ...]:
    """Where the query's terms occur in text (code-point ranges, in order, merged)."""
    toks = tokenize_spans(text)
    words = [t.text for t in toks]
    spans: list[tuple[int, int]] = []
    for term in query.terms:
        n = len(term)
        spans += [
            (toks[i].start, toks[i + n - 1].end)
            for i in range(len(toks) - n + 1)
            if tuple(words[i : i + n]) == term
        ]
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return tuple(TextRange(s, e) for s, e in merged)


def matches(text: str, query: SearchQuery) -> bool:
    """True if every term occurs in text (used by backends without a phrase index)."""
    toks = tokenize(text)
    joined = " " + " ".join(toks) + " "
    return all(" " + " ".join(term) + " " in joined for term in query.terms)


def encode_page_token(state: dict[str, object]) -> str:
    """An opaque page token: clients pass it back unchanged."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, fields: Mapping[str, tuple[type, ...]]) -> dict[str, object]:
    """Inverse of encode_page_token; InvalidArgumentError for a token we did not make.

    `fields` names every key the caller's tokens carry and the types it may have, so a
    crafted token (lists, huge or fractional numbers, other keys) never reaches a query.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(
            "page_token is not valid; pass the next_page_token of the previous response"
        ) from exc
    if (
        not isinstance(state, dict)
        or set(state) != set(fields)
        or not all(_plain(state[k], types) for k, types in fields.items())
    ):
        raise InvalidArgumentError(
            "page_token is not valid; pass the next_page_token of the previous response"
        )
    return state


def _plain(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) or not isinstance(value, types):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value) and 0 <= value < 2**53
    return isinstance(value, str) and len(value) <= 1000


def check_page_size(page_size: int, default: int = 20, maximum: int = 100) -> int:
    """0 means the default; negative is invalid; above `maximum` is over the limit."""
    if page_size == 0:
        return min(default, maximum)
    if page_size < 0:
        raise InvalidArgumentError(f"page_size is {page_size}; it must be 0 (default) or more")
    if page_size > maximum:
        raise ResourceExhaustedError(
            f"page_size {page_size} is over this server's limit of {maximum} per page; "
            "ask for fewer and follow next_page_token",
            reason="page_size",
        )
    return page_size


@dataclass(frozen=True)
class Located:
    """Where a match in a two-segment search window belongs."""

    in_previous: bool
    snippet: str
    highlights: tuple[TextRange, ...]
    word: int
    """Index, among the window's words, of the first matched word (for its time)."""


def window(previous: str, text: str) -> tuple[str, int]:
    """The indexed text of a segment: the previous segment's text and its own, so that a
    phrase spoken across the seam of two final results is still found. Returns the text
    and the index where the segment's own text starts. Text in a script written without
    spaces (Chinese, Japanese ...) is joined without one, so a word split by the seam of
    two finals ("今天的会" + "议很长") is still one run of characters."""
    if not previous:
        return text, 0
    if text and _kind(previous[-1]) == _PAIRED == _kind(text[0]):
        return previous + text, len(previous)
    return f"{previous} {text}", len(previous) + 1


def locate(previous: str, text: str, query: SearchQuery) -> Located | None:
    """The hit a segment's window gives, or None when the match belongs to the previous
    segment alone (that segment's own window reports it, so no hit is listed twice)."""
    before = len(previous.split())
    if matches(text, query):  # the segment holds the match by itself
        marks = highlights(text, query)
        return Located(False, text, marks, before + len(text[: marks[0].start].split()))
    if not previous or matches(previous, query):
        return None
    win, _ = window(previous, text)
    if not matches(win, query):
        return None
    marks = highlights(win, query)
    return Located(True, win, marks, len(win[: marks[0].start].split()))


def title_snippet(title: str, tags: Sequence[str]) -> str:
    """What a title-and-tags hit shows: the title, then each tag as #tag."""
    return " ".join([title, *(f"#{t}" for t in tags)]).strip()


def transcript_hit(meta: TranscriptMeta, query: SearchQuery) -> SearchHit | None:
    """A hit on the transcript itself when its title and tags together hold every term."""
    snippet = title_snippet(meta.title, meta.tags)
    if not snippet or not matches(snippet, query):
        return None
    return SearchHit(
        transcript_id=meta.id,
        transcript_title=meta.title,
        segment_index=0,
        start=0.0,
        snippet=snippet,
        highlights=highlights(snippet, query),
        created_at=meta.created_at,
        kind=SearchHitKind.TRANSCRIPT,
    )
