"""The few C library calls the server makes about its own process (thread names,
returning freed memory), looked up once; absent off Linux or in another C library."""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any


@functools.cache
def libc_function(name: str) -> Any:
    """The C library's function `name`, or None where there is no such function."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:  # no C library to ask
        return None
