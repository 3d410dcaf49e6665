"""The bridge in front of a service with API keys: sign-in, an HttpOnly cookie, and every
call (WebSocket included) made as the signed-in principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright, expect
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc
from yarl import URL

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.web_bridge.test_browser import launch_with_mic, speech_wav
from web_bridge.app import create_app
from web_bridge.config import BridgeSettings

pb = transcripts_pb2
ALICE = "alice-key-0123"
BOB = "bob-key-4567"


@pytest.fixture
async def keyed(engine: WhisperEngine, tmp_path: Path) -> AsyncIterator[tuple[RunningServer, str]]:
    keys = tmp_path / "keys"
    keys.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    running = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path), api_keys_file=str(keys)),
        engine=engine,
    )
    runner = web.AppRunner(create_app(BridgeSettings(grpc_target=f"127.0.0.1:{running.port}")))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield running, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()
    await running.stop(1)


async def sign_in(page: Page, key: str) -> None:
    """Sign in on the page with `key` (Enter in the key field) and wait until signed in."""
    await page.fill("#api-key", key)
    await page.press("#api-key", "Enter")
    await expect(page.locator("#logout")).to_be_visible()


async def test_sign_in_sets_an_httponly_cookie_that_scopes_every_call(
    keyed: tuple[RunningServer, str],
) -> None:
    _, url = keyed
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # IP host
        assert (await (await http.get(f"{url}/api/session")).json())["authenticated"] is False
        denied = await http.get(f"{url}/api/transcripts")
        assert denied.status == 401
        assert (await denied.json())["error"]["code"] == "UNAUTHENTICATED"
        assert denied.headers["Cache-Control"] == "no-store"
        wrong = await http.post(f"{url}/api/login", json={"api_key": "nope"})
        assert wrong.status == 401
        assert "transcribe_session" not in http.cookie_jar.filter_cookies(URL(url))
        bad = await http.post(f"{url}/api/login", json={"key": ALICE})
        assert bad.status == 400
        foreign = await http.post(
            f"{url}/api/login", json={"api_key": ALICE}, headers={"Origin": "https://evil.test"}
        )
        assert foreign.status == 403
        ok = await http.post(f"{url}/api/login", json={"api_key": ALICE})
        assert ok.status == 200
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        state = await (await http.get(f"{url}/api/session")).json()
        assert state == {"authenticated": True, "login_required": True}
        assert (await http.get(f"{url}/api/transcripts")).status == 200
        await http.post(f"{url}/api/logout")
        assert (await http.get(f"{url}/api/transcripts")).status == 401


async def test_page_signs_in_and_records_as_its_principal(
    keyed: tuple[RunningServer, str], tmp_path: Path
) -> None:
    running, url = keyed
    wav = tmp_path / "speech.wav"
    speech_wav(wav)
    async with async_playwright() as p:
        browser = await launch_with_mic(p, wav)
        page = await browser.new_page()
        await page.goto(f"{url}/")
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#record")).to_be_hidden()
        await page.fill("#api-key", "not-a-key")
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#login-error")).to_contain_text("not accepted")
        await page.fill("#api-key", ALICE)
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#record")).to_be_visible()
        await expect(page.locator("#logout")).to_be_visible()
        assert await page.evaluate("document.cookie") == "", "scripts cannot read the key"
        await page.fill("#title", "Alice's meeting")
        await page.click("#record")
        await expect(page.locator(".seg").first).to_be_visible(timeout=30_000)
        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Saved", timeout=30_000)
        await page.click("#tab-history")
        await expect(page.locator("#list li").first).to_contain_text("Alice's meeting")
        await page.click("#logout")
        await expect(page.locator("#login")).to_be_visible()
        status = await page.evaluate("fetch('/api/transcripts').then(r => r.status)")
        assert status == 401
        await browser.close()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
        alice = (("authorization", f"Bearer {ALICE}"),)
        bob = (("authorization", f"Bearer {BOB}"),)
        mine = await stub.ListTranscripts(pb.ListTranscriptsRequest(), metadata=alice)
        assert [t.title for t in mine.transcripts] == ["Alice's meeting"]
        tid = mine.transcripts[0].id
        theirs = await stub.ListTranscripts(pb.ListTranscriptsRequest(), metadata=bob)
        assert list(theirs.transcripts) == []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetTranscript(pb.GetTranscriptRequest(transcript_id=tid), metadata=bob)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
