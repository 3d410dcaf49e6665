"""A client process killed mid-stream (its kernel drops the TCP connection): the transcript
is closed as interrupted with every final the client received, and the server keeps no
task, thread or per-stream object of it."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import textwrap
import threading
from pathlib import Path

import grpc
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.audio import AudioInput
from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from service.session import StreamSession
from tests.helpers import (
    Enc,
    assert_seen_finals_stored,
    chunks,
    config,
    decode_16k,
    dev_clips,
    encode_container,
    stream,
)

ROOT = Path(__file__).resolve().parents[2]
CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    import grpc
    from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

    async def main(port, path):
        data = open(path, "rb").read()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
            async def reqs():
                cfg = streaming_pb2.StreamingTranscriptionConfig(
                    encoding=streaming_pb2.AUDIO_ENCODING_OGG_OPUS, interim_results=True,
                    enable_revisions=True)
                yield streaming_pb2.StreamingTranscribeRequest(config=cfg)
                step = len(data) // 60
                for i in range(0, len(data), step):
                    yield streaming_pb2.StreamingTranscribeRequest(audio_content=data[i:i + step])
                    await asyncio.sleep(0.25)
                await asyncio.Event().wait()
            async for resp in stub.StreamingTranscribe(reqs()):
                if resp.HasField("session"):
                    print(json.dumps({"tid": resp.session.transcript_id}), flush=True)
                for r in resp.results:
                    if r.is_final:
                        text = r.alternatives[0].transcript
                        print(json.dumps({"final": text, "i": r.segment_index}), flush=True)

    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)


def counts() -> tuple[int, int, int]:
    gc.collect()
    objs = gc.get_objects()
    sessions = sum(isinstance(o, StreamSession) for o in objs)
    inputs = sum(isinstance(o, AudioInput) for o in objs)
    return sessions, inputs, threading.active_count()


async def test_killed_client_leaves_nothing_behind(engine: WhisperEngine, tmp_path: Path) -> None:
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path)), engine=engine
    )
    clip = dev_clips()[0]
    audio = decode_16k(clip.path)
    ogg = tmp_path / "clip.ogg"
    ogg.write_bytes(encode_container(audio, "ogg"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            from transcribe.v1 import streaming_pb2_grpc

            # Warm-up: one complete Ogg stream starts the pools every stream shares.
            warm = await stream(
                streaming_pb2_grpc.TranscriptionServiceStub(ch),
                config(encoding=Enc.AUDIO_ENCODING_OGG_OPUS),
                chunks(ogg.read_bytes(), 4000),
            )
            assert warm.code == grpc.StatusCode.OK
            base_tasks = len(asyncio.all_tasks())
            base_sessions, base_inputs, base_threads = counts()
            assert (base_sessions, base_inputs) == (0, 0)

            for _ in range(2):  # twice: nothing accumulates
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", CLIENT, str(running.port), str(ogg),
                    stdout=asyncio.subprocess.PIPE, cwd=ROOT,
                    env={"PYTHONPATH": str(ROOT / "gen" / "python")},
                )  # fmt: skip
                assert proc.stdout is not None
                tid, finals = "", dict[int, str]()
                while len(" ".join(finals.values()).split()) < 8:
                    line = await asyncio.wait_for(proc.stdout.readline(), 60)
                    assert line, "client ended early"
                    msg = json.loads(line)
                    tid = msg.get("tid", tid)
                    if "final" in msg:
                        finals[msg["i"]] = msg["final"]
                assert counts()[0] == 1  # mid-stream: the session exists
                proc.kill()  # SIGKILL: no goodbye, the kernel closes the connection
                await proc.wait()

                tstub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
                for _ in range(300):  # poll like a user would
                    t = (
                        await tstub.GetTranscript(
                            transcripts_pb2.GetTranscriptRequest(transcript_id=tid)
                        )
                    ).transcript
                    if t.status != transcripts_pb2.TRANSCRIPT_STATUS_LIVE:
                        break
                    await asyncio.sleep(0.1)
                assert t.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED
                assert_seen_finals_stored(finals, {s.index: s.text for s in t.segments})

                for _ in range(100):  # the server lets go of the stream soon after
                    if not running.registry.active and not running.registry.closing:
                        sessions, inputs, threads = counts()
                        tasks = len(asyncio.all_tasks())
                        if (sessions, inputs) == (0, 0) and threads <= base_threads:
                            if tasks <= base_tasks:
                                break
                    await asyncio.sleep(0.1)
                sessions, inputs, threads = counts()
                assert (sessions, inputs) == (0, 0), "a stream's objects outlived it"
                assert threads <= base_threads, f"threads {base_threads} -> {threads}"
                assert len(asyncio.all_tasks()) <= base_tasks
    finally:
        await running.stop(1)
