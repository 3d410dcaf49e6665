"""The `transcribe` CLI as a user runs it: a subprocess against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.server import RunningServer
from tests.helpers import decode_16k, dev_clips, pcm16, wer

CLI = ("-X", "faulthandler", "-c", "from clients.python.cli import main; main()")


async def cli(
    target: str | RunningServer, *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    if not isinstance(target, str):
        target = f"127.0.0.1:{target.port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *CLI, "--server", target, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _seconds(clock_text: str) -> float:
    return float(sum(float(p) * 60**i for i, p in enumerate(reversed(clock_text.split(":")))))


def final_lines(out: str) -> list[str]:
    """The final text as printed: a "(revised)" line replaces the line whose time range
    it overlaps most (the human output names no segment index)."""
    lines: list[tuple[float, float, str]] = []
    for line in out.splitlines():
        if not line.startswith("["):
            continue
        times, text = line[1:].split("] ", 1)
        start, end = (_seconds(t) for t in times.split(" → "))
        if text.startswith("(revised) ") and lines:
            overlap = [min(end, e) - max(start, s) for s, e, _ in lines]
            lines[overlap.index(max(overlap))] = (start, end, text.removeprefix("(revised) "))
        else:
            lines.append((start, end, text))
    return [text for _, _, text in lines]


async def test_stream_then_manage_the_transcript(server: RunningServer, tmp_path: Path) -> None:
    clip = dev_clips()[3]
    code, out, err = await cli(
        server, "--json", "stream", str(clip.path), "--title", "cli test", "--tag", "x"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["kind"] == "session"
    tid = lines[0]["transcript_id"]
    text = " ".join(final_lines_of(lines))
    assert wer([clip.text], [text]) < 0.25

    code, out, _ = await cli(server, "list", "--tag", "x")
    assert code == 0 and tid in out and "cli test" in out and "complete" in out
    word = max(text.split(), key=len).strip(".,?!;:")
    code, out, _ = await cli(server, "--json", "search", word)
    assert code == 0 and tid in [h["transcript_id"] for h in json.loads(out)]
    code, out, _ = await cli(server, "show", tid)
    assert code == 0 and out.startswith("cli test\n") and word in out
    # paragraphs by default, one line per final with --segments; the same words in both
    paras = [ln for ln in out.split("\n\n", 1)[1].splitlines() if ln.startswith("[")]
    code, seg_out, _ = await cli(server, "show", tid, "--segments")
    per_seg = [ln for ln in seg_out.split("\n\n", 1)[1].splitlines() if ln.startswith("[")]
    assert code == 0 and 1 <= len(paras) <= len(per_seg)
    words = [" ".join(ln.split("] ", 1)[1] for ln in lines).split() for lines in (paras, per_seg)]
    assert words[0] == words[1]

    srt = tmp_path / "out.srt"
    code, _, _ = await cli(server, "export", tid, "--format", "srt", "-o", str(srt))
    assert code == 0 and srt.read_text().startswith("1\n00:00:")
    code, out, _ = await cli(server, "export", tid, "--format", "vtt", "-o", str(tmp_path))
    written = await asyncio.to_thread(lambda: [p.suffix for p in tmp_path.iterdir()])
    assert code == 0 and ".vtt" in written
    code, out, _ = await cli(server, "export", tid, "--format", "txt")
    assert code == 0 and word in out

    assert (await cli(server, "rename", tid, "renamed"))[0] == 0
    assert (await cli(server, "tag", tid, "a", "b"))[0] == 0  # added to x
    assert (await cli(server, "tag", tid, "--remove", "x"))[0] == 0
    code, out, _ = await cli(server, "--json", "show", tid)
    shown = json.loads(out)
    assert shown["title"] == "renamed" and shown["tags"] == ["a", "b"]
    assert [s["text"] for s in shown["segments"]] == final_lines_of(lines)
    code, out, _ = await cli(server, "--json", "tag", tid, "--set", "z")
    assert code == 0 and json.loads(out)["tags"] == ["z"]

    rec = tmp_path / "rec.flac"
    code, out, _ = await cli(server, "--json", "recording", tid, "-o", str(rec))
    assert code == 0 and json.loads(out)["total_size"] == rec.stat().st_size > 0

    code, out, _ = await cli(server, "--json", "delete", tid)
    assert code == 0 and json.loads(out) == {"deleted": tid}
    code, _, err = await cli(server, "show", tid)
    assert code == 3 and "NOT_FOUND" in err  # not found has its own exit code


def final_lines_of(results: list[dict[str, Any]]) -> list[str]:
    """The final text by segment index: a revision replaces its segment's text."""
    finals = {r["segment_index"]: r["text"] for r in results if r["kind"] == "final"}
    return [finals[i] for i in sorted(finals)]


async def test_exit_codes(server: RunningServer, tmp_path: Path) -> None:
    assert (await cli(server, "export", "x", "--format", "pdf"))[0] == 2  # argparse
    code, _, err = await cli(server, "stream", str(tmp_path / "missing.wav"))
    assert code == 2 and "no such file" in err
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    code, _, err = await cli(server, "stream", str(tmp_path / "bad.wav"))
    assert code == 2 and "bad.wav" in err
    code, _, err = await cli(server, "search", "")  # the server rejects an empty query
    assert code == 2 and "INVALID_ARGUMENT" in err
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        code, _, err = await cli(f"127.0.0.1:{held.getsockname()[1]}", "list")
    assert code == 1 and "UNAVAILABLE" in err


async def test_stream_reads_raw_pcm_from_stdin(server: RunningServer) -> None:
    clip = dev_clips()[3]
    pcm = pcm16(decode_16k(clip.path))
    code, out, err = await cli(server, "stream", "-", "--rate", "16000", stdin=pcm)
    assert code == 0, err
    assert "transcript " in err
    assert wer([clip.text], [" ".join(final_lines(out))]) < 0.25


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    while line := await stream.readline():
        yield line.decode()


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
async def test_first_ctrl_c_ends_the_audio_and_keeps_the_text(server: RunningServer) -> None:
    clip = max(dev_clips(), key=lambda c: c.duration_s)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *CLI, "--server", f"127.0.0.1:{server.port}", "--json",
        "stream", str(clip.path), "--realtime",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    results = []
    async for line in _lines(proc.stdout):
        results.append(json.loads(line))
        if results[-1]["kind"] == "final" and proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # after the first final: mid-clip
            break
    results += [json.loads(line) async for line in _lines(proc.stdout)]
    assert await proc.wait() == 0, await proc.stderr.read()
    tid = results[0]["transcript_id"]
    _, out, _ = await cli(server, "--json", "show", tid)
    shown = json.loads(out)
    assert shown["status"] == "complete"
    assert shown["duration"] < clip.duration_s - 2  # the audio stopped early...
    assert [s["text"] for s in shown["segments"]] == final_lines_of(results)  # ...all kept
