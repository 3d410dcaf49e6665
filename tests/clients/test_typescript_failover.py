"""The TypeScript client given several replicas (`baseUrl: [a, b]`): a stream one refuses
before answering (at its limit: RESOURCE_EXHAUSTED; down: UNAVAILABLE) goes to the next
with all its audio, as the Python client's does (tests/clients/test_failover.py)."""

from __future__ import annotations

import json
from pathlib import Path

from service.server import RunningServer
from tests.clients.test_failover import refused, streamed
from tests.clients.test_typescript_cancel import unused_port
from tests.clients.test_typescript_failures import compiled, finish, node, pytestmark
from tests.helpers import dev_clips, normalize, wer

__all__ = ["compiled", "pytestmark"]  # the fixture and the skip, shared with the failures tests

FAILOVER = """
import { readFile } from "node:fs/promises";
import { TranscribeClient, FinalText } from "%(client)s";
const [full, free, down, clip] = process.argv.slice(2);
const say = (x) => console.log(JSON.stringify(x));
const audio = await readFile(clip);
const chunks = () => {  // a live source's small chunks, several read before the answer
  const out = [];
  for (let i = 0; i < audio.length; i += 4000) out.push(audio.subarray(i, i + 4000));
  return out;
};
async function text(client) {
  const t = new FinalText();
  for await (const r of client.transcribe(chunks())) t.add(r);
  return t.text;
}
say({ direct: await text(new TranscribeClient({ baseUrl: free })) });
// Round robin: each stream meets the full replica first, then goes to the free one.
const pair = new TranscribeClient({ baseUrl: [full, free] });
for (let i = 0; i < 2; i++) say({ pair: await text(pair) });
const withDown = new TranscribeClient({ baseUrl: [down, free] });
say({ down: await text(withDown), listed: (await withDown.listTranscripts()).transcripts.length });
try {
  await text(new TranscribeClient({ baseUrl: [full], streamAttempts: 2 }));
  say({ allFull: null });
} catch (e) {
  say({ allFull: { name: e.name, code: e.code } });
}
"""


async def test_a_refused_stream_goes_to_the_next_replica_with_all_its_audio(
    full_and_free: tuple[RunningServer, RunningServer], compiled: str, tmp_path: Path
) -> None:
    full, free = full_and_free
    url = "http://127.0.0.1:{}".format
    proc = await node(
        tmp_path, FAILOVER % {"client": compiled}, url(full.port), url(free.port),
        url(unused_port()), str(dev_clips()[3].path),
    )  # fmt: skip
    before = refused(full)
    code, out, err = await finish(proc)
    assert code == 0, err
    got: dict[str, list[object]] = {}
    for line in out.splitlines():
        for key, value in json.loads(line).items():
            got.setdefault(key, []).append(value)
    direct = str(got["direct"][0])
    texts = [str(t) for t in got["pair"] + got["down"]]
    assert len(texts) == 3 and direct
    for text in texts:  # none of the audio lost on the way (the file's header goes first)
        assert normalize(text).split()[:3] == normalize(direct).split()[:3]
        assert wer([direct], [text]) < 0.1, text
    assert isinstance(got["listed"][0], int) and got["listed"][0] >= 4
    assert got["allFull"] == [{"name": "ConnectError", "code": 8}]  # RESOURCE_EXHAUSTED
    assert streamed(free) == 4
    assert refused(full) - before >= 2 + 2  # the pair's, then both calls of the last


REPLAY = """
import { ReplayableAudio } from "%(audio)s";
const say = (x) => console.log(JSON.stringify(x));
let release;
const gate = new Promise((resolve) => (release = resolve));
async function* source() {
  for (let i = 0; i < 6; i++) {
    if (i === 4) await gate;  // a live source's pause
    yield new Uint8Array([i]);
  }
}
const audio = new ReplayableAudio(source());
const take = async (n, signal) => {
  const out = [];
  for (let i = 0; i < n; i++) out.push((await audio.next(signal))?.[0] ?? null);
  return out;
};
const first = await take(3);  // sent to a replica that refused
// The refused call's request iterator, left waiting by the transport, gives up at the abort
// without taking the chunk that comes later.
const call = new AbortController();
await take(1, call.signal);
const waiting = take(1, call.signal).catch((e) => e.code);
call.abort();
const left = await waiting;
audio.rewind();
release();
const second = await take(5);  // the next replica answers here
audio.confirm();
audio.rewind();  // nothing to send again once a replica took the stream
const rest = await take(2);
say({ first, left, second, rest });
"""


async def test_audio_read_before_a_refusal_is_sent_again_in_order(
    compiled: str, tmp_path: Path
) -> None:
    audio = compiled.removesuffix("client.js") + "audio.js"
    proc = await node(tmp_path, REPLAY % {"audio": audio})
    code, out, err = await finish(proc)
    assert code == 0, err
    assert json.loads(out) == {
        "first": [0, 1, 2], "left": 1, "second": [0, 1, 2, 3, 4], "rest": [5, None],
    }  # fmt: skip
