"""``send_all`` takes every buffer type the same way: ``bytes`` as they are (no
view), anything else through a flat byte view; writes larger than the send buffer
continue from where the engine stopped."""

from __future__ import annotations

import array

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime.base import Buffer

from .helpers import connect, receive_exactly, two_stacks

SMALL_SEND_BUFFER = tcp6.TCPConfig(send_buffer=4096)


def _buffers() -> list[tuple[str, Buffer, bytes]]:
    words = array.array("I", range(3000))  # itemsize 4: a view needs a cast
    raw = words.tobytes()
    grid = memoryview(bytes(range(256)) * 40).cast("B", (40, 256))  # two-dimensional
    big = bytes(range(251)) * 200  # larger than the send buffer: sent in pieces
    return [
        ("bytes", raw, raw),
        ("bytearray", bytearray(raw), raw),
        ("memoryview", memoryview(raw), raw),
        ("array view", memoryview(words), raw),
        ("2-D view", grid, grid.tobytes()),
        ("big bytes", big, big),
        ("big slice", memoryview(big)[7:], big[7:]),
        ("strided view", memoryview(big)[::2], big[::2]),  # one-dimensional, not contiguous
        ("empty", b"", b""),
    ]


@pytest.mark.parametrize("index", range(len(_buffers())), ids=[n for n, _, _ in _buffers()])
async def test_every_buffer_arrives_whole(
    autojump_clock: trio.testing.MockClock, index: int
) -> None:
    _, data, expected = _buffers()[index]
    async with two_stacks(SMALL_SEND_BUFFER) as (_, a, b):
        client, server = await connect(a, b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, data)
            got = await receive_exactly(server, len(expected)) if expected else b""
        assert got == expected
        await client.send_all(b"!")  # the flow goes on after it
        assert await receive_exactly(server, 1) == b"!"


async def test_send_all_after_close_raises_even_for_empty_data(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (_, a, b):
        client, _ = await connect(a, b)
        await client.send_eof()
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"")
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"x")
