"""Speaker labels survive a server that dies mid-stream: the stream's lease renewals store
the tracker's state (LeaseKeeper), so the stream that resumes the transcript on another
server, once the dead one's lease expired, calls the voices heard before by their labels.
And that state stays small whatever the stream's length."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np

from service.config import Settings, StorageSettings
from service.domain import TranscriptStatus
from service.engine import WhisperEngine
from service.server import start_server
from service.speakers.clustering import OnlineClusterer, Speaker
from service.speakers.config import DiarizationSettings
from service.speakers.embedder import EMBEDDING_DIM
from service.speakers.tracker import SpeakerTracker
from tests.helpers import StreamRun, Stub
from tests.service.test_speakers_api import (
    assert_resumed_labels,
    latest,
    part1_until,
    resume_part2,
    stream_until,
)

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 3.0
"""The servers' lease (renewed, with the speaker state, every second)."""
MIN_WINDOWS = 8


def stored_voices(state: str) -> dict[str, int]:
    """The voices in a stored speaker state ("": none): label -> windows heard."""
    if not state:
        return {}
    clusterer = json.loads(json.loads(state)["clusterer"])
    return {s["label"]: int(s["count"]) for s in clusterer["speakers"]}


def both_grown(state: str) -> bool:
    """Both voices of PART1 stored, each with at least 4 s of speech (8 windows): the
    state of the whole first part (sent faster than real time), not of B's first
    second, whose young centroid can label a word at B's turn's end as A (seen once)."""
    voices = stored_voices(state)
    return set(voices) == {"S1", "S2"} and min(voices.values()) >= MIN_WINDOWS


def refused(run: StreamRun) -> bool:
    """The resume was refused as the transcript's lease is still held: ABORTED, or, the
    client still writing its burst of audio as the refusal came, INTERNAL "Internal error
    from Core" before any response (grpc/grpc#36066; service/wire.py `drain` reads only
    the first 100 messages, and PART2 is 150 chunks; a resume admitted answers first)."""
    if run.code == grpc.StatusCode.ABORTED:
        assert "is being written by another stream" in run.details, run.details
        return True
    return run.code == grpc.StatusCode.INTERNAL and not run.responses


async def test_labels_survive_a_server_killed_mid_stream(
    engine: WhisperEngine, tmp_path: Path
) -> None:
    """Server A (a process, killed with SIGKILL: no stream end, no closer) and server B
    (in-process) share one SQLite store and recordings volume. A's stream heard A then B
    (S1, S2); B resumes the transcript once A's lease expired and hears B then A again."""
    dead = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [
            sys.executable,
            "-c",
            "from service.server import main; main()",
            "--port=0",
            f"--data-dir={tmp_path}",
            f"--lease-seconds={LEASE_S:g}",
            "--idle-timeout=600",  # the stream lives, however long storing its voices takes
            "--refine=false",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    storage = StorageSettings(data_dir=tmp_path, lease_s=LEASE_S)
    b = await start_server(Settings(port=0, storage=storage), engine=engine)
    try:
        assert dead.stdout is not None
        line = await asyncio.to_thread(dead.stdout.readline)
        port = int(re.search(r"listening on [^:]+:(\d+)", line).group(1))  # type: ignore[union-attr]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch_a:
            first, call = await stream_until(Stub(ch_a), *part1_until())
            labels1 = {r.speaker_label for r in latest(first.results(True)).values()}
            assert labels1 == {"S1", "S2"}, labels1
            tid = first.transcript_id
            state = ""

            async def poll() -> None:
                nonlocal state
                while not both_grown(state):
                    state = (await b.store.get_transcript("local", tid)).speaker_state
                    await asyncio.sleep(0.05)

            try:  # the stream is live: what a renewal stored is all a resume will have
                await asyncio.wait_for(poll(), 20 * LEASE_S)
            except TimeoutError:
                raise AssertionError(
                    f"the live stream never stored both voices grown: {stored_voices(state)}"
                ) from None
            live = await b.store.get_transcript("local", tid)
            assert live.status is TranscriptStatus.LIVE, "the stream must not have ended"
            dead.kill()  # SIGKILL: the stream's end never runs
            await asyncio.to_thread(dead.wait)
            call.cancel()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch_b:
            run = StreamRun(code=grpc.StatusCode.ABORTED)
            for _ in range(200):  # refused while the dead server's lease has not expired
                run = await resume_part2(Stub(ch_b), tid)
                if not refused(run):
                    break
                await asyncio.sleep(0.1)
            assert_resumed_labels(run)
    finally:
        if dead.poll() is None:
            dead.kill()
            await asyncio.to_thread(dead.wait)
        await b.stop(1.0)


def test_the_stored_state_of_an_hour_with_eight_voices_is_small() -> None:
    """What a renewal stores is the voices' centroids, not the windows (5 MB an hour):
    8 voices after an hour are ~12 KB, far inside DynamoDB's 400 KB item."""
    rng = np.random.default_rng(0)
    n = 7200  # an hour of 0.5 s windows
    embs = [rng.standard_normal(EMBEDDING_DIM).astype(np.float32) for _ in range(n)]
    voices = [
        Speaker(f"S{k + 1}", np.sum(embs[k::8], axis=0).astype(np.float64), n // 8)
        for k in range(8)
    ]
    clusterer = OnlineClusterer(
        speakers=voices,
        next_number=9,
        embeddings=embs,
        labels=[f"S{1 + i % 8}" for i in range(n)],
        raw=[i % 8 for i in range(n)],
    )
    times = np.arange(n, dtype=np.float64) * 0.5
    history = json.dumps(
        {
            "clusterer": clusterer.to_json(True),
            "starts": base64.b64encode(times.tobytes()).decode(),
            "ends": base64.b64encode((times + 0.5).tobytes()).decode(),
        }
    )
    settings = DiarizationSettings(enabled=True, remember_voices=True)
    live = SpeakerTracker(settings, state=history).state_json(False)
    assert set(stored_voices(live)) == {f"S{k + 1}" for k in range(8)}
    assert len(history) > 4_000_000
    assert len(live) < 16_000, len(live)
