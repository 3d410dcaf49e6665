"""Late answers and second presses on what belongs to the signed-in user beyond one
meeting (see test_page_races.py): remembered voices, uploads, and sign-out (nothing of the
last user's is left, or arrives later, for whoever signs in next)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Browser, Route, expect

from service.auth import LOCAL_PRINCIPAL
from service.domain import Voice
from service.server import RunningServer
from tests.helpers import DATA, until
from tests.web_bridge import test_login, test_page_history
from tests.web_bridge.test_login import ALICE, BOB, sign_in
from tests.web_bridge.test_page_history import Stack
from tests.web_bridge.test_page_races_history import (
    Hold,
    OnGet,
    history_page,
    item,
    pressed_twice,
    put_spoken,
    watched_page,
)

# Fixtures shared with those tests: a real server and bridge (with API keys for `keyed`),
# and a headless Chromium.
stack = test_page_history.stack
browser = test_page_history.browser
keyed = test_login.keyed

CLIP = "4406-16882-0000"  # a short LibriSpeech clip, for uploads


class Stale(OnGet):
    """A route handler whose GETs after the first are answered as the service answered when
    asked, but handed to the page only once `release` is set (an answer that was on its way
    while the user acted); `held` counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0

    async def answer(self, route: Route, n: int) -> None:
        if n == 1:
            await route.continue_()
            return
        resp = await route.fetch()
        self.held += 1
        await self.release.wait()
        await route.fulfill(response=resp)


async def test_a_voice_forgotten_while_the_list_reloads_stays_forgotten(
    stack: Stack, browser: Browser
) -> None:
    """The voices list read before a Forget answers after it: the forgotten voice does not
    come back, and the keyboard stays on the next voice's button."""
    server, url = stack
    for name in ("Alice", "Bob"):
        voice = Voice(name, bytes(1024), 10, "t", "S1", datetime.now(UTC))
        await server.store.put_voice(LOCAL_PRINCIPAL, voice)
    page, errors = await history_page(browser, url)
    stale = Stale()
    await page.route("**/api/voices", stale)
    await page.locator("#voices summary").click()
    names = page.locator("#voice-list .voice-name")
    await expect(names).to_have_text(["Alice", "Bob"])
    await page.click("#tab-live")
    await page.click("#tab-history")  # the open list is read again: held
    await until(lambda: stale.held == 1, "the list was read again")
    await page.get_by_role("button", name="Forget Bob's voice").click()
    await expect(page.locator("#voices-status")).to_have_text("Bob's voice is forgotten.")
    forget_alice = page.get_by_role("button", name="Forget Alice's voice")
    await expect(forget_alice).to_be_focused()
    stale.release.set()
    await page.wait_for_function("() => window.bodiesRead['/api/voices'] === 2")
    await expect(names).to_have_text(["Alice"])
    await expect(forget_alice).to_be_focused()
    await expect(page.locator("#voices-message")).to_be_hidden()
    assert not errors, errors


async def test_forget_pressed_twice_forgets_once_and_shows_no_error(
    stack: Stack, browser: Browser
) -> None:
    """A second press of Forget while the first is on its way is not sent (it would fail,
    the voice being gone, and say so)."""
    server, url = stack
    for name in ("Alice", "Bob"):
        voice = Voice(name, bytes(1024), 10, "t", "S1", datetime.now(UTC))
        await server.store.put_voice(LOCAL_PRINCIPAL, voice)
    page, errors = await history_page(browser, url)
    hold = Hold("DELETE", "/api/voices/Bob")
    await page.route("**/api/voices/*", hold)
    await page.locator("#voices summary").click()
    forget_bob = page.get_by_role("button", name="Forget Bob's voice")
    await pressed_twice(forget_bob, hold, "the forget was sent")
    await expect(page.locator("#voices-status")).to_have_text("Bob's voice is forgotten.")
    await expect(page.locator("#voice-list .voice-name")).to_have_text(["Alice"])
    await expect(page.locator("#voices-message")).to_be_hidden()
    assert hold.held == 1
    assert not errors, errors


