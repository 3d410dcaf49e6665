"""One stream's policy tuning, built from the server's settings and the stream's config.
Imports only service.config.

`PolicyConfig` has no tuning defaults of its own: every value comes from `Settings`
through `policy_config`, so tests and benchmarks run the configuration production runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.config import Settings


@dataclass(frozen=True)
class PolicyConfig:
    """Tuning of one stream's policy (see `policy_config`; the meaning of each value is
    documented on the setting it comes from in service/config.py)."""

    min_step_s: float
    """New audio between re-decodes of a stream that has the model to itself."""
    shared_step_s: float
    """Step while other streams share the model."""
    max_buffer_s: float
    shared_max_buffer_s: float
    """The same while other streams share the model: one long buffer pads the whole
    batch's encoder input to its length, and every stream waits for that batch."""
    silence_s: float
    """Endpointing silence: a pause this long makes the utterance final."""
    max_utterance_s: float
    vad_threshold: float
    interim_beam: int
    final_beam: int
    revise_beam: int
    """Beam of a second pass (it runs beside the first passes, off the finals' path)."""
    shared_beam: int
    """Beam of every decode while other streams share the model: a wider beam, or one
    differing from the batch's, costs every stream in the batch."""
    commit_margin_s: float
    """Agreed words ending closer than this to the buffer's end wait for the next decode."""
    revise: bool
    """Decode each complete sentence again with the ones before it and send the segments
    whose text changes as revisions."""
    revise_turns: bool = False
    """Decode each turn (up to a long pause) once more as offline Whisper would, after its
    sentences' second passes (turns.py)."""
    revise_shared: bool = False
    """Second passes beside the first passes also while streams share the model (in the
    scheduler's slack)."""
    preroll_s: float = 0.4
    """Audio kept before speech starts, so onsets are not clipped (not a setting)."""
    min_speech_s: float = 0.25
    """Speech this long opens an utterance (not a setting)."""
    prompt: str = ""
    hotwords: str = ""


def policy_config(
    settings: Settings,
    silence_s: float | None = None,
    max_utterance_s: float | None = None,
    prompt: str = "",
    hotwords: str = "",
    revisions: bool = True,
) -> PolicyConfig:
    """A stream's policy from the server's settings and what the stream's config overrides
    (the servicer and the replay benchmark build it the same way). Second passes run when
    the server allows them and the stream asked for `revisions`."""
    m, st = settings.model, settings.streaming
    return PolicyConfig(
        min_step_s=st.min_step_s,
        shared_step_s=st.shared_step_s,
        max_buffer_s=st.max_buffer_s,
        shared_max_buffer_s=st.shared_max_buffer_s,
        silence_s=st.default_silence_s if silence_s is None else silence_s,
        max_utterance_s=st.default_max_utterance_s if max_utterance_s is None else max_utterance_s,
        vad_threshold=st.vad_threshold,
        commit_margin_s=st.commit_margin_s,
        interim_beam=m.beam_size,
        final_beam=m.final_beam_size,
        revise_beam=m.revise_beam_size,
        shared_beam=m.shared_beam_size,
        prompt=prompt,
        hotwords=hotwords,
        revise=st.revise and revisions,
        revise_turns=st.revise_turns,
        revise_shared=st.revise_shared,
    )


def for_model(cfg: PolicyConfig, model_settings: Settings) -> PolicyConfig:
    """`cfg` with the decode settings of the model the stream decodes on (its own, from
    service/models.settings_for): beams, steps, buffer caps and whether second passes
    run differ per model (a stream that asked for none gets none)."""
    tuned = policy_config(model_settings)
    return replace(
        cfg,
        min_step_s=tuned.min_step_s,
        shared_step_s=tuned.shared_step_s,
        max_buffer_s=tuned.max_buffer_s,
        shared_max_buffer_s=tuned.shared_max_buffer_s,
        interim_beam=tuned.interim_beam,
        final_beam=tuned.final_beam,
        revise_beam=tuned.revise_beam,
        shared_beam=tuned.shared_beam,
        revise=cfg.revise and model_settings.streaming.revise,
        revise_turns=tuned.revise_turns,
        revise_shared=tuned.revise_shared,
    )
