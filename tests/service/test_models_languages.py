"""Models and languages through the real gRPC API: one server with tiny.en and the
multilingual base, real FLEURS speech (tests/data/multilingual).

A stream picks its model with config.model; on base, language "" / "auto" detects the
language (SessionInfo says "" while detecting, results carry it, the stored transcript
keeps it), a code forces it; a code or model the server cannot do is INVALID_ARGUMENT
saying what it can. Two models serve streams at once, each with its own scheduler.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import grpc
import jiwer
import pytest
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service.domain import TranscriptMeta, TranscriptStatus
from service.engine import DecodeRequest, WhisperEngine
from service.server import RunningServer
from service.text import join_words, no_space_char
from tests.helpers import (
    DATA,
    Enc,
    StreamRun,
    chunks,
    config,
    decode_16k,
    dev_clips,
    stream,
    wer,
)

pb = transcripts_pb2
MULTI = DATA / "multilingual"


@dataclass(frozen=True)
class Speech:
    path: Path
    text: str
    language: str


@cache
def speech() -> dict[str, Speech]:
    """The clips by language."""
    out = {}
    for line in (MULTI / "manifest.jsonl").read_text().splitlines():
        e = json.loads(line)
        out[e["language"]] = Speech(MULTI / e["wav"], e["text"], e["language"])
    return out


@cache
def _data(path: Path) -> bytes:
    return path.read_bytes()


def _plain(text: str) -> str:
    """NFKC, lower case, punctuation removed, single spaces (references are FLEURS's
    normalized transcriptions)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="session")
def two_models(multilingual_server: RunningServer) -> RunningServer:
    """The run's one server with tiny.en and base (tests/multilingual.py)."""
    return multilingual_server


@pytest.fixture(scope="module")
async def channel2(two_models: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{two_models.port}") as ch:
        yield ch


async def _stream(ch: grpc.aio.Channel, clip: Path, **cfg: object) -> StreamRun:
    stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
    cfg.setdefault("encoding", Enc.AUDIO_ENCODING_FLAC)
    return await stream(stub, config(**cfg), chunks(_data(clip), 16000))


def _session(run: StreamRun) -> streaming_pb2.SessionInfo:
    return next(r.session for _, r in run.responses if r.HasField("session"))


async def test_list_models_says_what_is_loaded(channel2: grpc.aio.Channel) -> None:
    stub = streaming_pb2_grpc.TranscriptionServiceStub(channel2)
    models = (await stub.ListModels(streaming_pb2.ListModelsRequest())).models
    assert [m.name for m in models] == ["tiny.en", "base"]
    tiny, base = models
    assert tiny.is_default and not base.is_default
    assert list(tiny.language_codes) == ["en"] and not tiny.detects_language
    assert base.detects_language and len(base.language_codes) == 99
    assert {"de", "es", "zh", "ja", "en"} <= set(base.language_codes)
    assert tiny.description and base.description


async def test_german_is_detected_transcribed_and_stored(channel2: grpc.aio.Channel) -> None:
    clip = speech()["de"]
    run = await _stream(channel2, clip.path, model="base", language_code="auto",
                        interim_results=True)  # fmt: skip
    assert run.code == grpc.StatusCode.OK, run.details
    info = _session(run)
    assert (info.model, info.language_code) == ("base", "")  # still detecting
    finals = run.results(final=True)
    assert finals and {r.language_code for r in finals} == {"de"}
    error = wer([_plain(clip.text)], [_plain(run.final_text)])
    assert error <= 0.35, run.final_text  # base offline: 17 % on these clips
    stored = await transcripts_pb2_grpc.TranscriptServiceStub(channel2).GetTranscript(
        pb.GetTranscriptRequest(transcript_id=run.transcript_id)
    )
    assert (stored.transcript.language_code, stored.transcript.model) == ("de", "base")


async def test_a_forced_language_is_kept(channel2: grpc.aio.Channel) -> None:
    clip = speech()["es"]
    run = await _stream(channel2, clip.path, model="base", language_code="es-MX")
    assert run.code == grpc.StatusCode.OK, run.details
    assert _session(run).language_code == "es"
    assert {r.language_code for r in run.results()} == {"es"}
    assert wer([_plain(clip.text)], [_plain(run.final_text)]) <= 0.35, run.final_text


async def test_a_resumed_transcript_keeps_its_model_and_language(
    two_models: RunningServer, channel2: grpc.aio.Channel
) -> None:
    """An interrupted transcript of base in Spanish: resuming it asks for neither, or for
    the same; another model or language is refused before any audio is decoded."""
    tid = uuid.uuid4().hex
    await two_models.store.create_transcript(
        TranscriptMeta(tid, "local", datetime.now(UTC), TranscriptStatus.INTERRUPTED, "es", "base")
    )
    clip = speech()["es"].path
    for other, needle in (({"model": "tiny.en"}, "'base'"), ({"language_code": "de"}, "'es'")):
        refused = await _stream(channel2, clip, resume_transcript_id=tid, **other)
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, refused.details
        assert needle in refused.details, refused.details
    run = await _stream(channel2, clip, resume_transcript_id=tid, language_code="ES")
    assert run.code == grpc.StatusCode.OK, run.details
    assert (_session(run).model, _session(run).language_code) == ("base", "es")
    assert run.final_text and {r.language_code for r in run.results()} == {"es"}


async def test_chinese_comes_out_without_spaces_between_characters(
    channel2: grpc.aio.Channel,
) -> None:
    clip = speech()["zh"]
    run = await _stream(channel2, clip.path, model="base", enable_word_time_offsets=True)
    assert run.code == grpc.StatusCode.OK, run.details
    text = join_words(run.segments.values())
    assert {r.language_code for r in run.results()} == {"zh"}
    cjk_space_cjk = [
        text[i - 1 : i + 2]
        for i, c in enumerate(text)
        if c == " " and 0 < i < len(text) - 1
        and no_space_char(text[i - 1]) and no_space_char(text[i + 1])
    ]  # fmt: skip
    assert re.search(r"[\u4e00-\u9fff]{4}", text) and not cjk_space_cjk, text
    words = [w.word for r in run.results(final=True) for w in r.alternatives[0].words]
    # the aligner's pieces (a character or a few) stay words, not one word per sentence;
    # digits stay glued to their neighbours ("於2021年"), as Whisper wrote them
    cjk_only = [w for w in words if all(no_space_char(c) for c in w)]
    assert len(words) >= 15 and max(len(w) for w in cjk_only) <= 4, words
    ref = _plain(clip.text).replace(" ", "")
    assert jiwer.cer(ref, _plain(text).replace(" ", "")) <= 0.5, text


async def test_one_batch_decodes_several_languages(two_models: RunningServer) -> None:
    """Streams in different languages on one model share its batches: each request
    detects or is forced on its own rows of the encoder output."""
    base = two_models.deps.models.get("base").engine
    assert isinstance(base, WhisperEngine)
    de, es = decode_16k(speech()["de"].path), decode_16k(speech()["es"].path)
    requests = [DecodeRequest(de), DecodeRequest(es, language="es"), DecodeRequest(es)]
    results = await asyncio.to_thread(base.decode_batch, requests)
    assert [r.language for r in results] == ["de", "es", "es"]
    assert results[1].language_probability == 1.0 and results[2].language_probability > 0.5
    assert results[1].text == results[2].text  # forced or detected: the same prompt
    assert wer([_plain(speech()["de"].text)], [_plain(results[0].text)]) <= 0.35


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"language_code": "de"}, "transcribes only en"),  # the default, tiny.en
        ({"model": "tiny.en", "language_code": "fr"}, "transcribes only en"),
        ({"model": "base", "language_code": "xx"}, "99 languages"),
        ({"model": "large-v3"}, "loaded: tiny.en, base"),
    ],
)
async def test_what_the_server_cannot_do_is_refused_saying_what_it_can(
    channel2: grpc.aio.Channel, cfg: dict[str, str], needle: str
) -> None:
    run = await _stream(channel2, speech()["de"].path, **cfg)
    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in run.details, run.details


