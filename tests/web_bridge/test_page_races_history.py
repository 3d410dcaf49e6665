"""Late answers and second presses on History's meeting list and open meeting (see
test_page_races.py): an answer for a meeting left stays with it, a superseded one shows no
error, a refinement update keeps a rename and the keyboard, a second Delete is not sent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Browser, Locator, Page, Route, expect

from service.auth import LOCAL_PRINCIPAL
from service.domain import Segment, TranscriptMeta, TranscriptStatus
from service.storage.base import TranscriptStore
from tests.helpers import until
from tests.web_bridge import test_page_history
from tests.web_bridge.test_page_history import Stack, count_bodies_read, put_meeting

# Fixtures shared with those tests: a real server and bridge, and a headless Chromium.
stack = test_page_history.stack
browser = test_page_history.browser
# `window.fetched[path]`: requests the page made, counted as made.
FETCHES = """
window.fetched = {}; const realFetch = window.fetch;
window.fetch = (input, init) => {
  const path = new URL(input, location.href).pathname;
  window.fetched[path] = (window.fetched[path] || 0) + 1;
  return realFetch(input, init);
};
"""


async def put_spoken(
    store: TranscriptStore, title: str, said: list[tuple[str, str]], owner: str = LOCAL_PRINCIPAL
) -> str:
    """`owner`'s finished meeting of (speaker label, text) segments, 1 s each."""
    tid = uuid.uuid4().hex
    now = datetime.now(UTC)
    meta = TranscriptMeta(
        id=tid,
        owner=owner,
        created_at=now,
        status=TranscriptStatus.LIVE,
        language="en",
        model="test",
        title=title,
    )
    await store.create_transcript(meta)
    segs = [
        Segment(i, i * 1.0, i * 1.0 + 0.9, text, (), 0.9, speaker_label=who)
        for i, (who, text) in enumerate(said)
    ]
    await store.append_segments(owner, tid, segs)
    await store.finish_transcript(owner, tid, TranscriptStatus.COMPLETE, now, len(said), ())
    return tid


class Hold:
    """A route handler that holds the requests `matches` picks until `release` is set (the
    others go on at once); `held` counts the requests held."""

    def __init__(self, method: str = "GET", url_part: str = "") -> None:
        self.method, self.url_part = method, url_part
        self.release = asyncio.Event()
        self.held = 0

    async def __call__(self, route: Route) -> None:
        r = route.request
        if r.method == self.method and self.url_part in r.url:
            self.held += 1
            await self.release.wait()
        await route.continue_()


class OnGet:
    """A route handler that lets every request but a GET go on at once, counts the GETs in
    `gets` and has `answer` answer each (the n-th); what it holds waits for `release`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.gets = 0

    async def __call__(self, route: Route) -> None:
        if route.request.method != "GET":
            await route.continue_()
            return
        self.gets += 1
        await self.answer(route, self.gets)

    async def answer(self, route: Route, n: int) -> None:
        raise NotImplementedError


async def watched_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A new page on `url`, its bodies read counted (count_bodies_read): it and the list
    its uncaught errors go to."""
    page = await browser.new_page()
    await count_bodies_read(page)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    return page, errors


async def history_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page, errors = await watched_page(browser, url)
    await page.click("#tab-history")
    return page, errors


def item(page: Page, title: str) -> Any:
    return page.locator("#list button.item", has_text=title)


async def alpha_held(
    stack: Stack, browser: Browser, method: str, speaker: str = ""
) -> tuple[Page, list[str], Hold, str]:
    """Meetings "Alpha" and "Beta" of one passage each by `speaker`, History shown, Alpha
    opened with its `method` requests held: the page, its errors, the hold, Alpha's id."""
    server, url = stack
    alpha = await put_spoken(server.store, "Alpha", [(speaker, "First words.")])
    await put_spoken(server.store, "Beta", [(speaker, "Other words.")])
    page, errors = await history_page(browser, url)
    hold = Hold(method, alpha)
    await page.route(f"**/api/transcripts/{alpha}", hold)
    await item(page, "Alpha").click()
    return page, errors, hold, alpha


async def beta_opened_meanwhile(page: Page, hold: Hold, what: str) -> None:
    """Once `hold` holds Alpha's request (`what`), open Beta; once Beta is shown, let the
    request answer."""
    await until(lambda: hold.held == 1, what)
    await item(page, "Beta").click()
    await expect(page.locator("#detail h2")).to_have_text("Beta")
    hold.release.set()


async def pressed_twice(button: Locator, hold: Hold, what: str) -> None:
    """Press `button`; once `hold` holds its request (`what`) and the button is disabled,
    press it again (forced, as a disabled button ignores it), then let the request answer."""
    await button.click()
    await until(lambda: hold.held == 1, what)
    await expect(button).to_be_disabled()
    await button.click(force=True)  # pressed again
    hold.release.set()


