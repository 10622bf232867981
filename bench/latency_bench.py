"""Request latency of a write-write-read loop (a 100-byte header and a 100-byte body
written separately, a 100-byte reply read: what an HTTP/1.1 client does), per
request, best of 5 runs, beside trio's own ``open_tcp_stream`` in the same run.

Rows: trio's SocketStream on ``::1``; trio_tcp6's kernel stack on ``::1`` through the
trio-style calls (TCP_NODELAY) and through the mirage calls (``create_connection`` /
``listen``: Nagle, as ``TCPConfig.nagle`` says); the direct stack on an unimpaired
VirtualNetwork (real time) both ways; and the direct stack on a VirtualNetwork with
a 10 ms RTT in virtual time (``MockClock``), both ways.

    PYTHONPATH=. python bench/latency_bench.py [--requests N]   (from the repository root)
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Awaitable, Callable

import trio
import trio.testing

import trio_tcp6 as tcp6

A, B = "2001:db8::a", "2001:db8::b"
RUNS = 5


async def exchange(client: trio.abc.Stream, server: trio.abc.Stream, n: int) -> float:
    """Mean seconds (trio's clock) per write-write-read request over ``n``."""

    async def serve() -> None:
        for _ in range(n):
            got = 0
            while got < 200:
                got += len(await server.receive_some(200 - got))
            await server.send_all(b"r" * 100)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        start = trio.current_time()
        for _ in range(n):
            await client.send_all(b"h" * 100)
            await client.send_all(b"b" * 100)
            got = 0
            while got < 100:
                got += len(await client.receive_some(100 - got))
        return (trio.current_time() - start) / n


Pair = tuple[trio.abc.Stream, trio.abc.Stream]


async def trio_pair() -> Pair:
    listeners = await trio.open_tcp_listeners(0, host="::1")
    client = await trio.open_tcp_stream("::1", listeners[0].socket.getsockname()[1])
    server = await listeners[0].accept()
    await listeners[0].aclose()
    return client, server


_MIRAGE_PORTS = itertools.count(50000)


async def tcp6_pair(stack: tcp6.Stack, addr: str, *, mirage: bool) -> Pair:
    if not mirage:
        listener = await stack.open_tcp_listener(0)
        client = await stack.open_tcp_stream(addr, listener.port)
        server = await listener.accept()
        await listener.aclose()
        return client, server
    accepted: list[tcp6.Flow] = []
    arrived = trio.Event()
    done = trio.Event()

    async def callback(flow: tcp6.Flow) -> None:
        accepted.append(flow)
        arrived.set()
        await done.wait()

    # A fresh port each time: the last pair's server side may still hold the old
    # one (FIN-WAIT/TIME-WAIT on the kernel stack) when the next listen binds.
    port = next(_MIRAGE_PORTS)
    stack.listen(port, callback)
    result = await stack.create_connection((addr, port))
    assert isinstance(result, tcp6.Ok), result
    await arrived.wait()
    stack.unlisten(port)
    return result.value, accepted[0]


async def best_of(make: Callable[[], Awaitable[Pair]], n: int) -> float:
    best = float("inf")
    for _ in range(RUNS):
        client, server = await make()
        best = min(best, await exchange(client, server, n))
        await client.aclose()
        await server.aclose()
    return best


async def real_time(n: int) -> list[tuple[str, float]]:
    rows = [("trio.open_tcp_stream, kernel, ::1", await best_of(trio_pair, n))]
    async with tcp6.open_kernel_stack() as k:
        rows.append(
            (
                "trio_tcp6 kernel stack, open_tcp_stream",
                await best_of(lambda: tcp6_pair(k, "::1", mirage=False), n),
            )
        )
        rows.append(
            (
                "trio_tcp6 kernel stack, create_connection (Nagle)",
                await best_of(lambda: tcp6_pair(k, "::1", mirage=True), max(5, n // 20)),
            )
        )
    net = tcp6.VirtualNetwork()
    async with tcp6.open_stack(net.attach(A), A) as a, tcp6.open_stack(net.attach(B), B) as b:
        rows.append(
            (
                "trio_tcp6 direct stack, VirtualNetwork, open_tcp_stream",
                await best_of(lambda: tcp6_pair_across(a, b), n),
            )
        )
        rows.append(
            (
                "trio_tcp6 direct stack, VirtualNetwork, create_connection (Nagle)",
                await best_of(lambda: tcp6_pair_across_mirage(a, b), max(5, n // 20)),
            )
        )
    return rows


async def tcp6_pair_across(a: tcp6.Stack, b: tcp6.Stack) -> Pair:
    listener = await b.open_tcp_listener(0)
    client = await a.open_tcp_stream(B, listener.port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def tcp6_pair_across_mirage(a: tcp6.Stack, b: tcp6.Stack) -> Pair:
    accepted: list[tcp6.Flow] = []
    arrived = trio.Event()
    done = trio.Event()

    async def callback(flow: tcp6.Flow) -> None:
        accepted.append(flow)
        arrived.set()
        await done.wait()

    b.listen(50001, callback)
    result = await a.create_connection((B, 50001))
    assert isinstance(result, tcp6.Ok), result
    await arrived.wait()
    b.unlisten(50001)
    return result.value, accepted[0]


async def virtual_time(n: int) -> list[tuple[str, float]]:
    net = tcp6.VirtualNetwork(delay=0.005)
    async with tcp6.open_stack(net.attach(A), A) as a, tcp6.open_stack(net.attach(B), B) as b:
        return [
            (
                "virtual time, 10 ms RTT, open_tcp_stream",
                await best_of(lambda: tcp6_pair_across(a, b), n),
            ),
            (
                "virtual time, 10 ms RTT, create_connection (Nagle)",
                await best_of(lambda: tcp6_pair_across_mirage(a, b), n),
            ),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run")
    args = parser.parse_args()
    rows = trio.run(real_time, args.requests)
    rows += trio.run(virtual_time, 20, clock=trio.testing.MockClock(autojump_threshold=0))
    width = max(len(name) for name, _ in rows)
    print(f"{'write-write-read, per request (best of 5)':<{width}}  latency")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1000:8.3f} ms")


if __name__ == "__main__":
    main()
