"""The TypeScript client when things go wrong: a caller leaving the results loop early,
bad input to its helpers. Each test runs a node script over the compiled client
(clients/typescript/dist) against a real in-process server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import assert_seen_finals_stored, decode_16k, dev_clips

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "clients" / "typescript"
BIN = TS / "node_modules" / ".bin"
CLIENT = (TS / "dist" / "client.js").as_uri()

pytestmark = pytest.mark.skipif(
    not (BIN / "tsc").exists() or shutil.which("node") is None,
    reason="needs node and `npm ci --prefix clients/typescript`",
)


@pytest.fixture(scope="module")
async def compiled() -> str:
    """The client compiled to clients/typescript/dist; its URL for the scripts' import."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "tsc"), "-p", ".", cwd=TS,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return CLIENT


async def node(
    tmp_path: Path, script: str, *args: str
) -> asyncio.subprocess.Process:  # the script's stdin stays open until the test closes it
    path = tmp_path / "script.mjs"
    path.write_text(script)
    return await asyncio.create_subprocess_exec(
        "node", str(path), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def node_running(
    tmp_path: Path, script: str, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`node(tmp_path, script, *args)`, for a script that waits for its stdin to close;
    killed on the way out if it is still running (the test failed before it ended)."""
    proc = await node(tmp_path, script, *args)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def ends_cleanly(proc: asyncio.subprocess.Process) -> None:
    """Close the script's stdin (it ends once the test has looked): it must exit 0, with
    nothing on stderr."""
    assert proc.stdin is not None
    proc.stdin.close()
    code, _, err = await finish(proc)
    assert code == 0 and not err, err


BREAK_EARLY = """
import { once } from "node:events";
import { TranscribeClient, AudioEncoding } from "%(client)s";
let pumpStopped;
const stopped = new Promise((resolve) => (pumpStopped = resolve));
async function* silence() {  // a live source: it ends only when the client stops reading it
  try {
    for (;;) {
      yield new Uint8Array(3200);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    pumpStopped();
  }
}
const client = new TranscribeClient({ baseUrl: process.argv[2] });
const config = { encoding: AudioEncoding.LINEAR16, sampleRateHertz: 16000 };
for await (const r of client.transcribe(silence(), config)) {
  console.log(JSON.stringify({ first: r.kind }));
  break;
}
await stopped;
console.log(JSON.stringify({ pump: "stopped" }));
process.stdin.resume();
await once(process.stdin, "end");  // alive (connection open) until the test has looked
"""


async def test_leaving_the_results_loop_cancels_the_stream(
    server: RunningServer, compiled: str, tmp_path: Path
) -> None:
    """A `break` out of transcribe() stops the audio source and ends the server's stream
    while the process (and its connection) lives on; nothing is left to reject."""
    script = BREAK_EARLY % {"client": compiled}
    async with node_running(tmp_path, script, f"http://127.0.0.1:{server.port}") as proc:
        assert proc.stdout is not None and proc.stdin is not None
        async with asyncio.timeout(60):  # without the fix the pump never stops
            first = json.loads(await proc.stdout.readline())
            pump = json.loads(await proc.stdout.readline())
        assert first == {"first": "session"} and pump == {"pump": "stopped"}
        async with asyncio.timeout(60):  # the server's stream ends while the client lives
            await server.registry.wait_ended()
        await ends_cleanly(proc)


UPDATE = """
import { TranscribeClient, AudioEncoding } from "%(client)s";
const client = new TranscribeClient({ baseUrl: process.argv[2] });
const config = {
  encoding: AudioEncoding.LINEAR16, sampleRateHertz: 16000, title: "Standup", tags: ["a"],
};
let id = "";
for await (const r of client.transcribe([new Uint8Array(32000)], config)) {
  if (r.kind === "session") id = r.transcriptId;
}
await client.updateTranscript(id, { speakerNames: { S1: "Alice" } });
const options = { title: undefined, tags: ["b"] };  // e.g. an optional CLI flag left out
await client.updateTranscript(id, options);
let error = null;
try {
  await client.updateTranscript(id, { speaker_names: {} });  // plain JS, the proto's name
} catch (e) {
  error = { name: e.name, code: e.code, message: e.message };
}
const t = await client.getTranscript(id);
console.log(JSON.stringify({ title: t.title, tags: t.tags, names: t.speakerNames, error }));
"""


async def test_update_changes_only_the_fields_given(
    server: RunningServer, compiled: str, tmp_path: Path
) -> None:
    """A field passed as undefined is left as it is, and a key the client does not know is
    refused with a message naming it, rather than clearing the stored field."""
    proc = await node(tmp_path, UPDATE % {"client": compiled}, f"http://127.0.0.1:{server.port}")
    code, out, err = await finish(proc)
    assert code == 0, err
    got = json.loads(out)
    assert got["title"] == "Standup" and got["tags"] == ["b"]
    assert got["names"] == {"S1": "Alice"}
    assert got["error"]["name"] == "ConnectError" and got["error"]["code"] == 3
    assert '"speaker_names"' in got["error"]["message"]
    assert "speakerNames" in got["error"]["message"]


NOT_BYTES = """
import { TranscribeClient, AudioEncoding } from "%(client)s";
const client = new TranscribeClient({ baseUrl: process.argv[2] });
const config = { encoding: AudioEncoding.LINEAR16, sampleRateHertz: 16000 };
const chunks = { samples: new Int16Array(16000), text: "RIFF" };  // plain JS mistakes
const sources = Object.entries(chunks).map(([name, c]) => [name, [new Uint8Array(3200), c]]);
sources.push(["whole", Buffer.alloc(3200)]);  // the file's bytes, not a list of chunks
for (const [name, source] of sources) {
  try {
    for await (const r of client.transcribe(source, config)) void r;
    console.log(JSON.stringify({ name, error: null }));
  } catch (e) {
    const error = { name: e.name, code: e.code, message: e.message };
    console.log(JSON.stringify({ name, error }));
  }
}
"""


async def test_audio_that_is_not_bytes_gets_an_error_saying_so(
    server: RunningServer, compiled: str, tmp_path: Path
) -> None:
    """An Int16Array of samples (not a corrupt-message error from the server), a string or a
    Buffer passed whole (not an encoder's internal error): INVALID_ARGUMENT saying what to
    pass."""
    script = NOT_BYTES % {"client": compiled}
    proc = await node(tmp_path, script, f"http://127.0.0.1:{server.port}")
    code, out, err = await finish(proc)
    assert code == 0, err
    got = {x["name"]: x["error"] for x in map(json.loads, out.splitlines())}
    assert {e["code"] for e in got.values()} == {3}  # INVALID_ARGUMENT
    assert "chunk 2 is an Int16Array" in got["samples"]["message"]
    assert "new Uint8Array(c.buffer, c.byteOffset, c.byteLength)" in got["samples"]["message"]
    assert "chunk 2 is a string" in got["text"]["message"]
    assert "chunk 1 is a number (a Buffer passed whole? pass [buffer])" in got["whole"]["message"]
    assert all("Uint8Array (or Buffer)" in e["message"] for e in got.values())


UNDEFINED_OPTIONS = """
import { readFile } from "node:fs/promises";
import { TranscribeClient } from "%(client)s";
const client = new TranscribeClient({ baseUrl: process.argv[2] });
const flags = {};  // e.g. parsed command-line flags, none given
const config = {
  interimResults: flags.interim, enableWordTimeOffsets: flags.words, enableRevisions: flags.revise,
};
const audio = await readFile(process.argv[3]);
const kinds = {};
let words = 0;
for await (const r of client.transcribe([audio], config)) {
  kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
  if (r.isFinal) words += r.words.length;
}
console.log(JSON.stringify({ kinds, words }));
"""


async def test_options_given_as_undefined_keep_their_defaults(
    server: RunningServer, compiled: str, tmp_path: Path
) -> None:
    """`{ interimResults: undefined }` is an option not given: interims and words stay on
    (spread over the defaults, undefined turned them off)."""
    clip = dev_clips()[3]
    script = UNDEFINED_OPTIONS % {"client": compiled}
    proc = await node(tmp_path, script, f"http://127.0.0.1:{server.port}", str(clip.path))
    code, out, err = await finish(proc)
    assert code == 0, err
    got = json.loads(out)
    assert got["kinds"].get("final") and got["words"] > 0
    assert got["kinds"].get("interim")


BASE_URL = """
import { TranscribeClient } from "%(client)s";
const port = process.argv[2];
for (const baseUrl of [`127.0.0.1:${port}`, `localhost:${port}`]) {  // the Python client's form
  try {
    await new TranscribeClient({ baseUrl }).listModels();
    console.log(JSON.stringify({ baseUrl, error: null }));
  } catch (e) {
    console.log(JSON.stringify({ baseUrl, error: { code: e.code, message: e.message } }));
  }
}
"""


async def test_a_base_url_without_scheme_is_refused_saying_the_form(
    server: RunningServer, compiled: str, tmp_path: Path
) -> None:
    """The Python client's form, "host:port", is refused with the form wanted, not with the
    transport's bare "Invalid URL" at the first call."""
    proc = await node(tmp_path, BASE_URL % {"client": compiled}, str(server.port))
    code, out, err = await finish(proc)
    assert code == 0, err
    errors = [json.loads(line)["error"] for line in out.splitlines()]
    assert len(errors) == 2
    for e in errors:
        assert e["code"] == 3 and "http://host:port" in e["message"], e


SHUTDOWN = """
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { TranscribeClient, AudioEncoding } from "%(client)s";
const say = (x) => console.log(JSON.stringify(x));
const data = await readFile(process.argv[3]);  // 16 kHz PCM: a chunk never ends mid-frame
async function* audio() {  // half the clip, then a live source's pause
  for (let i = 0; i < data.length / 2; i += 16000) yield data.subarray(i, i + 16000);
  say({ half: true });
  process.stdin.resume();
  await once(process.stdin, "end");
}
const client = new TranscribeClient({ baseUrl: process.argv[2] });
try {
  const config = { encoding: AudioEncoding.LINEAR16, sampleRateHertz: 16000 };
  for await (const r of client.transcribe(audio(), config)) {
    if (r.kind === "session") say({ tid: r.transcriptId });
    if (r.isFinal) say({ final: r.text, i: r.segmentIndex });
    if (r.kind === "interim") say({ interim: r.text });
  }
  say({ error: null });
} catch (e) {
  say({ error: { code: e.code, message: e.message } });
}
"""


async def test_a_server_shutting_down_mid_stream_delivers_its_finals_then_unavailable(
    engine: WhisperEngine, compiled: str, tmp_path: Path
) -> None:
    """The server drains a stream on shutdown: every final of what it heard reaches the
    caller (each stored under its index), then UNAVAILABLE naming the transcript to resume."""
    settings = Settings(port=0, storage=StorageSettings(data_dir=tmp_path / "data"))
    running = await start_server(settings, engine=engine)
    pcm = tmp_path / "clip.pcm"
    pcm.write_bytes((decode_16k(dev_clips()[0].path) * 32767).astype("<i2").tobytes())
    script = SHUTDOWN % {"client": compiled}
    url = f"http://127.0.0.1:{running.port}"
    async with node_running(tmp_path, script, url, str(pcm)) as proc:
        try:
            assert proc.stdout is not None and proc.stdin is not None
            tid, finals, error = "", dict[int, str](), None
            async with asyncio.timeout(120):
                seen: set[str] = set()
                while not {"half", "interim"} <= seen:  # all sent, and speech heard
                    msg = json.loads(await proc.stdout.readline())
                    seen |= msg.keys()
                    tid = msg.get("tid", tid)
                    if "final" in msg:
                        finals[msg["i"]] = msg["final"]
                await running.stop(30)  # drain: the stream finalizes what it heard
                while line := await proc.stdout.readline():
                    msg = json.loads(line)
                    tid = msg.get("tid", tid)
                    if "final" in msg:
                        finals[msg["i"]] = msg["final"]
                    if "error" in msg:
                        error = msg["error"]
                        proc.stdin.close()
            await ends_cleanly(proc)
        finally:
            await running.stop(1)
    assert tid and finals and error is not None
    assert error["code"] == 14 and tid in error["message"]  # UNAVAILABLE
    again = await start_server(settings, engine=engine)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{again.port}") as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            got = await stub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
        stored = {s.index: s.text for s in got.transcript.segments}
        assert sorted(stored) == sorted(finals)  # none stored but held back from the caller
        assert_seen_finals_stored(finals, stored)
    finally:
        await again.stop(1)
