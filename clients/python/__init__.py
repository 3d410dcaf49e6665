"""Python client for live-transcribe: stream audio, get typed results, manage transcripts.

import asyncio
from clients.python import StreamingTranscriber, connect, file_chunks

async def main() -> None:
    async with connect("localhost:50051") as channel:
        async for result in StreamingTranscriber(channel).transcribe(file_chunks("talk.flac")):
            if result.is_final:
                print(f"[{result.start:6.2f}] {result.text}")

asyncio.run(main())
"""

from clients.python.client import (
    Result,
    StreamingTranscriber,
    TranscriptClient,
    connect,
    file_chunks,
)

__all__ = ["Result", "StreamingTranscriber", "TranscriptClient", "connect", "file_chunks"]
