"""Recording assembly: one at a time per transcript, never by a stale writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest

from service.recordings import RecordingStore
from service.storage.lease import LeaseLostError
from tests.helpers import decode_16k, dev_clips, pcm16

PCM = decode_16k(dev_clips()[0].path)


async def write_part(store: RecordingStore, tid: str, epoch: int, seconds: float) -> None:
    writer = store.open_writer(tid, "pcm", 16000, 1, epoch=epoch)
    await writer.write(pcm16(PCM[: int(16000 * seconds)]))
    if writer._fh is not None:  # closed as finish() would, without assembling
        writer._fh.close()
        writer._fh = None


def duration(path: Path) -> float:
    with av.open(str(path)) as c:
        return sum(f.samples / f.sample_rate for f in c.decode(audio=0))


async def test_concurrent_assemblies_of_one_transcript_do_not_collide(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    await write_part(store, "t1", 1, 2.0)
    store.assemble("t1", 1)
    await write_part(store, "t1", 2, 1.0)  # a resumed stream: joining two parts
    # Eight assemblies at once (late retries, several servers on one directory): they
    # take turns; the first joins, the others find nothing left to join.
    results = await asyncio.gather(
        *(asyncio.to_thread(store.assemble, "t1", 2) for _ in range(8)), return_exceptions=True
    )
    assert all(r == "audio/ogg" for r in results), results
    info = store.info("t1")
    assert info.path.name == "recording-joined.ogg"
    assert duration(info.path) == pytest.approx(3.0, abs=0.1)
    assert sorted(p.name for p in tmp_path.joinpath("t1").iterdir()) == [
        ".lock",
        "recording-joined.ogg",
        "recording.json",
    ]


async def test_a_stale_writer_cannot_assemble_over_a_newer_one(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    await write_part(store, "t2", 1, 1.0)  # the old stream, still running somewhere
    await write_part(store, "t2", 2, 1.0)  # the stream that took the transcript over
    with pytest.raises(LeaseLostError):
        store.assemble("t2", 1)  # would have taken (and deleted) the newer stream's part
    assert len(list(tmp_path.joinpath("t2").glob("part-*.bin"))) == 2
    store.assemble("t2", 2)  # the newer writer joins both, in epoch order
    assert duration(store.info("t2").path) == pytest.approx(2.0, abs=0.1)
    with pytest.raises(LeaseLostError):
        store.assemble("t2", 1)


async def test_a_transcript_resumed_twice_keeps_all_its_audio(tmp_path: Path) -> None:
    """The third part is joined to the Ogg/Opus of the first two (48 kHz float) though it
    is 16 kHz PCM: each input is resampled on its own. One resampler for all of them
    refused it ('Frame does not match AudioResampler setup'): the recording was not
    stored, and the stream logged 'storing the recording failed'."""
    store = RecordingStore(tmp_path)
    for epoch, seconds in enumerate((2.0, 1.0, 1.0), start=1):  # a stream, then two resumes
        await write_part(store, "t3", epoch, seconds)
        store.assemble("t3", epoch)
    info = store.info("t3")
    assert info.path.name == "recording-joined.ogg"
    assert duration(info.path) == pytest.approx(4.0, abs=0.1)
    assert not list(tmp_path.joinpath("t3").glob("part-*"))
