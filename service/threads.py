"""Named worker threads, so that `top -H` and per-thread CPU figures can tell them apart."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from service.libc import libc_function

logger = logging.getLogger(__name__)

_PR_SET_NAME = 15
NICE = 19
"""The lowest CPU priority: the kernel gives a nice-19 thread about 1.5 % of a core a
nice-0 thread wants (weight 15 against 1024), and the whole core when none does."""


def name_os_thread() -> None:
    """Give the calling thread's Python name to the OS thread: Python 3.11 leaves every
    thread "python", so the model workers and the storage thread look alike."""
    prctl = libc_function("prctl")
    if prctl is not None:  # without it the name is cosmetic: nothing lost
        prctl(_PR_SET_NAME, ctypes.c_char_p(threading.current_thread().name.encode()[:15]), 0, 0, 0)


def named_executor(workers: int, name: str, prestart: bool = False) -> ThreadPoolExecutor:
    """A thread pool whose threads carry `name` (as name_0, name_1, ...) in the OS too.

    `prestart` starts every thread now rather than on demand: the process then keeps
    one thread count from start to end, and a count that grows means a leak."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=name_os_thread)
    if prestart:
        # Each task holds its thread until all have started, so each submit starts one.
        barrier = threading.Barrier(workers)
        for _ in range(workers):
            pool.submit(barrier.wait)
    return pool


def lower_priority() -> None:
    """Give the calling thread (and the threads it will start: CTranslate2's, when it
    loads a model) the lowest CPU priority. Linux keeps a nice value per thread."""
    name_os_thread()
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError) as exc:  # not Linux, or not permitted
        logger.warning("%s runs at normal priority: %s", threading.current_thread().name, exc)
