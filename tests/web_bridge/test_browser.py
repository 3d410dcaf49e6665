"""The page in a real headless Chromium with a real recording as its microphone."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect
from transcribe.v1 import common_pb2, streaming_pb2, streaming_pb2_grpc

from service.server import RunningServer
from tests.helpers import chunks, config, decode_16k, dev_clips, encode_container, stream, wer
from tests.web_bridge.conftest import Response, ScriptedTranscription, final

CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def speech_wav(path: Path) -> str:
    """A dev clip with a second of silence on each side, as Chromium's fake microphone."""
    clip = dev_clips()[0]
    audio = decode_16k(clip.path)
    pad = np.zeros(16000, dtype=np.float32)
    pcm = (np.clip(np.concatenate([pad, audio, pad, pad]), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return clip.text


async def launch_with_mic(p: Playwright, wav: Path) -> Browser:
    """Debian Chromium whose fake microphone plays `wav` once."""
    return await p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *BASE_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
        ],
    )


async def seed_meeting(
    server: RunningServer, title: str, tags: tuple[str, ...] = (), clip: int = 0
) -> tuple[str, str]:
    """A stored meeting with a recording: a dev clip streamed as a browser's WebM/Opus,
    unpaced. Returns its id and final text."""
    audio = decode_16k(dev_clips()[clip].path)
    cfg = config(encoding=streaming_pb2.AUDIO_ENCODING_WEBM_OPUS, title=title, tags=list(tags))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
        run = await stream(stub, cfg, chunks(encode_container(audio, "webm"), 4000))
    assert run.code == grpc.StatusCode.OK, run.details
    return run.transcript_id, run.final_text


async def tab_to(page: Page, selector: str, back: bool = False, limit: int = 40) -> None:
    """Press Tab (Shift+Tab if `back`) until the focused element matches `selector`: the
    control is reachable from the keyboard, in a bounded number of stops."""
    for _ in range(limit):
        if await page.evaluate("s => !!document.activeElement?.matches(s)", selector):
            return
        await page.keyboard.press("Shift+Tab" if back else "Tab")
    focused = await page.evaluate("() => document.activeElement?.outerHTML.slice(0, 120)")
    raise AssertionError(f"{selector} not reached in {limit} Tab presses; focus on {focused}")


async def serious_axe_violations(page: Page) -> list[str]:
    """axe-core (from npm) run in the page: the serious and critical WCAG 2.1 A/AA
    violations, one line each. The page's context must be made with bypass_csp=True
    (axe is injected as an inline script, which the page's CSP forbids)."""
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                            'best-practice']},
            resultTypes: ['violations'],
        })).violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                  nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
async def browser_with_mic(tmp_path: Path) -> AsyncIterator[tuple[Browser, str]]:
    wav = tmp_path / "speech.wav"
    reference = speech_wav(wav)
    async with async_playwright() as p:
        browser = await launch_with_mic(p, wav)
        yield browser, reference
        await browser.close()


