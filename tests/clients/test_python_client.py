"""The Python client library against the real server (real model, real speech)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import av
import grpc
import numpy as np
import pytest
from transcribe.v1 import common_pb2, streaming_pb2

from clients.python import (
    AudioFileError,
    Enc,
    FinalText,
    Result,
    StreamingTranscriber,
    SyncClient,
    TranscriptClient,
    audio_chunks,
    connect,
    encoding_for,
    file_chunks,
    paced,
    probe_duration,
    to_json,
)
from clients.python.cli import show
from clients.python.terminal import FinalLines, StatusLine, clock
from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import dev_clips, wer


def finals_text(results: list[Result]) -> str:
    text = FinalText()
    for r in results:
        text.add(r)
    return text.text


async def test_library_streams_a_file_and_uses_every_transcript_rpc(
    server: RunningServer, tmp_path: Path
) -> None:
    clip = dev_clips()[2]
    async with connect(f"127.0.0.1:{server.port}") as channel:
        tr = StreamingTranscriber(channel, title="lib test", tags=["lib"])
        results = [r async for r in tr.transcribe_file(clip.path)]  # decoded here, sent as PCM
        assert results[0].kind == "session" and results[0].transcript_id
        assert {r.kind for r in results[1:]} <= {"interim", "final"}
        firsts = [r for r in results if r.is_final and not r.revision]
        assert [r.segment_index for r in firsts] == list(range(len(firsts)))
        text = FinalText()
        for r in results:
            assert text.add(r) == bool(r.revision)  # a revision always follows its first final
        finals = text.segments
        assert wer([clip.text], [text.text]) < 0.2
        assert all(r.words and r.start <= r.words[0].start <= r.end for r in finals)
        assert any(r.kind == "interim" for r in results)
        tid = results[0].transcript_id

        c = TranscriptClient(channel)
        t = await c.get(tid)
        assert (t.title, t.tags, t.status) == ("lib test", ("lib",), "complete")
        assert [s.text for s in t.segments] == [r.text for r in finals]
        assert abs(t.duration - clip.duration_s) < 0.5

        page = await c.list_transcripts(page_size=100, tags=["lib"])
        assert tid in [x.id for x in page.items] and not page.items[0].segments
        assert [x.id async for x in c.iter_transcripts(limit=1, tags=["lib"])] == [tid]

        word = max(finals[0].text.split(), key=len).strip(".,?!;:")
        hits = (await c.search(word)).items
        hit = next(h for h in hits if h.transcript_id == tid)
        assert any(word.lower() in hit.snippet[a:b].lower() for a, b in hit.highlights)

        srt = await c.export(tid, "srt")
        assert srt.content.startswith(b"1\n00:00:") and srt.file_name.endswith(".srt")
        exported = json.loads((await c.export(tid, "json")).content)
        assert finals[0].text in json.dumps(exported)
        with pytest.raises(ValueError, match="unknown export format"):
            await c.export(tid, "pdf")  # type: ignore[arg-type]

        renamed = await c.update(tid, title="renamed", speaker_names={"spk1": "Dana"})
        assert (renamed.title, renamed.tags, renamed.speaker_names) == (
            "renamed", ("lib",), {"spk1": "Dana"},
        )  # fmt: skip
        assert (await c.update(tid, tags=[])).tags == ()

        info = await c.save_recording(tid, tmp_path / "rec")
        data = (tmp_path / "rec").read_bytes()
        assert info.total_size == len(data) > 0 and info.mime_type.startswith("audio/")
        assert abs(info.duration - clip.duration_s) < 0.5
        part_info, part = await c.recording(tid, start=10, length=100)
        assert b"".join([x async for x in part]) == data[10:110]
        assert part_info.total_size == len(data)

        await c.delete(tid)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await c.get(tid)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _final(index: int, text: str, start: float, revision: int = 0) -> list[Result]:
    """Results parsed from a final as the server sends it."""
    r = streaming_pb2.StreamingTranscriptionResult(
        alternatives=[common_pb2.TranscriptionAlternative(transcript=text)],
        is_final=True,
        segment_index=index,
        revision=revision,
    )
    r.result_start_offset.FromNanoseconds(round(start * 1e9))
    r.result_end_offset.FromNanoseconds(round((start + 1) * 1e9))
    return Result.from_response(streaming_pb2.StreamingTranscribeResponse(results=[r]))


def test_a_revision_replaces_its_segment_in_the_assembled_text() -> None:
    alt = common_pb2.TranscriptionAlternative(transcript="and")
    interim = streaming_pb2.StreamingTranscribeResponse(
        results=[streaming_pb2.StreamingTranscriptionResult(alternatives=[alt], stability=0.3)]
    )
    results = [
        *_final(0, "the whether is fine", 0.0),
        *_final(1, "how are you", 1.5),
        *Result.from_response(interim),
        *_final(0, "The weather is fine.", 0.0, revision=1),
    ]
    assert [r.revision for r in results] == [0, 0, 0, 1]
    text = FinalText()
    assert [text.add(r) for r in results] == [False, False, False, True]
    assert text.text == "The weather is fine. how are you"
    assert [(r.segment_index, r.revision) for r in text.segments] == [(0, 1), (1, 0)]
    assert to_json(results[-1])["revision"] == 1  # what `transcribe --json` prints


def test_terminal_prints_a_revision_as_a_marked_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = StatusLine(io.StringIO(), enabled=False)
    args = argparse.Namespace(json=False)
    interim = Result("interim", text="and", start=2.0, end=2.4)
    lines = FinalLines(sys.stdout, in_place=False)  # a pipe: the revision is a marked line
    for r in [*_final(0, "the whether", 0.0), interim, *_final(0, "The weather.", 0.0, 1)]:
        show(args, r, status, sent_s=3.0, lines=lines)
    assert capsys.readouterr().out.splitlines() == [
        "[00:00.00 → 00:01.00] the whether",
        "[00:00.00 → 00:01.00] (revised) The weather.",
    ]
    assert status.interim == "and"  # the revision is of an older sentence: interim stays


async def test_container_bytes_and_an_async_source_give_the_same_words(
    server: RunningServer,
) -> None:
    clip = dev_clips()[1]
    async with connect(f"127.0.0.1:{server.port}") as channel:
        tr = StreamingTranscriber(channel, encoding=encoding_for(clip.path), interim_results=False)
        results = [r async for r in tr.transcribe(file_chunks(clip.path, 4000))]
    assert all(r.kind in ("session", "final") for r in results)
    assert wer([clip.text], [finals_text(results)]) < 0.2


async def test_sync_client_streams_a_plain_iterable_and_manages_transcripts(
    server: RunningServer,
) -> None:
    clip = dev_clips()[1]

    def blocking_program() -> None:  # no event loop here, as in a plain script
        data = clip.path.read_bytes()
        chunks = (data[i : i + 8000] for i in range(0, len(data), 8000))
        with SyncClient(f"127.0.0.1:{server.port}") as client:
            results = list(client.transcribe(chunks, title="sync", interim_results=False))
            tid = results[0].transcript_id
            assert wer([clip.text], [finals_text(results)]) < 0.2
            assert client.get(tid).title == "sync"
            assert tid in [t.id for t in client.iter_transcripts(limit=100)]
            client.delete(tid)
            with pytest.raises(grpc.RpcError):
                client.get(tid)
            # Leaving a stream early cancels it; the client stays usable.
            early = client.transcribe_file(clip.path, realtime=True)
            assert next(early).kind == "session"
            early.close()
            assert client.list_transcripts(page_size=1).items

    # The server runs on this test's event loop, so the program gets its own thread.
    await asyncio.to_thread(blocking_program)


async def test_api_key_goes_with_unary_and_streaming_calls(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("alice:alice-secret\n")
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), api_keys_file=str(keys)),
        engine=engine,
    )
    target = f"127.0.0.1:{running.port}"
    silence = [bytes(3200)] * 5  # half a second of PCM: no speech, no decoding
    try:
        async with connect(target, api_key="alice-secret") as ch:
            tr = StreamingTranscriber(
                ch, encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000
            )
            results = [r async for r in tr.transcribe(silence)]
            assert results[0].kind == "session" and not finals_text(results)
            t = await TranscriptClient(ch).get(results[0].transcript_id)
            assert t.status == "complete"
        for key in ("", "wrong"):
            async with connect(target, api_key=key) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await TranscriptClient(ch).list_transcripts()
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                tr = StreamingTranscriber(
                    ch, encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000
                )
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    [r async for r in tr.transcribe(silence)]
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await running.stop(1)


async def test_a_rejected_config_ends_with_the_servers_status(server: RunningServer) -> None:
    async with connect(f"127.0.0.1:{server.port}") as channel:
        tr = StreamingTranscriber(channel, encoding=Enc.AUDIO_ENCODING_LINEAR16)  # no rate
        for _ in range(5):  # audio is queued behind the rejection: never INTERNAL from a race
            with pytest.raises(grpc.aio.AioRpcError) as err:
                [r async for r in tr.transcribe([bytes(3200)] * 50)]
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "sample_rate_hertz" in (err.value.details() or "")


def _tone_file(path: Path, container: str, codec: str, seconds: float, rate: int) -> None:
    """A stereo sine tone in any container/codec, written with PyAV."""
    with av.open(str(path), "w", format=container) as out:
        stream = cast(av.AudioStream, out.add_stream(codec, rate=rate, layout="stereo"))
        to_codec = av.AudioResampler(format=stream.format.name, layout="stereo", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(tone), 1024):  # AAC takes 1024 samples a frame
            block = np.stack([tone[i : i + 1024]] * 2)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate = rate
            for f in to_codec.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize(
    ("name", "container", "codec"), [("a.m4a", "mp4", "aac"), ("a.mka", "matroska", "pcm_s16le")]
)
async def test_audio_chunks_turn_any_container_into_16k_mono_pcm(
    tmp_path: Path, name: str, container: str, codec: str
) -> None:
    path = tmp_path / name
    _tone_file(path, container, codec, 2.0, 44100)
    duration = probe_duration(path)
    assert duration is not None and abs(duration - 2.0) < 0.1
    chunks = [c async for c in audio_chunks(path, chunk_s=0.25)]
    assert {len(c) for c in chunks[:-1]} == {8000}  # 0.25 s of 16-bit 16 kHz mono
    pcm = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768
    assert abs(len(pcm) / 16000 - 2.0) < 0.1
    middle = pcm[4000:28000]  # 440 Hz at 16 kHz: about 880 zero crossings a second
    crossings = np.count_nonzero(np.diff(np.signbit(middle)))
    assert abs(crossings / 1.5 - 880) < 20
    assert 0.2 < float(np.abs(middle).max()) < 0.4  # the channels were mixed, not summed


async def test_audio_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    with pytest.raises(AudioFileError, match=r"notes\.wav"):
        [c async for c in audio_chunks(bad)]
    video = tmp_path / "v.mkv"
    with av.open(str(video), "w") as out:  # a video-only file
        stream = out.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "gray"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16), np.uint8), format="gray")
        out.mux([*stream.encode(frame), *stream.encode(None)])
    with pytest.raises(AudioFileError, match="no audio stream"):
        [c async for c in audio_chunks(video)]


async def test_paced_release_never_runs_ahead_of_the_rate() -> None:
    async def source() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield bytes(1000)

    loop = asyncio.get_running_loop()
    started = loop.time()
    times = [loop.time() - started async for _ in paced(source(), 10_000)]
    for i, t in enumerate(times):
        assert t >= i * 0.1 - 0.005  # chunk i may leave only after i * 1000 bytes / 10 kB/s


def test_status_line_fits_the_terminal_and_keeps_the_newest_words() -> None:
    line = StatusLine(io.StringIO(), enabled=False, total_s=60.0)
    line.done_s = 15.0
    line.interim = " ".join(f"word{i}" for i in range(100))
    for width in (20, 40, 80, 200):
        text = line.render(width)
        assert len(text) < width
        if width >= 30:
            assert text.endswith("word99")
    assert "25%" in line.render(80) and "00:15" in line.render(80)
    line.note = "finishing"
    assert line.render(80).endswith("finishing")
    assert clock(75.5) == "01:15.50" and clock(3725) == "1:02:05.00"
