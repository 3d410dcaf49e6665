"""Streams with different amounts of context share one batched model call.

CTranslate2 raises when prompts in one generate call put <|startoftranscript|> at
different positions (CTranslate2#1118); the scheduler would then silently decode the
batch one by one at twice the cost. The engine gives every stream exactly
CONTEXT_TOKENS tokens of context or none, so streams without a prompt of their own
share one generate call; requests with their own prompts are grouped by length."""

from __future__ import annotations

from dataclasses import replace

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
