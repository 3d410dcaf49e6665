"""The refinement decoder: whole-clip text, and every thread it starts at the lowest priority."""

from __future__ import annotations

from service.config import bundled_model_path
from service.refine.decoder import LowPriorityDecoder
from service.threads import NICE
from tests.helpers import decode_16k, dev_clips, thread_nices


def test_decodes_whole_clip_on_lowest_prioritythread_nices() -> None:
    before = thread_nices()
    decoder = LowPriorityDecoder(str(bundled_model_path()))
    clip = dev_clips()[0]
    progress: list[float] = []
    try:
        decoded = decoder.decode(decode_16k(clip.path), progress=progress.append).result(300)
        new = {tid: nice for tid, nice in thread_nices().items() if tid not in before}
    finally:
        decoder.close()
    words = decoded.words
    assert decoded.language == "en"
    text = " ".join(x.text for x in words).lower()
    assert "war message" in text or len(words) > 20
    assert all(a.start <= a.end for a in words)
    assert progress and progress[-1] > 0.9
    # the executor thread and the model's own worker/compute threads it started
    assert len(new) >= 2
    assert set(new.values()) == {NICE}