async def test_speaking_shows_words_live_then_history_search_and_replay(
    browser_with_mic: tuple[Browser, str], bridge_url: str
) -> None:
    browser, reference = browser_with_mic
    page: Page = await browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(bridge_url)
    await page.fill("#title", "Browser test meeting")
    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
    # Words appear while the recording is still playing (interim or final).
    await expect(page.locator("#transcript")).to_contain_text("war", timeout=20_000)
    # Screenshots while the clip still plays (taking them must not delay the Stop below).
    await expect(page.locator(".seg").filter(has_text="fortunes")).to_have_count(1, timeout=40_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "live.png"))
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await expect(page.locator(".seg").last).to_be_in_viewport()  # the newest line is in view
    await page.screenshot(path=str(SHOTS / "live-phone.png"))
    await page.set_viewport_size({"width": 1100, "height": 800})
    # Let the whole clip play (13 s + padding), then stop: the last words are flushed.
    await expect(page.locator(".seg").filter(has_text="know")).to_have_count(1, timeout=40_000)
    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=30_000)
    # The final segments' text, without their time stamps.
    text = await page.locator(".seg").evaluate_all(
        "els => els.map(e => e.lastChild.textContent).join(' ')"
    )
    assert wer([reference], [text]) < 0.15, text

    await page.click("#tab-history")
    await expect(page.locator("#list li").first).to_contain_text(
        "Browser test meeting", timeout=10_000
    )
    await page.fill("#search", '"political liberty"')
    await page.click("#search-form button")
    hit = page.locator("#list li.hit").first
    await expect(hit.locator("mark")).to_have_text(
        "political liberty", ignore_case=True, timeout=10_000
    )
    await hit.locator("button").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#detail h2")).to_have_text("Browser test meeting")
    # The matched passage, highlighted and focused (the focus ring shows).
    await expect(page.locator("#detail .s.hit")).to_be_focused()
    await page.screenshot(path=str(SHOTS / "history.png"))
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await expect(page.locator("#detail .s.hit")).to_be_in_viewport()
    await page.screenshot(path=str(SHOTS / "history-phone.png"))
    await page.set_viewport_size({"width": 1100, "height": 800})
    audio = page.locator("#detail audio")
    await expect(audio).to_have_count(1)
    duration = await audio.evaluate(
        "a => new Promise(r => a.readyState >= 1 ? r(a.duration)"
        " : a.addEventListener('loadedmetadata', () => r(a.duration)))"
    )
    assert 13.0 < duration < 20.0  # the stored recording is seekable and has a duration
    second = page.locator("#detail .segments .s").nth(2)
    start = float(await second.get_attribute("data-start") or 0)
    await second.click()
    played = await audio.evaluate("a => new Promise(r => setTimeout(() => r(a.currentTime), 1000))")
    assert played >= start - 0.1  # clicking a segment plays the recording from that moment
    assert not errors, errors


async def test_denied_microphone_shows_a_clear_message(bridge_url: str) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=[*BASE_ARGS, "--use-fake-device-for-media-stream"]
        )
        context = await browser.new_context(permissions=[])
        page = await context.new_page()
        await page.goto(bridge_url)
        # Headless Chromium without a fake UI denies the permission prompt.
        await page.click("#record")
        await expect(page.locator("#message")).to_contain_text(
            "Microphone permission was denied", timeout=10_000
        )
        await expect(page.locator("#record")).to_have_text("● Start recording")
        await browser.close()


async def test_a_revised_final_replaces_the_text_it_revises(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    """Through the real bridge and page code: a final, then a revision of the same index."""
    service, url = scripted_bridge
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *BASE_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ],
        )
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(url)
        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        service.responses.put_nowait(
            Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
        )
        service.responses.put_nowait(final(0, "the whether is", 0.0, 1.0))
        service.responses.put_nowait(final(1, "fine today", 1.1, 2.0))
        alt = common_pb2.TranscriptionAlternative(transcript="and tomorrow")
        interim = [streaming_pb2.StreamingTranscriptionResult(alternatives=[alt], stability=0.1)]
        service.responses.put_nowait(Response(results=interim))
        transcript, segs = page.locator("#transcript"), page.locator(".seg")
        await expect(page.locator("#interim")).to_have_text("and tomorrow", timeout=10_000)
        await expect(segs).to_have_count(2)
        await expect(transcript).to_contain_text("the whether is")
        await expect(segs.nth(1)).not_to_have_class("seg para")  # no sentence end, no pause

        service.responses.put_nowait(final(0, "The weather is.", 0.0, 1.05, revision=1))
        await expect(segs.nth(0)).to_contain_text("The weather is.", timeout=10_000)
        await expect(segs).to_have_count(2)  # replaced, not added
        await expect(transcript).not_to_contain_text("the whether is")
        texts = await segs.evaluate_all("els => els.map(e => e.lastChild.textContent)")
        assert texts == ["The weather is. ", "fine today "]
        # The revised text now ends a sentence: the next segment starts a paragraph.
        await expect(segs.nth(1)).to_have_class("seg para")
        await expect(segs.nth(1).locator(".t")).to_have_text("00:01")
        # A revision is of an older sentence: the interim text stays, and finals go on.
        await expect(page.locator("#interim")).to_have_text("and tomorrow")
        service.responses.put_nowait(final(2, "and tomorrow", 2.1, 3.0))
        await expect(segs).to_have_count(3, timeout=10_000)
        await expect(page.locator("#interim")).to_have_text("")
        await browser.close()
    assert not errors, errors
