"""Remembered voices on the page. The "Remember voices" switch (off by default, kept in
localStorage, locked while recording) sends `remember_voices`; with it on, a voice named
in an earlier meeting (4406, "Bob") is named in the live view while recording, through
the real bridge and server with Chromium's microphone playing him. In History the
remembered voices are listed, one is forgotten from the keyboard, and a failure to
forget is said plainly."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser, async_playwright, expect
from transcribe.v1 import streaming_pb2

from service.auth import LOCAL_PRINCIPAL
from service.server import RunningServer
from tests.helpers import until
from tests.service.test_speakers import SR, voice
from tests.service.test_voices_live import remember_alice_and_bob
from tests.web_bridge.conftest import Response, ScriptedTranscription, final
from tests.web_bridge.test_browser import (
    BASE_ARGS,
    CHROMIUM,
    launch_with_mic,
    serious_axe_violations,
)
from web_bridge.messages import stream_config, to_json

FAKE_MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture
async def bob_on_the_mic(tmp_path: Path) -> AsyncIterator[Browser]:
    """Chromium whose microphone plays 4406 (the part the first meeting did not use)."""
    pad = np.zeros(SR, dtype=np.float32)
    audio = np.concatenate([pad, voice("4406")[7 * SR :], pad, pad])
    wav = tmp_path / "bob.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    async with async_playwright() as p:
        b = await launch_with_mic(p, wav)
        yield b
        await b.close()


@pytest.fixture
async def bob_and_alice(server: RunningServer) -> AsyncIterator[None]:
    await remember_alice_and_bob(server.store)
    yield
    await remember_alice_and_bob(server.store, names=())  # none left for other tests


async def test_a_remembered_voice_is_named_live_and_voices_are_forgotten_in_history(
    bob_on_the_mic: Browser, bridge_url: str, server: RunningServer, bob_and_alice: None
) -> None:
    context = await bob_on_the_mic.new_context(bypass_csp=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(bridge_url)
    switch = page.get_by_label("Remember voices")
    await expect(switch).not_to_be_checked()
    await switch.check()
    await page.reload()
    await expect(switch).to_be_checked()  # kept for the next visit

    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
    await expect(switch).to_be_disabled()
    # Named while recording: the audio is 7 s and the name comes in a few.
    await expect(page.locator("#transcript .seg .who").first).to_have_text("Bob", timeout=60_000)
    await expect(page.locator("#conn")).to_have_text("Live")
    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=30_000)
    await expect(switch).to_be_enabled()

    # History: the voices, and Bob forgotten from the keyboard.
    await page.click("#tab-history")
    await page.locator("#voices summary").focus()
    await page.keyboard.press("Enter")
    names = page.locator("#voice-list .voice-name")
    await expect(names).to_have_text(["Alice", "Bob"])
    assert await serious_axe_violations(page) == []
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    forget_bob = page.get_by_role("button", name="Forget Bob's voice")
    await expect(forget_bob).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(names).to_have_text(["Alice"])
    await expect(page.locator("#voices-status")).to_have_text("Bob's voice is forgotten.")
    await expect(page.get_by_role("button", name="Forget Alice's voice")).to_be_focused()
    assert [v.name for v in await server.store.list_voices(LOCAL_PRINCIPAL)] == ["Alice"]

    # Forgotten elsewhere meanwhile: the page says so and keeps the line.
    await server.store.delete_voice(LOCAL_PRINCIPAL, "Alice")
    await page.keyboard.press("Enter")
    message = page.locator("#voices-message")
    await expect(message).to_contain_text("Alice's voice could not be forgotten")
    await expect(names).to_have_text(["Alice"])
    assert not errors, errors
    await context.close()


async def test_the_switch_is_sent_and_names_from_the_stream_replace_labels(
    scripted_bridge: tuple[ScriptedTranscription, str],
) -> None:
    service, url = scripted_bridge
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(url)
        await page.click("#record")  # off by default
        await until(lambda: len(service.configs) == 1, "the first stream started")
        assert not service.configs[0].diarization_config.remember_voices
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        await page.click("#record")
        service.responses.put_nowait(None)
        await expect(page.locator("#conn")).to_have_text("Saved", timeout=20_000)

        await page.locator("#remember-voices").check()
        await page.click("#record")
        await until(lambda: len(service.configs) == 2, "the second stream started")
        assert service.configs[1].diarization_config.remember_voices
        service.responses.put_nowait(
            Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
        )
        for i, label in enumerate(["S1", "S2", "S1"]):
            resp = final(i, f"Sentence {i}.", i * 3.0, i * 3.0 + 2)
            resp.results[0].speaker_label = label
            service.responses.put_nowait(resp)
        who = page.locator("#transcript .seg .who")
        await expect(who).to_have_text(["S1", "S2", "S1"], timeout=10_000)
        service.responses.put_nowait(Response(speaker_names={"S2": "Bob"}))
        await expect(who).to_have_text(["S1", "Bob", "S1"])
        assert await serious_axe_violations(page) == []
        await browser.close()


def test_the_start_config_and_the_names_message() -> None:
    assert stream_config(
        {"speakers": True, "remember_voices": True}
    ).diarization_config.remember_voices
    assert not stream_config({"speakers": True}).diarization_config.remember_voices
    names = Response(speaker_names={"S1": "Alice"})
    assert to_json(names) == [{"type": "speaker_names", "names": {"S1": "Alice"}}]
