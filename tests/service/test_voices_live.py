"""Remembered voices named while the stream runs (the two meetings of test_voices_api):
the second meeting's first speaker (4406, named "Bob" in the first) is named on the live
stream before its audio has all been sent, and a name the user gives a speaker while
the stream runs is never replaced by a remembered one.

The first meeting's voices are stored as naming its speakers would store them (the
prints of its speaker state after the end-of-stream correction, test_voices.state),
without streaming it again: test_voices_api covers naming through the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from transcribe.v1 import streaming_pb2, transcripts_pb2

from service.auth import LOCAL_PRINCIPAL
from service.domain import Voice
from service.server import RunningServer
from service.speakers.voices import speakers_of
from service.storage.base import TranscriptStore
from tests.helpers import Stub, TStub, chunks, pcm16
from tests.service.test_speakers import SR, voice
from tests.service.test_voices import state
from tests.service.test_voices_api import remembering, second_meeting

pb = transcripts_pb2
Request = streaming_pb2.StreamingTranscribeRequest
CHUNK = 3200  # bytes: 0.1 s of 16 kHz PCM


async def remember_alice_and_bob(
    store: TranscriptStore,
    owner: str = LOCAL_PRINCIPAL,
    names: tuple[tuple[str, str], ...] = (("S1", "Alice"), ("S2", "Bob")),
) -> None:
    """`owner`'s voices are those of the first meeting (A-B-A) named as in `names`:
    S1 Alice (4088) and S2 Bob (4406), and no others (none with `names=()`)."""
    for v in await store.list_voices(owner):
        await store.delete_voice(owner, v.name)
    heard = speakers_of(await asyncio.to_thread(state))
    for label, name in names:
        h = heard[label]
        emb = h.centroid.astype("<f4").tobytes()
        await store.put_voice(owner, Voice(name, emb, h.windows, "first", label, datetime.now(UTC)))


@pytest.fixture
async def bob_and_alice(server: RunningServer) -> AsyncIterator[None]:
    await remember_alice_and_bob(server.store)
    yield
    await remember_alice_and_bob(server.store, names=())  # none left for other tests


def bob_part() -> int:
    """Chunks of second_meeting() that hold its 4406 part (7.4 s)."""
    return int(len(voice("4406")[7 * SR :]) * 2 / CHUNK) + 1


async def rename(tstub: TStub, tid: str, names: dict[str, str]) -> None:
    t = pb.Transcript(id=tid, speaker_names=names)
    await tstub.UpdateTranscript(
        pb.UpdateTranscriptRequest(transcript=t, update_mask=FieldMask(paths=["speaker_names"]))
    )


async def test_a_remembered_voice_is_named_before_the_stream_ends(
    stub: Stub, transcripts_stub: TStub, bob_and_alice: None
) -> None:
    payloads = chunks(pcm16(second_meeting()), CHUNK)
    split = bob_part()
    named = asyncio.Event()
    sent_all = False
    names_seen: list[tuple[bool, dict[str, str]]] = []

    async def requests() -> AsyncIterator[Request]:
        nonlocal sent_all
        yield Request(config=remembering())
        for p in payloads[:split]:
            yield Request(audio_content=p)
        await named.wait()  # the rest only once Bob is named: he is named live or never
        for p in payloads[split : split + 10]:  # a second more, and the stream ends
            yield Request(audio_content=p)
        sent_all = True

    call = stub.StreamingTranscribe(requests())
    finals: list[streaming_pb2.StreamingTranscriptionResult] = []
    tid = ""
    async with asyncio.timeout(120):
        async for resp in call:
            if resp.HasField("session"):
                tid = resp.session.transcript_id
            if resp.speaker_names:
                names_seen.append((sent_all, dict(resp.speaker_names)))
                if "Bob" in resp.speaker_names.values():
                    named.set()
            finals += [r for r in resp.results if r.is_final]
    assert await call.code() == grpc.StatusCode.OK
    live = [names for done, names in names_seen if not done]
    assert live and "Bob" in live[0].values(), names_seen
    bob = next(k for k, v in live[0].items() if v == "Bob")
    assert bob == finals[0].speaker_label, (bob, finals[0].speaker_label)
    # What was sent is stored, and the end-of-stream pass keeps it.
    got = await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
    assert got.transcript.speaker_names[bob] == "Bob", got.transcript.speaker_names
    assert dict(got.transcript.speaker_names) == names_seen[-1][1], names_seen


async def test_a_name_the_user_gives_while_live_is_not_replaced(
    stub: Stub, transcripts_stub: TStub, bob_and_alice: None
) -> None:
    bob_only = np.concatenate([voice("4406")[7 * SR :], np.zeros(SR, dtype=np.float32)])
    payloads = chunks(pcm16(bob_only), CHUNK)
    renamed = asyncio.Event()
    names_seen: list[dict[str, str]] = []
    tid = ""

    async def requests() -> AsyncIterator[Request]:
        yield Request(config=remembering())
        await renamed.wait()  # the user names S1 before any audio: before it could match
        for p in payloads:
            yield Request(audio_content=p)

    call = stub.StreamingTranscribe(requests())
    async with asyncio.timeout(120):
        async for resp in call:
            if resp.HasField("session"):
                tid = resp.session.transcript_id
                await rename(transcripts_stub, tid, {"S1": "Robert"})
                renamed.set()
            if resp.speaker_names:
                names_seen.append(dict(resp.speaker_names))
    assert await call.code() == grpc.StatusCode.OK
    got = await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
    assert [s.speaker_label for s in got.transcript.segments][:1] == ["S1"]
    assert dict(got.transcript.speaker_names) == {"S1": "Robert"}, got.transcript.speaker_names
    assert all(n.get("S1", "Robert") == "Robert" for n in names_seen), names_seen
    assert not any("Bob" in n.values() for n in names_seen), names_seen