async def test_an_upload_finishing_while_the_user_types_a_search_leaves_the_search_alone(
    stack: Stack, browser: Browser
) -> None:
    """An upload answers while the user is typing a search: the text typed and the focus
    stay (the upload's status line says it is stored), instead of the search being wiped
    and the focus moved to the uploaded meeting."""
    server, url = stack
    await put_spoken(server.store, "Plans", [("", "The budget is approved.")])
    page, errors = await history_page(browser, url)
    await expect(item(page, "Plans")).to_have_count(1)
    hold = Hold("POST", "/api/upload")
    await page.route("**/api/upload?*", hold)
    await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")
    await until(lambda: hold.held == 1, "the upload was sent")
    await page.click("#search")
    await page.keyboard.type("bud")
    hold.release.set()
    await expect(page.locator("#upload-status")).to_contain_text("uploaded", timeout=60_000)
    await expect(page.locator("#search")).to_have_value("bud")
    await expect(page.locator("#search")).to_be_focused()
    await page.keyboard.type("get")
    await page.keyboard.press("Enter")
    await expect(page.locator("#list li.hit")).to_have_count(1)
    assert not errors, errors


async def test_a_file_added_while_one_uploads_waits_its_turn(
    stack: Stack, browser: Browser
) -> None:
    """A second file dropped (or chosen) while one uploads is sent after it: the upload
    button, progress and status go on showing the upload still running, not the first's
    end, and both meetings are stored."""
    _, url = stack
    page, errors = await history_page(browser, url)
    gates: list[asyncio.Event] = []

    async def one_by_one(route: Route) -> None:
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
        await route.continue_()

    await page.route("**/api/upload?*", one_by_one)
    first, second = "4406-16882-0000", "5652-19215-0000"
    await page.set_input_files("#upload-file", DATA / f"{first}.flac")
    await until(lambda: len(gates) == 1, "the first upload was sent")
    await page.set_input_files("#upload-file", DATA / f"{second}.flac")  # as a drop would
    gates[0].set()
    await until(lambda: len(gates) == 2, "the second upload was sent")
    await expect(item(page, first)).to_have_count(1, timeout=60_000)
    status = page.locator("#upload-status")
    await expect(status).to_contain_text(f"Uploading {second}.flac")
    await expect(page.locator("#upload")).to_be_disabled()
    await expect(page.locator("#upload-progress")).to_be_visible()
    gates[1].set()
    await expect(status).to_contain_text(f"{second}.flac: ", timeout=60_000)
    await expect(page.locator("#upload")).to_be_enabled()
    await expect(item(page, second)).to_have_count(1)
    assert not errors, errors


