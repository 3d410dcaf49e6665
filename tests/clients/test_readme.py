"""The snippets of clients/README.md run as written (with the server address and the file
swapped in) and print the words of the clip."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from clients.python import connect
from service.server import RunningServer
from tests.clients.test_cli import final_lines
from tests.helpers import dev_clips, wer

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "clients" / "README.md").read_text()
TS = ROOT / "clients" / "typescript"


def block(lang: str, containing: str = "") -> str:
    found: list[str] = [
        b for b in re.findall(rf"```{lang}\n(.*?)```", README, re.S) if containing in b
    ]
    assert found, f"no {lang} block with {containing!r} in clients/README.md"
    return found[0]


def localize(code: str, server: RunningServer, clip: Path) -> str:
    return code.replace("localhost:50051", f"127.0.0.1:{server.port}").replace(
        "talk.flac", str(clip)
    )


async def run(*cmd: str, stdin: bytes | None = None, cwd: Path = ROOT) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def printed_text(out: str) -> str:
    """The text of printed finals; a line starting "#<segment index>" replaces an earlier
    line of the same index (a revision), as the snippets tell readers to do."""
    segments: dict[str, str] = {}
    for n, line in enumerate(out.splitlines()):
        if line.strip():
            index = line.split(" ", 1)[0] if line.startswith("#") else str(-n)
            segments[index] = line.split("] ", 1)[-1] if "] " in line else line.split(" ", 1)[-1]
    return " ".join(segments.values())


async def test_python_snippet(server: RunningServer) -> None:
    clip = dev_clips()[3]
    code, out, err = await run(sys.executable, "-c", localize(block("python"), server, clip.path))
    assert code == 0, err
    assert wer([clip.text], [printed_text(out)]) < 0.25


async def test_typescript_snippet(server: RunningServer, tmp_path: Path) -> None:
    if not (TS / "dist" / "client.js").exists():  # build it (make test builds it up front)
        code, _, err = await run(str(TS / "node_modules" / ".bin" / "tsc"), "-p", str(TS))
        assert code == 0, err
    clip = dev_clips()[3]
    code_ts = localize(block("ts"), server, clip.path).replace(
        "./dist/client.js", (TS / "dist" / "client.js").as_uri()
    )
    snippet = tmp_path / "snippet.mjs"  # the snippet has no type annotations: plain ESM
    snippet.write_text(code_ts)
    code, out, err = await run("node", str(snippet))
    assert code == 0, err
    assert wer([clip.text], [printed_text(out)]) < 0.25


async def test_command_line_snippet(server: RunningServer) -> None:
    clip = dev_clips()[3]
    first = block("sh", "transcribe stream").splitlines()
    first = [line for line in first if line.startswith("transcribe stream talk.flac")]
    cmd = first[0].split("#")[0].split()
    code, out, err = await run(
        sys.executable, "-c", "from clients.python.cli import main; main()",
        "--server", f"127.0.0.1:{server.port}", *cmd[1:-1], str(clip.path),
    )  # fmt: skip
    assert code == 0, err
    assert wer([clip.text], [" ".join(final_lines(out))]) < 0.25


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq")
async def test_grpcurl_snippet_messages_and_filter(server: RunningServer, tmp_path: Path) -> None:
    """grpcurl is not installable here: its part (JSON in, protojson out) is done with the
    protobuf JSON mapping it uses; the shell pipeline around it runs as written."""
    clip = dev_clips()[3]
    script = block("sh", "grpcurl").split("grpcurl -plaintext")
    assert len(script) == 2, "the grpcurl block changed: update this test"
    producer = script[0].rstrip().removesuffix("|").replace("talk.flac", str(clip.path))
    code, out, err = await run("bash", "-c", producer)
    assert code == 0, err
    requests = [
        json_format.Parse(line, streaming_pb2.StreamingTranscribeRequest())
        for line in out.splitlines()
    ]
    assert requests[0].HasField("config") and len(requests) > 1
    assert b"".join(r.audio_content for r in requests[1:]) == clip.path.read_bytes()
    async with connect(f"127.0.0.1:{server.port}") as channel:
        stub = streaming_pb2_grpc.TranscriptionServiceStub(channel)
        responses = [json_format.MessageToJson(r) async for r in stub.StreamingTranscribe(
            iter(requests))]  # fmt: skip
    jq_filter = re.search(r"jq -r '(.*)'", script[1])
    assert jq_filter
    code, out, err = await run("jq", "-r", jq_filter.group(1), stdin="\n".join(responses).encode())
    assert code == 0, err
    assert wer([clip.text], [printed_text(out)]) < 0.25
