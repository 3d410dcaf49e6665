"""The page from the keyboard alone: record, stop, open the meeting from the history, play
from a passage and export it, without a single mouse click (WCAG 2.1.1)."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.web_bridge import test_browser
from tests.web_bridge.test_browser import tab_to

browser_with_mic = test_browser.browser_with_mic  # the fixture, shared


async def test_record_stop_open_seek_export_with_the_keyboard_only(
    browser_with_mic: tuple[Browser, str], bridge_url: str
) -> None:
    browser, _ = browser_with_mic
    page = await browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(bridge_url)
    await expect(page.locator("#conn")).to_have_text("Ready")
    kb = page.keyboard

    await tab_to(page, "#title")
    await kb.type("Keyboard meeting")
    await tab_to(page, "#record")
    await kb.press("Enter")
    await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
    await expect(page.locator(".seg").filter(has_text="know")).to_have_count(1, timeout=40_000)
    await expect(page.locator("#record")).to_be_focused()
    await kb.press("Enter")  # Stop
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=30_000)

    # The tabs: one Tab stop, the arrow keys move and select.
    await tab_to(page, "#tab-live", back=True)
    await kb.press("ArrowRight")
    await expect(page.locator("#tab-history")).to_be_focused()
    await expect(page.locator("#tab-history")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#tab-live")).to_have_attribute("aria-selected", "false")
    await expect(page.locator("#history")).to_be_visible()
    await expect(page.locator("#live")).to_be_hidden()

    # A meeting in the list is a button: Enter opens it and focus moves to its heading.
    first = page.locator("#list button.item").first
    await expect(first).to_contain_text("Keyboard meeting", timeout=10_000)
    await tab_to(page, "#list button.item")
    await kb.press("Enter")
    await expect(page.locator("#detail h2")).to_have_text("Keyboard meeting")
    await expect(page.locator("#detail h2")).to_be_focused()
    await expect(first).to_have_attribute("aria-current", "true")

    # The transcript is one Tab stop; arrows move between passages, Enter plays from one.
    await tab_to(page, "#detail .segments .s[tabindex='0']")
    await kb.press("ArrowDown")
    await kb.press("ArrowDown")
    third = page.locator("#detail .segments .s").nth(2)
    await expect(third).to_be_focused()
    start = float(await third.get_attribute("data-start") or 0)
    assert start > 0
    await kb.press("Enter")
    await page.wait_for_function(
        "t => { const a = document.querySelector('#detail audio');"
        " return !a.paused && a.currentTime >= t - 0.1; }",
        arg=start,
    )

    # Each export is a single link: one Tab stop, Enter downloads it.
    await tab_to(page, "#detail a.export[href$='format=srt']", back=True)
    async with page.expect_download() as info:
        await kb.press("Enter")
    download = await info.value
    srt = (await download.path()).read_text()
    assert "-->" in srt and "know" in srt.lower(), srt[:200]
    assert not errors, errors
