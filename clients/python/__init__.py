"""Python client for live-transcribe: stream audio, get typed results, manage transcripts.

    import asyncio
    from clients.python import StreamingTranscriber, connect

    async def main() -> None:
        async with connect("localhost:50051") as channel:
            async for r in StreamingTranscriber(channel).transcribe_file("talk.m4a"):
                if r.is_final:
                    print(f"[{r.start:6.2f}] {r.text}")

    asyncio.run(main())

A final may come once more with `r.revision` > 0: new text that replaces segment
`r.segment_index` (`FinalText` assembles the text that way).

`await list_models(channel)` says which models the server loaded and their languages;
`StreamingTranscriber(channel, model="base", language_code="de")` picks one and forces
a language (without `language_code` a multilingual model detects it: `r.language_code`).

Without asyncio: `with SyncClient("localhost:50051") as c: for r in c.transcribe_file(...)`.
"""

from clients.python.audio import (
    PCM_RATE,
    AudioFileError,
    audio_chunks,
    file_chunks,
    paced,
    probe_duration,
)
from clients.python.channel import channel_options, connect
from clients.python.models import (
    Export,
    ModelInfo,
    Page,
    RecordingInfo,
    Result,
    SearchHit,
    Segment,
    Transcript,
    Voice,
    Word,
    to_json,
)
from clients.python.streaming import (
    Enc,
    FinalText,
    StreamingTranscriber,
    encoding_for,
    list_models,
)
from clients.python.sync import SyncClient
from clients.python.transcripts import TranscriptClient

__all__ = [
    "PCM_RATE",
    "AudioFileError",
    "Enc",
    "Export",
    "FinalText",
    "ModelInfo",
    "Page",
    "RecordingInfo",
    "Result",
    "SearchHit",
    "Segment",
    "StreamingTranscriber",
    "SyncClient",
    "Transcript",
    "TranscriptClient",
    "Voice",
    "Word",
    "audio_chunks",
    "channel_options",
    "connect",
    "encoding_for",
    "file_chunks",
    "list_models",
    "paced",
    "probe_duration",
    "to_json",
]
