"""Streams with different amounts of context share one batched model call.

CTranslate2 raises when prompts in one generate call put <|startoftranscript|> at
different positions (CTranslate2#1118); the scheduler would then silently decode the
batch one by one at twice the cost. The engine groups requests by prompt length and
gives every stream with enough context the same number of context tokens."""

from __future__ import annotations

from service.engine import CONTEXT_TOKENS, DecodeRequest, WhisperEngine
from tests.helpers import decode_16k, dev_clips, wer


def test_mixed_prompts_decode_in_one_batch(engine: WhisperEngine) -> None:
    clips = dev_clips()
    reqs = [
        DecodeRequest(
            audio=decode_16k(c.path)[: 16000 * 4],
            beam_size=beam,
            prompt=clips[(i + 1) % len(clips)].text.lower()[: 15 + 60 * i],
        )
        for i, c in enumerate(clips)
        for beam in (1, 2)
    ]
    lengths = {len(engine._prompt_tokens(r)) for r in reqs}
    assert len(lengths) > 2  # really different prompts in one batch
    assert max(lengths) <= CONTEXT_TOKENS + 4  # context is capped to a shared length
    batched = engine.decode_batch(reqs)  # raised ValueError before the grouping
    single = [engine.decode_batch([r])[0] for r in reqs]
    assert len(batched) == len(reqs)
    for b, s in zip(batched, single, strict=True):
        assert b.text and wer([s.text], [b.text]) < 0.2
