"""The generated TypeScript client (compiled with tsc, run with node) against the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from clients.python import StreamingTranscriber, connect, encoding_for, file_chunks
from service.server import RunningServer
from tests.helpers import dev_clips

TS = Path(__file__).resolve().parents[2] / "clients" / "typescript"


async def run(*cmd: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_typescript_example_gives_the_python_clients_text(server: RunningServer) -> None:
    code, _, err = await run(str(TS / "node_modules" / ".bin" / "tsc"), "-p", ".", cwd=TS)
    assert code == 0, err
    clip = dev_clips()[3]
    code, out, err = await run(
        "node",
        "dist/example.js",
        "--server",
        f"http://127.0.0.1:{server.port}",
        str(clip.path),
        "--json",
        "--search",
        "the",
        cwd=TS,
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    ts_id = next(x["transcriptId"] for x in lines if x.get("transcriptId"))
    ts_text = " ".join(x["text"] for x in lines if x.get("isFinal"))
    async with connect(f"127.0.0.1:{server.port}") as channel:
        tr = StreamingTranscriber(channel, encoding=encoding_for(clip.path), interim_results=False)
        py_text = " ".join(
            [r.text async for r in tr.transcribe(file_chunks(clip.path, 16000)) if r.is_final]
        )
    assert ts_text and ts_text == py_text
    assert ts_id
