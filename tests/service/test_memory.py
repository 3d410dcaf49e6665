"""Memory that ended streams freed goes back to the OS when the server goes idle."""

from __future__ import annotations

import os
import platform
import sys

import grpc
import pytest

from benchmarks.soak import proc_counts
from service.memory import release_free_memory
from service.server import RunningServer
from tests.helpers import Enc, chunks, config, decode_16k, dev_clips, pcm16, stream
from tests.service.test_streaming_api import Stub

glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def rss_mb() -> float:
    return proc_counts(os.getpid())["rss_mb"]


@pytest.mark.skipif(not glibc, reason="malloc_trim is glibc's")
def test_freed_heap_pages_go_back_to_the_os() -> None:
    # ~220 MB in heap chunks (objects over 512 bytes bypass Python's own allocator);
    # keeping every 64th stops glibc from simply shrinking the top of the heap on free.
    junk = [bytes(1500) for _ in range(150_000)]
    keep = junk[::64]
    del junk
    held = rss_mb()
    assert release_free_memory()
    assert held - rss_mb() > 100
    assert len(keep) == 2344


async def test_the_last_stream_ending_releases_memory(stub: Stub, server: RunningServer) -> None:
    def releases() -> float:
        value = server.deps.metrics.registry.get_sample_value("transcribe_memory_releases_total")
        return value or 0.0

    before = releases()
    audio = decode_16k(dev_clips()[0].path)[: 16000 * 3]
    cfg = config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000)
    run = await stream(stub, cfg, chunks(pcm16(audio), 6400))
    assert run.code == grpc.StatusCode.OK, run.details
    assert not server.deps.active
    assert releases() == before + 1
