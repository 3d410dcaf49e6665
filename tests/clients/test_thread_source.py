"""`iterate_in_thread`, the one daemon-thread reader behind file decoding, file bytes and
standard input: how far it reads ahead, and that it stops reading once closed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from clients.python.audio import iterate_in_thread


class Counted:
    """An endless source that counts its reads and notes any read beyond the bound."""

    def __init__(self, read_ahead: int) -> None:
        self.read_ahead = read_ahead
        self.taken = 0  # items the consumer has received (it sets this)
        self.reads = 0
        self.too_far: list[tuple[int, int]] = []
        self.changed = threading.Condition()

    def __iter__(self) -> Iterator[int]:
        while True:
            with self.changed:
                self.reads += 1
                # Items read and not yet taken, counting the one asked for: at most read_ahead.
                if self.reads - self.taken > self.read_ahead:
                    self.too_far.append((self.reads, self.taken))
                self.changed.notify_all()
            yield self.reads

    def wait_reads(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.reads >= n, timeout=60)


@pytest.mark.parametrize("read_ahead", [1, 4, 16])
async def test_reads_at_most_read_ahead_items_beyond_those_taken(read_ahead: int) -> None:
    source = Counted(read_ahead)
    got = []
    async with aclosing(iterate_in_thread(source, read_ahead=read_ahead)) as items:
        async for item in items:
            with source.changed:
                source.taken += 1
            got.append(item)
            if item == 1:
                # Without another request the thread fills its read-ahead.
                source.wait_reads(read_ahead)
            if len(got) == 50:
                break
    assert got == list(range(1, 51))
    assert source.too_far == []


async def test_a_failing_read_is_raised_where_the_item_is_awaited() -> None:
    def reads() -> Iterator[bytes]:
        yield b"a"
        raise OSError("device gone")

    got = []
    with pytest.raises(OSError, match="device gone"):
        async for item in iterate_in_thread(reads(), read_ahead=16):
            got.append(item)
    assert got == [b"a"]


async def test_closing_stops_the_reads_and_closes_the_source() -> None:
    closed = threading.Event()
    source = Counted(8)

    def reads() -> Iterator[int]:
        try:
            yield from source
        finally:
            closed.set()

    async with aclosing(iterate_in_thread(reads(), read_ahead=8)) as items:
        assert await anext(items) == 1
        source.wait_reads(8)
    assert closed.wait(60)  # the thread ended and closed the generator
    assert source.reads == 8  # nothing read after the close
