"""Search in any language, in both stores: accents and case folded the same way on the
index and the query side, Chinese and Japanese (written without spaces) findable by any
substring, highlights on the original characters, and an
SQLite database made by the English-only version rebuilt on open."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from service.domain import SearchHit, SearchHitKind
from service.storage.base import TranscriptStore
from service.storage.query import tokenize, window
from service.storage.sqlite import FTS, SQLiteTranscriptStore
from tests.storage.test_store_contract import meta, seg, store

__all__ = ["store"]  # the parametrized fixture (SQLite and DynamoDB Local)

SEGMENTS = {
    "fr": ["Mon résumé est prêt.", "Où est l'hôpital ?"],
    "en": ["The RESUME is ready.", "Hospital visit at noon."],
    "de": ["Die Straße ist sehr groß.", "Über die Größe reden wir später."],
    "es": ["¿Mañana a qué hora?", "El niño come piña."],
    "zh": ["今天的会议很长。", "我们明天讨论预算。"],
    "ja": ["明日の会議は十時に始まります。", "午後のミーティングに参加します。"],
    "ko": ["오늘 회의는 길었습니다.", "내일 예산을 논의합니다."],
    # The same accents written decomposed (a base letter and a combining mark), as some
    # keyboards and copy-pastes produce them.
    "nfd": [unicodedata.normalize("NFD", "Le café était fermé."), "Rien."],
}


async def fill(store: TranscriptStore) -> None:
    for minutes, (tid, texts) in enumerate(SEGMENTS.items()):
        await store.create_transcript(meta(tid, minutes=minutes))
        await store.append_segments(
            "alice", tid, [seg(i, t, 1.0 + 3 * i) for i, t in enumerate(texts)]
        )


async def search(store: TranscriptStore, query: str) -> list[SearchHit]:
    hits, _ = await store.search("alice", query, 50, "")
    return [h for h in hits if h.kind != SearchHitKind.TRANSCRIPT]


async def marked(store: TranscriptStore, query: str) -> set[tuple[str, int, tuple[str, ...]]]:
    """(transcript, segment, highlighted original text) of every segment hit."""
    return {
        (h.transcript_id, h.segment_index, tuple(h.snippet[r.start : r.end] for r in h.highlights))
        for h in await search(store, query)
    }


async def test_accents_and_case_fold_both_ways(store: TranscriptStore) -> None:
    await fill(store)
    both = {("fr", 0, ("résumé",)), ("en", 0, ("RESUME",))}
    for query in ("resume", "résumé", "RÉSUMÉ", "Resume", "re\u0301sume\u0301"):
        assert await marked(store, query) == both, query
    assert await marked(store, "hopital") == {("fr", 1, ("hôpital",))}
    assert await marked(store, "L'HÔPITAL") == {("fr", 1, ("l", "hôpital"))}
    assert await marked(store, "ou est") == {("fr", 1, ("Où", "est"))}
    assert await marked(store, '"pret"') == {("fr", 0, ("prêt",))}


async def test_decomposed_accents_are_found_and_highlighted_whole(store: TranscriptStore) -> None:
    await fill(store)
    cafe = unicodedata.normalize("NFD", "café")
    for query in ("cafe", "café", cafe, '"etait ferme"'):
        hits = await search(store, query)
        assert [(h.transcript_id, h.segment_index) for h in hits] == [("nfd", 0)], query
    (hit,) = await search(store, "CAFÉ")
    assert [hit.snippet[r.start : r.end] for r in hit.highlights] == [cafe]  # with its mark


async def test_german_sharp_s_and_umlauts(store: TranscriptStore) -> None:
    await fill(store)
    for query in ("strasse", "STRASSE", "Straße", "straße"):
        assert await marked(store, query) == {("de", 0, ("Straße",))}, query
    assert await marked(store, "gross") == {("de", 0, ("groß",))}
    assert await marked(store, "uber grosse") == {("de", 1, ("Über", "Größe"))}
    assert await marked(store, '"über die größe"') == {("de", 1, ("Über die Größe",))}


async def test_spanish_tilde_and_inverted_marks(store: TranscriptStore) -> None:
    await fill(store)
    assert await marked(store, "manana QUE") == {("es", 0, ("Mañana", "qué"))}
    assert await marked(store, "¿mañana?") == {("es", 0, ("Mañana",))}
    assert await marked(store, '"nino come pina"') == {("es", 1, ("niño come piña",))}


async def test_chinese_without_spaces(store: TranscriptStore) -> None:
    await fill(store)
    assert await marked(store, "会议") == {("zh", 0, ("会议",))}
    assert await marked(store, "会议很长") == {("zh", 0, ("会议很长",))}
    assert await marked(store, "明天 预算") == {("zh", 1, ("明天", "预算"))}
    assert await marked(store, '"讨论预算"') == {("zh", 1, ("讨论预算",))}
    assert await marked(store, "很") == {("zh", 0, ("很",))}  # one character
    assert await marked(store, "长") == {("zh", 0, ("长",))}  # the last of a run
    assert await search(store, "会长") == []  # both characters occur, not together
    assert await search(store, "预算会议") == []


async def test_japanese_without_spaces(store: TranscriptStore) -> None:
    await fill(store)
    assert await marked(store, "会議") == {("ja", 0, ("会議",))}
    assert await marked(store, "十時に始まります") == {("ja", 0, ("十時に始まります",))}
    assert await marked(store, "ミーティング") == {("ja", 1, ("ミーティング",))}
    assert await marked(store, "ﾐｰﾃｨﾝｸﾞ") == {("ja", 1, ("ミーティング",))}  # half-width
    assert await marked(store, "時") == {("ja", 0, ("時",))}
    assert await marked(store, "午後 参加") == {("ja", 1, ("午後", "参加"))}
    assert await search(store, "会議に") == []
    # Kana marks are part of the letter: ガ is not カ.
    assert await search(store, "ミーテインク") == []


async def test_titles_and_tags_fold_too(store: TranscriptStore) -> None:
    await store.create_transcript(meta("t1"))
    await store.update_transcript("alice", "t1", title="Réunion budgétaire", tags=["年度会议"])
    hits, _ = await store.search("alice", "budgetaire 会议", 10, "")
    assert [(h.kind, h.transcript_id) for h in hits] == [(SearchHitKind.TRANSCRIPT, "t1")]
    assert [hits[0].snippet[r.start : r.end] for r in hits[0].highlights] == ["budgétaire", "会议"]


OLD_FTS = "CREATE VIRTUAL TABLE segments_fts USING fts5(text, tokenize = 'unicode61')"


async def test_a_database_of_the_english_only_version_is_reindexed_on_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    s = await SQLiteTranscriptStore(path).open()
    await fill(s)
    # Turn it into what the previous version made: its FTS table, holding the raw windows.
    conn = s.conn
    conn.execute("DROP TABLE segments_fts")
    conn.execute(OLD_FTS)
    rows = conn.execute(
        "SELECT s.rowid, s.text, p.text AS p_text FROM segments s LEFT JOIN segments p"
        " ON p.transcript_id = s.transcript_id AND p.idx = s.idx - 1"
    ).fetchall()
    for r in rows:
        conn.execute(
            "INSERT INTO segments_fts (rowid, text) VALUES (?, ?)",
            (r["rowid"], window(r["p_text"] or "", r["text"])[0]),
        )
    old_match = "SELECT COUNT(*) FROM segments_fts WHERE segments_fts MATCH ?"
    assert conn.execute(old_match, ('"会议"',)).fetchone()[0] == 0  # what it could not find
    await s.close()

    s = await SQLiteTranscriptStore(path).open()
    try:
        sql = s.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'segments_fts'")
        assert sql.fetchone()[0] == FTS
        count = "SELECT COUNT(*) FROM segments_fts"
        assert s.conn.execute(count).fetchone()[0] == len(rows)
        assert await marked(s, "会議") == {("ja", 0, ("会議",))}
        assert await marked(s, "resume") == {("fr", 0, ("résumé",)), ("en", 0, ("RESUME",))}
        # Windows are rebuilt too: the second segment's row holds the first's text.
        assert await marked(s, '"pret ou"') == {("fr", 0, ("prêt. Où",))}
        # And the store goes on indexing new text the new way.
        await s.append_segments("alice", "zh", [seg(2, "预算很紧张。", 9.0)])
        assert await marked(s, "紧张") == {("zh", 2, ("紧张",))}
    finally:
        await s.close()
    s = await SQLiteTranscriptStore(path).open()  # a current database is left as it is
    try:
        assert s.conn.execute(count).fetchone()[0] == len(rows) + 1
    finally:
        await s.close()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Résumé RESUME", ["resume", "resume"]),
        ("Straße", ["strasse"]),
        ("今天的会议", ["今", "今天", "天", "天的", "的", "的会", "会", "会议", "议"]),
        ("AI会议 ok", ["ai", "会", "会议", "议", "ok"]),
        ("ｶﾀｶﾅ", ["カ", "カタ", "タ", "タカ", "カ", "カナ", "ナ"]),
        ("猫", ["猫"]),
        ("Hello_World 42x", ["hello", "world", "42x"]),
        ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),  # Devanagari vowel signs stay in the word
    ],
)
def test_one_tokenizer(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


async def test_chinese_word_split_by_the_seam_of_two_finals(store: TranscriptStore) -> None:
    """Live finals split unspaced text anywhere, even inside a word."""
    await store.create_transcript(meta("seam"))
    await store.append_segments("alice", "seam", [seg(0, "今天的会", 1.0)])
    await store.append_segments("alice", "seam", [seg(1, "议很长", 2.0), seg(2, "好的", 3.0)])
    hits = await search(store, "会议")
    assert [(h.segment_index, h.snippet) for h in hits] == [(0, "今天的会议很长")]
    assert [hits[0].snippet[r.start : r.end] for r in hits[0].highlights] == ["会议"]
    assert [(h.segment_index, h.snippet) for h in await search(store, "很长")] == [(1, "议很长")]
    assert await search(store, "长好") != []  # the next seam too


async def test_korean_words_with_particles(store: TranscriptStore) -> None:
    await fill(store)
    assert await marked(store, "회의") == {("ko", 0, ("회의",))}  # in 회의는
    assert await marked(store, "예산 논의") == {("ko", 1, ("예산", "논의"))}
    assert await marked(store, '"오늘 회의는"') == {("ko", 0, ("오늘 회의는",))}
    assert await search(store, "회산") == []
