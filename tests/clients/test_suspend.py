"""A program ends a stream with `suspend` and continues the transcript in another stream
(`resume_transcript_id`), as the browser bridge does when it shuts down."""

from __future__ import annotations

from clients.python import FinalText, StreamingTranscriber, TranscriptClient, connect
from service.server import RunningServer
from tests.helpers import dev_clips, wer


async def test_a_suspended_stream_stays_resumable_and_continues(server: RunningServer) -> None:
    """The first clip's stream ends with `suspend`: every word is stored, and the
    transcript stays interrupted (a plain end stores it complete). A second stream
    resumes it with the next clip, after the first one's audio and segments, and ends it
    complete."""
    first, second = dev_clips()[0], dev_clips()[1]
    async with connect(f"127.0.0.1:{server.port}") as channel:
        text = FinalText()
        suspended = StreamingTranscriber(channel, title="Suspended", suspend=True)
        results = [r async for r in suspended.transcribe_file(first.path)]
        tid = results[0].transcript_id
        for r in results:
            text.add(r)
        stored = await TranscriptClient(channel).get(tid)
        assert stored.status == "interrupted", "resumable"
        assert [s.text for s in stored.segments] == [s.text for s in text.segments]
        assert wer([first.text], [text.text]) < 0.25, text.text

        resumed = StreamingTranscriber(channel, resume_transcript_id=tid)
        more = [r async for r in resumed.transcribe_file(second.path)]
        assert more[0].kind == "session" and more[0].transcript_id == tid, more[0]
        assert more[0].start >= first.duration_s - 0.1, "continues after the first audio"
        finals = [r for r in more if r.is_final and not r.revision]
        assert finals and finals[0].segment_index == len(stored.segments), finals[:1]
        done = await TranscriptClient(channel).get(tid)
    assert done.status == "complete"
    assert wer([f"{first.text} {second.text}"], [" ".join(s.text for s in done.segments)]) < 0.25