async def test_an_edit_saved_as_another_meeting_opens_stays_on_its_own_meeting(
    stack: Stack, browser: Browser
) -> None:
    """Save a new title, then open another meeting before the save answers: the answer
    renames the edited meeting's list entry only, not the meeting now shown, and the
    keyboard stays where the user went."""
    page, errors, hold, alpha = await alpha_held(stack, browser, "PATCH")
    await expect(page.locator("#detail h2")).to_have_text("Alpha")
    await page.click("#edit")
    await page.fill("#edit-title", "Alpha renamed")
    await page.press("#edit-title", "Enter")
    await beta_opened_meanwhile(page, hold, "the save was sent")
    await page.wait_for_function(f"() => window.bodiesRead['/api/transcripts/{alpha}'] === 2")
    await expect(page.locator("#detail h2")).to_have_text("Beta")
    await expect(page.locator("#detail h2")).to_be_focused()
    await expect(item(page, "Alpha renamed")).to_have_count(1)
    await expect(item(page, "Beta")).to_have_count(1)
    await expect(page.locator("#history-message")).to_be_hidden()
    assert not errors, errors


async def test_more_pressed_while_the_list_reloads_adds_the_next_page_not_the_first_again(
    stack: Stack, browser: Browser
) -> None:
    """The "More meetings" button pressed while the list is being read again (History shown
    again, a meeting saved): the first page is not added a second time (every meeting
    listed twice); the press is of the list being replaced, and is ignored."""
    server, url = stack
    t0 = datetime.now(UTC) - timedelta(days=1)
    for i in range(55):
        await put_meeting(server.store, f"Meeting {i}", ["Hello."], (), t0 + timedelta(minutes=i))
    page, errors = await history_page(browser, url)
    await page.add_init_script(FETCHES)
    await page.reload()
    await page.click("#tab-history")
    items = page.locator("#list button.item")
    await expect(items).to_have_count(50)
    release = asyncio.Event()
    held: list[str] = []

    async def hold_a_reload(route: Route) -> None:
        if "page_token" not in route.request.url and not held:
            held.append(route.request.url)
            await release.wait()
        await route.continue_()

    await page.route("**/api/transcripts?*", hold_a_reload)
    await page.click("#tab-live")
    await page.click("#tab-history")  # the list is read again: held
    await until(lambda: len(held) == 1, "the list was read again")
    await page.click("#more")
    asked = await page.evaluate("() => window.fetched['/api/transcripts']")
    release.set()
    await page.wait_for_function("n => window.bodiesRead['/api/transcripts'] === n", arg=asked)
    titles = [t.split("\n")[0] for t in await items.locator(".title").all_inner_texts()]
    assert len(set(titles)) == len(titles), "a meeting is listed twice"
    await expect(items).to_have_count(50)
    await page.click("#more")
    await expect(items).to_have_count(55)
    await expect(page.locator("#more")).to_be_hidden()
    assert not errors, errors


async def test_a_speaker_filter_left_for_clear_search_shows_no_error(
    stack: Stack, browser: Browser
) -> None:
    """Choose "Said by", then "Clear search" before the filtered search answers: its late
    answer is dropped quietly (it said "Search failed: Cannot read properties of null")."""
    server, url = stack
    await put_spoken(
        server.store, "Finance", [("S1", "The budget is approved."), ("S2", "The budget is late.")]
    )
    page, errors = await history_page(browser, url)
    hold = Hold("GET", "speaker=S1")
    await page.route("**/api/search?*", hold)
    await page.fill("#search", "budget")
    await page.press("#search", "Enter")
    await expect(page.locator("#list li.hit")).to_have_count(2)
    await page.select_option("#search-speaker", "S1")
    await until(lambda: hold.held == 1, "the filtered search was sent")
    await page.locator("#list-caption button", has_text="Clear search").click()
    await expect(item(page, "Finance")).to_have_count(1)
    await expect(page.locator("#list li.hit")).to_have_count(0)
    hold.release.set()
    await page.wait_for_function("() => window.bodiesRead['/api/search'] === 2")
    await expect(page.locator("#list li.hit")).to_have_count(0)
    await expect(page.locator("#history-message")).to_be_hidden()
    assert not errors, errors


async def test_a_speaker_renamed_as_another_meeting_opens_is_renamed_in_its_own_meeting(
    stack: Stack, browser: Browser
) -> None:
    """Rename a speaker, then open another meeting before the rename answers: the other
    meeting's speaker of the same label keeps its name."""
    page, errors, hold, alpha = await alpha_held(stack, browser, "PATCH", "S1")
    await page.locator("#detail button.who").click()
    await page.fill("#detail input.who-name", "Alice")
    await page.press("#detail input.who-name", "Enter")
    await beta_opened_meanwhile(page, hold, "the rename was sent")
    await page.wait_for_function(f"() => window.bodiesRead['/api/transcripts/{alpha}'] === 2")
    await expect(page.locator("#detail button.who")).to_have_text("S1")
    await expect(page.locator("#detail h2")).to_be_focused()
    await item(page, "Alpha").click()  # the rename itself was stored
    await expect(page.locator("#detail button.who")).to_have_text("Alice")
    assert not errors, errors


