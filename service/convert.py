"""Translation between domain dataclasses and protobuf messages shared by the servicers."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from transcribe.v1 import common_pb2

from service.domain import Word


def duration(seconds: float) -> Duration:
    """Seconds as a protobuf Duration (millisecond precision is plenty for speech)."""
    d = Duration()
    d.FromMilliseconds(round(max(0.0, seconds) * 1000))
    return d


def seconds(d: Duration) -> float:
    """A protobuf Duration as float seconds."""
    return float(d.seconds) + d.nanos / 1e9


def timestamp(dt: datetime) -> Timestamp:
    """An aware datetime as a protobuf Timestamp."""
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def word_info(word: Word, speaker_label: str = "") -> common_pb2.WordInfo:
    """A domain Word as WordInfo (with its segment's or result's speaker label)."""
    return common_pb2.WordInfo(
        word=word.text,
        start_offset=duration(word.start),
        end_offset=duration(word.end),
        probability=word.probability,
        speaker_label=speaker_label,
    )


def word_from_info(info: common_pb2.WordInfo) -> Word:
    """WordInfo back to a domain Word."""
    return Word(
        text=info.word,
        start=seconds(info.start_offset),
        end=seconds(info.end_offset),
        probability=info.probability,
    )
