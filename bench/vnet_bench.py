"""VirtualNetwork throughput in real time (not MockClock): packets per second.

    python bench/vnet_bench.py [--seconds 1.0]

* ping-pong: A sends one packet, B answers, A waits for the answer (zero delay).
* bulk one-way: A sends, B drains with receive_batch, for 1500- and 65535-byte
  packets, with send() per packet and with send_batch() of 64 packets.
* bulk through the delay heap (delay=1 ms) and through a rate-limited wire, to show the
  cost of the impaired path.
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_tcp6.links import VirtualLink, VirtualNetwork

A = "2001:db8::1"
B = "2001:db8::2"
MAX_MTU = 40 + 65535


def make_packet(src: str, dst: str, size: int) -> bytes:
    payload = bytes(size - 40)
    return (
        bytes([0x60, 0, 0, 0])
        + len(payload).to_bytes(2, "big")
        + bytes([59, 64])
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


async def ping_pong(seconds: float) -> tuple[int, float]:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    ping, pong = make_packet(A, B, 80), make_packet(B, A, 80)
    count = 0

    async def echo() -> None:
        while True:
            await b.receive()
            await b.send(pong)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(100):
                await a.send(ping)
                await a.receive()
            count += 100
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count, elapsed


async def bulk(
    seconds: float, size: int, batch: int, **impairments: Any
) -> tuple[int, float, dict[str, int]]:
    net = VirtualNetwork(mtu=MAX_MTU, rx_queue=100_000, rx_queue_bytes=1 << 40, **impairments)
    a, b = net.attach(A), net.attach(B)
    pkt = make_packet(A, B, size)
    packets = [pkt] * batch
    received = 0

    async def drain(link: VirtualLink) -> None:
        nonlocal received
        while True:
            received += len(await link.receive_batch())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            if batch == 1:
                for _ in range(64):
                    await a.send(pkt)
            else:
                await a.send_batch(packets)
            if impairments:
                # keep the heap from growing without bound: let time pass for arrivals
                await trio.sleep(0)
        # wait for what is in flight
        while net.stats()["in_flight"]:
            await trio.sleep(0.001)
        await trio.sleep(0.001)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return received, elapsed, net.stats()


def report(name: str, count: int, elapsed: float, size: int | None = None) -> None:
    rate = count / elapsed
    extra = f"  {rate * size * 8 / 1e9:7.2f} Gbit/s" if size else ""
    print(f"{name:<44} {count:>9} pkts  {rate:>10,.0f} pkt/s  {1e6 / rate:6.2f} us/pkt{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    s = args.seconds

    def run(fn: Callable[..., Awaitable[Any]], *a: Any, **kw: Any) -> Any:
        return trio.run(lambda: fn(*a, **kw))

    count, elapsed = run(ping_pong, s)
    print(
        f"{'ping-pong (round trips, 2 packets each)':<44} {count:>9} rtts  "
        f"{count / elapsed:>10,.0f} rtt/s  {1e6 * elapsed / count:6.2f} us/rtt"
    )
    for size in (1500, 65535):
        for batch in (1, 64):
            n, el, _ = run(bulk, s, size, batch)
            form = "send()" if batch == 1 else f"send_batch({batch})"
            report(f"bulk {size} B, {form}", n, el, size)
    n, el, _ = run(bulk, s, 1500, 64, delay=0.001)
    report("bulk 1500 B, send_batch(64), delay=1ms", n, el, 1500)
    n, el, _ = run(bulk, s, 1500, 64, delay=0.001, loss=0.01, jitter=0.0005, seed=1)
    report("bulk 1500 B, batch 64, delay+jitter+loss", n, el, 1500)


if __name__ == "__main__":
    main()
