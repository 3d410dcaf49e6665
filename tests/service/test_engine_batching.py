"""Streams with different amounts of context share one batched model call.

CTranslate2 raises when prompts in one generate call put <|startoftranscript|> at
different positions (CTranslate2#1118); the scheduler would then silently decode the
batch one by one at twice the cost. The engine gives every stream exactly
CONTEXT_TOKENS tokens of context or none, so streams without a prompt of their own
share one generate call; requests with their own prompts are grouped by length."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from service.engine import CONTEXT_TOKENS, DecodeRequest, WhisperEngine
from tests.helpers import decode_16k, dev_clips, wer


def test_context_is_all_or_nothing(engine: WhisperEngine) -> None:
    text = dev_clips()[0].text.lower()
    lengths = {
        len(
            engine._prompt_tokens(
                DecodeRequest(audio=decode_16k(dev_clips()[0].path)[:16000], context=text[:n])
            )
        )
        for n in range(0, len(text), 7)
    }
    # <|startoftranscript|> <|notimestamps|> alone, or with <|startofprev|> + context
    assert lengths == {2, CONTEXT_TOKENS + 3}
    # a request decoded alone keeps a short context: nothing to batch it with
    short = DecodeRequest(audio=decode_16k(dev_clips()[0].path)[:16000], context="the war message")
    assert len(engine._prompt_tokens(short, shared=False)) > 3


def test_mixed_prompts_decode_in_one_batch(engine: WhisperEngine) -> None:
    clips = dev_clips()
    reqs = [
        DecodeRequest(
            audio=decode_16k(c.path)[: 16000 * 4],
            beam_size=beam,
            context=clips[(i + 1) % len(clips)].text.lower()[: 15 + 60 * i],
            prompt="A talk about politics." if i == 1 else "",
        )
        for i, c in enumerate(clips)
        for beam in (1, 2)
    ]
    lengths = {len(engine._prompt_tokens(r)) for r in reqs}
    assert len(lengths) > 2  # really different prompts in one batch
    batched = engine.decode_batch(reqs)  # raised ValueError before the grouping
    # alone, a request keeps a short context that a shared batch drops: compare like
    # with like
    tok = engine._tokenizer
    alike = [
        replace(r, context="" if len(tok.encode(" " + r.context)) < CONTEXT_TOKENS else r.context)
        for r in reqs
    ]
    single = [engine.decode_batch([r])[0] for r in alike]
    assert len(batched) == len(reqs)
    for b, s in zip(batched, single, strict=True):
        assert b.text and wer([s.text], [b.text]) < 0.2


def test_a_whole_request_is_decoded_as_offline_whisper_decodes_its_window(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn's pass (`whole`) in a batch with first passes: it is decoded on its own by
    faster-whisper's `transcribe` (the offline reference's path: the same words; the
    punctuation joined to a word may differ), the others together, and each result comes
    back in its request's place."""
    clips = dev_clips()
    audio = decode_16k(clips[0].path)
    seconds = len(audio) / 16000
    assert seconds < 30
    first = DecodeRequest(audio=decode_16k(clips[1].path)[: 16000 * 4], beam_size=2)
    whole = DecodeRequest(audio=audio, beam_size=5, whole=True)
    transcribe = engine._model.transcribe
    through: list[int] = []  # the audio lengths faster-whisper's transcribe was given

    def spy(audio: Any, *args: Any, **kwargs: Any) -> Any:
        through.append(len(audio))
        return transcribe(audio, *args, **kwargs)

    monkeypatch.setattr(engine._model, "transcribe", spy)
    results = engine.decode_batch([first, whole, first])
    assert through == [len(audio)]  # the whole request, and only it
    monkeypatch.undo()
    assert results[0].text and results[0].text == results[2].text
    assert wer([engine.transcribe_offline(audio, beam_size=5)], [results[1].text]) == 0.0
    words = results[1].words
    assert len(words) > 20 and all(0.0 <= w.start <= w.end <= seconds for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert results[1].avg_logprob < 0.0 and results[1].language == "en"
    assert wer([clips[0].text.lower()], [results[1].text.lower()]) < 0.3
