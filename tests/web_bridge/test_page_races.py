"""Answers that arrive late or twice, and buttons pressed again before the last press was
done: the page shows what the user did last, keeps no microphone on after Stop, and shows
no error from a request it no longer waits for. Each test holds an answer (a route, the
microphone, a scripted stream), acts, releases it, and waits until the page handled it.
This file: the Live tab (recording); test_page_races_history.py: the meeting list and the
open meeting; test_page_races_account.py: voices, uploads and sign-out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from transcribe.v1 import streaming_pb2, transcripts_pb2

from tests.helpers import until
from tests.web_bridge.conftest import (
    NoTranscripts,
    Response,
    ScriptedTranscription,
    final,
    start_scripted,
)
from tests.web_bridge.test_browser import BASE_ARGS, CHROMIUM
from tests.web_bridge.test_login import ALICE, sign_in
from tests.web_bridge.test_page_history import count_bodies_read

FAKE_MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# The page's sockets and microphones, seen from inside: `__ws.closed` counts closes a task
# later (the page's own handler has run); `__mics` holds every stream getUserMedia gave;
# while `__micGate` is set, getUserMedia waits for it (a permission prompt being answered).
WATCH = """
window.__ws = { made: 0, closed: 0 };
const RealSocket = window.WebSocket;
window.WebSocket = class extends RealSocket {
  constructor(...args) {
    super(...args); window.__ws.made += 1;
    this.addEventListener('close', () => setTimeout(() => { window.__ws.closed += 1; }));
  }
  set onopen(f) {  // while `__wsGate` is set, the page learns the socket opened when it resolves
    super.onopen = f && ((ev) => Promise.resolve(window.__wsGate).then(() => f.call(this, ev)));
  }
  get onopen() { return super.onopen; }
};
window.__wsGate = null;
window.__mics = []; window.__micAsked = 0; window.__micGate = null;
const realGum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (c) => {
  window.__micAsked += 1;
  if (window.__micGate) await window.__micGate;
  const s = await realGum(c); window.__mics.push(s); return s;
};
"""
MICS_OFF = "() => window.__mics.every(s => s.getTracks().every(t => t.readyState === 'ended'))"


class PerStream(ScriptedTranscription):
    """Scripted, with a queue of responses per stream (`streams[n]` is the n-th stream's);
    `history` is what the transcript service lists."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[asyncio.Queue[Response | None]] = []
        self.history: list[transcripts_pb2.Transcript] = []

    async def respond(
        self, reader: asyncio.Task[None], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Response]:
        mine: asyncio.Queue[Response | None] = asyncio.Queue()
        self.streams.append(mine)
        while (resp := await mine.get()) is not None:
            yield resp


class Listed(NoTranscripts):
    """Lists the scripted service's `history`."""

    def __init__(self, service: PerStream) -> None:
        super().__init__()
        self.service = service

    async def ListTranscripts(
        self,
        request: transcripts_pb2.ListTranscriptsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> transcripts_pb2.ListTranscriptsResponse:
        return transcripts_pb2.ListTranscriptsResponse(transcripts=self.service.history)


@pytest.fixture
async def per_stream() -> AsyncIterator[tuple[PerStream, str]]:
    service = PerStream()
    listed = Listed(service)  # type: ignore[abstract]  # the stubs mark every method abstract
    async with start_scripted(service=service, transcripts=listed) as (_, _, _, url):
        yield service, url


@pytest.fixture
async def mic_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *FAKE_MIC])
        yield b
        await b.close()


async def live_page(browser: Browser, url: str, errors: list[str]) -> Page:
    page = await browser.new_page()
    await page.add_init_script(WATCH)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await expect(page.locator("#conn")).to_have_text("Ready")
    return page


def session(tid: str) -> Response:
    return Response(session=streaming_pb2.SessionInfo(transcript_id=tid))