async def test_two_models_serve_two_streams_at_once(channel2: grpc.aio.Channel) -> None:
    english = dev_clips()[3]
    spanish = speech()["es"]
    en_run, es_run = await asyncio.gather(
        _stream(channel2, english.path, language_code="en-US"),
        _stream(channel2, spanish.path, model="base"),
    )
    assert en_run.code == es_run.code == grpc.StatusCode.OK, (en_run.details, es_run.details)
    assert (_session(en_run).model, _session(es_run).model) == ("tiny.en", "base")
    assert wer([english.text], [en_run.final_text]) <= 0.2, en_run.final_text
    assert wer([_plain(spanish.text)], [_plain(es_run.final_text)]) <= 0.35, es_run.final_text
    assert {r.language_code for r in es_run.results(final=True)} == {"es"}


async def test_an_upload_is_refined_by_its_model_in_the_language_it_detects(
    channel2: grpc.aio.Channel,
) -> None:
    stub = transcripts_pb2_grpc.TranscriptServiceStub(channel2)
    clip = speech()["de"]

    async def upload(**cfg: object) -> pb.Transcript:
        async def requests() -> AsyncIterator[pb.UploadRecordingRequest]:
            yield pb.UploadRecordingRequest(config=pb.UploadConfig(**cfg))  # type: ignore[arg-type]
            for c in chunks(_data(clip.path), 64 * 1024):
                yield pb.UploadRecordingRequest(audio_content=c)

        return (await stub.UploadRecording(requests())).transcript

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload(encoding=Enc.AUDIO_ENCODING_FLAC, language_code="de")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "transcribes only en" in (refused.value.details() or "")
    made = await upload(encoding=Enc.AUDIO_ENCODING_FLAC, model="base")
    assert (made.model, made.language_code) == ("base", "")
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        t = (await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=made.id))).transcript
        if t.refinement_state in (pb.REFINEMENT_STATE_DONE, pb.REFINEMENT_STATE_FAILED):
            break
        assert asyncio.get_running_loop().time() < deadline, t.refinement_state
        await asyncio.sleep(0.25)
    assert t.refinement_state == pb.REFINEMENT_STATE_DONE, t.refinement_detail
    assert t.language_code == "de"
    text = " ".join(s.text for s in t.segments)
    assert wer([_plain(clip.text)], [_plain(text)]) <= 0.35, text
