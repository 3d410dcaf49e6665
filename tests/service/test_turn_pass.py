"""Turn passes through the API (--revise-turns, base's default; here on tiny.en, whose
decodes are fast): two readers with a long pause between them are two turns, each
decoded once more whole; every revision of a segment is one higher than the last one sent
for it, and storage holds the text sent last. Real model, real speech, in-process server."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import numpy as np
from transcribe.v1 import streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings, StreamingSettings
from service.engine import WhisperEngine
from service.metrics import Metrics
from service.policy.turns import TURN_PAUSE_S
from service.server import start_server
from tests.helpers import clips, decode_16k, pcm16, wer
from tests.service.test_second_pass_beside import paced

READERS = ("5652-19215-0000", "4406-16882-0000")


def turn_passes(metrics: Metrics) -> float:
    """Turn passes counted, whatever their outcome (transcribe_turn_passes_total)."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "transcribe_turn_passes_total"
    )


async def test_each_turn_is_decoded_whole_once_and_storage_holds_what_was_sent_last(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    streaming = dataclasses.replace(StreamingSettings(), revise_turns=True)
    settings = Settings(port=0, storage=StorageSettings(data_dir=tmp_path), streaming=streaming)
    running = await start_server(settings, engine=engine)
    try:
        pause = np.zeros(round((TURN_PAUSE_S + 2.0) * 16000), np.float32)
        first, second = (decode_16k(clips()[c].path) for c in READERS)
        audio = pcm16(np.concatenate([first, pause, second]))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(channel)
            sent: dict[int, tuple[str, int]] = {}  # index -> (text, revision) sent last
            transcript_id = ""
            async for resp in stub.StreamingTranscribe(paced(audio, 2.0)):
                if resp.HasField("session"):
                    transcript_id = resp.session.transcript_id
                for r in resp.results:
                    if not r.is_final:
                        continue
                    last = sent.get(r.segment_index, ("", -1))[1]
                    assert r.revision == last + 1, (r.segment_index, r.revision, last)
                    sent[r.segment_index] = (r.alternatives[0].transcript, r.revision)
            got = await transcripts_pb2_grpc.TranscriptServiceStub(channel).GetTranscript(
                transcripts_pb2.GetTranscriptRequest(transcript_id=transcript_id)
            )
        assert {s.index: s.text for s in got.transcript.segments} == {
            i: text for i, (text, _) in sent.items()
        }
        assert turn_passes(running.deps.metrics) == 2  # the pause ended one, the end the other
        refs = " ".join(clips()[c].text for c in READERS).lower()
        assert wer([refs], [" ".join(s.text for s in got.transcript.segments)]) < 0.2
    finally:
        await running.stop()
