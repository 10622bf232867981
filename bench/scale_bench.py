"""Scale: memory per idle connection, and fairness of concurrent bulk flows.

    python bench/scale_bench.py [--connections 10000] [--flows 1,10,100] [--seconds 3]

Both parts run two direct stacks over one VirtualNetwork in real time (no MockClock).

* **Memory per idle connection**: ``--connections`` established connections from
  stack A to a listener on stack B, all accepted and idle (no data in flight, no
  timer but the keepalive-free idle state). Measured twice: the growth of the
  process's resident set size (RSS, from ``/proc/self/statm``; includes allocator
  slack and trio's own structures) and, in a second run, the growth of what
  ``tracemalloc`` sees (Python allocations only), broken down by where the memory was
  allocated: the engine (``trio_tcp6/tcp``), the flow and stack glue
  (``trio_tcp6/runtime``), trio (tasks, channels, parking lots) and the rest (in the
  compiled build the engine's objects are made by native code, which has no Python
  frame: they count where the runtime called the engine). Each
  figure is per connection *pair* divided by two, i.e. per connection end (one
  engine + one flow + its two tasks + its inbox channel).
* **Fairness**: ``N`` concurrent bulk flows from A to B (each writer loops
  ``send_all`` of 64 KiB; each reader counts what it receives). After every flow is
  connected the counts are reset and the flows run for ``--seconds``. Printed:
  Jain's fairness index of the per-flow byte counts (1.0 = perfectly equal shares,
  1/N = one flow got everything), the total goodput, the smallest and largest
  share, the network's inbound-queue overflow drops (``dropped_rx_overflow``: packets
  the simulator threw away because the receiving host had not read its queue yet)
  and the senders' retransmissions.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections import Counter

import trio

import trio_tcp6 as tcp6

A = "fd00::1"
B = "fd00::2"
CHUNK = bytes(1 << 16)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def jain(xs: list[int]) -> float:
    """Jain's fairness index: (sum x)^2 / (n * sum x^2)."""
    total = sum(xs)
    squares = sum(x * x for x in xs)
    return (total * total) / (len(xs) * squares) if squares else 0.0


def _where(filename: str) -> str:
    if "attrs generated" in filename:
        return "attrs records (engine and config)"
    if "trio_tcp6/tcp/" in filename or "trio_tcp6/wire/" in filename:
        return "engine (trio_tcp6/tcp, wire)"
    if "trio_tcp6/" in filename:
        return "flow + stack (trio_tcp6/runtime, alarm)"
    if "/trio/" in filename:
        return "trio (tasks, channel, parking lots)"
    return f"other ({os.path.basename(filename)})"


async def idle_connections(count: int, trace: bool) -> tuple[int, Counter[str]]:
    """Open ``count`` idle connections; return (bytes grown, tracemalloc breakdown)."""
    config = tcp6.TCPConfig(max_connections=count + 16, syn_backlog=4096)
    net = tcp6.VirtualNetwork()
    async with (
        tcp6.open_stack(net.attach(A), A, config=config) as sa,
        tcp6.open_stack(net.attach(B), B, config=config) as sb,
    ):
        listener = await sb.open_tcp_listener(0, backlog=4096)
        client_ends: list[object] = []
        server_ends: list[object] = []
        # Warm up once (first-use caches, code objects) before the baseline.
        warm = await sa.open_tcp_stream(B, listener.port)
        warm_server = await listener.accept()
        await trio.sleep(0.05)
        gc.collect()
        if trace:
            tracemalloc.start()
            before_snap = tracemalloc.take_snapshot()
        before = rss_bytes()

        async def accept_all() -> None:
            while len(server_ends) < count:
                server_ends.append(await listener.accept())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_all)
            for _ in range(count):
                client_ends.append(await sa.open_tcp_stream(B, listener.port))
        # Let the last ACKs and delayed ACKs settle, and let every sender's sleep end
        # once at its handshake's stale RTO deadline (the initial RTO, 1 s, after its
        # SYN): from then on an idle sender sleeps without a deadline (no cancel scope).
        await trio.sleep(1.5)
        gc.collect()
        breakdown: Counter[str] = Counter()
        if trace:
            after_snap = tracemalloc.take_snapshot()
            grown = sum(s.size_diff for s in after_snap.compare_to(before_snap, "filename"))
            for stat in after_snap.compare_to(before_snap, "filename"):
                breakdown[_where(stat.traceback[0].filename)] += stat.size_diff
            tracemalloc.stop()
        else:
            grown = rss_bytes() - before
        assert len(sa.flows) >= count and len(sb.flows) >= count
        client_ends.clear()
        server_ends.clear()
        del warm, warm_server
        return grown, breakdown


