"""Memory that ended streams freed goes back to the OS when the server goes idle."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from benchmarks.lib.procfs import proc_counts
from service.config import Settings, build_settings
from service.memory import release_free_memory
from service.server import RunningServer
from tests.helpers import Enc, Stub, chunks, config, decode_16k, dev_clips, pcm16, stream

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
    assert not server.registry.active
    assert releases() == before + 1


ARENA_PROBE = """
import ctypes, sys, threading
from service.memory import limit_malloc_arenas
limit_malloc_arenas(int(sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
started = threading.Barrier(9)
def work():
    libc.free(libc.malloc(100_000))
    started.wait()
    started.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
started.wait()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
started.wait()
for t in threads:
    t.join()
"""


def arenas_used(limit: int) -> int:
    """Heap arenas of a fresh process whose 8 threads all allocate while alive."""
    done = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not glibc, reason="heap arenas are glibc's")
def test_the_arena_limit_keeps_threads_to_two_heaps() -> None:
    # glibc's default gives each new thread a heap of its own (up to 8 per core), each
    # keeping half-used pages that trimming cannot return; the server's setting caps them.
    assert arenas_used(0) >= 8
    assert arenas_used(Settings().malloc_arenas) == 2
    assert build_settings(["--malloc-arenas", "0"], environ={}).malloc_arenas == 0
