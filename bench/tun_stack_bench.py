"""Bulk TCP throughput of the whole stack against the Linux kernel over a TUN device,
beside the kernel's own loopback figure from the same run (needs root).

    python bench/tun_stack_bench.py [--megabytes 200] [--mtu 1500] [--repeat 1]
                                    [--direction both|down|up] [--no-plain]

Everything runs in a private network namespace (deleted at the end): the kernel side
of the TUN is ``fd00:7463:70:bf::1`` (a plain-socket sender or sink in a Python
process in the namespace), our stack is ``::2`` in this process. Figures:

* ``kernel loopback``: trio ``SocketStream`` over ``::1`` (both ends in this process,
  one trio task each): the kernel's TCP with the same per-call Python overhead.
* ``kernel -> stack``: the kernel sends, our stack receives (``receive_some`` of
  256 KiB); timed from the connect to our EOF.
* ``stack -> kernel``: our stack sends (``send_all`` of 256 KiB), the kernel sinks;
  timed from the connect to the kernel's EOF.

each at wire MTU ``--mtu``, without offloads (``open_tun(offload=False)``) and as a
user calls it (``open_tun()``: offloads on by default, the kernel hands the stack TSO
super-segments with partial checksums; the stack may hand the link super-segments).
Each figure is followed by its ratio to the kernel loopback figure of the same run
and by this process's CPU time per MB (user and system: the kernel's work in our
reads and writes counts), which other load on the machine disturbs less; with
``--repeat N`` each figure is the best of N runs and ends with the range of the N.
The link counters show whether super-segments were actually used in each direction
(``rx_gso``, ``tx_gso``).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

import trio_tcp6 as tcp6
from trio_tcp6.links.tun import (
    TunLink,
    open_tun,
)
from trio_tcp6.runtime import DirectStack

KERNEL = "fd00:7463:70:bf::1"
US = "fd00:7463:70:bf::2"
CHUNK = 1 << 18

PEER = """
import socket, sys, time
mode, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
total = 0
if mode == "source":
    block = memoryview(bytes(1 << 20))
    while total < n:
        k = min(len(block), n - total)
        c.sendall(block[:k])
        total += k
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
else:
    buf = bytearray(1 << 20)
    while True:
        k = c.recv_into(buf)
        if not k:
            break
        total += k
    c.shutdown(socket.SHUT_WR)
print("DONE", total, flush=True)
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes * 8 / seconds / 1e9:6.2f} Gbit/s  ({nbytes / seconds / 1e6:7.1f} MB/s)"


async def loopback(nbytes: int) -> float:
    """Seconds to move ``nbytes`` over the kernel's TCP on ::1, trio streams."""
    done = trio.Event()
    result: list[float] = []

    async def sink(stream: trio.SocketStream) -> None:
        total = 0
        while total < nbytes:
            data = await stream.receive_some(CHUNK)
            if not data:
                break
            total += len(data)
        result.append(time.perf_counter())
        done.set()

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(functools.partial(trio.serve_tcp, sink, 0, host="::1"))
        port = listener.socket.getsockname()[1]
        block = memoryview(bytes(CHUNK))
        start = time.perf_counter()
        stream = await trio.open_tcp_stream("::1", port)
        sent = 0
        while sent < nbytes:
            k = min(CHUNK, nbytes - sent)
            await stream.send_all(block[:k])
            sent += k
        await done.wait()
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return result[0] - start


