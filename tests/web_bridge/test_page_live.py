"""Following a live meeting: the live text follows the newest line unless the user scrolled
back (then "Jump to live" brings them back), and the status pill tells the truth: idle,
connecting, live with a clock, saving, saved, error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from playwright.async_api import Page, async_playwright, expect
from transcribe.v1 import streaming_pb2

from tests.web_bridge.conftest import (
    Response,
    ScriptedTranscription,
    final,
    start_scripted,
)
from tests.web_bridge.test_browser import BASE_ARGS, CHROMIUM, SHOTS

FAKE_MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# Every text the pill shows, in order, recorded in the page as it changes.
PILL_LOG = """
window.__pill = [];
new MutationObserver(() => {
  const t = document.getElementById('conn')?.textContent;
  if (t && window.__pill[window.__pill.length - 1] !== t) window.__pill.push(t);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""
AT_BOTTOM = "b => b.scrollHeight - b.scrollTop - b.clientHeight < 24"


class FailingTranscription(ScriptedTranscription):
    """Scripted, but aborts the stream with INVALID_ARGUMENT when it is sent None."""

    async def StreamingTranscribe(
        self,
        request_iterator: AsyncIterator[streaming_pb2.StreamingTranscribeRequest],
        context: grpc.aio.ServicerContext[streaming_pb2.StreamingTranscribeRequest, Response],
    ) -> AsyncIterator[Response]:
        await anext(request_iterator)
        while (resp := await self.responses.get()) is not None:
            yield resp
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sample_rate_hertz is 3")


@pytest.fixture
async def failing_bridge() -> AsyncIterator[tuple[FailingTranscription, str]]:
    service = FailingTranscription()
    async with start_scripted(service=service) as (_, _, _, url):
        yield service, url


async def pill_log(page: Page) -> list[str]:
    log: list[str] = await page.evaluate("() => window.__pill")
    return log


async def test_status_pill_is_honest_from_load_to_saved(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        page = await browser.new_page()
        await page.add_init_script(PILL_LOG)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(url)
        conn, elapsed = page.locator("#conn"), page.locator("#elapsed")
        # First load and the History tab: nothing is wrong, so nothing says so.
        await expect(conn).to_have_text("Ready")
        await expect(elapsed).to_be_hidden()
        await page.click("#tab-history")
        await expect(page.locator("#list")).to_contain_text("No meetings yet.")
        await expect(conn).to_have_text("Ready")
        await page.click("#tab-live")

        await page.click("#record")
        await expect(conn).to_have_text("Live", timeout=20_000)
        await expect(elapsed).to_be_visible()
        await expect(elapsed).to_have_text("00:00")
        await expect(elapsed).to_have_text("00:01", timeout=5_000)  # the clock runs
        service.responses.put_nowait(
            Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
        )
        service.responses.put_nowait(final(0, "Hello there.", 0.0, 1.0))
        await expect(page.locator(".seg")).to_have_count(1, timeout=10_000)

        await page.click("#record")  # Stop: saving at once, never "Live" again
        await expect(conn).to_have_text("Saving…")
        await expect(elapsed).to_be_hidden()
        service.responses.put_nowait(None)  # the server has finalized: the stream ends
        await expect(conn).to_have_text("Saved", timeout=10_000)
        assert await pill_log(page) == ["Ready", "Connecting…", "Live", "Saving…", "Saved"]
        # On History after a recording the pill still says what happened, not an outage.
        await page.click("#tab-history")
        await expect(conn).to_have_text("Saved")
        await browser.close()
    assert not errors, errors


async def test_status_pill_shows_an_error_and_the_message(
    failing_bridge: tuple[FailingTranscription, str],
) -> None:
    service, url = failing_bridge
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        page = await browser.new_page()
        await page.goto(url)
        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        service.responses.put_nowait(None)
        await expect(page.locator("#conn")).to_have_text("Error", timeout=10_000)
        await expect(page.locator("#message")).to_contain_text("sample_rate_hertz is 3")
        await expect(page.locator("#record")).to_have_text("● Start recording")
        await expect(page.locator("#elapsed")).to_be_hidden()
        await browser.close()


async def test_live_text_follows_the_newest_line_unless_scrolled_back(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        await page.goto(url)
        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        service.responses.put_nowait(
            Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
        )

        def say(first: int, n: int) -> None:
            for i in range(first, first + n):
                text = f"This is sentence {i}, long enough to wrap on a phone screen."
                service.responses.put_nowait(final(i, text, i * 4.0, i * 4.0 + 3))

        box, segs, jump = page.locator("#transcript"), page.locator(".seg"), page.locator("#jump")
        say(0, 40)
        await expect(segs).to_have_count(40, timeout=10_000)
        assert await box.evaluate("b => b.scrollHeight > 2 * b.clientHeight")
        await expect(segs.last).to_be_in_viewport()
        assert await box.evaluate(AT_BOTTOM)
        await expect(jump).to_be_hidden()

        # The user scrolls back to read: new lines no longer move the text under them.
        await box.hover()
        await page.mouse.wheel(0, -800)
        await expect(jump).to_be_visible()
        top = await box.evaluate("b => b.scrollTop")
        say(40, 20)
        await expect(segs).to_have_count(60, timeout=10_000)
        assert await box.evaluate("b => b.scrollTop") == top
        await expect(segs.last).not_to_be_in_viewport()
        await page.screenshot(path=str(SHOTS / "live-scrolled-back-phone.png"))

        # "Jump to live" (from the keyboard) follows the newest line again.
        await jump.focus()
        await page.keyboard.press("Enter")
        await expect(jump).to_be_hidden()
        await expect(segs.last).to_be_in_viewport()
        say(60, 10)
        await expect(segs).to_have_count(70, timeout=10_000)
        await expect(segs.last).to_be_in_viewport()
        assert await box.evaluate(AT_BOTTOM)

        # Lines that arrive while History is shown are in view on coming back.
        await page.click("#tab-history")
        say(70, 10)
        await expect(segs).to_have_count(80, timeout=10_000)
        await page.click("#tab-live")
        await expect(segs.last).to_be_in_viewport()
        await browser.close()
