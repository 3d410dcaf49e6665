"""The replay benchmark: the same text every run, close to the reference."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.lib.analysis import corpus_wer
from benchmarks.lib.clips import Clip, load_audio
from benchmarks.policy_sim import replay
from service.config import build_settings
from service.engine import WhisperEngine
from service.policy import policy_config

DATA = Path(__file__).resolve().parents[1] / "data"


def test_replay_is_deterministic_and_transcribes_the_clip(engine: WhisperEngine) -> None:
    entry = json.loads((DATA / "manifest.jsonl").read_text().splitlines()[0])
    clip = Clip(entry["id"], load_audio(DATA / entry["wav"]), entry["text"])
    cfg = policy_config(build_settings([], environ={}))
    first = replay(engine, cfg, clip)
    second = replay(engine, cfg, clip, log_decodes=True)
    assert first["final_text"] == second["final_text"]
    assert first["decodes"] == second["decodes"]
    wer = corpus_wer([clip.reference], [first["final_text"]])
    assert wer is not None and wer < 0.15
    assert first["decodes"]["interim"] >= clip.duration_s / cfg.min_step_s / 2
    assert sum(row[1] for row in first["per_minute"]) == sum(first["decodes"].values())
    # --decodes: one line per decode, with the finals it sent, which make the final text.
    log = second["decode_log"]
    assert "decode_log" not in first and len(log) == sum(second["decodes"].values())
    assert {row[1] for row in log} <= {"interim", "cut", "final", "revise"}
    sent = [s.split(": ", 1)[1] for row in log for s in row[6] if s.startswith("F#")]
    assert " ".join(sent).split() == first["first_pass_text"].split()
