"""Benchmarks: trio_tcp6's direct stack over a VirtualNetwork vs trio's SocketStream on ::1.

Prints, for each workload, the figure for the kernel (trio SocketStream over the
loopback interface) and for our stack, measured in the same run, and the ratio.

    python bench/stack_bench.py [--quick] [--repeat N] [--deterministic] [--no-coalesce]
        [--no-fast-path]

Workloads: bulk transfer (MTU 65535 and 1500), 1-byte request/response round trips,
and connections per second (connect + 1-byte exchange + close). Real time throughout
(no MockClock): this measures CPU cost, which is what bounds a userspace stack.

Our bulk figures come twice: with checksum offload (the VirtualNetwork default: like
Linux's loopback, no TCP checksum is computed or verified on the way) and without
(``VirtualNetwork(checksum_offload=False)``: every packet checksummed and verified,
as over a real wire). ``--repeat N`` keeps the best of N runs of every figure (the
machine's noise only ever makes a run slower) and prints the range of the N runs
after each line (kernel, then ours, in the row's unit). ``--no-coalesce`` and
``--no-fast-path`` switch receive coalescing (``trio_tcp6.tcp.coalesce.ENABLED``) and
header prediction (``trio_tcp6.tcp.arrival.FAST_PATH``) off, to see what each is worth.

The ``cpu`` column is the ratio with every figure scaled to the process's CPU time
(user + system) instead of wall-clock time: on a shared machine the time spent
waiting for a CPU drops out (so does the kernel's softirq work done in other
threads, which flatters the kernel). The last lines give the engine alone (two
connections back to back, no runtime, no link): CPU time per MSS-sized data segment,
both ends together, segment by segment and with each flight delivered as one burst
(coalesced). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import trio

import trio_tcp6 as tcp6
from trio_tcp6.tcp.connection import Connection

try:  # (absent from older trees: this file also measures them, for comparison)
    from trio_tcp6.tcp import arrival, coalesce
except ImportError:  # pragma: no cover
    arrival = coalesce = None  # type: ignore[assignment]

CHUNK = 65536


# -- kernel baseline: trio SocketStream over ::1 ---------------------------------------
async def _kernel_pair() -> tuple[trio.abc.Stream, trio.abc.Stream, trio.SocketListener]:
    listeners = await trio.open_tcp_listeners(0, host="::1")
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream("::1", port)
    server = await listener.accept()
    return client, server, listener


async def _bulk(sender: trio.abc.Stream, receiver: trio.abc.Stream, nbytes: int) -> float:
    payload = b"x" * CHUNK

    async def send() -> None:
        left = nbytes
        while left > 0:
            n = min(left, CHUNK)
            await sender.send_all(payload[:n] if n < CHUNK else payload)
            left -= n

    async def receive() -> None:
        got = 0
        while got < nbytes:
            data = await receiver.receive_some(CHUNK * 4)
            if not data:
                raise RuntimeError("early EOF")
            got += len(data)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(receive)
    return time.perf_counter() - start


async def _pingpong(client: trio.abc.Stream, server: trio.abc.Stream, rounds: int) -> list[float]:
    async def echo() -> None:
        for _ in range(rounds):
            data = await server.receive_some(1)
            await server.send_all(data)

    samples: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        for _ in range(rounds):
            t0 = time.perf_counter()
            await client.send_all(b"!")
            await client.receive_some(1)
            samples.append(time.perf_counter() - t0)
    return samples


def _fmt_rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes * 8 / seconds / 1e6:9.1f} Mbit/s"


class Row:
    def __init__(self, name: str, unit: str, higher_is_better: bool) -> None:
        self.name, self.unit, self.higher = name, unit, higher_is_better
        self.kernel: float | None = None
        self.ours: float | None = None
        #: The same figures per CPU second instead of per wall-clock second.
        self.kernel_cpu: float | None = None
        self.ours_cpu: float | None = None
        #: The worst of the repeated runs (the best is ``kernel``/``ours``).
        self.kernel_worst: float | None = None
        self.ours_worst: float | None = None

    @staticmethod
    def spread(best: float | None, worst: float | None) -> str:
        if best is None or worst is None:
            return "n/a"
        return f"{min(best, worst):.1f}-{max(best, worst):.1f}"

    def ratio(self, kernel: float | None, ours: float | None) -> str:
        if kernel and ours:
            return f"{ours / kernel if self.higher else kernel / ours:7.2f}x"
        return f"{'':>8}"

    def line(self) -> str:
        k = f"{self.kernel:12.1f}" if self.kernel is not None else f"{'n/a':>12}"
        o = f"{self.ours:12.1f}" if self.ours is not None else f"{'n/a':>12}"
        r = self.ratio(self.kernel, self.ours)
        rc = self.ratio(self.kernel_cpu, self.ours_cpu)
        line = f"{self.name:<34}{k}{o} {r} {rc}  {self.unit}"
        if self.kernel_worst != self.kernel or self.ours_worst != self.ours:
            kernel = self.spread(self.kernel, self.kernel_worst)
            line += f"; runs: kernel {kernel}, ours {self.spread(self.ours, self.ours_worst)}"
        return line


async def kernel_bulk(nbytes: int) -> float:
    client, server, listener = await _kernel_pair()
    try:
        return nbytes / await _bulk(client, server, nbytes)
    finally:
        await client.aclose()
        await server.aclose()
        await listener.aclose()


async def kernel_rr(rounds: int) -> float:
    client, server, listener = await _kernel_pair()
    try:
        samples = await _pingpong(client, server, rounds)
        return statistics.median(samples) * 1e6
    finally:
        await client.aclose()
        await server.aclose()
        await listener.aclose()


async def kernel_cps(count: int) -> float:
    listeners = await trio.open_tcp_listeners(0, host="::1")
    port = listeners[0].socket.getsockname()[1]

    async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        for _ in range(count):
            s = await listeners[0].accept()
            data = await s.receive_some(1)
            await s.send_all(data)
            await s.aclose()

    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        start = time.perf_counter()
        for _ in range(count):
            c = await trio.open_tcp_stream("::1", port)
            await c.send_all(b"?")
            await c.receive_some(1)
            await c.aclose()
        elapsed = time.perf_counter() - start
    await listeners[0].aclose()
    return count / elapsed


# -- our stack over a VirtualNetwork -----------------------------------------------------
A = ipaddress.IPv6Address("fd00::1")
B = ipaddress.IPv6Address("fd00::2")


#: ``--deterministic``: the networks release each instant's packets in canonical order.
DETERMINISTIC = False


async def _with_stacks(
    mtu: int,
    body: Callable[[tcp6.Stack, tcp6.Stack], Awaitable[float]],  # type: ignore[name-defined]
    offload: bool = True,
) -> float:
    net = tcp6.VirtualNetwork(mtu=mtu, checksum_offload=offload, deterministic=DETERMINISTIC)
    config = tcp6.TCPConfig(send_buffer=4 << 20, receive_buffer=4 << 20)
    async with (
        tcp6.open_stack(net.attach(A), A, config=config) as sa,
        tcp6.open_stack(net.attach(B), B, config=config) as sb,
    ):
        return await body(sa, sb)


async def _stack_pair(sa: object, sb: object) -> tuple[trio.abc.Stream, trio.abc.Stream, object]:
    listener = await sb.open_tcp_listener(0)  # type: ignore[attr-defined]
    client = await sa.open_tcp_stream(B, listener.port)  # type: ignore[attr-defined]
    server = await listener.accept()
    return client, server, listener


async def stack_bulk(mtu: int, nbytes: int, offload: bool = True) -> float:
    async def body(sa: object, sb: object) -> float:
        client, server, listener = await _stack_pair(sa, sb)
        rate = nbytes / await _bulk(client, server, nbytes)
        await client.aclose()
        await server.aclose()
        await listener.aclose()  # type: ignore[attr-defined]
        return rate

    return await _with_stacks(mtu, body, offload)


async def stack_rr(rounds: int) -> float:
    async def body(sa: object, sb: object) -> float:
        client, server, listener = await _stack_pair(sa, sb)
        samples = await _pingpong(client, server, rounds)
        await client.aclose()
        await server.aclose()
        await listener.aclose()  # type: ignore[attr-defined]
        return statistics.median(samples) * 1e6

    return await _with_stacks(1500, body)


async def stack_cps(count: int) -> float:
    async def body(sa: object, sb: object) -> float:
        listener = await sb.open_tcp_listener(0)  # type: ignore[attr-defined]

        async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            for _ in range(count):
                s = await listener.accept()
                data = await s.receive_some(1)
                await s.send_all(data)
                await s.aclose()

        async with trio.open_nursery() as nursery:
            await nursery.start(serve)
            start = time.perf_counter()
            for _ in range(count):
                c = await sa.open_tcp_stream(B, listener.port)  # type: ignore[attr-defined]
                await c.send_all(b"?")
                await c.receive_some(1)
                await c.aclose()
            elapsed = time.perf_counter() - start
        await listener.aclose()
        return count / elapsed

    return await _with_stacks(1500, body)


def engine_cost(mss: int, total: int, bursts: bool) -> float:
    """CPU seconds per data segment for the engine alone, both ends: ``a`` sends
    ``total`` bytes to ``b``; each side's output is delivered to the other as one
    burst (``on_segments``) or segment by segment (``on_segment``)."""
    cfg = tcp6.TCPConfig(send_buffer=4 << 20, receive_buffer=4 << 20)
    now = 0.0
    a = Connection.connect(cfg, local_port=1, remote_port=2, iss=1, mss=mss, now=now)
    b = Connection.accept(cfg, a.take_segments()[0], iss=99, mss=mss, now=now)
    for seg in b.take_segments():
        a.on_segment(seg, now)
    for seg in a.take_segments():
        b.on_segment(seg, now)
    chunk = memoryview(bytes(1 << 20))
    sent = received = segments = 0
    t0 = time.process_time()
    while received < total:
        now += 0.0001
        while sent < total and a.send_space:
            sent += a.send(chunk[: min(a.send_space, total - sent)], now)
        segs = a.take_segments()
        a.take_events()
        segments += len(segs)
        if bursts and hasattr(b, "on_segments"):
            b.on_segments(segs, now)
        else:
            for seg in segs:
                b.on_segment(seg, now)
        received += len(b.receive(1 << 30, now))
        deadline = b.next_deadline
        if deadline is not None and deadline <= now:
            b.on_timer(now)
        b.take_events()
        acks = b.take_segments()
        if bursts and hasattr(a, "on_segments"):
            a.on_segments(acks, now)
        else:
            for seg in acks:
                a.on_segment(seg, now)
    return (time.process_time() - t0) / segments


async def _best(
    fn: Callable[[], Awaitable[float]], repeat: int, higher: bool
) -> tuple[float, float, float]:
    """The best of ``repeat`` runs of ``fn``, the best of the same figure scaled to
    CPU time (the process's user + system time instead of wall-clock time: on a
    shared machine, time spent waiting for a CPU drops out), and the worst run."""
    results = []
    cpu_results = []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        figure = await fn()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        results.append(figure)
        scale = wall / cpu if cpu > 0 else 1.0
        cpu_results.append(figure * scale if higher else figure / scale)
    pick, worst = (max, min) if higher else (min, max)
    return pick(results), pick(cpu_results), worst(results)


async def main(quick: bool, repeat: int) -> None:
    mb = 1 << 20
    bulk_bytes = (16 if quick else 64) * mb
    rounds = 500 if quick else 2000
    conns = 100 if quick else 300
    rows = {
        "bulk65535": Row("bulk, MTU 65535 (MB/s)", "MB/s; ratio ours/kernel", True),
        "bulk65535_nocsum": Row("  same, no checksum offload", "MB/s; every checksum done", True),
        "bulk1500": Row("bulk, MTU 1500 (MB/s)", "MB/s; ratio ours/kernel", True),
        "bulk1500_nocsum": Row("  same, no checksum offload", "MB/s; every checksum done", True),
        "rr": Row("1-byte request/response (µs)", "µs median RTT; ratio kernel/ours", False),
        "cps": Row("connections per second", "conn/s; ratio ours/kernel", True),
    }
    kernel_figures = await _best(lambda: kernel_bulk(bulk_bytes), repeat, True)
    for key in ("bulk65535", "bulk65535_nocsum", "bulk1500", "bulk1500_nocsum"):
        rows[key].kernel, rows[key].kernel_cpu, rows[key].kernel_worst = (
            figure / mb for figure in kernel_figures
        )
    rr, cps = rows["rr"], rows["cps"]
    rr.kernel, rr.kernel_cpu, rr.kernel_worst = await _best(
        lambda: kernel_rr(rounds), repeat, False
    )
    cps.kernel, cps.kernel_cpu, cps.kernel_worst = await _best(
        lambda: kernel_cps(conns), repeat, True
    )
    for mtu, key, offload in (
        (65535, "bulk65535", True),
        (65535, "bulk65535_nocsum", False),
        (1500, "bulk1500", True),
        (1500, "bulk1500_nocsum", False),
    ):
        nbytes = bulk_bytes // (1 if mtu > 9000 else 4)
        try:
            figures = await _best(
                lambda: stack_bulk(mtu, nbytes, offload),  # noqa: B023
                repeat,
                True,
            )
            rows[key].ours, rows[key].ours_cpu, rows[key].ours_worst = (f / mb for f in figures)
        except Exception as exc:  # report and keep going: a benchmark, not a test
            print(f"{key}: failed: {exc!r}", file=sys.stderr)
    for key, fn, higher in (
        ("rr", lambda: stack_rr(rounds), False),
        ("cps", lambda: stack_cps(conns), True),
    ):
        try:
            rows[key].ours, rows[key].ours_cpu, rows[key].ours_worst = await _best(
                fn, repeat, higher
            )
        except Exception as exc:
            print(f"{key}: failed: {exc!r}", file=sys.stderr)
    print(f"python {sys.version.split()[0]}, trio {trio.__version__}, best of {repeat}")
    print(f"{'workload':<34}{'kernel ::1':>12}{'trio_tcp6':>12} {'ratio':>8} {'cpu':>8}")
    for row in rows.values():
        print(row.line())
    total = (8 if quick else 32) * mb
    for label, bursts in (("segment by segment", False), ("bursts, coalesced", True)):
        cost = min(engine_cost(1440, total, bursts) for _ in range(repeat))
        print(f"engine only, µs CPU per 1440-byte segment, {label:<20}{cost * 1e6:8.1f}")
    if coalesce is not None:
        print(f"(coalescing {'on' if coalesce.ENABLED else 'off'}, header prediction "
              f"{'on' if arrival.FAST_PATH else 'off'})")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--repeat", type=int, default=1, help="keep the best of N runs")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="VirtualNetwork(deterministic=True): the cost of exact replay",
    )
    parser.add_argument("--no-coalesce", action="store_true", help="receive coalescing off")
    parser.add_argument("--no-fast-path", action="store_true", help="header prediction off")
    args = parser.parse_args()
    DETERMINISTIC = args.deterministic
    if coalesce is not None:
        coalesce.ENABLED = not args.no_coalesce
        arrival.FAST_PATH = not args.no_fast_path
    trio.run(main, args.quick, max(1, args.repeat))
