"""StreamingTranscribe end to end: real model, real speech, in-process server."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration
from transcribe.v1 import streaming_pb2, transcripts_pb2

from service.engine import WhisperEngine
from tests.helpers import (
    Enc,
    Stub,
    TStub,
    chunks,
    config,
    decode_16k,
    dev_clips,
    encode_container,
    normalize,
    pcm16,
    stream,
    wer,
)


def secs(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


@pytest.fixture(scope="module")
def offline_texts(engine: WhisperEngine) -> dict[str, str]:
    return {c.id: engine.transcribe_offline(decode_16k(c.path)) for c in dev_clips()}


async def test_dev_clips_wer_close_to_offline(stub: Stub, offline_texts: dict[str, str]) -> None:
    """Four speakers streamed at once (batched decoding): WER within 2 points of offline."""
    clips = dev_clips()
    cfg = config(encoding=Enc.AUDIO_ENCODING_FLAC, enable_word_time_offsets=True)
    runs = await asyncio.gather(
        *(stream(stub, cfg, chunks(c.path.read_bytes(), 8000)) for c in clips)
    )
    for run in runs:
        assert run.code == grpc.StatusCode.OK, run.details
    refs = [c.text for c in clips]
    streaming = wer(refs, [r.final_text for r in runs])
    offline = wer(refs, [offline_texts[c.id] for c in clips])
    print(f"streaming WER {streaming:.3f} offline WER {offline:.3f}")
    assert streaming <= offline + 0.02
    for run, clip in zip(runs, clips, strict=True):
        firsts = [r for r in run.results(True) if not r.revision]
        words = [w for r in firsts for w in r.alternatives[0].words]
        assert words, clip.id
        starts = [secs(w.start_offset) for w in words]
        ends = [secs(w.end_offset) for w in words]
        assert starts == sorted(starts), "word offsets must be monotonic"
        assert all(s <= e for s, e in zip(starts, ends, strict=True))
        assert ends[-1] <= clip.duration_s + 0.05, "offsets must lie inside the audio"
        indices = [r.segment_index for r in firsts]
        assert indices == list(range(len(indices))), "segment indices count up from 0"


async def test_revisions_replace_earlier_finals_once_and_storage_holds_them(
    stub: Stub, transcripts_stub: TStub
) -> None:
    """The second pass over each complete sentence: a revision names a segment already sent,
    each at most once, and what is stored is every segment as last sent. One stream at a
    time: streams sharing the model skip the second pass."""
    clips = dev_clips()
    cfg = config(encoding=Enc.AUDIO_ENCODING_FLAC, enable_word_time_offsets=True)
    runs = [await stream(stub, cfg, chunks(c.path.read_bytes(), 8000)) for c in clips]
    revisions = 0
    for run in runs:
        assert run.code == grpc.StatusCode.OK, run.details
        sent: set[int] = set()
        revised: set[int] = set()
        for r in run.results(True):
            if r.revision:
                assert r.revision == 1 and r.segment_index in sent, r
                assert r.segment_index not in revised, "a segment is revised at most once"
                revised.add(r.segment_index)
                assert r.alternatives[0].words, "a revision carries its words"
            else:
                assert r.segment_index not in sent
                sent.add(r.segment_index)
        revisions += len(revised)
        stored = await transcripts_stub.GetTranscript(
            transcripts_pb2.GetTranscriptRequest(transcript_id=run.transcript_id)
        )
        assert {s.index: s.text for s in stored.transcript.segments} == run.segments
    # Each of these clips has sentences the second pass hears differently (replay: 1-6).
    assert revisions >= 2, "no segment was revised"


async def test_without_enable_revisions_every_final_is_sent_once(stub: Stub) -> None:
    """The v1 contract for clients that append finals: revisions only when asked for (this
    clip gets 2-3 revised segments with them, see the test above)."""
    clip = dev_clips()[1]
    cfg = config(encoding=Enc.AUDIO_ENCODING_FLAC, enable_revisions=False)
    run = await stream(stub, cfg, chunks(clip.path.read_bytes(), 8000))
    assert run.code == grpc.StatusCode.OK, run.details
    finals = run.results(True)
    assert finals and not any(r.revision for r in finals)
    assert [r.segment_index for r in finals] == list(range(len(finals)))


async def test_interim_results_precede_their_final_and_first_finals_only_grow(stub: Stub) -> None:
    clip = dev_clips()[0]
    audio = decode_16k(clip.path)
    step = 3200  # 200 ms of PCM per message, sent at twice real time
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16,
        sample_rate_hertz=16000,
        interim_results=True,
        enable_voice_activity_events=True,
    )
    run = await stream(stub, cfg, chunks(pcm16(audio), step * 2), pace_s=0.1)
    assert run.code == grpc.StatusCode.OK, run.details
    interims = run.results(False)
    finals = run.results(True)
    assert interims and finals
    assert all(0 < r.stability <= 1 for r in interims)
    assert all(r.stability == 0 for r in finals)
    # Every final's text was shown as interim first: its first word appeared in an
    # interim result that arrived before the final itself.
    seq = [(t, res) for t, resp in run.responses for res in resp.results]
    for i, (_, fin) in enumerate(seq):
        if not fin.is_final or fin.revision:
            continue
        first_word = normalize(fin.alternatives[0].transcript.split()[0])
        assert any(
            not r.is_final and first_word in normalize(r.alternatives[0].transcript).split()
            for _, r in seq[:i]
        ), fin.alternatives[0].transcript
    # Finals change only by a revision: the concatenation of first finals only ever grows,
    # and what follows a final never repeats its words.
    texts = [f.alternatives[0].transcript for f in finals if not f.revision]
    joined = " ".join(texts).split()
    assert len(joined) == sum(len(t.split()) for t in texts)
    events = [r.speech_event_type for _, r in run.responses if r.speech_event_type]
    assert events[0] == streaming_pb2.SpeechEventType.SPEECH_EVENT_TYPE_SPEECH_ACTIVITY_BEGIN


@pytest.mark.parametrize("kind", ["silence", "white_noise", "tone"])
async def test_non_speech_produces_no_words(stub: Stub, kind: str) -> None:
    rng = np.random.default_rng(7)
    n = 16000 * 8
    if kind == "silence":
        audio = np.zeros(n, dtype=np.float32)
    elif kind == "white_noise":
        audio = (rng.standard_normal(n) * 0.1).astype(np.float32)
    else:  # a chord of tones with a slow tremolo, like a ringing phone
        t = np.arange(n) / 16000
        audio = (0.2 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t))).astype(
            np.float32
        )
        audio *= (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)).astype(np.float32)
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, interim_results=True
    )
    run = await stream(stub, cfg, chunks(pcm16(audio), 6400))
    assert run.code == grpc.StatusCode.OK, run.details
    assert run.results() == [], [r.alternatives[0].transcript for r in run.results()]


async def test_same_transcript_for_linear16_webm_and_flac(stub: Stub) -> None:
    clip = dev_clips()[1]
    audio = decode_16k(clip.path)
    variants = {
        "linear16": (
            config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000),
            chunks(pcm16(audio), 8000),
        ),
        # MediaRecorder sends a WebM stream in ~250 ms pieces; split the file the same way.
        "webm": (
            config(encoding=Enc.AUDIO_ENCODING_WEBM_OPUS),
            chunks(encode_container(audio, "webm"), 4000),
        ),
        "flac": (
            config(encoding=Enc.AUDIO_ENCODING_FLAC),
            chunks(encode_container(audio, "flac"), 5000),
        ),
        "ogg": (
            config(encoding=Enc.AUDIO_ENCODING_OGG_OPUS),
            chunks(encode_container(audio, "ogg"), 4000),
        ),
    }
    runs = {k: await stream(stub, cfg, data) for k, (cfg, data) in variants.items()}
    for k, run in runs.items():
        assert run.code == grpc.StatusCode.OK, (k, run.details)
    base = runs["linear16"].final_text
    assert base
    for k, run in runs.items():
        # Opus is lossy: allow at most a word's difference in ~40.
        assert wer([base], [run.final_text]) <= 0.025, (k, run.final_text, base)


async def test_pcm_at_44100_stereo_is_resampled(stub: Stub) -> None:
    clip = dev_clips()[2]
    audio = decode_16k(clip.path)
    import av

    frame = av.AudioFrame.from_ndarray(
        (audio * 32767).astype("<i2").reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = 16000
    rs = av.AudioResampler(format="s16", layout="stereo", rate=44100)
    stereo = b"".join(
        bytes(f.to_ndarray().tobytes()) for f in rs.resample(frame) + rs.resample(None)
    )
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=44100, audio_channel_count=2
    )
    run = await stream(stub, cfg, chunks(stereo, 17640))
    assert run.code == grpc.StatusCode.OK, run.details
    assert wer([clip.text], [run.final_text]) < 0.2
