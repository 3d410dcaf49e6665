"""Validation of a stream's diarization config (pure: plain values in, settings out).

The servicer passes the fields of `StreamingTranscriptionConfig.diarization_config`;
an InvalidArgumentError names the field and the allowed range, like every other
config check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from service.errors import InvalidArgumentError
from service.speakers.clustering import MAX_SUPPORTED_SPEAKERS

FIELD = "config.diarization_config"


@dataclass(frozen=True)
class DiarizationSettings:
    """What a stream asked for; `enabled` False means no speaker labels at all."""

    enabled: bool = False
    min_speakers: int = 1
    max_speakers: int = MAX_SUPPORTED_SPEAKERS
    remember_voices: bool = False
    """Opt-in: name speakers after the principal's remembered voices (speakers/voices.py)."""


def diarization_settings(
    enable_speaker_diarization: bool, min_speaker_count: int, max_speaker_count: int
) -> DiarizationSettings:
    """Check the counts (0 means unset: 1 and 8) even when diarization is off.

    Checking a disabled config too means a client's typo does not lie dormant until
    the day it turns diarization on.
    """
    for name, value in (
        ("min_speaker_count", min_speaker_count),
        ("max_speaker_count", max_speaker_count),
    ):
        if value < 0:
            raise InvalidArgumentError(
                f"{FIELD}.{name} is {value}; it cannot be negative (0 means unset)"
            )
        if value > MAX_SUPPORTED_SPEAKERS:
            raise InvalidArgumentError(
                f"{FIELD}.{name} is {value}; at most {MAX_SUPPORTED_SPEAKERS} speakers are "
                "supported"
            )
    low = min_speaker_count or 1
    high = max_speaker_count or MAX_SUPPORTED_SPEAKERS
    if low > high:
        raise InvalidArgumentError(
            f"{FIELD}.min_speaker_count ({min_speaker_count}) is greater than "
            f"{FIELD}.max_speaker_count ({max_speaker_count})"
        )
    return DiarizationSettings(bool(enable_speaker_diarization), low, high)


class DiarizationMessage(Protocol):
    """The fields of `transcribe.v1.SpeakerDiarizationConfig` that are read."""

    @property
    def enable_speaker_diarization(self) -> bool: ...
    @property
    def min_speaker_count(self) -> int: ...
    @property
    def max_speaker_count(self) -> int: ...
    @property
    def remember_voices(self) -> bool: ...


def from_message(msg: DiarizationMessage | None) -> DiarizationSettings:
    """`diarization_settings` of a config message's `diarization_config` (None: unset)."""
    if msg is None:
        return DiarizationSettings()
    settings = diarization_settings(
        msg.enable_speaker_diarization, msg.min_speaker_count, msg.max_speaker_count
    )
    return replace(settings, remember_voices=settings.enabled and msg.remember_voices)
