"""TranscriptionService: proto <-> domain translation for StreamingTranscribe."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, suppress

import grpc
from transcribe.v1 import common_pb2, streaming_pb2, streaming_pb2_grpc

from service.audio import AudioFormat
from service.auth import principal_of
from service.config import Settings
from service.convert import duration, seconds, word_info
from service.errors import (
    InvalidArgumentError,
    UnavailableError,
    grpc_errors,
    log_unexpected,
    status_for,
)
from service.model_pool import ModelPool, primary_subtag
from service.policy import SpeechEvent, policy_config
from service.registry import StreamRegistry
from service.session import (
    Output,
    SessionStarted,
    SpeakerNames,
    StreamConfig,
    StreamDeps,
    StreamSession,
)
from service.speakers import config as speaker_config
from service.stream_input import InputEnd, check_message_size, receive
from service.wire import drain

logger = logging.getLogger(__name__)

Enc = streaming_pb2.AudioEncoding
_CONTAINER = {
    Enc.AUDIO_ENCODING_UNSPECIFIED: "auto",
    Enc.AUDIO_ENCODING_WEBM_OPUS: "webm",
    Enc.AUDIO_ENCODING_OGG_OPUS: "ogg",
    Enc.AUDIO_ENCODING_FLAC: "flac",
    Enc.AUDIO_ENCODING_WAV: "wav",
    Enc.AUDIO_ENCODING_MP3: "mp3",
}
MAX_TITLE = 200
MAX_TAGS = 20
MAX_TAG = 50


def check_text(name: str, value: str, limit: int) -> str:
    """A free-text field of a stream's or an upload's config: bounded, no control
    characters (tabs allowed); InvalidArgumentError names the field."""
    if len(value) > limit:
        raise InvalidArgumentError(f"config.{name} is {len(value)} characters; at most {limit}")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise InvalidArgumentError(f"config.{name} contains control characters")
    return value


def audio_format(encoding: int, sample_rate_hertz: int, channel_count: int) -> AudioFormat:
    """The declared format of a stream or an upload; InvalidArgumentError names the field."""
    enc_name = Enc.Name(encoding) if encoding in Enc.values() else str(encoding)  # type: ignore[arg-type]
    if encoding == Enc.AUDIO_ENCODING_LINEAR16:
        if not 8000 <= sample_rate_hertz <= 48000:
            raise InvalidArgumentError(
                f"config.sample_rate_hertz is {sample_rate_hertz}; LINEAR16 needs the "
                "actual rate of the PCM, between 8000 and 48000 (e.g. 16000)"
            )
        channels = channel_count or 1
        if not 1 <= channels <= 8:
            raise InvalidArgumentError(
                f"config.audio_channel_count is {channel_count}; allowed 1 to 8"
            )
        return AudioFormat("pcm", sample_rate_hertz, channels, "LINEAR16")
    if encoding in _CONTAINER:
        return AudioFormat(_CONTAINER[encoding], label=enc_name.removeprefix("AUDIO_ENCODING_"))  # type: ignore[index]
    raise InvalidArgumentError(
        f"config.encoding {enc_name} is not supported; use LINEAR16, WEBM_OPUS, OGG_OPUS, "
        "FLAC, WAV, MP3 or UNSPECIFIED (detect the container)"
    )


def stream_config(
    cfg: streaming_pb2.StreamingTranscriptionConfig, settings: Settings, models: ModelPool
) -> StreamConfig:
    """Validate a config message; InvalidArgumentError says which field and why."""
    fmt = audio_format(cfg.encoding, cfg.sample_rate_hertz, cfg.audio_channel_count)
    # Validated once, here. A resume continues in its stored model and language: the
    # session checks config.model and language_code against them (ModelPool.resume).
    resuming = bool(cfg.resume_transcript_id.strip())
    choice = models.choose(cfg.model, "" if resuming else cfg.language_code)
    silence = settings.streaming.default_silence_s
    max_utt = settings.streaming.default_max_utterance_s
    if cfg.HasField("endpointing"):
        ep = cfg.endpointing
        if ep.HasField("silence_duration"):
            silence = seconds(ep.silence_duration)
            if not 0.1 <= silence <= 10:
                raise InvalidArgumentError(
                    f"config.endpointing.silence_duration is {silence:g}s; allowed 0.1s to 10s"
                )
        if ep.HasField("max_utterance_duration"):
            max_utt = seconds(ep.max_utterance_duration)
            if not 2 <= max_utt <= 25:
                raise InvalidArgumentError(
                    f"config.endpointing.max_utterance_duration is {max_utt:g}s; allowed 2s to 25s"
                )
    title = check_text("title", cfg.title, MAX_TITLE)
    if len(cfg.tags) > MAX_TAGS:
        raise InvalidArgumentError(f"config.tags has {len(cfg.tags)} tags; at most {MAX_TAGS}")
    tags = tuple(check_text("tags", t.strip(), MAX_TAG) for t in cfg.tags if t.strip())
    prompt = check_text("prompt", cfg.prompt, 1000)
    hotwords = [check_text("hotwords", h, 100) for h in cfg.hotwords]
    if len(hotwords) > 100:
        raise InvalidArgumentError("config.hotwords has more than 100 entries")
    diarization = speaker_config.from_message(
        cfg.diarization_config if cfg.HasField("diarization_config") else None
    )
    policy = policy_config(
        settings,
        silence_s=silence,
        max_utterance_s=max_utt,
        prompt=prompt,
        hotwords=" ".join(hotwords),
        revisions=cfg.enable_revisions,
    )
    return StreamConfig(
        audio=fmt,
        policy=policy,
        choice=choice,
        model=cfg.model.strip(),
        language=primary_subtag(cfg.language_code),
        interim_results=cfg.interim_results,
        word_offsets=cfg.enable_word_time_offsets,
        voice_events=cfg.enable_voice_activity_events,
        title=title,
        tags=tags,
        resume_transcript_id=cfg.resume_transcript_id.strip(),
        live=cfg.live,
        diarization=diarization,
    )


def to_response(out: Output, cfg: StreamConfig) -> streaming_pb2.StreamingTranscribeResponse:
    """A session output as a response message."""
    if isinstance(out, SessionStarted):
        return streaming_pb2.StreamingTranscribeResponse(
            session=streaming_pb2.SessionInfo(
                transcript_id=out.transcript_id,
                model=out.model,
                start_offset=duration(out.start_offset_s),
                first_segment_index=out.first_segment_index,
                language_code=out.language,
            )
        )
    if isinstance(out, SpeakerNames):
        return streaming_pb2.StreamingTranscribeResponse(speaker_names=out.names)
    if isinstance(out, SpeechEvent):
        kind = streaming_pb2.SpeechEventType
        return streaming_pb2.StreamingTranscribeResponse(
            speech_event_type=kind.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_BEGIN
            if out.begin
            else kind.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_END,
            speech_event_offset=duration(out.offset_s),
        )
    u = out.update
    alt = common_pb2.TranscriptionAlternative(transcript=u.text)
    if u.is_final:
        alt.confidence = float(sum(w.probability for w in u.words) / max(1, len(u.words)))
    if cfg.word_offsets:
        alt.words.extend(word_info(w, u.speaker_label) for w in u.words)
    result = streaming_pb2.StreamingTranscriptionResult(
        alternatives=[alt],
        is_final=u.is_final,
        stability=0.0 if u.is_final else u.stability,
        result_start_offset=duration(u.start_s),
        result_end_offset=duration(u.end_s),
        segment_index=max(0, u.segment_index),
        language_code=out.language,
        storage_pending=u.is_final and not out.stored,
        revision=u.revision,
        speaker_label=u.speaker_label,
    )
    return streaming_pb2.StreamingTranscribeResponse(results=[result])


class TranscriptionServicer(streaming_pb2_grpc.TranscriptionServiceServicer):
    """Streams: admits the call, validates the first message, hands audio to a StreamSession."""

    def __init__(self, deps: StreamDeps, registry: StreamRegistry, settings: Settings) -> None:
        self._deps = deps
        self._registry = registry
        self._settings = settings

    async def StreamingTranscribe(
        self,
        request_iterator: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
        context: grpc.aio.ServicerContext[
            streaming_pb2.StreamingTranscribeRequest, streaming_pb2.StreamingTranscribeResponse
        ],
    ) -> AsyncIterator[streaming_pb2.StreamingTranscribeResponse]:
        session: StreamSession | None = None
        limits = self._settings.limits
        try:
            # Admitted (and counted) before anything is read: a call that never sends its
            # config holds a place until the idle timeout ends it.
            with self._registry.admit() as slot:
                first = await receive(
                    request_iterator, limits.idle_timeout_s, slot.draining, "config message"
                )
                if first is InputEnd.CLOSED:
                    raise InvalidArgumentError("the stream ended before its config message")
                if first is InputEnd.DRAINED:
                    raise UnavailableError(
                        "the server is shutting down; reconnect to another server",
                        reason="shutdown",
                    )
                if first.WhichOneof("streaming_request") != "config":
                    raise InvalidArgumentError(
                        "the first message must carry `config` (audio_content may only follow it)"
                    )
                cfg = stream_config(first.config, self._settings, self._deps.models)
                session = StreamSession(self._deps, slot, principal_of(context), cfg)
                chunks = _audio_chunks(request_iterator, limits.max_message_bytes, session.suspend)
                try:
                    async with aclosing(session.run(chunks)) as outs:
                        async for out in outs:
                            yield to_response(out, cfg)
                finally:
                    await _close(chunks)
        except Exception as exc:
            log_unexpected(logger, exc, "StreamingTranscribe")
            code, message = status_for(exc)
            reason = getattr(exc, "reason", "") or code.name.lower()
            self._deps.metrics.refused.labels(reason).inc()
            if session is not None and session.transcript_id:
                logger.info("transcript %s ended with %s", session.transcript_id, code.name)
            await drain(request_iterator)  # so that an asyncio client sees this status
            await context.abort(code, message)

    @grpc_errors(logger)
    async def ListModels(
        self,
        request: streaming_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[
            streaming_pb2.ListModelsRequest, streaming_pb2.ListModelsResponse
        ],
    ) -> streaming_pb2.ListModelsResponse:
        return list_models(self._deps.models)


def list_models(models: ModelPool) -> streaming_pb2.ListModelsResponse:
    """The loaded models, the default first."""
    return streaming_pb2.ListModelsResponse(
        models=[
            streaming_pb2.ModelInfo(
                name=m.name,
                language_codes=list(m.languages),
                detects_language=m.multilingual,
                is_default=m is models.default,
                description=m.description,
            )
            for m in models.models
        ]
    )


async def _close(chunks: AsyncGenerator[bytes, None]) -> None:
    """Close the request reader now, not when the garbage collector finds it: a call its
    client dropped left it suspended, and the loop's finalizer of unclosed async generators
    held it, with the session, until a later turn (test_client_vanish saw a session and its
    audio input outlive their stream, 1 run in 5 beside two CPU burners). The session has
    cancelled and awaited the task that read it; should a read still be in flight (its
    cancellation swallowed), that read ends it."""
    with suppress(RuntimeError):  # "aclose(): asynchronous generator is already running"
        await chunks.aclose()


async def _audio_chunks(
    requests: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
    max_bytes: int,
    suspend: Callable[[], None],
) -> AsyncGenerator[bytes, None]:
    """The audio bytes of each request; `suspend` ends them (what follows is not read)."""
    index = 1
    async for req in requests:
        index += 1
        kind = req.WhichOneof("streaming_request")
        if kind == "suspend":
            suspend()
            return
        if kind == "config":
            raise InvalidArgumentError(
                f"message {index} carries a config; only the first message may "
                "(send audio_content after it)"
            )
        if kind is None:
            raise InvalidArgumentError(f"message {index} carries neither config nor audio_content")
        check_message_size(index, len(req.audio_content), max_bytes)
        yield req.audio_content