async def test_start_pressed_again_while_the_microphone_opens_leaves_no_microphone_on(
    per_stream: tuple[PerStream, str], mic_browser: Browser
) -> None:
    """The button still says Start while the browser opens the microphone (or asks for
    permission): a second press must not open a second microphone that Stop never closes."""
    service, url = per_stream
    errors: list[str] = []
    page = await live_page(mic_browser, url, errors)
    await page.evaluate("() => { window.__micGate = new Promise(r => { window.__openMic = r; }); }")
    await page.click("#record")
    await page.wait_for_function("() => window.__micAsked === 1")
    await page.click("#record")  # nothing seems to happen yet: pressed again
    await page.evaluate("() => window.__openMic()")
    await page.wait_for_function("() => window.__mics.length === window.__micAsked")
    await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
    await until(lambda: len(service.streams) >= 1, "a stream started")
    await page.click("#record")  # Stop
    await expect(page.locator("#conn")).to_have_text("Saving…")
    await expect(page.locator("#record")).to_have_text("● Start recording")
    assert await page.evaluate(MICS_OFF), "a microphone is still on after Stop"
    assert await page.evaluate("() => window.__ws.made") == 1
    for q in service.streams:
        q.put_nowait(None)
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=10_000)
    assert len(service.configs) == 1
    assert not errors, errors


async def test_a_new_recording_started_while_the_last_one_saves_is_not_disturbed_by_it(
    per_stream: tuple[PerStream, str], mic_browser: Browser
) -> None:
    """Stop, then Start at once for the next meeting: the previous meeting's last words and
    its end arrive after the new one started; they must not appear in the new meeting,
    mark it "Saved" while it records, nor make it reconnect when the old socket closes."""
    service, url = per_stream
    errors: list[str] = []
    page = await live_page(mic_browser, url, errors)
    conn, segs = page.locator("#conn"), page.locator("#transcript .seg")
    await page.click("#record")
    await expect(conn).to_have_text("Live", timeout=20_000)
    await until(lambda: len(service.streams) == 1, "the first stream started")
    old = service.streams[0]
    old.put_nowait(session("t1"))
    old.put_nowait(final(0, "The old meeting starts.", 0.0, 1.0))
    await expect(segs).to_have_text([re.compile("The old meeting starts.")])
    await page.click("#record")  # Stop: the server is still finalizing the last words
    await expect(conn).to_have_text("Saving…")

    await page.click("#record")  # Start the next meeting
    await until(lambda: len(service.streams) == 2, "the second stream started")
    await expect(conn).to_have_text("Live", timeout=20_000)
    new = service.streams[1]
    new.put_nowait(session("t2"))
    old.put_nowait(final(1, "The old meeting ends.", 1.0, 2.0))
    old.put_nowait(None)  # the old meeting is saved: "end", and its socket closes
    await page.wait_for_function("() => window.__ws.closed === 1")
    new.put_nowait(final(0, "The new meeting.", 0.0, 1.0))
    await expect(segs).to_have_text([re.compile("The new meeting.")])
    await expect(conn).to_have_text("Live")
    await expect(page.locator("#record")).to_have_text("■ Stop")
    assert await page.evaluate("() => window.__ws.made") == 2, "the new meeting reconnected"
    assert len(service.configs) == 2
    assert not service.configs[1].resume_transcript_id
    assert not errors, errors


async def test_a_double_click_on_stop_stops_and_does_not_start_another_recording(
    per_stream: tuple[PerStream, str], mic_browser: Browser
) -> None:
    """Many people double-click buttons: on Stop, the second click must not start a new
    meeting (turning the microphone on again)."""
    service, url = per_stream
    errors: list[str] = []
    page = await live_page(mic_browser, url, errors)
    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
    await until(lambda: len(service.streams) == 1, "the stream started")
    await page.dblclick("#record")
    await expect(page.locator("#conn")).to_have_text("Saving…")
    assert await page.evaluate("() => window.__micAsked") == 1, "a new recording was started"
    service.streams[0].put_nowait(None)
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=10_000)
    await expect(page.locator("#record")).to_have_text("● Start recording")
    assert await page.evaluate(MICS_OFF), "a microphone is still on after Stop"
    assert len(service.configs) == 1
    assert not errors, errors


