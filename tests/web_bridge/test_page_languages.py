"""The page's model and language selectors (issue 20), against a scripted service: what
they list, what a stream is sent, that the choice is remembered, the detected language
shown and set as the text's `lang`, and no serious axe violation with them."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Page, async_playwright, expect
from transcribe.v1 import streaming_pb2

from tests.helpers import until
from tests.web_bridge.conftest import Response, ScriptedTranscription, final
from tests.web_bridge.test_browser import BASE_ARGS, CHROMIUM, serious_axe_violations, tab_to

FAKE_MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def in_german(text: str, index: int) -> Response:
    resp = final(index, text, index * 2.0, index * 2.0 + 1.5)
    resp.results[0].language_code = "de"
    return resp


async def saved(page: Page) -> None:
    """The page says "Saved"; if not, the failure names what the page told its user (a
    CI run once saw "Error" here: INTERNAL, a stream ended before the page's stop reached it)."""
    try:
        await expect(page.locator("#conn")).to_have_text("Saved", timeout=10_000)
    except AssertionError as exc:
        told = await page.locator("#message").inner_text()
        raise AssertionError(f"not saved; the page said {told!r}") from exc


async def test_selectors_send_the_choice_remember_it_and_show_the_detected_language(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    service.end_after_half_close = True  # each stream ends after the page's stop (conftest)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        context = await browser.new_context(bypass_csp=True, locale="en-US")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(url)
        model, language = page.locator("#model"), page.locator("#language")
        # The default model first; English only on tiny.en, nothing else to choose.
        await expect(model).to_have_value("tiny.en")
        await expect(model.locator("option")).to_have_count(2)
        await expect(language.locator("option")).to_have_text(["English"])
        await expect(language).to_be_disabled()
        assert await serious_axe_violations(page) == []

        # The multilingual model: Auto-detect (its default), then languages by name.
        await tab_to(page, "#model")
        await model.select_option("base")
        await expect(language).to_be_enabled()
        await expect(language).to_have_value("auto")
        names = await language.locator("option").all_inner_texts()
        assert names[0] == "Auto-detect" and names[1:] == sorted(names[1:])
        assert {"German", "Japanese", "Chinese"} <= set(names)
        await language.select_option("de")
        assert await serious_axe_violations(page) == []

        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        await until(lambda: len(service.configs) == 1, "the stream started")
        sent = service.configs[0]
        assert (sent.model, sent.language_code) == ("base", "de")
        await expect(model).to_be_disabled()  # a stream keeps its model and language
        await expect(language).to_be_disabled()
        info = streaming_pb2.SessionInfo(transcript_id="t1", model="base", language_code="de")
        service.responses.put_nowait(Response(session=info))
        service.responses.put_nowait(in_german("Guten Morgen.", 0))
        await expect(page.locator(".seg")).to_have_count(1, timeout=10_000)
        await expect(page.locator("#transcript")).to_have_attribute("lang", "de")
        await expect(page.locator(".seg").first).to_have_attribute("lang", "de")
        await expect(page.locator("#live-language")).to_have_text("")  # chosen, not detected
        await page.click("#record")
        service.responses.put_nowait(None)
        await saved(page)
        await expect(model).to_be_enabled()

        # Remembered across a reload; Auto-detect: the language found is shown.
        await page.reload()
        await expect(model).to_have_value("base")
        await expect(language).to_have_value("de")
        await language.select_option("auto")
        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        await until(lambda: len(service.configs) == 2, "the second stream started")
        assert (service.configs[1].model, service.configs[1].language_code) == ("base", "")
        info = streaming_pb2.SessionInfo(transcript_id="t2", model="base")
        service.responses.put_nowait(Response(session=info))
        await expect(page.locator("#live-language")).to_have_text("Language: detecting…")
        service.responses.put_nowait(in_german("Wie geht es dir?", 0))
        await expect(page.locator("#live-language")).to_have_text(
            "Language: German (detected)", timeout=10_000
        )
        await expect(page.locator("#transcript")).to_have_attribute("lang", "de")
        assert await serious_axe_violations(page) == []
        await page.click("#record")
        service.responses.put_nowait(None)
        await saved(page)

        # The upload's selectors follow the same choice.
        await page.click("#tab-history")
        await expect(page.locator("#upload-model")).to_have_value("base")
        await expect(page.locator("#upload-language")).to_have_value("auto")
        assert await serious_axe_violations(page) == []
        await browser.close()
    assert not errors, errors


async def test_with_nothing_to_choose_the_selectors_stay_hidden(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    """tiny.en alone has nothing to choose; a service that lists no models (an older one)
    gets nothing but its defaults."""
    service, url = scripted_bridge
    service.models = streaming_pb2.ListModelsResponse(models=service.models.models[:1])
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        page = await browser.new_page()
        await page.goto(url)
        await expect(page.locator("#model option")).to_have_count(1)
        await expect(page.locator("#live-options")).to_be_hidden()
        service.models = streaming_pb2.ListModelsResponse()
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("Ready")
        await expect(page.locator("#live-options")).to_be_hidden()
        await page.click("#record")
        await until(lambda: len(service.configs) == 1, "the stream started")
        assert (service.configs[0].model, service.configs[0].language_code) == ("", "")
        await browser.close()


async def test_models_endpoint_and_start_config_types(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"{url}/api/models")
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        models = (await r.json())["models"]
        assert [m["name"] for m in models] == ["tiny.en", "base"]
        assert models[0] == {
            "name": "tiny.en",
            "language_codes": ["en"],
            "detects_language": False,
            "is_default": True,
            "description": "English",
        }
        assert models[1]["detects_language"] and "de" in models[1]["language_codes"]
        r = await http.get(f"{url}/api/models", headers={"Origin": "http://evil.example"})
        assert r.status == 403  # the API's origin rule

        for bad in ({"model": 5}, {"language_code": ["de"]}, {"model": "x" * 101}):
            async with http.ws_connect(f"{url}/ws") as ws:
                await ws.send_json({"type": "start", "config": bad})
                msg = await ws.receive_json()
                assert msg["type"] == "error" and msg["code"] == "INVALID_ARGUMENT", bad
                assert next(iter(bad)) in msg["message"]
        async with http.ws_connect(f"{url}/ws") as ws:
            config = {"model": "base", "language_code": "de"}
            await ws.send_json({"type": "start", "config": config})
            await until(lambda: len(service.configs) == 1, "the stream started")
            info = streaming_pb2.SessionInfo(transcript_id="t", model="base", language_code="de")
            service.responses.put_nowait(Response(session=info))
            service.responses.put_nowait(in_german("Hallo.", 0))
            session, result = await ws.receive_json(), await ws.receive_json()
            await ws.send_json({"type": "stop"})
            service.responses.put_nowait(None)
    assert (service.configs[0].model, service.configs[0].language_code) == ("base", "de")
    assert session["language_code"] == "de" and session["model"] == "base"
    assert result["type"] == "final" and result["language_code"] == "de"
