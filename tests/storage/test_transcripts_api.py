"""Transcript history end to end through gRPC: stream, then list, get, search, export,
replay, update, delete; interrupted and resumed streams."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import av
import grpc
import numpy as np
import numpy.typing as npt
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from transcribe.v1 import streaming_pb2, transcripts_pb2

from tests.helpers import (
    Enc,
    Stub,
    TStub,
    assert_seen_finals_stored,
    chunks,
    config,
    decode_16k,
    dev_clips,
    encode_container,
    latest_finals,
    pcm16,
    stream,
)

pb = transcripts_pb2


def secs(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


async def fetch_recording(
    tstub: TStub, tid: str, start: int = 0, length: int = 0
) -> tuple[bytes, pb.GetRecordingResponse]:
    data = b""
    first = None
    async for msg in tstub.GetRecording(
        pb.GetRecordingRequest(transcript_id=tid, range_start=start, range_length=length)
    ):
        first = first or msg
        data += msg.data
    assert first is not None
    return data, first


@pytest.fixture(scope="module")
async def streamed(stub: Stub) -> tuple[str, str]:
    """One dev clip streamed as WebM/Opus (as a browser sends it) with a title and tags."""
    clip = dev_clips()[1]
    audio = decode_16k(clip.path)
    cfg = config(
        encoding=Enc.AUDIO_ENCODING_WEBM_OPUS,
        title="Crusade meeting",
        tags=["history", "team-a"],
        enable_word_time_offsets=True,
    )
    run = await stream(stub, cfg, chunks(encode_container(audio, "webm"), 4000))
    assert run.code == grpc.StatusCode.OK, run.details
    return run.transcript_id, run.final_text


async def test_get_returns_every_final_in_order(
    transcripts_stub: TStub, streamed: tuple[str, str]
) -> None:
    tid, final_text = streamed
    t = (
        await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
    ).transcript
    assert t.status == pb.TRANSCRIPT_STATUS_COMPLETE
    assert t.title == "Crusade meeting" and list(t.tags) == ["history", "team-a"]
    assert " ".join(s.text for s in t.segments) == final_text
    assert (
        [s.index for s in t.segments]
        == list(range(len(t.segments)))
        == list(range(t.segment_count))
    )
    assert all(s.words for s in t.segments)
    assert t.keywords and t.model == "tiny.en"
    assert abs(secs(t.duration) - dev_clips()[1].duration_s) < 0.5
    assert t.recording_mime_type == "audio/webm"


async def test_list_newest_first_with_filters_and_paging(
    transcripts_stub: TStub, stub: Stub, streamed: tuple[str, str]
) -> None:
    tid, _ = streamed
    short = decode_16k(dev_clips()[3].path)
    newer = await stream(
        stub,
        config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, tags=["team-b"]),
        chunks(pcm16(short), 16000),
    )
    resp = await transcripts_stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=100))
    ids = [t.id for t in resp.transcripts]
    assert ids.index(newer.transcript_id) < ids.index(tid)
    assert all(not t.segments for t in resp.transcripts)
    tagged = await transcripts_stub.ListTranscripts(pb.ListTranscriptsRequest(tags=["team-a"]))
    assert [t.id for t in tagged.transcripts] == [tid]
    seen: list[str] = []
    token = ""
    while True:
        page = await transcripts_stub.ListTranscripts(
            pb.ListTranscriptsRequest(page_size=1, page_token=token)
        )
        seen += [t.id for t in page.transcripts]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=1000))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 100 per page" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.SearchTranscripts(
            pb.SearchTranscriptsRequest(query="x", page_size=101)
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.ListTranscripts(pb.ListTranscriptsRequest(page_token="garbage!"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_search_phrase_points_at_where_it_was_spoken(
    transcripts_stub: TStub, streamed: tuple[str, str]
) -> None:
    tid, _ = streamed
    t = (
        await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
    ).transcript
    words = [w for s in t.segments for w in s.words]
    # A phrase from the middle of the clip, as recognised, and where its first word was spoken.
    target = words[len(words) // 2]
    phrase = f'"{target.word.strip(".,?!")} {words[len(words) // 2 + 1].word.strip(".,?!")}"'
    resp = await transcripts_stub.SearchTranscripts(pb.SearchTranscriptsRequest(query=phrase))
    hits = [h for h in resp.hits if h.transcript_id == tid]
    assert hits, phrase
    assert any(abs(secs(h.start_offset) - secs(target.start_offset)) <= 1.0 for h in hits)
    for h in hits:
        assert h.highlights and h.transcript_title == "Crusade meeting"
        marked = h.snippet[h.highlights[0].start : h.highlights[0].end]
        assert marked.lower().startswith(target.word.strip(".,?!").lower())
    for query in [
        '"unclosed',
        "AND OR NOT",
        "col:umn*",
        "'); DROP TABLE segments; --",
        "NEAR(a b)",
    ]:
        try:
            await transcripts_stub.SearchTranscripts(pb.SearchTranscriptsRequest(query=query))
        except grpc.aio.AioRpcError as refused:
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, (query, refused.details())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.SearchTranscripts(pb.SearchTranscriptsRequest(query='"" ...'))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_exports_are_valid_files(transcripts_stub: TStub, streamed: tuple[str, str]) -> None:
    import json
    import re

    tid, final_text = streamed
    srt = (
        await transcripts_stub.ExportTranscript(
            pb.ExportTranscriptRequest(transcript_id=tid, format=pb.EXPORT_FORMAT_SRT)
        )
    ).content.decode()
    blocks = [b for b in srt.strip().split("\n\n")]
    assert blocks
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert lines[2].strip()
    vtt_resp = await transcripts_stub.ExportTranscript(
        pb.ExportTranscriptRequest(transcript_id=tid, format=pb.EXPORT_FORMAT_VTT)
    )
    vtt = vtt_resp.content.decode()
    assert vtt.startswith("WEBVTT\n\n") and vtt_resp.mime_type == "text/vtt"
    assert vtt_resp.file_name.endswith(".vtt")
    times = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})", vtt)
    assert len(times) == len(blocks)
    assert times == sorted(times)
    doc = json.loads(
        (
            await transcripts_stub.ExportTranscript(
                pb.ExportTranscriptRequest(transcript_id=tid, format=pb.EXPORT_FORMAT_JSON)
            )
        ).content
    )
    assert " ".join(s["text"] for s in doc["segments"]) == final_text
    txt = (
        await transcripts_stub.ExportTranscript(
            pb.ExportTranscriptRequest(transcript_id=tid, format=pb.EXPORT_FORMAT_TXT)
        )
    ).content.decode()
    assert "Crusade meeting" in txt
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.ExportTranscript(pb.ExportTranscriptRequest(transcript_id=tid))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_recording_decodes_to_the_same_duration_and_seeks(
    transcripts_stub: TStub, streamed: tuple[str, str]
) -> None:
    tid, _ = streamed
    data, first = await fetch_recording(transcripts_stub, tid)
    assert first.mime_type == "audio/webm" and first.total_size == len(data)
    assert abs(secs(first.duration) - dev_clips()[1].duration_s) < 0.2
    with av.open(io.BytesIO(data), "r") as c:  # mode "r" (the default) types it as input
        decoded = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
        assert abs(decoded - dev_clips()[1].duration_s) < 0.2
        assert c.duration is not None  # the remuxed file declares its duration
        c.seek(int(5 * av.time_base))  # seekable by time
        frame = next(c.decode(audio=0))
        assert frame.time is not None and frame.time >= 4.0
    part, _ = await fetch_recording(transcripts_stub, tid, start=100, length=1000)
    assert part == data[100:1100]


async def test_update_then_delete_everywhere(transcripts_stub: TStub, stub: Stub) -> None:
    clip = dev_clips()[3]
    run = await stream(
        stub, config(encoding=Enc.AUDIO_ENCODING_FLAC), chunks(clip.path.read_bytes(), 8000)
    )
    tid = run.transcript_id
    word = run.final_text.split()[0].strip(".,?!")
    updated = (
        await transcripts_stub.UpdateTranscript(
            pb.UpdateTranscriptRequest(
                transcript=pb.Transcript(
                    id=tid, title="Renamed", tags=["x"], speaker_names={"spk1": "Dana"}
                ),
                update_mask=FieldMask(paths=["title", "tags"]),
            )
        )
    ).transcript
    assert updated.title == "Renamed" and list(updated.tags) == ["x"] and not updated.speaker_names
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.UpdateTranscript(
            pb.UpdateTranscriptRequest(
                transcript=pb.Transcript(id=tid), update_mask=FieldMask(paths=["model"])
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await transcripts_stub.DeleteTranscript(pb.DeleteTranscriptRequest(transcript_id=tid))
    for call in (
        transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid)),
        transcripts_stub.DeleteTranscript(pb.DeleteTranscriptRequest(transcript_id=tid)),
        transcripts_stub.ExportTranscript(
            pb.ExportTranscriptRequest(transcript_id=tid, format=pb.EXPORT_FORMAT_TXT)
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fetch_recording(transcripts_stub, tid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await transcripts_stub.ListTranscripts(pb.ListTranscriptsRequest(page_size=100))
    assert tid not in [t.id for t in listed.transcripts]
    hits = await transcripts_stub.SearchTranscripts(
        pb.SearchTranscriptsRequest(query=word, page_size=100)
    )
    assert tid not in [h.transcript_id for h in hits.hits]


async def vanish_mid_stream(
    stub: Stub, audio: npt.NDArray[np.float32], min_words: int
) -> tuple[str, dict[int, str]]:
    """Stream live-paced audio and drop the call once `min_words` words are final; the
    finals seen by segment index."""
    finals: dict[int, str] = {}
    tid = ""
    got_finals = asyncio.Event()

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
        )
        for piece in chunks(pcm16(audio), 3200):
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=piece)
            await asyncio.sleep(0.1)  # pacing like a live microphone
        await asyncio.Event().wait()  # never half-closes: the client just goes away

    call = stub.StreamingTranscribe(requests())

    async def read() -> None:
        nonlocal tid
        async for resp in call:
            if resp.HasField("session"):
                tid = resp.session.transcript_id
            finals.update(latest_finals(resp.results))
            if len(" ".join(finals.values()).split()) >= min_words:
                got_finals.set()

    reader = asyncio.create_task(read())
    await got_finals.wait()
    call.cancel()  # the client vanishes mid-stream
    await asyncio.gather(reader, return_exceptions=True)
    return tid, finals


async def wait_closed(tstub: TStub, tid: str) -> pb.Transcript:
    """Poll like a user would until the server has closed the transcript."""
    for _ in range(200):
        t = (await tstub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))).transcript
        if t.status != pb.TRANSCRIPT_STATUS_LIVE:
            return t
        await asyncio.sleep(0.1)
    raise AssertionError("transcript stayed live")


async def test_client_vanishing_leaves_an_interrupted_transcript_with_every_final(
    stub: Stub, transcripts_stub: TStub
) -> None:
    tid, finals = await vanish_mid_stream(stub, decode_16k(dev_clips()[0].path), 10)
    t = await wait_closed(transcripts_stub, tid)
    assert t.status == pb.TRANSCRIPT_STATUS_INTERRUPTED
    assert_seen_finals_stored(finals, {s.index: s.text for s in t.segments})


async def test_resume_continues_an_interrupted_transcript(
    stub: Stub, transcripts_stub: TStub
) -> None:
    first_audio = decode_16k(dev_clips()[0].path)
    tid, _ = await vanish_mid_stream(stub, first_audio, 8)
    before = await wait_closed(transcripts_stub, tid)
    b = dev_clips()[3]
    second = await stream(
        stub,
        config(encoding=Enc.AUDIO_ENCODING_FLAC, resume_transcript_id=tid),
        chunks(b.path.read_bytes(), 8000),
    )
    assert second.code == grpc.StatusCode.OK, second.details
    session = second.responses[0][1].session
    assert session.transcript_id == tid
    assert session.first_segment_index == before.segment_count
    assert secs(session.start_offset) == pytest.approx(secs(before.duration), abs=0.01)
    after = (
        await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
    ).transcript
    assert after.status == pb.TRANSCRIPT_STATUS_COMPLETE
    assert [s.index for s in after.segments] == list(range(len(after.segments)))
    starts = [secs(s.start_offset) for s in after.segments]
    assert starts == sorted(starts)
    assert " ".join(s.text for s in after.segments[before.segment_count :]) == second.final_text
    # The recording now holds both parts, joined into one file.
    _, first = await fetch_recording(transcripts_stub, tid)
    assert first.mime_type == "audio/ogg"
    assert abs(secs(first.duration) - (secs(before.duration) + b.duration_s)) < 0.5
    # A completed transcript cannot be resumed. (No audio is sent: a client still
    # writing when the server rejects its config can see its own core's error instead.)
    again = await stream(
        stub, config(encoding=Enc.AUDIO_ENCODING_FLAC, resume_transcript_id=tid), []
    )
    assert again.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot be resumed" in again.details
    unknown = await stream(
        stub, config(encoding=Enc.AUDIO_ENCODING_FLAC, resume_transcript_id="nope"), []
    )
    assert unknown.code == grpc.StatusCode.NOT_FOUND


async def test_a_vanished_stream_lasts_as_long_as_its_recording(
    stub: Stub, transcripts_stub: TStub
) -> None:
    """Audio still queued for the policy when the client vanishes is in the recording, so
    it counts in the transcript's duration: a resume starts after it, and the resumed
    part's times point at its own audio in the joined recording."""
    audio = pcm16(decode_16k(dev_clips()[0].path))
    started = asyncio.Event()
    sent = asyncio.Event()

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(
            config=config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
        )
        await started.wait()
        for piece in chunks(audio, 3200):  # all of it at once, far faster than real time
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=piece)
        sent.set()
        await asyncio.Event().wait()  # never half-closes: the client just goes away

    call = stub.StreamingTranscribe(requests())
    tid = ""
    async for resp in call:
        if resp.HasField("session"):
            tid = resp.session.transcript_id
            started.set()
        if sent.is_set():
            break
    call.cancel()
    t = await wait_closed(transcripts_stub, tid)
    assert t.status == pb.TRANSCRIPT_STATUS_INTERRUPTED
    _, rec = await fetch_recording(transcripts_stub, tid)
    assert secs(rec.duration) > 1.0, "the burst reached the server"
    assert secs(t.duration) == pytest.approx(secs(rec.duration), abs=0.15)
