"""axe-core (npm) run in the real page: both views, in the states a user sees them, have
no serious or critical WCAG 2.1 A/AA violation; the live region announces finals only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from playwright.async_api import ViewportSize, async_playwright, expect
from transcribe.v1 import common_pb2, streaming_pb2

from service.auth import LOCAL_PRINCIPAL
from service.domain import Segment, TranscriptMeta, TranscriptStatus
from service.server import RunningServer
from tests.web_bridge.conftest import Response, ScriptedTranscription, final
from tests.web_bridge.test_browser import BASE_ARGS, CHROMIUM, seed_meeting, serious_axe_violations

FAKE_MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


async def test_live_view_has_no_serious_violations_and_announces_finals_only(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(url)
        await expect(page.locator("#conn")).to_have_text("Ready")
        assert await serious_axe_violations(page) == []

        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        service.responses.put_nowait(
            Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
        )
        for i in range(30):
            resp = final(i, f"Sentence number {i}.", i * 2.0, i * 2.0 + 1)
            resp.results[0].speaker_label = f"S{i % 7 + 1}"  # every colour of the palette
            service.responses.put_nowait(resp)
        alt = common_pb2.TranscriptionAlternative(transcript="and then")
        interim = [streaming_pb2.StreamingTranscriptionResult(alternatives=[alt], stability=0.1)]
        service.responses.put_nowait(Response(results=interim))
        await expect(page.locator("#interim")).to_have_text("and then", timeout=10_000)
        await expect(page.locator("#transcript .who").first).to_have_text("S1")
        # Finals are added to a polite log (additions only); the interim text is hidden
        # from it, so a screen reader is not interrupted several times a second.
        log = page.locator("#transcript")
        await expect(log).to_have_attribute("role", "log")
        await expect(log).to_have_attribute("aria-live", "polite")
        await expect(log).to_have_attribute("aria-relevant", "additions")
        await expect(page.locator("#interim")).to_have_attribute("aria-hidden", "true")
        await expect(page.locator("#elapsed")).to_have_attribute("role", "timer")
        assert await serious_axe_violations(page) == []
        await browser.close()


async def test_history_view_has_no_serious_violations(
    server: RunningServer, bridge_url: str
) -> None:
    await seed_meeting(server, "Axe meeting", tags=("weekly",))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        for viewport in (ViewportSize(width=1100, height=800), ViewportSize(width=390, height=844)):
            context = await browser.new_context(bypass_csp=True, viewport=viewport)
            page = await context.new_page()
            await page.goto(bridge_url)
            await page.click("#tab-history")
            item = page.locator("#list button.item", has_text="Axe meeting").first
            await item.click()
            await expect(page.locator("#detail audio")).to_have_count(1)
            assert await serious_axe_violations(page) == [], viewport

            await page.fill("#search", '"political liberty"')
            await page.press("#search", "Enter")
            await page.locator("#list li.hit button").first.click()
            await expect(page.locator("#detail .s.hit")).to_have_count(1)
            await page.click("#edit")  # the edit form open, with its labels
            await expect(page.locator("#edit-title")).to_be_focused()
            assert await serious_axe_violations(page) == [], viewport
            await context.close()
        await browser.close()


async def test_speaker_names_and_the_rename_form_have_no_serious_violations(
    server: RunningServer, bridge_url: str
) -> None:
    """Every colour of the speaker palette on its name, and the inline rename form."""
    tid = uuid.uuid4().hex
    meta = TranscriptMeta(
        id=tid,
        owner=LOCAL_PRINCIPAL,
        created_at=datetime.now(UTC),
        status=TranscriptStatus.LIVE,
        language="en",
        model="test",
        title="Axe speakers",
    )
    await server.store.create_transcript(meta)
    segs = [Segment(i, i * 1.0, i + 0.9, f"Line {i}", (), 0.9, f"S{i % 7 + 1}") for i in range(14)]
    await server.store.append_segments(LOCAL_PRINCIPAL, tid, segs)
    await server.store.finish_transcript(
        LOCAL_PRINCIPAL, tid, TranscriptStatus.COMPLETE, meta.created_at, len(segs), ()
    )
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(bridge_url)
        await page.click("#tab-history")
        await page.locator("#list button.item", has_text="Axe speakers").first.click()
        names = page.locator("#detail .segments .who")
        await expect(names).to_have_count(14)
        assert await serious_axe_violations(page) == []
        await names.nth(3).click()
        await expect(
            page.locator('#detail input[aria-label="Name for speaker S4"]')
        ).to_be_focused()
        assert await serious_axe_violations(page) == []
        await browser.close()
