"""The page's JSON messages <-> gRPC streaming messages (no I/O here).

Client messages: a JSON `{"type": "start", "config": {...}}`, then binary audio
chunks exactly as MediaRecorder produced them, then `{"type": "stop"}`.
Server messages (JSON): `session`, `interim`, `final`, `speech`, `error`
(with the gRPC status name and message), `end`, and `leaving` (the bridge is shutting
down: send `stop` once this stream's audio is sent, its finals follow, then `error`
UNAVAILABLE; send the rest on a new socket that resumes the transcript). A `final`
with `revision` > 0 carries new text for a `segment_index` already sent: the page
replaces that segment (revisions are on unless the start config says
`"revisions": false`).
`"model"` (a name from GET /api/models; absent or "": the service's default) and
`"language_code"` ("de"; absent, "" or "auto": detect) choose how it is transcribed;
results then carry `language_code`, and the session the model and language it got.
With `"speakers": true` in the start config (the page sends it) finals and interims
carry `speaker`, the speaker's label ("S1", "S2", ...; provisional on interims).
With `"remember_voices": true` as well (the page's "Remember voices" switch) the
service names speakers after the principal's remembered voices while the stream runs:
a `speaker_names` message carries `names`, the transcript's whole label -> name map.
"""

from __future__ import annotations

import json
from typing import Any

from transcribe.v1 import streaming_pb2

Enc = streaming_pb2.AudioEncoding
ENCODINGS = {
    "webm": Enc.AUDIO_ENCODING_WEBM_OPUS,
    "ogg": Enc.AUDIO_ENCODING_OGG_OPUS,
    "wav": Enc.AUDIO_ENCODING_WAV,
    "auto": Enc.AUDIO_ENCODING_UNSPECIFIED,
}


MAX_NAME = 100
"""Longest model name or language code the bridge forwards (the service checks the value)."""


class ProtocolError(Exception):
    """The browser broke the message protocol; sent back as INVALID_ARGUMENT."""


def _name(raw: dict[str, Any], field: str) -> str:
    """An optional short string field of the start config (null counts as absent)."""
    value = raw.get(field)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise ProtocolError(
            f"start.config.{field} must be a string of at most {MAX_NAME} characters"
        )
    return value


def _text(raw: dict[str, Any], field: str) -> str:
    """A free text field; null is absent (it was the title "None"), and a number or
    the like is taken as its text (the service checks the length)."""
    value = raw.get(field)
    return "" if value is None else str(value)


def stream_config(raw: Any) -> streaming_pb2.StreamingTranscriptionConfig:
    """The page's JSON config as the gRPC config (the service validates values)."""
    if not isinstance(raw, dict):
        raise ProtocolError("start.config must be an object")
    encoding = ENCODINGS.get(str(raw.get("encoding", "webm")))
    if encoding is None:
        raise ProtocolError(f"start.config.encoding must be one of {sorted(ENCODINGS)}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ProtocolError("start.config.tags must be a list of strings")
    return streaming_pb2.StreamingTranscriptionConfig(
        encoding=encoding,
        interim_results=bool(raw.get("interim_results", True)),
        enable_word_time_offsets=bool(raw.get("word_time_offsets", False)),
        enable_voice_activity_events=True,
        title=_text(raw, "title"),
        tags=tags,
        resume_transcript_id=_text(raw, "resume_transcript_id"),
        language_code=_name(raw, "language_code"),
        model=_name(raw, "model"),
        live=True,  # a browser page streams its microphone
        enable_revisions=bool(raw.get("revisions", True)),  # the page replaces by index
        # Off unless asked: labelling costs CPU and splits finals at speaker changes.
        diarization_config=streaming_pb2.SpeakerDiarizationConfig(
            enable_speaker_diarization=bool(raw.get("speakers", False)),
            remember_voices=bool(raw.get("remember_voices", False)),  # opt-in, stores prints
        ),
    )


def _secs(d: Any) -> float:
    return round(float(d.seconds) + float(d.nanos) / 1e9, 3)


def to_json(resp: streaming_pb2.StreamingTranscribeResponse) -> list[dict[str, Any]]:
    """A gRPC response as the page's typed messages."""
    out: list[dict[str, Any]] = []
    if resp.HasField("session"):
        out.append(
            {
                "type": "session",
                "transcript_id": resp.session.transcript_id,
                "model": resp.session.model,
                "start_offset": _secs(resp.session.start_offset),
                "first_segment_index": resp.session.first_segment_index,
                "language_code": resp.session.language_code,
            }
        )
    if resp.speech_event_type:
        begin = resp.speech_event_type == streaming_pb2.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_BEGIN
        out.append(
            {
                "type": "speech",
                "event": "begin" if begin else "end",
                "offset": _secs(resp.speech_event_offset),
            }
        )
    if resp.speaker_names:
        out.append({"type": "speaker_names", "names": dict(resp.speaker_names)})
    for r in resp.results:
        alt = r.alternatives[0] if r.alternatives else None
        msg: dict[str, Any] = {
            "type": "final" if r.is_final else "interim",
            "text": alt.transcript if alt else "",
            "start": _secs(r.result_start_offset),
            "end": _secs(r.result_end_offset),
            "speaker": r.speaker_label,
            "language_code": r.language_code,
        }
        if r.is_final:
            msg["segment_index"] = r.segment_index
            msg["revision"] = r.revision
            msg["confidence"] = round(alt.confidence, 3) if alt else 0.0
        else:
            msg["stability"] = round(r.stability, 2)
        out.append(msg)
    return out


def control_kind(data: str) -> str:
    """The `type` of a text frame after start; ProtocolError if it is not a JSON object
    with a string type (the relay answers that with an error and reads on)."""
    try:
        msg = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError('a text message must be JSON, e.g. {"type": "stop"}') from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError('a text message must be an object with a "type"')
    return str(msg["type"])


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def start_config(data: str) -> streaming_pb2.StreamingTranscriptionConfig:
    """The gRPC config from the first frame, `{"type": "start", "config": {...}}`."""
    try:
        start = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError("the first message must be JSON") from None
    if not isinstance(start, dict) or start.get("type") != "start":
        raise ProtocolError('the first message must be {"type": "start", "config": {...}}')
    return stream_config(start.get("config", {}))
