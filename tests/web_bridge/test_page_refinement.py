"""The page follows a transcript's refinement (issue 19), driven by a scripted service so
every state is shown on cue: an upload's progress, "refining…" then a percentage, the
refined text replacing the open meeting's passages with the same player, and a failure
shown with its reason, in the list and in the meeting."""

from __future__ import annotations

from typing import Any

import grpc
from playwright.async_api import async_playwright, expect
from transcribe.v1 import transcripts_pb2

from tests.helpers import DATA
from tests.web_bridge.test_browser import BASE_ARGS, CHROMIUM, serious_axe_violations
from tests.web_bridge.test_upload_api import Uploads, upload_bridge

pb = transcripts_pb2
CLIP = "4406-16882-0000"


class Refining(Uploads):
    """One transcript, made by the upload; the test sets its refinement state."""

    def __init__(self) -> None:
        super().__init__()
        self.t = pb.Transcript()

    async def UploadRecording(self, request_iterator: Any, context: Any) -> Any:
        resp = await super().UploadRecording(request_iterator, context)
        self.recording = b"".join(self.messages)
        self.t.CopyFrom(resp.transcript)
        self.t.recording_mime_type = "audio/flac"
        self.t.status = pb.TRANSCRIPT_STATUS_COMPLETE
        self.t.create_time.GetCurrentTime()
        resp.transcript.CopyFrom(self.t)
        return resp

    async def ListTranscripts(
        self, request: pb.ListTranscriptsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListTranscriptsResponse:
        return pb.ListTranscriptsResponse(transcripts=[self.t] if self.t.id else [])

    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetTranscriptResponse:
        return pb.GetTranscriptResponse(transcript=self.t)

    def set(self, state: int, progress: float = 0.0, detail: str = "") -> None:
        self.t.refinement_state = state  # type: ignore[assignment]
        self.t.refinement_progress = progress
        self.t.refinement_detail = detail


async def test_the_page_follows_an_uploads_refinement() -> None:
    service = Refining()  # type: ignore[abstract]  # stubs: all abstract
    async with upload_bridge(service=service) as (_, url), async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(url)
        await page.click("#tab-history")
        await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")
        await expect(page.locator("#detail-title")).to_have_text(CLIP, timeout=20_000)
        assert service.configs[0].title == CLIP
        note = page.locator("#detail-refine")
        item = page.locator("#list button.item", has_text=CLIP).locator(".refine")
        status = page.locator("#upload-status")
        await expect(note).to_have_text("refining…")
        await expect(item).to_have_text(" · refining…")
        await expect(status).to_have_text(f"{CLIP}.flac: uploaded, refining…")
        assert await page.locator("#detail .segments .s").count() == 0
        await page.evaluate("document.querySelector('#detail audio').dataset.mark = 'same'")

        service.set(pb.REFINEMENT_STATE_RUNNING, 0.4)
        await expect(note).to_have_text("refining… 40%")
        await expect(item).to_have_text(" · refining… 40%")
        await expect(status).to_have_text(f"{CLIP}.flac: refining… 40%")
        await expect(page.locator("#upload-progress")).to_be_visible()

        seg = service.t.segments.add(index=0, text="Belonging to our garrison.")
        seg.end_offset.FromMilliseconds(2500)
        service.t.segment_count = 1
        service.set(pb.REFINEMENT_STATE_DONE, 1.0)
        await expect(note).to_have_text("refined")
        await expect(item).to_have_text(" · refined")
        await expect(page.locator("#detail .segments .s")).to_have_text(
            "Belonging to our garrison. "
        )
        # The same player (its position kept), not a new one.
        await expect(page.locator("#detail audio")).to_have_attribute("data-mark", "same")
        await browser.close()


async def test_a_failed_refinement_says_why() -> None:
    service = Refining()  # type: ignore[abstract]  # stubs: all abstract
    async with upload_bridge(service=service) as (_, url), async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(url)
        await page.click("#tab-history")
        await page.set_input_files("#upload-file", DATA / f"{CLIP}.flac")
        note = page.locator("#detail-refine")
        await expect(note).to_have_text("refining…", timeout=20_000)
        service.set(pb.REFINEMENT_STATE_FAILED, 0.0, "the recording is longer than 4 h")
        await expect(note).to_have_text("not refined: the recording is longer than 4 h")
        await expect(page.locator("#list .refine")).to_have_text(
            " · not refined: the recording is longer than 4 h"
        )
        await browser.close()


async def test_a_file_dropped_on_history_is_uploaded_and_the_picker_opens_from_the_keyboard() -> (
    None
):
    service = Refining()  # type: ignore[abstract]  # stubs: all abstract
    async with upload_bridge(service=service) as (_, url), async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        page = await (await browser.new_context(bypass_csp=True)).new_page()
        await page.goto(url)
        await page.click("#tab-history")
        async with page.expect_file_chooser() as chooser:
            await page.focus("#upload")
            await page.keyboard.press("Enter")
        assert not (await chooser.value).is_multiple()
        await page.evaluate(
            """() => {
              const dataTransfer = new DataTransfer();
              const file = new File([new Uint8Array(5000)], "dropped talk.ogg");
              dataTransfer.items.add(file);
              const zone = document.getElementById("history");
              const ev = (type) => new DragEvent(type, {dataTransfer, bubbles: true});
              zone.dispatchEvent(ev("dragover"));
              window.dropClass = zone.classList.contains("dropping");
              zone.dispatchEvent(ev("drop"));
            }"""
        )
        assert await page.evaluate("window.dropClass"), "the panel shows it takes the drop"
        await expect(page.locator("#detail-title")).to_have_text("dropped talk", timeout=20_000)
        await expect(page.locator("#history")).not_to_have_class("panel dropping")
        assert service.configs[0].title == "dropped talk"
        assert b"".join(service.messages) == bytes(5000)
        assert await serious_axe_violations(page) == []
        await browser.close()
