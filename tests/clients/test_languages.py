"""Models and languages from the Python client, the CLI and the TypeScript client, against
a real server that loaded tiny.en and the multilingual base (issue 20)."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from clients.python import (
    FinalText,
    StreamingTranscriber,
    SyncClient,
    Transcript,
    connect,
    list_models,
)
from clients.python.cli import _show_text
from clients.python.models_cmd import model_lines
from service.server import RunningServer
from tests.clients.test_cli import cli, final_lines
from tests.clients.test_typescript_client import BIN, TS, run
from tests.helpers import Clip, wer
from tests.multilingual import german_clip

pytestmark = pytest.mark.timeout(300)


def target(server: RunningServer) -> str:
    return f"127.0.0.1:{server.port}"


async def test_list_models_then_a_stream_forced_to_german_on_base(
    multilingual_server: RunningServer,
) -> None:
    clip: Clip = german_clip()
    async with connect(target(multilingual_server)) as channel:
        models = await list_models(channel)
        assert [m.name for m in models] == ["tiny.en", "base"]
        assert models[0].is_default and models[0].language_codes == ("en",)
        assert not models[0].detects_language
        assert models[1].detects_language and {"de", "ja", "zh"} <= set(models[1].language_codes)
        tr = StreamingTranscriber(channel, model="base", language_code="de", title="de")
        results = [r async for r in tr.transcribe_file(clip.path)]
    session = results[0]
    assert (session.kind, session.model, session.language_code) == ("session", "base", "de")
    text = FinalText()
    for r in results[1:]:
        text.add(r)
    assert text.segments and all(r.language_code == "de" for r in text.segments)
    assert wer([clip.text], [text.text]) < 0.4, text.text

    def blocking() -> Transcript:  # the blocking client, in a thread (the server is on our loop)
        with SyncClient(target(multilingual_server)) as c:
            assert [m.name for m in c.list_models()] == ["tiny.en", "base"]
            return c.get(session.transcript_id)

    t = await asyncio.to_thread(blocking)
    assert (t.language_code, t.model) == ("de", "base")
    assert "language de, model base" in _show_text(t).splitlines()[:4]


async def test_cli_models_and_a_detected_language(multilingual_server: RunningServer) -> None:
    clip = german_clip()
    code, out, err = await cli(multilingual_server, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("tiny.en (default)") and " en " in lines[0]
    assert lines[1].startswith("base") and "languages, auto-detect: " in lines[1]
    assert "Whisper base" in lines[1]  # the server's description
    code, out, _ = await cli(multilingual_server, "--json", "models")
    listed = json.loads(out)
    assert listed[1]["name"] == "base" and "de" in listed[1]["language_codes"]

    # No --language on base: detected, said once on stderr, stored with the transcript.
    code, out, err = await cli(multilingual_server, "stream", str(clip.path), "--model", "base")
    assert code == 0, err
    assert "(base, detecting the language)" in err and "language de (detected)" in err
    assert wer([clip.text], [" ".join(final_lines(out))]) < 0.4
    tid = err.split("transcript ", 1)[1].split()[0]
    code, out, _ = await cli(multilingual_server, "show", tid)
    assert code == 0 and "language de (detected), model base" in out.split("\n\n")[0]
    code, out, _ = await cli(multilingual_server, "--json", "show", tid)
    shown = json.loads(out)
    assert (shown["language_code"], shown["language_detected"], shown["model"]) == (
        "de", True, "base",
    )  # fmt: skip

    # A language the model cannot do, and a model the server has not loaded: usage errors.
    code, _, err = await cli(multilingual_server, "stream", str(clip.path), "--language", "de")
    assert code == 2 and "INVALID_ARGUMENT" in err
    code, _, err = await cli(multilingual_server, "stream", str(clip.path), "--model", "large")
    assert code == 2 and "INVALID_ARGUMENT" in err and "base" in err


def test_model_lines_shows_the_first_few_languages_of_a_multilingual_model() -> None:
    from clients.python.models import ModelInfo

    codes = tuple(f"l{i:02}" for i in range(99))
    text = model_lines(
        [
            ModelInfo("tiny.en", ("en",), False, True, "English"),
            ModelInfo("base", codes, True, False, "multilingual"),
        ]
    )
    first, second = text.splitlines()
    assert first.split() == ["tiny.en", "(default)", "en", "English"]
    assert "99 languages, auto-detect: l00 l01 l02 l03 l04 l05 l06 l07 …" in second
    assert model_lines([]) == "no models loaded"


@pytest.mark.skipif(
    not (BIN / "tsc").exists() or shutil.which("node") is None, reason="needs node and tsc"
)
async def test_typescript_client_lists_models_and_forces_a_language(
    multilingual_server: RunningServer,
) -> None:
    code, out, err = await run(str(BIN / "tsc"), "-p", ".", cwd=TS)
    assert code == 0, out + err
    example = str(TS / "dist" / "example.js")
    url = f"http://{target(multilingual_server)}"
    code, out, err = await run("node", example, "--server", url, "--json", "--models", cwd=TS)
    assert code == 0, err
    models = [json.loads(line)["model"] for line in out.splitlines()]
    assert [m["name"] for m in models] == ["tiny.en", "base"] and models[1]["detectsLanguage"]
    clip = german_clip()
    code, out, err = await run(
        "node", example, "--server", url, "--json", "--model", "base", "--language", "de",
        str(clip.path), cwd=TS,
    )  # fmt: skip
    assert code == 0, err
    results = [x for x in map(json.loads, out.splitlines()) if "kind" in x]
    assert results[0]["model"] == "base" and results[0]["languageCode"] == "de"
    assert {x["languageCode"] for x in results if x["kind"] == "final"} == {"de"}
