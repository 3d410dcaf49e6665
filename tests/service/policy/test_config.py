"""The policy's configuration comes from the server's settings, with no defaults of its own."""

from __future__ import annotations

import pytest

from service.config import build_settings
from service.policy import PolicyConfig, policy_config


def test_the_policy_runs_what_the_server_is_configured_with(cfg: PolicyConfig) -> None:
    s = build_settings([], environ={})
    assert (cfg.min_step_s, cfg.commit_margin_s) == (
        s.streaming.min_step_s,
        s.streaming.commit_margin_s,
    )
    assert (cfg.interim_beam, cfg.final_beam, cfg.shared_beam) == (
        s.model.beam_size,
        s.model.final_beam_size,
        s.model.shared_beam_size,
    )
    assert (cfg.silence_s, cfg.max_utterance_s) == (
        s.streaming.default_silence_s,
        s.streaming.default_max_utterance_s,
    )


def test_a_stream_overrides_endpointing_prompt_and_revisions() -> None:
    s = build_settings([], environ={})
    cfg = policy_config(
        s, silence_s=1.5, max_utterance_s=20, prompt="p", hotwords="h", revisions=False
    )
    assert (cfg.silence_s, cfg.max_utterance_s, cfg.prompt, cfg.hotwords) == (1.5, 20, "p", "h")
    assert not cfg.revise


def test_there_are_no_tuning_defaults_to_drift_from_the_settings() -> None:
    with pytest.raises(TypeError):
        PolicyConfig()  # type: ignore[call-arg]