class Bench:
    def __init__(self, ns: str, nbytes: int, mtu: int) -> None:
        self.ns = ns
        self.nbytes = nbytes
        self.mtu = mtu
        self.port = 7000

    @asynccontextmanager
    async def stack(self, offload: bool | None) -> AsyncIterator[tuple[TunLink, DirectStack]]:
        """``offload=None``: ``open_tun()``'s default, as a user calls it."""
        name = f"tsb{os.getpid() % 100000}"
        kwargs = {} if offload is None else {"offload": offload}
        async with open_tun(name, netns=self.ns, mtu=self.mtu, **kwargs) as link:
            sh("ip", "-n", self.ns, "addr", "add", f"{KERNEL}/64", "dev", name, "nodad")
            sh("ip", "-n", self.ns, "link", "set", name, "up")
            for _ in range(500):  # the address is usable once addrconf has run
                out = subprocess.run(
                    ["ip", "-n", self.ns, "-6", "route", "show", "table", "local"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                if f"local {KERNEL} " in out:
                    break
                await trio.sleep(0.01)
            async with tcp6.open_stack(link, US) as stack:
                yield link, stack

    def peer(self, mode: str) -> tuple[subprocess.Popen[str], int]:
        self.port += 1
        argv = ["ip", "netns", "exec", self.ns, sys.executable, "-u", "-c", PEER]
        argv += [mode, KERNEL, str(self.port), str(self.nbytes)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("LISTENING")
        return proc, self.port

    async def kernel_to_stack(self, stack: DirectStack) -> tuple[float, float]:
        proc, port = self.peer("source")
        try:
            cpu = time.process_time()
            start = time.perf_counter()
            flow = await stack.open_tcp_stream(KERNEL, port)
            total = 0
            while data := await flow.receive_some(CHUNK):
                total += len(data)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            await flow.aclose()
            assert total == self.nbytes, (total, self.nbytes)
        finally:
            await trio.to_thread.run_sync(proc.wait, 30)
        return elapsed, cpu

    async def stack_to_kernel(self, stack: DirectStack) -> tuple[float, float]:
        proc, port = self.peer("sink")
        assert proc.stdout is not None
        try:
            block = memoryview(bytes(CHUNK))
            cpu = time.process_time()
            start = time.perf_counter()
            flow = await stack.open_tcp_stream(KERNEL, port)
            sent = 0
            while sent < self.nbytes:
                k = min(CHUNK, self.nbytes - sent)
                await flow.send_all(block[:k])
                sent += k
            await flow.send_eof()
            assert await flow.receive_some() == b""  # the sink closes after our EOF
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            await flow.aclose()
            line = await trio.to_thread.run_sync(proc.stdout.readline)
            assert line.split() == ["DONE", str(self.nbytes)], line
        finally:
            await trio.to_thread.run_sync(proc.wait, 30)
        return elapsed, cpu


def spread(nbytes: int, times: list[float]) -> str:
    """The range of the repeated runs' rates in MB/s (nothing for a single run)."""
    if len(times) < 2:
        return ""
    return f"  runs {nbytes / max(times) / 1e6:.0f}-{nbytes / min(times) / 1e6:.0f} MB/s"


def cpu_per_mb(runs: list[tuple[float, float]], nbytes: int) -> str:
    """This process's CPU time (user + system, the kernel's work in our system calls
    included) per MB moved, least of the runs: less sensitive than the wall-clock
    rate to other load on the machine."""
    return f"cpu {min(c for _, c in runs) / (nbytes / 1e6) * 1e6:5.0f} us/MB"


async def main(megabytes: float, mtu: int, repeat: int, directions: str, plain: bool) -> None:
    nbytes = int(megabytes * 1e6)
    ns = f"tsbench-{os.getpid()}"
    print(f"bulk transfer of {nbytes / 1e6:.0f} MB, TUN MTU {mtu}, best of {repeat}")
    loops = [await loopback(nbytes) for _ in range(repeat)]
    best = min(loops)
    print(f"kernel loopback (trio SocketStream, ::1)      {rate(nbytes, best)}"
          f"{spread(nbytes, loops)}")  # fmt: skip
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        bench = Bench(ns, nbytes, mtu)
        variants: list[tuple[bool | None, str]] = [(None, "open_tun()    ")]
        if plain:
            variants.insert(0, (False, "offload=False "))
        for offload, label in variants:
            async with bench.stack(offload) as (link, stack):
                if offload is None and not link.offload:
                    print("(the kernel refused TUNSETOFFLOAD: open_tun() figures are plain)")
                if "down" in directions:
                    runs = [await bench.kernel_to_stack(stack) for _ in range(repeat)]
                    down = min(e for e, _ in runs)
                    print(
                        f"kernel -> stack over TUN, {label}  {rate(nbytes, down)}"
                        f"  {best / down:.3f}x kernel  {cpu_per_mb(runs, nbytes)}"
                        f"{spread(nbytes, [e for e, _ in runs])}"
                    )
                if "up" in directions:
                    runs = [await bench.stack_to_kernel(stack) for _ in range(repeat)]
                    up = min(e for e, _ in runs)
                    print(
                        f"stack -> kernel over TUN, {label}  {rate(nbytes, up)}"
                        f"  {best / up:.3f}x kernel  {cpu_per_mb(runs, nbytes)}"
                        f"{spread(nbytes, [e for e, _ in runs])}"
                    )
                s, ls = stack.stats(), link.stats()
                print(
                    f"    link rx_gso={ls['rx_gso']} tx_gso={ls['tx_gso']} "
                    f"rx_packets={ls['rx_packets']} tx_packets={ls['tx_packets']} "
                    f"rx_waits={ls.get('rx_waits')} rx_empty_reads={ls.get('rx_empty_reads')}; "
                    f"stack retransmits={s['retransmits']} "
                    f"bad_checksum={s['drop_bad_checksum']}"
                )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0)
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--direction",
        choices=("both", "down", "up"),
        default="both",
        help="down: kernel -> stack only; up: stack -> kernel only (e.g. to profile one)",
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the offload=False figures")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("tun_stack_bench needs root (CAP_NET_ADMIN and network namespaces)")
    directions = "down up" if args.direction == "both" else args.direction
    trio.run(main, args.megabytes, args.mtu, args.repeat, directions, not args.no_plain)