async def test_a_meeting_deleted_as_another_opens_leaves_the_other_shown(
    stack: Stack, browser: Browser
) -> None:
    """Delete a meeting, then open another before the delete answers: the deleted one
    leaves the list; the one now open stays open, the keyboard on it."""
    page, errors, hold, _ = await alpha_held(stack, browser, "DELETE")
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.locator("#detail button.danger").click()
    await beta_opened_meanwhile(page, hold, "the delete was sent")
    await expect(item(page, "Alpha")).to_have_count(0)
    await expect(page.locator("#detail h2")).to_have_text("Beta")
    await expect(page.locator("#detail h2")).to_be_focused()
    await expect(page.locator("#detail .s")).to_have_text(["Other words. "])
    assert not errors, errors


async def test_delete_pressed_twice_deletes_once_and_shows_no_error(
    stack: Stack, browser: Browser
) -> None:
    """A second press of Delete while the first is on its way is not sent (it would fail,
    the meeting being gone, and say "Deleting failed")."""
    server, url = stack
    alpha = await put_spoken(server.store, "Alpha", [("", "First words.")])
    page, errors = await history_page(browser, url)
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    hold = Hold("DELETE", alpha)
    await page.route(f"**/api/transcripts/{alpha}", hold)
    await item(page, "Alpha").click()
    await pressed_twice(page.locator("#detail button.danger"), hold, "the delete was sent")
    await expect(page.locator("#detail")).to_have_text("The meeting was deleted.")
    await expect(page.locator("#history-message")).to_be_hidden()
    assert hold.held == 1
    assert not errors, errors


class Refining(OnGet):
    """A route handler for one meeting: its first read says "running"; the next (the
    page's poll) is held until `release`, then says "done" with a refined first passage."""

    async def answer(self, route: Route, n: int) -> None:
        if n > 1:
            await self.release.wait()
        resp = await route.fetch()
        body = await resp.json()
        body.update(refinement="running", refinement_progress=0.5)
        if n > 1:
            body["refinement"] = "done"
            body["segments"][0]["text"] = "First words, refined."
        await route.fulfill(response=resp, json=body)


async def alpha_refining(stack: Stack, browser: Browser) -> tuple[Page, list[str], Refining, str]:
    """Meeting "Alpha" (two passages by S1) opened in History while it is being refined
    (`Refining` holds the page's next read of it): the page, its errors, the handler,
    Alpha's id."""
    server, url = stack
    alpha = await put_spoken(server.store, "Alpha", [("S1", "First words."), ("S1", "More.")])
    page, errors = await history_page(browser, url)
    refining = Refining()
    await page.route(f"**/api/transcripts/{alpha}", refining)
    await item(page, "Alpha").click()
    await expect(page.locator("#detail-refine")).to_have_text("refining… 50%")
    return page, errors, refining, alpha


async def refined_text_arrives(page: Page, refining: Refining, alpha: str) -> None:
    """Once the page polls the refinement, let the refined text answer; wait until the page
    has read it and shows it."""
    await until(lambda: refining.gets == 2, "the page polled the refinement")
    refining.release.set()
    await page.wait_for_function(f"() => window.bodiesRead['/api/transcripts/{alpha}'] === 2")
    await expect(page.locator("#detail .s").first).to_have_text("First words, refined. ")


async def test_a_speaker_being_renamed_keeps_its_form_when_refined_text_arrives(
    stack: Stack, browser: Browser
) -> None:
    """The refined text replaces the open meeting's passages while the user types a
    speaker's name: the form, what was typed and the keyboard focus stay, and Save works."""
    page, errors, refining, alpha = await alpha_refining(stack, browser)
    await page.locator("#detail button.who").first.click()
    name = page.locator("#detail input.who-name")
    await name.fill("Ali")
    await refined_text_arrives(page, refining, alpha)
    await expect(page.locator("#detail-refine")).to_have_text("refined")
    await expect(name).to_be_focused()
    await expect(name).to_have_value("Ali")
    await page.keyboard.press("Enter")
    await expect(page.locator("#detail button.who")).to_have_text(["Ali", "Ali"])
    await expect(page.locator("#detail button.who").first).to_be_focused()
    assert not errors, errors


async def test_the_keyboard_on_a_speakers_name_stays_there_when_refined_text_arrives(
    stack: Stack, browser: Browser
) -> None:
    """The refined text replaces the passages while the keyboard is on a speaker's name:
    the focus goes to the same name in the new passages, not to the page."""
    page, errors, refining, alpha = await alpha_refining(stack, browser)
    await page.locator("#detail button.who").nth(1).focus()
    await refined_text_arrives(page, refining, alpha)
    await expect(page.locator("#detail button.who").nth(1)).to_be_focused()
    assert not errors, errors
