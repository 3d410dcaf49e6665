"""Giving the memory that ended streams freed back to the OS.

glibc keeps freed heap memory (audio buffers, decode results, messages) for reuse,
so after a burst of streams the process stays near its peak although nothing holds
that memory: in a run of 8 streams at a time (`benchmarks/rss_cycles.py`), the server
sat 140-180 MB above its warmed-up size after every burst. `malloc_trim(0)` hands the
free pages back; the server calls it when its last stream ends.
"""

from __future__ import annotations

from service.libc import libc_function


def release_free_memory() -> bool:
    """Return free heap pages to the OS (glibc's malloc_trim); False where there is none."""
    trim = libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True
