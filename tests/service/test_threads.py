"""Named worker threads: the name reaches the OS, where `top -H` and the benchmark's
per-thread CPU read it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from benchmarks.lib.procfs import thread_cpu
from service.threads import named_executor


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_threads_carry_their_name_in_the_os() -> None:
    pool = named_executor(1, "engine")
    try:
        tid = pool.submit(threading.get_native_id).result()
        assert Path(f"/proc/self/task/{tid}/comm").read_text().strip() == "engine_0"
        assert "engine" in thread_cpu(int(Path("/proc/self/stat").read_text().split()[0]))
    finally:
        pool.shutdown()


def test_a_prestarted_pool_has_all_its_threads_at_once() -> None:
    before = threading.active_count()
    pool = named_executor(3, "vad", prestart=True)
    try:
        assert threading.active_count() == before + 3
        for _ in range(20):
            pool.submit(sum, [1, 2]).result()
        assert threading.active_count() == before + 3
    finally:
        pool.shutdown()
