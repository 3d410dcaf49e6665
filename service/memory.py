"""Giving the memory that ended streams freed back to the OS.

glibc keeps freed heap memory (audio buffers, decode results, messages) for reuse,
so after a burst of streams the process stays near its peak although nothing holds
that memory: in a run of 8 streams at a time (`benchmarks/rss_cycles.py`), the server
sat 140-180 MB above its warmed-up size after every burst. `malloc_trim(0)` hands the
free pages back; the server calls it when its last stream ends.

What trimming cannot return is a page still holding one live block, and glibc gives
every new thread a heap arena of its own (up to 8 per core), each with its own
half-used pages: with the model's, VAD, gRPC and storage threads that left the server
~90-105 MB above its warmed-up size after every burst. `limit_malloc_arenas` caps
them (2 by default: 30-60 MB, and a lower peak; no latency cost measured at 8-10
streams).
"""

from __future__ import annotations

from service.libc import libc_function

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def release_free_memory() -> bool:
    """Return free heap pages to the OS (glibc's malloc_trim); False where there is none."""
    trim = libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's heap arenas for threads started from now on (0 keeps glibc's default);
    False where nothing was set."""
    mallopt = libc_function("mallopt")
    if arenas <= 0 or mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
