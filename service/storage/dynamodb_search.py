"""Segment search on DynamoDB's inverted index (see dynamodb.py for the tables).

The postings of the query's longest word narrow the search to segment windows; each is
checked against every word and phrase (query.locate). A speaker filter is applied to
those postings, not through an index of its own: a posting carries the speaker label of
its segment (`spk`) and of the previous one (`pspk`, for a phrase that starts there), and
names come from the transcripts' metadata read for the titles anyway (one BatchGetItem
per page). A speaker-keyed index would double every segment's postings and, for names,
need rewriting whenever a speaker is renamed; a DynamoDB FilterExpression would read the
same items and could not resolve a name per transcript. Postings written before `spk`
existed get their labels from the segment items (one more BatchGetItem).

The first page also lists the transcripts whose title or tags match (query.transcript_hit).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from service.domain import SearchHit
from service.storage.dynamodb_tables import GSI
from service.storage.dynamodb_transcripts import meta
from service.storage.query import (
    Located,
    SearchQuery,
    encode_page_token,
    locate,
    matches,
    transcript_hit,
    window,
)
from service.storage.speaker_filter import name_of, speaker_matches


def _word_start(posting: dict[str, Any], where: Located) -> float:
    """When the first matched word is spoken (the posting keeps its window's word starts)."""
    starts = json.loads(posting.get("starts", "[]"))
    if where.word < len(starts):
        return float(starts[where.word])
    return float(posting["start"])


def _batch_get(
    client: Any, table: str, keys: list[dict[str, str]], attributes: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Items of these keys with only these attributes (100 keys per request)."""
    names = {f"#a{i}": a for i, a in enumerate(attributes)}
    out: list[dict[str, Any]] = []
    for n in range(0, len(keys), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": keys[n : n + 100],
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
        while request:
            resp = client.batch_get_item(RequestItems=request)
            out += resp["Responses"].get(table, [])
            request = resp.get("UnprocessedKeys") or {}
    return out


def _transcripts(client: Any, table: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Title and speaker names of each transcript that still exists."""
    keys = [{"pk": f"T#{i}", "sk": "META"} for i in sorted(ids)]
    return {
        it["id"]: it for it in _batch_get(client, table, keys, ("id", "title", "speaker_names"))
    }


def _stored_labels(
    client: Any, table: str, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """Speaker labels of segments, for postings written before they carried them."""
    keys = [{"pk": f"T#{t}", "sk": f"S#{i:08d}"} for t, i in sorted(wanted)]
    items = _batch_get(client, table, keys, ("pk", "idx", "speaker"))
    return {(it["pk"][2:], int(it["idx"])): it.get("speaker", "") for it in items}


def segment_hits(
    index: Any,
    client: Any,
    main_name: str,
    query_kwargs: dict[str, Any],
    parsed: SearchQuery,
    page_size: int,
    speaker: str = "",
) -> tuple[list[SearchHit], str]:
    """A page of segment hits from the postings Query `query_kwargs`, and the next token."""
    kwargs = dict(query_kwargs, Limit=100)
    hits: list[SearchHit] = []
    metas: dict[str, dict[str, Any]] = {}
    while True:
        resp = index.query(**kwargs)
        found: list[tuple[dict[str, Any], Located]] = []
        for item in resp["Items"]:
            where = locate(item.get("prev", ""), item["text"], parsed)
            if where is not None and matches(window(item.get("prev", ""), item["text"])[0], parsed):
                found.append((item, where))
        metas |= _transcripts(client, main_name, {i["tid"] for i, _ in found} - set(metas))
        found = [(i, w) for i, w in found if i["tid"] in metas]  # deleted meanwhile: no hit
        old = {
            (i["tid"], int(i["idx"]) - (1 if w.in_previous else 0))
            for i, w in found
            if ("pspk" if w.in_previous else "spk") not in i
        }
        labels = _stored_labels(client, main_name, old) if old else {}
        for item, where in found:
            idx = int(item["idx"]) - (1 if where.in_previous else 0)
            label = item.get("pspk" if where.in_previous else "spk")
            if label is None:
                label = labels.get((item["tid"], idx), "")
            names = dict(metas[item["tid"]].get("speaker_names", {}))
            if not speaker_matches(label, names, speaker):
                continue
            hits.append(
                SearchHit(
                    transcript_id=item["tid"],
                    transcript_title=metas[item["tid"]].get("title", ""),
                    segment_index=idx,
                    start=_word_start(item, where),
                    snippet=where.snippet,
                    highlights=where.highlights,
                    created_at=datetime.fromtimestamp(float(item["created"]), UTC),
                    speaker_label=label,
                    speaker_name=name_of(label, names),
                )
            )
            if len(hits) == page_size:
                return hits, encode_page_token({"pk": item["pk"], "sk": item["sk"]})
        if "LastEvaluatedKey" not in resp:
            return hits, ""
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def title_hits(table: Any, owner: str, parsed: SearchQuery, limit: int) -> list[SearchHit]:
    """Transcripts by title and tags, newest first (the first page of a search only).
    Reads every metadata item of the owner: fine for a person's meetings; a token
    index of titles would be the next step for owners with very many."""
    from boto3.dynamodb.conditions import Key

    hits: list[SearchHit] = []
    kwargs: dict[str, Any] = {
        "IndexName": GSI,
        "KeyConditionExpression": Key("gpk").eq(f"O#{owner}"),
        "ScanIndexForward": False,
    }
    while True:
        resp = table.query(**kwargs)
        for item in resp["Items"]:
            hit = transcript_hit(meta(item), parsed)
            if hit is not None:
                hits.append(hit)
                if len(hits) == limit:
                    return hits
        if "LastEvaluatedKey" not in resp:
            return hits
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
