"""The direct stack's flows honour trio's HalfCloseableStream contract (virtual time)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow

from .helpers import connect, two_stacks

SMALL = tcp6.TCPConfig(send_buffer=8192, receive_buffer=8192)


async def clog(flow: DirectFlow) -> None:
    """Write until the send buffer is full and the peer's window is closed for good.

    After each round, virtual time runs on so that delayed ACKs and window probes
    settle; a round that still finds room writes more.
    """
    while True:

        async def sender() -> None:
            while True:
                await flow.send_all(b"x" * 1000)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        await trio.sleep(5)
        if flow._conn.send_space == 0:
            return


async def test_check_half_closeable_stream(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b), two_stacks(SMALL) as (_net2, ca, cb):

        async def stream_maker() -> tuple[DirectFlow, DirectFlow]:
            return await connect(a, b)

        async def clogged_stream_maker() -> tuple[DirectFlow, DirectFlow]:
            left, right = await connect(ca, cb)
            await clog(left)
            await clog(right)
            return left, right

        await trio.testing.check_half_closeable_stream(stream_maker, clogged_stream_maker)


async def test_check_half_closeable_stream_with_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(delay=0.01, jitter=0.002, seed=3) as (_net, a, b):

        async def stream_maker() -> tuple[DirectFlow, DirectFlow]:
            return await connect(a, b)

        await trio.testing.check_half_closeable_stream(stream_maker, None)


@pytest.mark.parametrize("seed", [0, 1])
async def test_check_half_closeable_stream_over_an_impaired_path(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    async with two_stacks(
        delay=0.005, loss=0.03, reorder=0.03, duplicate=0.03, corrupt=0.03, seed=seed
    ) as (_net, a, b):

        async def stream_maker() -> tuple[DirectFlow, DirectFlow]:
            return await connect(a, b)

        await trio.testing.check_half_closeable_stream(stream_maker, None)
