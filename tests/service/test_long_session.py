"""A long recording: decode cost per minute stays flat and accuracy stays at offline level."""

from __future__ import annotations

import grpc
import numpy as np

from service.server import RunningServer
from tests.helpers import Enc, Stub, chunks, config, decode_16k, long_clip, pcm16, stream, wer

OFFLINE_WER = 0.0323
"""Offline tiny.en (beam 5, whole clip; `WhisperEngine(ModelSettings()).transcribe_offline`)
on this clip, measured 1 Dec 2026. A constant: decoding the 4.7 minutes again in every run
cost ~25 s of the `alone` test phase, and the model is the bundled one."""


async def test_long_recording_cost_flat_and_wer_near_offline(
    stub: Stub, server: RunningServer
) -> None:
    clip = long_clip()
    audio = decode_16k(clip.path)
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, interim_results=True
    )
    # 0.5 s of audio every 0.125 s: four times real time.
    run = await stream(stub, cfg, chunks(pcm16(audio), 16000), pace_s=0.125)
    assert run.code == grpc.StatusCode.OK, run.details
    ended = next(s for s in server.registry.ended if s.transcript_id == run.transcript_id)
    decodes = ended.decodes

    # Audio passed through the model per minute of stream: the first and last minutes alike.
    # Two minutes each: one minute's figure moves +-15 % with its sentences (runs measured
    # 326-379 s for minute 1 and 351-421 s for minute 4).
    minutes = int(clip.duration_s // 60)
    per_min = np.zeros(minutes + 1)
    wall = np.zeros(minutes + 1)
    for minute, (audio_s, wall_s) in enumerate(zip(decodes.audio_s, decodes.wall_s, strict=True)):
        per_min[min(minute, minutes)] += audio_s
        wall[min(minute, minutes)] += wall_s
    print("audio decoded per minute (s):", per_min.round(1), "wall (s):", wall.round(2))
    assert minutes >= 4
    assert per_min[minutes - 2 : minutes].mean() <= 1.25 * per_min[:2].mean() + 10
    longest = max(s for kind, s in decodes.longest_s.items() if kind != "revise")
    assert longest <= 16.5, "no decode covers more than the bounded buffer"
    revision = decodes.longest_s.get("revise", 0.0)
    assert 0 < revision <= 20.0, "second passes are bounded too"

    streaming_wer = wer([clip.text], [run.final_text])
    offline_wer = OFFLINE_WER
    print(f"long: streaming WER {streaming_wer:.3f} offline WER {offline_wer:.3f}")
    # Sent at 4x real time the stream is decoded far less often than live (the policy's
    # catch-up step), so this is a guard against lost or repeated text (a lost sentence is
    # 15-30 of the clip's ~800 words, 2-4 points), not the accuracy figure: repeated runs
    # measured 4.8-6.1 % against 3.2 % offline here, and one fresh-clone CI run 6.8 % (ci23),
    # while the same recording streamed at real time gives 5.0 % vs 4.7 % (docs/benchmarks.md).
    assert streaming_wer <= offline_wer + 0.045
    words, ref_words = len(run.final_text.split()), len(clip.text.split())
    print(f"long: {words} words, reference {ref_words}")  # 764 / 776 on 2 Dec
    assert abs(words - ref_words) <= 0.04 * ref_words, "no text lost or repeated"
