"""The generated TypeScript client: reproducible from the proto, and (compiled with tsc, run
with node) giving the same text as the Python client from the real server."""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import shutil
from pathlib import Path

import pytest

from clients.python import FinalText, StreamingTranscriber, connect, encoding_for, file_chunks
from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import dev_clips

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "clients" / "typescript"
BIN = TS / "node_modules" / ".bin"

pytestmark = pytest.mark.skipif(
    not (BIN / "tsc").exists() or shutil.which("node") is None,
    reason="needs node and `npm ci --prefix clients/typescript`",
)


async def run(*cmd: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def compiled() -> Path:
    """The wrapper and example compiled to clients/typescript/dist (type errors fail here)."""
    code, out, err = await run(str(BIN / "tsc"), "-p", ".", cwd=TS)
    assert code == 0, out + err
    return TS / "dist" / "example.js"


def tree(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


async def test_generated_code_is_what_buf_generates_from_the_proto(tmp_path: Path) -> None:
    buf = shutil.which("buf") or str(ROOT / "node_modules" / ".bin" / "buf")
    template = "clients/typescript/buf.gen.yaml"
    code, _, err = await run(buf, "generate", "--template", template, "-o", str(tmp_path), cwd=ROOT)
    assert code == 0, err
    fresh = tree(tmp_path / "clients" / "typescript" / "src" / "gen")
    committed = tree(TS / "src" / "gen")
    assert sorted(fresh) == sorted(committed), "run: buf generate --template " + template
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], False)]
    assert not stale, f"stale generated files {stale}; run: buf generate --template {template}"


async def test_example_gives_the_python_clients_text(server: RunningServer, compiled: Path) -> None:
    clip = dev_clips()[3]
    code, out, err = await run(
        "node", str(compiled), "--server", f"http://127.0.0.1:{server.port}", "--json",
        "--search", "measure", str(clip.path), cwd=TS,
    )  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    results = [x for x in lines if "kind" in x]
    ts_id = results[0]["transcriptId"]
    assert results[0]["kind"] == "session" and ts_id
    finals = [x for x in results if x["kind"] == "final"]
    assert all(x["words"] and x["segmentIndex"] >= 0 for x in finals)
    assert all(x["revision"] in (0, 1) for x in finals)
    by_index = {x["segmentIndex"]: x["text"] for x in finals}  # a revision replaces
    ts_text = " ".join(by_index[i] for i in sorted(by_index))

    async with connect(f"127.0.0.1:{server.port}") as channel:
        tr = StreamingTranscriber(channel, encoding=encoding_for(clip.path), interim_results=False)
        py = FinalText()
        async for r in tr.transcribe(file_chunks(clip.path, 16000)):
            py.add(r)
        py_text = py.text
    assert ts_text and ts_text == py_text

    listed = [x["transcript"]["id"] for x in lines if "transcript" in x]
    assert ts_id in listed
    hits = [x["hit"]["transcriptId"] for x in lines if "hit" in x]
    assert ("measure" in ts_text.lower()) == (ts_id in hits)


async def test_example_sends_the_api_key(
    engine: WhisperEngine, tmp_path: Path, compiled: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("ts:ts-secret\n")
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), api_keys_file=str(keys)),
        engine=engine,
    )
    clip = dev_clips()[3]
    args = ("node", str(compiled), "--server", f"http://127.0.0.1:{running.port}", "--json")
    try:
        env = {**os.environ, "TRANSCRIBE_API_KEY": "ts-secret"}
        code, out, err = await run(*args, str(clip.path), cwd=TS, env=env)
        assert code == 0, err
        assert any(json.loads(line).get("kind") == "final" for line in out.splitlines())
        env["TRANSCRIBE_API_KEY"] = "wrong"
        code, out, err = await run(*args, str(clip.path), cwd=TS, env=env)
        assert code != 0 and "unauthenticated" in err.lower()
    finally:
        await running.stop(1)
