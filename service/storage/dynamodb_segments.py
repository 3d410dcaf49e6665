"""Final segments on DynamoDB: their items in the transcripts table and their postings in
the inverted index (dynamodb.py has the table design).

A segment may be written again with the same index (a revision): it replaces the
stored one, and the postings of its window and of the next segment's window (which
starts with its text) are rewritten. A replacement is three steps, each idempotent:
items first, their `posted` widened to old and new words; then the postings (the
words no longer in a window deleted); then `posted` narrowed to the new words. An
attempt that fails part-way thus leaves no posting its retry cannot find, even if
the retried batch holds yet another revision.

Functions are blocking boto3 calls; the store runs them on its threads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from service.domain import Decoding, Segment, Word
from service.storage.dynamodb_lease import fenced_items
from service.storage.dynamodb_tables import Tables
from service.storage.dynamodb_transcripts import dec, owned_item, query_all, rev
from service.storage.query import tokenize, window


def _posted(item: dict[str, Any], prev: dict[str, Any] | None) -> set[str]:
    """Every token that may have a posting for this segment item. Items written before
    `posted` existed have exactly the postings of their window."""
    if "posted" in item:
        return set(json.loads(item["posted"]))
    return set(tokenize(window(prev["text"] if prev else "", item["text"])[0]))


def _posted_json(tokens: set[str]) -> str:
    return json.dumps(sorted(tokens), ensure_ascii=False)


def _segment(item: dict[str, Any]) -> Segment:
    return Segment(
        index=int(item["idx"]),
        start=float(item["start"]),
        end=float(item["end"]),
        text=item["text"],
        words=tuple(Word(str(t), s, e, p) for t, s, e, p in json.loads(item["words"])),
        confidence=float(item["confidence"]),
        speaker_label=item.get("speaker", ""),
        decoding=Decoding(int(item.get("decoding", 0))),  # absent: stored before it existed
    )


def _segment_item(transcript_id: str, seg: Segment, posted: set[str]) -> dict[str, Any]:
    return {
        "pk": f"T#{transcript_id}",
        "sk": f"S#{seg.index:08d}",
        "idx": seg.index,
        "start": dec(seg.start),
        "end": dec(seg.end),
        "text": seg.text,
        "confidence": dec(seg.confidence),
        "speaker": seg.speaker_label,
        "words": json.dumps(
            [
                [w.text, round(w.start, 3), round(w.end, 3), round(w.probability, 3)]
                for w in seg.words
            ]
        ),
        "posted": _posted_json(posted),
        "decoding": seg.decoding.value,
    }


def _segment_items(
    tables: Tables, transcript_id: str, indexes: set[int]
) -> dict[int, dict[str, Any]]:
    """The stored items of these segment indexes (strongly consistent: a replacement
    computes which postings to delete from them)."""
    out: dict[int, dict[str, Any]] = {}
    keys = [{"pk": f"T#{transcript_id}", "sk": f"S#{i:08d}"} for i in sorted(indexes)]
    for n in range(0, len(keys), 100):
        request = {tables.main_name: {"Keys": keys[n : n + 100], "ConsistentRead": True}}
        while request:
            resp = tables.client.batch_get_item(RequestItems=request)
            for item in resp["Responses"].get(tables.main_name, []):
                out[int(item["idx"])] = item
            request = resp.get("UnprocessedKeys") or {}
    return out


def set_posted(table: Any, transcript_id: str, index: int, tokens: set[str]) -> None:
    """Record on a segment item which tokens may have a posting for it."""
    table.update_item(
        Key={"pk": f"T#{transcript_id}", "sk": f"S#{index:08d}"},
        UpdateExpression="SET posted = :p",
        ExpressionAttributeValues={":p": _posted_json(tokens)},
        ConditionExpression="attribute_exists(pk)",
    )


def append(
    tables: Tables,
    owner: str,
    transcript_id: str,
    segments: Sequence[Segment],
    epoch: int | None,
) -> None:
    """Add or replace segments by index and rewrite the postings of their windows (and
    of the next stored segment's), in the three steps the module docstring describes."""
    latest = {s.index: s for s in segments}  # a later revision in the batch wins
    meta = owned_item(tables.main, owner, transcript_id)
    if not latest:
        return
    nexts = {i + 1 for i in latest} - set(latest)
    stored = _segment_items(
        tables, transcript_id, set(latest) | {i - 1 for i in latest if i > 0} | nexts
    )
    # Text and word starts of each index as they are once this batch is stored.
    after = {
        i: (it["text"], [float(w[1]) for w in json.loads(it["words"])]) for i, it in stored.items()
    }
    after |= {i: (s.text, [w.start for w in s.words]) for i, s in latest.items()}
    speakers = {i: it.get("speaker", "") for i, it in stored.items()}
    speakers |= {i: s.speaker_label for i, s in latest.items()}
    # The stored segment after a written one is re-indexed too, as its window starts
    # with the written text. Always, not only when that text changed: a failed
    # attempt may have stored the new text but not yet that window's postings.
    touched = sorted(set(latest) | (nexts & set(stored)))
    tokens: dict[int, list[str]] = {}
    for k in touched:
        indexed, _ = window(after.get(k - 1, ("", []))[0], after[k][0])
        tokens[k] = list(dict.fromkeys(tokenize(indexed)))
    # 1. Items first, each listing every token that may have a posting for it (the old
    #    ones and the new): an attempt that fails part-way leaves no posting unlisted.
    posted = {
        k: set(tokens[k]) | (_posted(stored[k], stored.get(k - 1)) if k in stored else set())
        for k in touched
    }
    # Items and their count in transactions fenced by the writer's epoch: a stale
    # writer stores nothing, and a retry sees the items stored and does not count again.
    end = max(s.end for s in latest.values())
    duration = max(end, float(meta.get("duration", 0)))
    items = [_segment_item(transcript_id, s, posted[s.index]) for s in latest.values()]
    fenced_items(
        tables.client,
        tables.main_name,
        transcript_id,
        items,
        new={s.index for s in latest.values()} - set(stored),
        duration=dec(duration),
        epoch=epoch,
    )
    for k in touched:  # the next segments' `posted` widened as well
        if k not in latest and stored[k].get("posted") != _posted_json(posted[k]):
            set_posted(tables.main, transcript_id, k, posted[k])
    # 2. Postings: drop the tokens a segment's window no longer has, (re)write the rest.
    sk_prefix = f"{rev(meta['created'])}#{transcript_id}"
    with tables.index.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
        for k in touched:
            sk = f"{sk_prefix}#{k:08d}"
            for token in posted[k].difference(tokens[k]):
                batch.delete_item(Key={"pk": f"W#{owner}#{token}", "sk": sk})
            prev_text, prev_starts = after.get(k - 1, ("", []))
            text, starts = after[k]
            start = latest[k].start if k in latest else float(stored[k]["start"])
            for token in tokens[k]:
                batch.put_item(
                    Item={
                        "pk": f"W#{owner}#{token}",
                        "sk": sk,
                        "tid": transcript_id,
                        "idx": k,
                        "start": dec(start),
                        "text": text,
                        "prev": prev_text,
                        "starts": json.dumps([round(t, 3) for t in prev_starts + starts]),
                        "created": meta["created"],
                        "spk": speakers[k],  # who spoke it, for search by speaker
                        "pspk": speakers.get(k - 1, ""),
                    }
                )
    # 3. The items list exactly their postings again.
    for k in touched:
        if posted[k] != set(tokens[k]):
            set_posted(tables.main, transcript_id, k, set(tokens[k]))


def get(tables: Tables, owner: str, transcript_id: str) -> list[Segment]:
    """All segments of the owner's transcript, in index order."""
    owned_item(tables.main, owner, transcript_id)
    items = query_all(tables.main, f"T#{transcript_id}")
    segs = [_segment(i) for i in items if i["sk"].startswith("S#")]
    return sorted(segs, key=lambda s: s.index)


def delete_transcript(tables: Tables, owner: str, transcript_id: str) -> None:
    """Every posting of the transcript's segments, then its items."""
    owned_item(tables.main, owner, transcript_id)
    items = query_all(tables.main, f"T#{transcript_id}")
    sk_prefix = f"{rev(next(i['created'] for i in items if i['sk'] == 'META'))}#{transcript_id}"
    by_index = {int(i["idx"]): i for i in items if i["sk"].startswith("S#")}
    with tables.index.batch_writer() as batch:
        for idx, item in by_index.items():
            for token in _posted(item, by_index.get(idx - 1)):
                batch.delete_item(Key={"pk": f"W#{owner}#{token}", "sk": f"{sk_prefix}#{idx:08d}"})
    with tables.main.batch_writer() as batch:
        for item in items:
            batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
