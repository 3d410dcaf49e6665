"""Remembered voices through the gRPC API, on two "meetings" of the same two LibriSpeech
speakers (4088 and 4406, tests/data): named in the first, recognised in the second,
where they speak in the other order, from other recordings, so they get each other's
labels. Then a voice is forgotten, and a stream without the opt-in names nobody. A
forgotten voice stays forgotten when the meeting it was named in is resumed, and when it
is forgotten while a stream that named it is live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from transcribe.v1 import streaming_pb2, transcripts_pb2

from tests.helpers import DATA, Stub, TStub, chunks, decode_16k, pcm16, stream
from tests.service.test_speakers import SR, mix, voice
from tests.service.test_speakers_api import ABA, diarized

pb = transcripts_pb2


def remembering() -> streaming_pb2.StreamingTranscriptionConfig:
    cfg = diarized()
    cfg.diarization_config.remember_voices = True
    return cfg


def second_meeting() -> np.ndarray:
    """4406 first (the rest of the clip the first meeting used the start of), then 20 s of
    4088 from another chapter (tests/data/4088-158079-long.ogg): another day, another
    microphone. 4088's voice varies most of the four: this scores about 0.78 against the
    first meeting's 4088 (voices.MATCH_THRESHOLD is 0.75), 4406 about 0.92."""
    b = voice("4406")[7 * SR :]
    a = decode_16k(DATA / "4088-158079-long.ogg")[10 * SR : 30 * SR]
    pause = np.zeros(SR // 2, dtype=np.float32)
    return np.concatenate([b, pause, a, np.zeros(SR, dtype=np.float32)])


async def meeting(stub: Stub, tstub: TStub, audio: np.ndarray, cfg: object) -> pb.Transcript:
    run = await stream(stub, cfg, chunks(pcm16(audio), 3200))  # type: ignore[arg-type]
    assert run.code == grpc.StatusCode.OK, run.details
    req = pb.GetTranscriptRequest(transcript_id=run.transcript_id)
    return (await tstub.GetTranscript(req)).transcript


async def forget_all(tstub: TStub) -> None:
    for v in (await tstub.ListVoices(pb.ListVoicesRequest())).voices:
        await tstub.DeleteVoice(pb.DeleteVoiceRequest(name=v.name))


async def test_a_voice_named_in_one_meeting_is_named_in_the_next_and_can_be_forgotten(
    stub: Stub, transcripts_stub: TStub
) -> None:
    await forget_all(transcripts_stub)
    first = await meeting(stub, transcripts_stub, mix(ABA)[0], remembering())
    labels = [s.speaker_label for s in first.segments]
    assert labels[0] == labels[-1] == "S1" and "S2" in labels, labels
    assert dict(first.speaker_names) == {}  # nobody to recognise yet
    named = pb.Transcript(id=first.id, speaker_names={"S1": "Alice", "S2": "Bob"})
    await transcripts_stub.UpdateTranscript(
        pb.UpdateTranscriptRequest(transcript=named, update_mask=FieldMask(paths=["speaker_names"]))
    )
    listed = (await transcripts_stub.ListVoices(pb.ListVoicesRequest())).voices
    assert [(v.name, v.transcript_id, v.speaker_label) for v in listed] == [
        ("Alice", first.id, "S1"),
        ("Bob", first.id, "S2"),
    ]
    assert all(v.update_time.seconds > 0 for v in listed)

    second = await meeting(stub, transcripts_stub, second_meeting(), remembering())
    b_label, a_label = second.segments[0].speaker_label, second.segments[-1].speaker_label
    assert b_label and a_label and b_label != a_label
    assert dict(second.speaker_names) == {b_label: "Bob", a_label: "Alice"}

    # Forgetting Alice deletes her print: she is not listed and not recognised again.
    await transcripts_stub.DeleteVoice(pb.DeleteVoiceRequest(name="alice"))
    listed = (await transcripts_stub.ListVoices(pb.ListVoicesRequest())).voices
    assert [v.name for v in listed] == ["Bob"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.DeleteVoice(pb.DeleteVoiceRequest(name="Alice"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    third = await meeting(stub, transcripts_stub, second_meeting(), remembering())
    assert dict(third.speaker_names) == {third.segments[0].speaker_label: "Bob"}
    # The names given stay in the transcripts.
    got = await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=second.id))
    assert "Alice" in got.transcript.speaker_names.values()

    # Without the opt-in, nobody is named: Bob's voice alone (he is still remembered).
    plain = await meeting(stub, transcripts_stub, voice("4406")[7 * SR :], diarized())
    assert dict(plain.speaker_names) == {}
    await forget_all(transcripts_stub)


async def suspended(
    stub: Stub,
    tstub: TStub,
    audio: np.ndarray,
    resume: str = "",
    while_live: tuple[dict[str, str], ...] = (),
) -> str:
    """A stream with remember_voices (resuming transcript `resume` if given) that sends
    `audio` and ends with `suspend`, so that its transcript stays resumable, as a page's
    meeting does when the page goes away; while it is live (its audio sent, its end held
    back) each step of `while_live` is applied in turn: {"rename": label, "to": name}
    (UpdateTranscript) or {"forget": name} (DeleteVoice). Returns the transcript's id."""
    cfg = remembering()
    cfg.resume_transcript_id = resume
    opened, release = asyncio.Event(), asyncio.Event()
    tid = ""

    async def requests() -> AsyncIterator[streaming_pb2.StreamingTranscribeRequest]:
        yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
        for p in chunks(pcm16(audio), 3200):
            yield streaming_pb2.StreamingTranscribeRequest(audio_content=p)
        await release.wait()  # the stream stays live until the steps are done
        yield streaming_pb2.StreamingTranscribeRequest(suspend=True)

    async def steps() -> None:
        await opened.wait()
        for step in while_live:
            if "forget" in step:
                await tstub.DeleteVoice(pb.DeleteVoiceRequest(name=step["forget"]))
                continue
            got = await tstub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
            names = dict(got.transcript.speaker_names) | {step["rename"]: step["to"]}
            await tstub.UpdateTranscript(
                pb.UpdateTranscriptRequest(
                    transcript=pb.Transcript(id=tid, speaker_names=names),
                    update_mask=FieldMask(paths=["speaker_names"]),
                )
            )
        release.set()

    task = asyncio.create_task(steps())
    async with asyncio.timeout(180):
        async for resp in stub.StreamingTranscribe(requests()):
            if resp.HasField("session"):
                tid = resp.session.transcript_id
                opened.set()
    await task
    return tid


async def name_alice_and_bob_and_forget_alice(stub: Stub, tstub: TStub) -> str:
    """The first meeting (A-B-A: S1 4088, S2 4406), interrupted, its speakers named Alice
    and Bob (both remembered), then Alice forgotten. Returns its id."""
    await forget_all(tstub)
    tid = await suspended(stub, tstub, mix(ABA)[0])
    named = pb.Transcript(id=tid, speaker_names={"S1": "Alice", "S2": "Bob"})
    await tstub.UpdateTranscript(
        pb.UpdateTranscriptRequest(transcript=named, update_mask=FieldMask(paths=["speaker_names"]))
    )
    listed = (await tstub.ListVoices(pb.ListVoicesRequest())).voices
    assert [(v.name, v.speaker_label) for v in listed] == [("Alice", "S1"), ("Bob", "S2")]
    await tstub.DeleteVoice(pb.DeleteVoiceRequest(name="Alice"))
    return tid


async def test_a_forgotten_voice_stays_forgotten_when_its_meeting_is_resumed(
    stub: Stub, transcripts_stub: TStub
) -> None:
    """Forgetting Alice, then resuming the meeting she was named in (a page resumes it
    with its remember switch on) does not remember her again: she is still S1 there, but
    that name was not given in the resumed stream. The next meeting does not name her."""
    tid = await name_alice_and_bob_and_forget_alice(stub, transcripts_stub)
    await suspended(stub, transcripts_stub, voice("4088")[: 8 * SR], resume=tid)
    listed = (await transcripts_stub.ListVoices(pb.ListVoicesRequest())).voices
    assert [v.name for v in listed] == ["Bob"]
    got = await transcripts_stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid))
    assert dict(got.transcript.speaker_names) == {"S1": "Alice", "S2": "Bob"}  # kept there
    third = await meeting(stub, transcripts_stub, second_meeting(), remembering())
    assert dict(third.speaker_names) == {third.segments[0].speaker_label: "Bob"}
    await forget_all(transcripts_stub)


async def test_a_voice_forgotten_while_its_stream_is_live_is_not_remembered_at_its_end(
    stub: Stub, transcripts_stub: TStub
) -> None:
    """Forget wins: S1 named Carol while the resumed meeting is live (remembered at once,
    from the stored speaker state), then Carol forgotten, then the stream ends: Carol is
    not stored again. Renaming S2 to a name forgotten earlier (Alice) is a new naming:
    remembered."""
    tid = await name_alice_and_bob_and_forget_alice(stub, transcripts_stub)
    steps = ({"rename": "S1", "to": "Carol"}, {"forget": "Carol"}, {"rename": "S2", "to": "Alice"})
    await suspended(stub, transcripts_stub, voice("4088")[: 8 * SR], resume=tid, while_live=steps)
    listed = (await transcripts_stub.ListVoices(pb.ListVoicesRequest())).voices
    assert [(v.name, v.speaker_label) for v in listed] == [("Alice", "S2")]
    await forget_all(transcripts_stub)


async def test_forgetting_needs_a_name(transcripts_stub: TStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcripts_stub.DeleteVoice(pb.DeleteVoiceRequest(name=" "))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
