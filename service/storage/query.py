"""Search query parsing and highlighting shared by the storage backends.

User text is never handed to a search engine as syntax: it is split into plain
word tokens and quoted phrases, which each backend turns into its own safe form.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.domain import SearchHit, SearchHitKind, TextRange, TranscriptMeta
from service.errors import InvalidArgumentError, ResourceExhaustedError

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
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


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, as the index stores them."""
    return [t.lower() for t in _TOKEN.findall(text)]


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
    terms += [(t,) for t in tokenize(rest)]
    if not terms:
        raise InvalidArgumentError(
            'query has no words to search for; give words or a "quoted phrase"'
        )
    if len(terms) > MAX_TERMS:
        raise InvalidArgumentError(f"query has {len(terms)} terms; at most {MAX_TERMS}")
    return SearchQuery(tuple(dict.fromkeys(terms)))


def highlights(text: str, query: SearchQuery) -> tuple[TextRange, ...]:
    """Where the query's terms occur in text (code-point ranges, in order, merged)."""
    spans: list[tuple[int, int]] = []
    for term in query.terms:
        pattern = r"(?<![^\W_])" + r"[\W_]+".join(re.escape(t) for t in term) + r"(?![^\W_])"
        spans += [(m.start(), m.end()) for m in re.finditer(pattern, text, re.IGNORECASE)]
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
    and the index where the segment's own text starts."""
    if not previous:
        return text, 0
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
