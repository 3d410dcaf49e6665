"""The Python client library and the `transcribe` CLI against the real server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from clients.python import StreamingTranscriber, TranscriptClient, connect, file_chunks
from clients.python.client import encoding_for
from service.server import RunningServer
from tests.helpers import decode_16k, dev_clips, pcm16, wer


async def test_library_streams_a_file_and_manages_transcripts(server: RunningServer) -> None:
    clip = dev_clips()[2]
    async with connect(f"127.0.0.1:{server.port}") as channel:
        tr = StreamingTranscriber(channel, encoding=encoding_for(clip.path), title="lib test")
        results = [r async for r in tr.transcribe(file_chunks(clip.path, 4000))]
        assert results[0].transcript_id
        finals = [r for r in results if r.is_final]
        text = " ".join(r.text for r in finals)
        assert wer([clip.text], [text]) < 0.2
        assert all(r.words for r in finals)
        client = TranscriptClient(channel)
        t = await client.get(results[0].transcript_id)
        assert t.title == "lib test"
        listed = await client.list_transcripts(page_size=100)
        assert t.id in [x.id for x in listed.transcripts]


async def cli(
    server: RunningServer, *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from clients.python.cli import main; main()",
        "--server",
        f"127.0.0.1:{server.port}",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_stream_list_search_show_export_rename_tag_delete(
    server: RunningServer, tmp_path: Path
) -> None:
    clip = dev_clips()[3]
    code, out, err = await cli(server, "--json", "stream", str(clip.path), "--title", "cli test")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    tid = lines[0]["transcript_id"]
    text = " ".join(r["text"] for r in lines if r["is_final"])
    assert wer([clip.text], [text]) < 0.25
    code, out, _ = await cli(server, "list")
    assert code == 0 and tid in out and "cli test" in out
    word = max(text.split(), key=len).strip(".,?!")
    code, out, _ = await cli(server, "search", word)
    assert code == 0 and tid in out
    code, out, _ = await cli(server, "show", tid)
    assert code == 0 and "cli test" in out and word in out
    srt = tmp_path / "out.srt"
    code, _, _ = await cli(server, "export", tid, "--format", "srt", "-o", str(srt))
    assert code == 0 and srt.read_text().startswith("1\n00:00:")
    assert (await cli(server, "rename", tid, "renamed"))[0] == 0
    assert (await cli(server, "tag", tid, "a", "b"))[0] == 0
    code, out, _ = await cli(server, "--json", "show", tid)
    shown = json.loads(out)
    assert shown["title"] == "renamed" and shown["tags"] == ["a", "b"]
    assert (await cli(server, "delete", tid))[0] == 0
    code, _, err = await cli(server, "show", tid)
    assert code == 3 and "NOT_FOUND" in err  # not found has its own exit code
    code, _, _ = await cli(server, "export", tid, "--format", "pdf")
    assert code == 2  # usage error


async def test_cli_streams_raw_pcm_from_stdin(server: RunningServer) -> None:
    clip = dev_clips()[3]
    pcm = pcm16(decode_16k(clip.path))
    code, out, err = await cli(server, "stream", "-", "--rate", "16000", stdin=pcm)
    assert code == 0, err
    finals = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[")]
    assert wer([clip.text], [" ".join(finals)]) < 0.25
