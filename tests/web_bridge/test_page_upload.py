"""Uploading a recording from the page (issue 19): the file picker sends the file, the
upload's progress and then its refinement are shown, the meeting opens and its text
appears once refined; the list and the meeting show the refinement state throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.helpers import DATA, clips, wer
from tests.web_bridge.conftest import bridge_for
from tests.web_bridge.test_browser import BASE_ARGS, CHROMIUM, serious_axe_violations

pytestmark = pytest.mark.timeout(300)
CLIP = "4406-16882-0000"


@pytest.fixture
async def stack(engine: WhisperEngine, tmp_path: Path) -> AsyncIterator[tuple[RunningServer, str]]:
    """A server with its own empty store (refinement on, as by default), a bridge before it."""
    server = await start_server(
        Settings(port=0, storage=StorageSettings(data_dir=tmp_path / "data")), engine=engine
    )
    async with bridge_for(server.port) as (_, url):
        yield server, url
    await server.stop(0)


async def test_upload_through_the_file_picker_is_refined_and_shown(
    stack: tuple[RunningServer, str],
) -> None:
    _, url = stack
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(url)
        await page.click("#tab-history")
        await expect(page.locator("#list")).to_contain_text("No meetings yet")
        # The control is a real button in the tab order; it opens the (hidden) picker.
        async with page.expect_file_chooser() as chooser:
            await page.focus("#upload")
            await page.keyboard.press("Enter")
        assert not (await chooser.value).is_multiple()
        await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")
        status = page.locator("#upload-status")
        await expect(status).to_contain_text(f"{CLIP}.flac", timeout=20_000)
        # The meeting opens at once, titled after the file, and is refined in the background.
        await expect(page.locator("#detail-title")).to_have_text(CLIP, timeout=20_000)
        item = page.locator("#list button.item", has_text=CLIP)
        await expect(item).to_have_count(1)
        await expect(page.locator("#detail-refine")).to_have_text("refined", timeout=120_000)
        await expect(status).to_have_text(f"{CLIP}.flac: refined")
        await expect(item.locator(".refine")).to_have_text(" · refined")
        passages = page.locator("#detail .segments .s")
        await expect(passages.first).to_be_visible()
        shown = " ".join(await passages.all_inner_texts())
        assert wer([clips()[CLIP].text], [shown]) < 0.3
        await expect(page.locator("#detail audio")).to_have_count(1)
        assert await serious_axe_violations(page) == []
        await browser.close()


async def test_the_real_service_refuses_a_file_that_is_not_audio(
    stack: tuple[RunningServer, str],
) -> None:
    _, url = stack
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{url}/api/upload?title=notes", data=b"not audio at all " * 4000)
        assert r.status == 400, await r.text()
        error = (await r.json())["error"]
        assert error["code"] == "INVALID_ARGUMENT" and "decoded" in error["message"]
        r = await http.get(f"{url}/api/transcripts")
        assert (await r.json())["transcripts"] == [], "nothing is left of a refused upload"