async def fairness(flows: int, seconds: float) -> dict[str, float]:
    config = tcp6.TCPConfig(max_connections=flows + 16)
    net = tcp6.VirtualNetwork()
    received = [0] * flows
    async with (
        tcp6.open_stack(net.attach(A), A, config=config) as sa,
        tcp6.open_stack(net.attach(B), B, config=config) as sb,
    ):
        listener = await sb.open_tcp_listener(0, backlog=max(128, flows))
        servers = []
        clients = []
        for _ in range(flows):
            clients.append(await sa.open_tcp_stream(B, listener.port))
            servers.append(await listener.accept())

        async def write(stream: trio.abc.Stream) -> None:
            while True:
                await stream.send_all(CHUNK)

        async def read(i: int, stream: trio.abc.Stream) -> None:
            while True:
                data = await stream.receive_some(1 << 18)
                if not data:
                    return
                received[i] += len(data)

        base = net.stats()
        base_a = sa.stats()
        async with trio.open_nursery() as nursery:
            for i in range(flows):
                nursery.start_soon(write, clients[i])
                nursery.start_soon(read, i, servers[i])
            start = time.perf_counter()
            for i in range(flows):
                received[i] = 0
            await trio.sleep(seconds)
            shares = list(received)
            elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
        stats = net.stats()
        stats_a = sa.stats()
        for s in clients + servers:
            await s.aclose()
    total = sum(shares)
    return {
        "jain": jain(shares),
        "mbps": total * 8 / elapsed / 1e6,
        "min": min(shares) / max(1, total) * flows,
        "max": max(shares) / max(1, total) * flows,
        "rx_overflow": stats["dropped_rx_overflow"] - base["dropped_rx_overflow"],
        "retransmits": stats_a.get("retransmits", 0) - base_a.get("retransmits", 0),
    }


async def main(connections: int, flow_counts: list[int], seconds: float) -> None:
    if connections:
        print(f"memory per idle established connection end, {connections} connections")
        grown, _ = await idle_connections(connections, trace=False)
        print(
            f"  RSS growth per end          {grown / (2 * connections) / 1024:7.2f} KiB"
            "   (process resident set growth / (2 x connections))"
        )
        grown, breakdown = await idle_connections(connections, trace=True)
        print(
            f"  tracemalloc per end         {grown / (2 * connections) / 1024:7.2f} KiB"
            "   (Python allocations / (2 x connections))"
        )
        for where, size in breakdown.most_common():
            print(f"    {where:40s} {size / (2 * connections) / 1024:7.2f} KiB")
    for n in flow_counts:
        r = await fairness(n, seconds)
        print(
            f"{n:4d} concurrent flows, {seconds:.0f} s: Jain {r['jain']:.3f}  "
            f"total {r['mbps']:7.1f} Mbit/s  share min {r['min']:.2f} max {r['max']:.2f} "
            f"(x fair share)  rx-overflow drops {r['rx_overflow']:.0f}  "
            f"retransmits {r['retransmits']:.0f}"
        )
    print(
        "Jain's index: 1.0 = equal per-flow bytes, 1/N = one flow took all; "
        "rx-overflow drops: packets the simulator dropped at a host's full inbound queue"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--flows", default="1,10,100")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    trio.run(main, args.connections, [int(x) for x in args.flows.split(",") if x], args.seconds)