async def test_stop_pressed_while_connecting_saves_and_records_nothing_more(
    per_stream: tuple[PerStream, str], mic_browser: Browser
) -> None:
    """Stop while "Connecting…": the meeting is saved as it is, and no recorder is started
    afterwards on the closed microphone."""
    service, url = per_stream
    errors: list[str] = []
    page = await live_page(mic_browser, url, errors)
    await page.evaluate("() => { window.__wsGate = new Promise(r => { window.__openWs = r; }); }")
    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Connecting…")
    await page.click("#record")  # Stop
    await expect(page.locator("#conn")).to_have_text("Saving…")
    await page.evaluate("() => window.__openWs()")
    await until(lambda: len(service.streams) == 1, "the stream started")
    service.streams[0].put_nowait(None)
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=10_000)
    await page.wait_for_function("() => window.__ws.closed === 1")
    assert await page.evaluate(MICS_OFF), "a microphone is still on after Stop"
    assert not errors, errors
    assert service.audio_bytes == 0


async def test_the_list_refreshed_when_a_meeting_is_saved_keeps_the_keyboard_where_it_was(
    per_stream: tuple[PerStream, str], mic_browser: Browser
) -> None:
    """Stop, go to History and on to a meeting in the list; the stop's save then refreshes
    the list: the focus stays on that meeting's entry instead of falling to the page."""
    service, url = per_stream
    for n in (1, 2):
        t = transcripts_pb2.Transcript(id=f"m{n}", title=f"Meeting {n}")
        t.create_time.GetCurrentTime()
        service.history.append(t)
    errors: list[str] = []
    page = await live_page(mic_browser, url, errors)
    await count_bodies_read(page)
    await page.reload()
    await page.click("#record")
    await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
    await until(lambda: len(service.streams) == 1, "the stream started")
    await page.click("#record")  # Stop: saving
    await expect(page.locator("#conn")).to_have_text("Saving…")
    await page.click("#tab-history")
    second = page.locator("#list button.item", has_text="Meeting 2")
    await second.focus()
    saved = transcripts_pb2.Transcript(id="m3", title="Just now")
    saved.create_time.GetCurrentTime()
    service.history.insert(0, saved)
    service.streams[0].put_nowait(None)  # saved: "end", and the list is read again
    await expect(page.locator("#conn")).to_have_text("Saved", timeout=10_000)
    await page.wait_for_function("() => window.bodiesRead['/api/transcripts'] === 2")
    await expect(page.locator("#list button.item", has_text="Just now")).to_have_count(1)
    await expect(second).to_be_focused()
    assert not errors, errors


async def test_the_live_text_is_not_left_to_whoever_signs_in_after_sign_out(
    mic_browser: Browser,
) -> None:
    """Sign out while a meeting is live (or saving): its text, and the last words its stream
    sends after the sign-out, are not on the Live tab for whoever signs in next."""
    async with start_scripted(api_key=ALICE) as (service, _, _, url):
        errors: list[str] = []
        page = await live_page(mic_browser, url, errors)

        await sign_in(page, ALICE)
        await page.click("#record")
        await expect(page.locator("#conn")).to_have_text("Live", timeout=20_000)
        service.responses.put_nowait(session("t1"))
        service.responses.put_nowait(final(0, "Our secret plan.", 0.0, 1.0))
        await expect(page.locator("#transcript .seg")).to_have_count(1)
        await page.click("#logout")
        await expect(page.locator("#api-key")).to_be_visible()
        service.responses.put_nowait(final(1, "More secrets.", 1.0, 2.0))
        service.responses.put_nowait(None)  # the meeting is saved: "end", the socket closes
        await page.wait_for_function("() => window.__ws.closed === 1")
        await sign_in(page, ALICE)
        await expect(page.locator("#live")).to_be_visible()
        await expect(page.locator("#transcript")).not_to_contain_text("secret")
        await expect(page.locator("#transcript .placeholder")).to_have_count(1)
        await expect(page.locator("#conn")).to_have_text("Ready")
        assert not errors, errors
