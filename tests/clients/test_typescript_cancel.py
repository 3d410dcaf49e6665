"""The TypeScript client's cancellation: an `AbortSignal` passed to `transcribe()` or to a
unary call cancels that call, on the server too (a stream aborted mid-way leaves its
transcript interrupted, as a Python client's cancel does). Node scripts over the compiled
client against a real in-process server."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from transcribe.v1 import transcripts_pb2

from service.server import RunningServer
from tests.clients.test_typescript_failures import compiled, ends_cleanly, node_running, pytestmark
from tests.helpers import TStub, decode_16k, dev_clips

__all__ = ["compiled", "pytestmark"]  # the fixture and the skip, shared with the failures tests

ABORT = """
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { TranscribeClient, AudioEncoding } from "%(client)s";
const say = (x) => console.log(JSON.stringify(x));
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const data = await readFile(process.argv[3]);  // 16 kHz PCM: a chunk never ends mid-frame
let pumpStopped;
const stopped = new Promise((resolve) => (pumpStopped = resolve));
async function* live() {  // the clip, then silence: it ends only when the client stops reading
  try {
    for (let i = 0; i < data.length; i += 3200) {
      yield data.subarray(i, i + 3200);
      await pause(5);
    }
    for (;;) {
      yield new Uint8Array(3200);
      await pause(5);
    }
  } finally {
    pumpStopped();
  }
}
const client = new TranscribeClient({ baseUrl: process.argv[2] });
const config = { encoding: AudioEncoding.LINEAR16, sampleRateHertz: 16000 };
const stop = new AbortController();
let tid = "", finals = 0, stream = null;
try {
  for await (const r of client.transcribe(live(), config, { signal: stop.signal })) {
    if (r.kind === "session") tid = r.transcriptId;
    if (r.isFinal) {
      finals++;
      stop.abort();  // mid-way: the source has more to send
    }
  }
} catch (e) {
  stream = { name: e.name, code: e.code };
}
await stopped;
say({ tid, finals, stream });

const failed = async (call) => {
  try {
    await call;
    return null;
  } catch (e) {
    return { name: e.name, code: e.code };
  }
};
// A signal aborted before the call, and one aborted while a call waits to retry a server
// that is down (without it: UNAVAILABLE, after every attempt).
const early = await failed(client.getTranscript(tid, { signal: AbortSignal.abort() }));
const down = new TranscribeClient({ baseUrl: `http://127.0.0.1:${process.argv[4]}`, attempts: 8 });
const later = new AbortController();
setTimeout(() => later.abort(), 300);
const retrying = await failed(down.listTranscripts({}, { signal: later.signal }));
say({ early, retrying });
process.stdin.resume();
await once(process.stdin, "end");  // alive (connection open) until the test has looked
"""


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_aborted_signal_cancels_the_stream_and_unary_calls(
    server: RunningServer, transcripts_stub: TStub, compiled: str, tmp_path: Path
) -> None:
    pcm = tmp_path / "clip.pcm"
    pcm.write_bytes((decode_16k(dev_clips()[3].path) * 32767).astype("<i2").tobytes())
    script = ABORT % {"client": compiled}
    url = f"http://127.0.0.1:{server.port}"
    async with node_running(tmp_path, script, url, str(pcm), str(unused_port())) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        async with asyncio.timeout(120):  # without the signal the stream never ends
            streamed = json.loads(await proc.stdout.readline())
            unary = json.loads(await proc.stdout.readline())
        assert streamed["tid"] and streamed["finals"] >= 1
        assert streamed["stream"] == {"name": "ConnectError", "code": 1}  # CANCELED
        assert unary["early"] == {"name": "ConnectError", "code": 1}
        assert unary["retrying"] == {"name": "ConnectError", "code": 1}
        async with asyncio.timeout(60):  # the server's stream ends while the client lives
            await server.registry.wait_ended()
            await server.registry.wait_closed()
        got = await transcripts_stub.GetTranscript(
            transcripts_pb2.GetTranscriptRequest(transcript_id=streamed["tid"])
        )
        assert got.transcript.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED
        await ends_cleanly(proc)
