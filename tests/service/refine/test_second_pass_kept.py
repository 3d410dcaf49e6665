"""Refinement can keep the text of segments the live second pass decoded.

The second pass hears each sentence again with beam 5 and the sentences before it, as
the whole-recording decode does. The stream marks those segments in the store
(Segment.decoding), so any replica's refinement knows them; with `keep_second_pass`,
refinement by the stream's own model, in the stream's language, leaves them as they
are and refines the rest (off by default: measured in docs/benchmarks.md). Real parts:
tiny.en, SQLite, the recording store, an in-process server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest
from faster_whisper.audio import decode_audio
from transcribe.v1 import streaming_pb2_grpc

from service.config import Settings, StorageSettings
from service.domain import (
    Decoding,
    Segment,
    TranscriptMeta,
    TranscriptStatus,
    Word,
)
from service.engine import WhisperEngine
from service.models import resolve
from service.recordings import RecordingStore
from service.refine.align import align_to_segments
from service.refine.decoder import RefineDecoders
from service.refine.worker import Refiner, kept
from service.server import start_server
from service.storage.base import TranscriptStore
from tests.helpers import Enc, chunks, config, dev_clips, stream
from tests.service.refine.stored import OWNER, finished_transcript


def w(text: str, start: float, end: float) -> Word:
    return Word(text, start, end, 0.9)


def seg(index: int, words: list[Word], decoding: Decoding = Decoding.FIRST_PASS) -> Segment:
    text = " ".join(x.text for x in words)
    return Segment(index, words[0].start, words[-1].end, text, tuple(words), 0.5, "", decoding)


def test_words_aligned_to_a_kept_segment_are_dropped_and_neighbours_refined() -> None:
    live = [
        seg(0, [w("the", 0.0, 0.3), w("war", 0.4, 0.7)]),
        seg(1, [w("massage", 0.8, 1.4), w("was", 1.5, 1.7)], Decoding.SECOND_PASS),
        seg(2, [w("con", 2.0, 2.2), w("clued", 2.3, 2.6)]),
    ]
    refined = [
        w("The", 0.0, 0.3), w("war", 0.4, 0.7), w("message", 0.8, 1.4), w("is", 1.5, 1.7),
        w("concluded.", 2.0, 2.6),
    ]  # fmt: skip
    out = align_to_segments(live, refined, keep=frozenset({1}))
    assert [(s.index, s.text, s.decoding) for s in out] == [
        (0, "The war", Decoding.REFINED),
        (1, "massage was", Decoding.SECOND_PASS),  # as the second pass had it
        (2, "concluded.", Decoding.REFINED),
    ]
    assert out[1] == live[1]
    assert [(s.start, s.end) for s in out] == [(s.start, s.end) for s in live]


def test_only_the_streams_own_model_in_its_language_keeps_second_passes() -> None:
    meta = TranscriptMeta("t", OWNER, datetime.now(UTC), TranscriptStatus.COMPLETE, "en", "tiny.en")
    live = [
        seg(0, [w("a", 0.0, 0.2)]),
        seg(1, [w("b", 1.0, 1.2)], Decoding.SECOND_PASS),
        seg(2, [w("c", 2.0, 2.2)], Decoding.REFINED),
    ]
    assert kept(live, meta, "tiny.en", "en") == {1}
    assert kept(live, meta, "base", "en") == set()  # a more accurate model replaces them
    assert kept(live, meta, "tiny.en", "de") == set()  # decoded in a language now corrected


@pytest.fixture(scope="module")
def decoders() -> RefineDecoders:
    """tiny.en's refinement decoder, loaded once for the module."""
    return RefineDecoders([resolve("tiny.en")], "int8", 2)


@pytest.mark.parametrize("keep", [True, False])
async def test_refinement_keeps_a_second_passed_segment(
    store: TranscriptStore, decoders: RefineDecoders, tmp_path: Path, keep: bool
) -> None:
    """Three live segments in the clip's words as the refinement decodes them, the first
    two misheard ("zebra" for every word); the second is marked as the second pass's.
    Refinement by the same model restores the first and, keeping second passes, keeps
    the second as it is (else restores it too)."""
    clip = dev_clips()[0]
    decoder = decoders.get("tiny.en")
    audio = np.asarray(decode_audio(str(clip.path)), dtype=np.float32)  # as the refiner loads it
    words = (await asyncio.wrap_future(decoder.decode(audio, "en"))).words
    assert len(words) >= 6, words
    k = len(words) // 3
    parts = [words[:k], words[k : 2 * k], words[2 * k :]]
    zebras = [dataclasses.replace(x, text="zebra") for x in words[: 2 * k]]
    live = [
        seg(0, zebras[:k]),
        seg(1, zebras[k:], Decoding.SECOND_PASS),
        seg(2, parts[2]),
    ]
    recordings = RecordingStore(tmp_path / "recordings")
    tid = await finished_transcript(
        store, recordings, clip.path, language="en", model="tiny.en",
        duration_s=clip.duration_s, segments=live,
    )  # fmt: skip
    assert await Refiner(store, recordings, decoders, keep_second_pass=keep).refine(OWNER, tid)
    got = await store.get_segments(OWNER, tid)
    refined = (seg(1, parts[1]).text, Decoding.REFINED)
    second = (live[1].text, Decoding.SECOND_PASS) if keep else refined
    assert [(s.text, s.decoding) for s in got] == [
        (seg(0, parts[0]).text, Decoding.REFINED),
        second,  # kept, its refined words dropped (not given to its neighbours)
        (live[2].text, Decoding.FIRST_PASS),  # the same text: not rewritten
    ]


async def test_a_stream_marks_the_segments_of_its_second_pass(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """Through the API: the segments a stream revised are stored as the second pass's,
    the others as the first pass's. One stream at a time: shared streams skip the second
    pass."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            for clip in dev_clips():  # until a clip has a sentence the second pass changes
                cfg = config(encoding=Enc.AUDIO_ENCODING_FLAC)
                run = await stream(stub, cfg, chunks(clip.path.read_bytes(), 8000))
                assert run.code == grpc.StatusCode.OK, run.details
                revised = {r.segment_index for r in run.results(True) if r.revision}
                if revised:
                    break
            assert revised, "no clip was revised"
            stored = await server.store.get_segments("local", run.transcript_id)
            assert {s.index for s in stored if s.decoding is Decoding.SECOND_PASS} == revised
            assert {s.decoding for s in stored if s.index not in revised} <= {Decoding.FIRST_PASS}
            assert {s.index: s.text for s in stored} == run.segments
    finally:
        await server.stop(1.0)
