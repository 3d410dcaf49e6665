"""`transcribe stream --speakers --remember-voices`, `transcribe show`, `transcribe name`,
`transcribe search --speaker` and `transcribe voices` / `forget-voice` on a two-speaker
mix (A, B, A)."""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from pathlib import Path

import grpc
import pytest
from transcribe.v1 import streaming_pb2

from clients.python.cli import show
from clients.python.models import Result
from clients.python.terminal import FinalLines, StatusLine
from clients.python.transcripts import TranscriptClient
from service.server import RunningServer
from tests.clients.test_cli import cli
from tests.helpers import encode_container
from tests.service.test_speakers import mix
from tests.service.test_speakers_api import ABA


async def test_stream_with_speakers_prefixes_finals_and_show_groups_turns(
    server: RunningServer, tmp_path: Path
) -> None:
    audio, _ = mix(ABA)
    wav = tmp_path / "meeting.wav"
    wav.write_bytes(encode_container(audio, "wav"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for v in await TranscriptClient(channel).list_voices():  # of other tests: they
            await TranscriptClient(channel).forget_voice(v.name)  # would name S1 and S2
    code, out, err = await cli(server, "stream", "--speakers", "--remember-voices", str(wav))
    assert code == 0, err
    finals = [ln for ln in out.splitlines() if ln.startswith("[") and "(revised)" not in ln]
    who = [re.sub(r"^\[[^\]]*\] ", "", ln).split(":")[0] for ln in finals]
    assert who and who[0] == "S1" and set(who) == {"S1", "S2"}, out
    tid = re.search(r"transcript (\w+)", err)
    assert tid is not None, err
    code, shown, err = await cli(server, "show", tid.group(1))
    assert code == 0, err
    turns = [ln for ln in shown.splitlines() if ln.startswith("[")]
    speakers = [re.sub(r"^\[[^\]]*\] ", "", ln).split(":")[0] for ln in turns]
    # Paragraphs break at every speaker turn (and perhaps at long pauses within one).
    changes = [w for i, w in enumerate(speakers) if i == 0 or speakers[i - 1] != w]
    assert changes == ["S1", "S2", "S1"], shown

    # Name S1, then search one of S1's words limited to that name, in another case.
    tid_s = tid.group(1)
    code, out, err = await cli(server, "name", tid_s, "S1=Alice", "S2=Bob")
    assert code == 0 and "S1=Alice, S2=Bob" in out, err
    code, out, err = await cli(server, "name", tid_s, "S2=")
    assert code == 0 and out.strip().endswith(": S1=Alice"), (out, err)
    assert (await cli(server, "name", tid_s, "Alice"))[0] == 2  # not LABEL=NAME
    first = re.sub(r"^\[[^\]]*\] S1: ", "", turns[0])
    word = max(re.findall(r"[A-Za-z]+", first), key=len)
    code, out, err = await cli(server, "--json", "search", "--speaker", "alice", word)
    assert code == 0, err
    hits = [h for h in json.loads(out) if h["transcript_id"] == tid_s]
    assert hits and {(h["speaker_label"], h["speaker_name"]) for h in hits} == {("S1", "Alice")}
    code, out, err = await cli(server, "search", "--speaker", "Alice", word)
    assert code == 0, err
    assert any(ln.startswith(tid_s) and ": Alice: " in ln for ln in out.splitlines()), out
    code, out, err = await cli(server, "--json", "search", "--speaker", "S2", word)
    assert code == 0, err
    assert all(h["speaker_label"] == "S2" for h in json.loads(out)), out

    # The stream remembered voices: Alice is listed, and forgotten on request.
    code, out, err = await cli(server, "--json", "voices")
    assert code == 0, err
    assert [(v["name"], v["speaker_label"]) for v in json.loads(out)] == [("Alice", "S1")]
    code, out, err = await cli(server, "forget-voice", "alice")
    assert code == 0 and "alice" in out, err
    code, out, err = await cli(server, "voices")
    assert code == 0 and out.strip() == "no voices remembered", out
    assert (await cli(server, "forget-voice", "alice"))[0] == 3  # NOT_FOUND


def test_stream_prints_a_speakers_name_once_the_stream_names_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A remembered voice recognised mid-stream (a `speaker_names` response): the finals
    after it start with the name, and stderr says from when; --json has the map."""
    names = streaming_pb2.StreamingTranscribeResponse(speaker_names={"S1": "Bob"})
    assert Result.from_response(names) == [Result("speaker_names", speaker_names={"S1": "Bob"})]
    args = argparse.Namespace(json=False)
    status = StatusLine(io.StringIO(), enabled=False)
    lines = FinalLines(sys.stdout, in_place=False)
    for r in [
        Result("final", "Hello there.", 0.0, 1.0, segment_index=0, speaker="S1"),
        *Result.from_response(names),
        Result("final", "Me again.", 1.5, 2.5, segment_index=1, speaker="S1"),
        Result("final", "And me.", 3.0, 4.0, segment_index=2, speaker="S2"),
    ]:
        show(args, r, status, 4.0, lines)
    out, err = capsys.readouterr()
    finals = [re.sub(r"^\[[^\]]*\] ", "", ln) for ln in out.splitlines()]
    assert finals == ["S1: Hello there.", "Bob: Me again.", "S2: And me."], out
    assert "speakers: S1 is Bob" in err
    show(argparse.Namespace(json=True), Result.from_response(names)[0], status, 4.0, lines)
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "speaker_names" and data["speaker_names"] == {"S1": "Bob"}
