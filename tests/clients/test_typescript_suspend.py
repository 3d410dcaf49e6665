"""The TypeScript client ends a stream with `suspend` (`transcribe(chunks, config,
{ suspend: true })`) and a later stream continues the transcript, as the Python client's
does (tests/clients/test_suspend.py). Node scripts over the compiled client against a real
in-process server."""

from __future__ import annotations

import json
from pathlib import Path

from transcribe.v1 import transcripts_pb2

from service.server import RunningServer
from tests.clients.test_typescript_failures import compiled, finish, node, pytestmark
from tests.helpers import TStub, dev_clips, wer

__all__ = ["compiled", "pytestmark"]  # the fixture and the skip, shared with the failures tests

STREAM = """
import { readFile } from "node:fs/promises";
import { TranscribeClient } from "%(client)s";
const [url, clip, resume, suspend] = process.argv.slice(2);
const audio = await readFile(clip);
const chunks = [];  // the file's bytes in small chunks, as a live source sends them
for (let i = 0; i < audio.length; i += 4000) chunks.push(audio.subarray(i, i + 4000));
// "late": the option is set while the stream runs, as the source ends (told to shut down).
const options = { suspend: suspend === "1" };
async function* source() {
  yield* chunks;
  if (suspend === "late") options.suspend = true;
}
const client = new TranscribeClient({ baseUrl: url });
const config = { title: "Suspended", resumeTranscriptId: resume };
const results = [];
let error = null;
try {
  for await (const r of client.transcribe(source(), config, options)) {
    results.push({
      kind: r.kind, transcriptId: r.transcriptId, isFinal: r.isFinal, text: r.text,
      start: r.start, segmentIndex: r.segmentIndex, revision: r.revision,
    });
  }
} catch (e) {
  error = { name: e.name, code: e.code, message: e.message };
}
console.log(JSON.stringify({ results, error }));
"""


async def stream(
    tmp_path: Path, script: str, url: str, clip: Path, resume: str = "", suspend: str = "0"
) -> list[dict[str, object]]:
    """One node run of `script` (STREAM): its results, once the stream ended OK."""
    proc = await node(tmp_path, script, url, str(clip), resume, suspend)
    code, out, err = await finish(proc)
    assert code == 0, err
    got = json.loads(out)
    assert got["error"] is None, got["error"]
    results: list[dict[str, object]] = got["results"]
    return results


async def stored(stub: TStub, tid: str) -> transcripts_pb2.Transcript:
    got = await stub.GetTranscript(transcripts_pb2.GetTranscriptRequest(transcript_id=tid))
    return got.transcript


def continues(
    results: list[dict[str, object]], tid: str, before: transcripts_pb2.Transcript
) -> None:
    """A resumed stream's results: the same transcript, its segments and times after
    the stored ones."""
    assert results[0]["kind"] == "session" and results[0]["transcriptId"] == tid, results[0]
    finals = [r for r in results if r["isFinal"] and not r["revision"]]
    assert finals and finals[0]["segmentIndex"] == len(before.segments), finals[:1]
    end = before.segments[-1].end_offset.ToTimedelta().total_seconds()
    assert float(str(finals[0]["start"])) >= end, "after the earlier audio"


async def test_a_suspended_stream_stays_resumable_and_continues(
    server: RunningServer, transcripts_stub: TStub, compiled: str, tmp_path: Path
) -> None:
    """The first clip's stream ends with `suspend: true`: it ends OK, every final it saw
    is stored, and the transcript stays interrupted (a plain end stores it complete). A
    second stream resumes it, its segments after the first's, with `suspend` set only as
    its audio ends: still interrupted. A third, ending plainly, completes it."""
    clips = [dev_clips()[i] for i in (0, 3, 1)]
    script = STREAM % {"client": compiled}
    url = f"http://127.0.0.1:{server.port}"

    results = await stream(tmp_path, script, url, clips[0].path, suspend="1")
    assert results[0]["kind"] == "session"
    tid = str(results[0]["transcriptId"])
    # A revision replaces its segment's text, as FinalText keeps it.
    seen = {int(str(r["segmentIndex"])): str(r["text"]) for r in results if r["isFinal"]}
    first = await stored(transcripts_stub, tid)
    assert first.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED, "resumable"
    assert {s.index: s.text for s in first.segments} == seen
    assert wer([clips[0].text], [" ".join(seen[i] for i in sorted(seen))]) < 0.25, seen

    more = await stream(tmp_path, script, url, clips[1].path, resume=tid, suspend="late")
    continues(more, tid, first)
    second = await stored(transcripts_stub, tid)
    assert second.status == transcripts_pb2.TRANSCRIPT_STATUS_INTERRUPTED, "set late"

    continues(await stream(tmp_path, script, url, clips[2].path, resume=tid), tid, second)
    done = await stored(transcripts_stub, tid)
    assert done.status == transcripts_pb2.TRANSCRIPT_STATUS_COMPLETE
    text = " ".join(s.text for s in done.segments)
    assert wer([" ".join(c.text for c in clips)], [text]) < 0.25, text