async def test_a_refused_upload_stays_explained_while_the_next_file_uploads(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    """A file the service refuses, with another queued behind it: why it was refused stays
    on the page (an alert, for screen readers) while the next one uploads and after it is
    stored; it was overwritten at once by the next file's progress. A new file chosen once
    the queue is done starts afresh."""
    _, url = stack
    page, errors = await history_page(browser, url)
    notes = tmp_path / "notes.flac"
    notes.write_bytes(b"not audio at all " * 4000)
    hold = Hold("POST", "/api/upload")
    await page.route("**/api/upload?*", hold)
    await page.set_input_files("#upload-file", notes)
    await until(lambda: hold.held == 1, "the file that is not audio was sent")
    await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")  # queued behind it
    hold.release.set()
    failures = page.locator("#upload-failures")
    await expect(failures).to_have_attribute("role", "alert")
    await expect(failures).to_contain_text("Upload of notes.flac failed:", timeout=60_000)
    await expect(failures).to_contain_text("decoded")  # the service's reason, not a bare code
    await expect(page.locator("#upload-status")).to_contain_text(f"{CLIP}.flac: ", timeout=60_000)
    await expect(failures).to_contain_text("Upload of notes.flac failed:")  # still explained
    await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")  # a new batch
    await expect(failures).to_be_empty()
    await expect(page.locator("#upload-status")).to_contain_text(f"{CLIP}.flac: ", timeout=60_000)
    assert not errors, errors


async def test_the_upload_status_follows_the_new_upload_not_the_last_ones_refinement(
    stack: Stack, browser: Browser
) -> None:
    """The last upload is still refining when another starts: its refinement no longer
    overwrites the new upload's progress in the status line."""
    _, url = stack
    page, errors = await history_page(browser, url)
    refined: list[str] = []

    async def refining(route: Route) -> None:
        """Every read of the first meeting read (the first upload's) says it is refining."""
        resp = await route.fetch()
        body = await resp.json()
        refined.append(refined[0] if refined else body["id"])
        if body["id"] == refined[0]:
            body.update(refinement="running", refinement_progress=0.25)
        await route.fulfill(response=resp, json=body)

    first, second = "4406-16882-0000", "5652-19215-0000"
    await page.route("**/api/transcripts/*", refining)
    await page.set_input_files("#upload-file", DATA / f"{first}.flac")
    status = page.locator("#upload-status")
    await expect(status).to_have_text(f"{first}.flac: refining… 25%", timeout=60_000)
    tid = refined[0]
    hold = Hold("POST", "/api/upload")
    await page.route("**/api/upload?*", hold)
    await page.set_input_files("#upload-file", DATA / f"{second}.flac")
    await until(lambda: hold.held == 1, "the second upload was sent")
    polled = await page.evaluate(f"() => window.bodiesRead['/api/transcripts/{tid}']")
    await page.wait_for_function(
        f"n => window.bodiesRead['/api/transcripts/{tid}'] > n", arg=polled
    )
    await expect(status).to_contain_text(f"Uploading {second}.flac")
    hold.release.set()
    await expect(status).to_contain_text(f"{second}.flac: uploaded", timeout=60_000)
    assert not errors, errors


async def test_a_meeting_answering_after_sign_out_is_not_shown_to_the_next_user(
    keyed: tuple[RunningServer, str], browser: Browser
) -> None:
    """Alice opens a meeting and signs out before it answers; Bob signs in on the same
    page: History shows none of Alice's meeting."""
    server, url = keyed
    alice = await put_spoken(server.store, "Alice's plans", [("", "Secret words.")], "alice")
    page, errors = await watched_page(browser, url)
    await sign_in(page, ALICE)
    await page.click("#tab-history")
    stale = Stale()
    stale.gets = 1  # the first read is held too
    await page.route(f"**/api/transcripts/{alice}", stale)
    await item(page, "Alice's plans").click()
    await until(lambda: stale.held == 1, "Alice's meeting was asked for")
    await page.click("#logout")
    await expect(page.locator("#api-key")).to_be_visible()
    stale.release.set()
    await page.wait_for_function(f"() => window.bodiesRead['/api/transcripts/{alice}'] === 1")
    await sign_in(page, BOB)
    await page.click("#tab-history")
    await expect(page.locator("#list")).to_contain_text("No meetings yet.")
    await expect(page.locator("#history")).not_to_contain_text("Secret words.")
    await expect(page.locator("#detail")).to_be_empty()
    assert not errors, errors


async def test_sign_out_leaves_nothing_of_the_last_users_upload_search_or_title(
    keyed: tuple[RunningServer, str], browser: Browser
) -> None:
    """Alice uploads a file, searches and types a meeting title, then signs out: Bob,
    signing in on the same page, sees none of it (not a race: sign-out's other half)."""
    _, url = keyed
    page, errors = await watched_page(browser, url)
    await sign_in(page, ALICE)
    await page.fill("#title", "Layoffs")
    await page.click("#tab-history")
    await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")
    status = page.locator("#upload-status")
    await expect(status).to_contain_text(f"{CLIP}.flac: uploaded", timeout=60_000)
    await page.fill("#search", "reorganisation")
    await page.press("#search", "Enter")
    await expect(page.locator("#list-caption")).to_contain_text("reorganisation")
    await page.click("#logout")
    await expect(page.locator("#api-key")).to_be_visible()
    await sign_in(page, BOB)
    await page.click("#tab-history")
    await expect(page.locator("#list")).to_contain_text("No meetings yet.")
    await expect(status).to_be_empty()
    await expect(page.locator("#search")).to_have_value("")
    await expect(page.locator("#list-caption")).to_be_hidden()
    await page.click("#tab-live")
    await expect(page.locator("#title")).to_have_value("")
    assert not errors, errors
