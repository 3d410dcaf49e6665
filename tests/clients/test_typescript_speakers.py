"""The TypeScript client's speaker API against a real in-process server (its own storage,
so that the voices it remembers are the only ones): labels on results and words, naming
a speaker with updateTranscript, searchTranscripts' speaker filter, the names a later
stream gets for a remembered voice (`speakerNames`), listVoices and forgetVoice. Node
scripts over the compiled client (clients/typescript/dist)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.clients.test_typescript_failures import TS, compiled, finish, node, pytestmark
from tests.helpers import encode_container, pcm16
from tests.service.test_speakers import mix
from tests.service.test_speakers_api import ABA

__all__ = ["compiled", "pytestmark"]  # the fixture and the skip, shared with the failures tests

STREAM = """
import { readFile } from "node:fs/promises";
import { TranscribeClient, AudioEncoding } from "%(client)s";
const [url, pcm] = process.argv.slice(2);
const audio = await readFile(pcm);
const chunks = [];  // 0.1 s of 16 kHz LINEAR16 each
for (let i = 0; i < audio.length; i += 3200) chunks.push(audio.subarray(i, i + 3200));
const client = new TranscribeClient({ baseUrl: url });
const config = {
  encoding: AudioEncoding.LINEAR16, sampleRateHertz: 16000,
  diarizationConfig: { enableSpeakerDiarization: true, rememberVoices: true },
};
const results = [];
for await (const r of client.transcribe(chunks, config)) {
  results.push({
    kind: r.kind, transcriptId: r.transcriptId, text: r.text, start: r.start, end: r.end,
    segmentIndex: r.segmentIndex, revision: r.revision, speaker: r.speaker,
    words: r.words.map((w) => w.speaker), speakerNames: r.speakerNames,
  });
}
console.log(JSON.stringify(results));
"""

NAME_AND_SEARCH = """
import { TranscribeClient } from "%(client)s";
const [url, tid, only1, only2] = process.argv.slice(2);
const client = new TranscribeClient({ baseUrl: url });
const named = await client.updateTranscript(tid, { speakerNames: { S1: "Alice" } });
const search = async (query, speaker) =>
  (await client.searchTranscripts(query, { speaker })).hits.map((h) => ({
    transcriptId: h.transcriptId, segmentIndex: h.segmentIndex,
    label: h.speakerLabel, name: h.speakerName,
  }));
console.log(JSON.stringify({
  names: named?.speakerNames,
  aliceSaid: await search(only1, "alice"),
  aliceDidNotSay: await search(only2, "alice"),
  s2Said: await search(only2, "S2"),
  voices: (await client.listVoices()).map((v) => ({ name: v.name, label: v.speakerLabel })),
}));
"""

FORGET = """
import { TranscribeClient } from "%(client)s";
const [url] = process.argv.slice(2);
const client = new TranscribeClient({ baseUrl: url });
await client.forgetVoice("Alice");
const left = (await client.listVoices()).map((v) => v.name);
let again = "";
try {
  await client.forgetVoice("Alice");
} catch (e) {
  again = e.code;
}
console.log(JSON.stringify({ left, again }));
"""


async def run_script(tmp_path: Path, client: str, script: str, *args: str) -> Any:
    proc = await node(tmp_path, script % {"client": client}, *args)
    code, out, err = await finish(proc)
    assert code == 0 and not err, err
    return json.loads(out)


def words_of(texts: list[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z]{4,}", t.lower())}


async def test_labels_names_speaker_search_and_voices_through_the_typescript_client(
    engine: WhisperEngine, tmp_path: Path, compiled: str
) -> None:
    pcm = tmp_path / "aba.pcm"
    pcm.write_bytes(pcm16(mix(ABA)[0]))
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path / "data")), engine=engine
    )
    url = f"http://127.0.0.1:{running.port}"
    try:
        results = await run_script(tmp_path, compiled, STREAM, url, str(pcm))
        tid = results[0]["transcriptId"]
        finals = [r for r in results if r["kind"] == "final"]
        assert finals and all(r["speaker"] and set(r["words"]) == {r["speaker"]} for r in finals)
        latest = {r["segmentIndex"]: r for r in finals}  # a revision replaces
        labels = [latest[i]["speaker"] for i in sorted(latest)]
        turns = [lb for n, lb in enumerate(labels) if n == 0 or labels[n - 1] != lb]
        assert turns == ["S1", "S2", "S1"], labels  # A, then B, then A again
        said = {lb: words_of([r["text"] for r in latest.values() if r["speaker"] == lb])
                for lb in ("S1", "S2")}  # fmt: skip
        only1 = max(said["S1"] - said["S2"], key=len)
        only2 = max(said["S2"] - said["S1"], key=len)

        got = await run_script(tmp_path, compiled, NAME_AND_SEARCH, url, tid, only1, only2)
        assert got["names"] == {"S1": "Alice"}
        s1 = {i for i, r in latest.items() if r["speaker"] == "S1" and only1 in r["text"].lower()}
        assert {h["segmentIndex"] for h in got["aliceSaid"]} == s1, (only1, got)
        assert all(
            (h["transcriptId"], h["label"], h["name"]) == (tid, "S1", "Alice")
            for h in got["aliceSaid"]
        ), got
        assert got["aliceDidNotSay"] == [], (only2, got)
        assert got["s2Said"] and all(
            (h["label"], h["name"]) == ("S2", "") for h in got["s2Said"]
        ), got
        assert got["voices"] == [{"name": "Alice", "label": "S1"}]

        # A later stream of the same voices: the remembered one is named on the results.
        again = await run_script(tmp_path, compiled, STREAM, url, str(pcm))
        named = [r["speakerNames"] for r in again if r["kind"] == "speaker_names"]
        assert named and named[-1] == {"S1": "Alice"}, named

        gone = await run_script(tmp_path, compiled, FORGET, url)
        assert gone == {"left": [], "again": 5}, gone  # Code.NotFound
    finally:
        await running.stop(1)


async def test_the_example_labels_finals_with_speakers(
    server: RunningServer, compiled: str, tmp_path: Path
) -> None:
    """clients/typescript/example.ts --speakers turns diarization on (the other example
    tests stream without it: tests/clients/test_typescript_client.py)."""
    wav = tmp_path / "aba.wav"
    wav.write_bytes(encode_container(mix(ABA)[0], "wav"))
    example = str(TS / "dist" / "example.js")
    url = f"http://127.0.0.1:{server.port}"
    proc = await node(tmp_path, f'await import("{Path(example).as_uri()}");', "--server", url,
                      "--json", "--speakers", str(wav))  # fmt: skip
    code, out, err = await finish(proc)
    assert code == 0, err
    finals = [r for line in out.splitlines() if (r := json.loads(line)).get("kind") == "final"]
    assert finals and {r["speaker"] for r in finals} == {"S1", "S2"}, finals
