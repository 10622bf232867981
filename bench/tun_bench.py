"""TUN link throughput against the real kernel, at link level (needs root).

    python bench/tun_bench.py [--seconds 2.0]

Everything runs in a private network namespace (deleted at the end): the kernel side
is ``fd00:7463:70:be::1``, we are ``::2``. No TCP stack is involved: packets are made
by hand with the wire codecs.

* ping-pong: one ICMPv6 echo request, wait for the reply (round trips per second).
* echo burst: ``send_batch`` of 64 echo requests, ``receive_batch`` until all 64
  replies are back (packets per second in each direction).
* download: a kernel TCP sender (``sendall`` of zeros in a loop) to a hand-driven
  receiver that ACKs once per received batch, without and with ``offload=True``
  (TSO6: the kernel hands up super-segments and the link completes checksums).
* upload: we send to a kernel sink, respecting its window, in MTU-sized segments
  and (with offload) in 64 KiB super-segments that the kernel segments.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from trio_tcp6.links.tun import TunLink, open_tun
from trio_tcp6.wire import (
    ACK,
    PROTO_ICMPV6,
    PROTO_TCP,
    RST,
    SYN,
    EchoRequest,
    TCPSegment,
    build_icmpv6,
    build_ipv6,
    build_tcp,
    parse_ipv6,
    parse_tcp,
)

KERNEL = ipaddress.IPv6Address("fd00:7463:70:be::1")
US = ipaddress.IPv6Address("fd00:7463:70:be::2")
K, U = KERNEL.packed, US.packed

SERVER = """
import socket, sys
mode = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3])))
s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
block = bytes(1 << 20)
try:
    if mode == "source":
        while True:
            c.sendall(block)
    else:
        while c.recv(1 << 20):
            pass
except OSError:
    pass
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class Bench:
    def __init__(self, ns: str, seconds: float) -> None:
        self.ns = ns
        self.seconds = seconds
        self.port = 6000

    @asynccontextmanager
    async def link(self, *, offload: bool = False) -> AsyncIterator[TunLink]:
        name = f"tb{os.getpid() % 100000}"
        async with open_tun(name, netns=self.ns, offload=offload) as link:
            sh("ip", "-n", self.ns, "addr", "add", f"{KERNEL}/64", "dev", name, "nodad")
            sh("ip", "-n", self.ns, "link", "set", name, "up")
            yield link

    def server(self, mode: str) -> tuple[subprocess.Popen[str], int]:
        self.port += 1
        argv = ["ip", "netns", "exec", self.ns, sys.executable, "-u", "-c", SERVER]
        argv += [mode, str(KERNEL), str(self.port)]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("LISTENING")
        return proc, self.port

    async def ping_pong(self) -> None:
        async with self.link() as link:
            n = 0
            end = time.perf_counter() + self.seconds
            while time.perf_counter() < end:
                pkt = build_icmpv6(EchoRequest(1, n & 0xFFFF), U, K)
                await link.send(build_ipv6(U, K, PROTO_ICMPV6, pkt))
                while True:
                    p = await link.receive()
                    if p[6] == PROTO_ICMPV6 and p[40] == 129:
                        break
                n += 1
            print(f"ping-pong          {n / self.seconds:10.0f} round trips/s")

    async def burst(self) -> None:
        async with self.link() as link:
            reqs = [
                build_ipv6(U, K, PROTO_ICMPV6, build_icmpv6(EchoRequest(2, i), U, K))
                for i in range(64)
            ]
            n = 0
            end = time.perf_counter() + self.seconds
            while time.perf_counter() < end:
                await link.send_batch(reqs)
                got = 0
                while got < 64:
                    for p in await link.receive_batch():
                        if p[6] == PROTO_ICMPV6 and p[40] == 129:
                            got += 1
                n += 64
            print(f"echo burst x64     {n / self.seconds:10.0f} packets/s each way")

    async def handshake(self, link: TunLink, port: int) -> tuple[int, int]:
        """Returns (kernel's next seq, its window shift)."""
        syn = TCPSegment(40000, port, 1000, 0, SYN, 65535, mss=1440, wscale=9)
        await link.send(build_ipv6(U, K, PROTO_TCP, build_tcp(syn, U, K)))
        while True:
            p = await link.receive()
            if p[6] == PROTO_TCP:
                sa = parse_tcp(memoryview(p)[40:])
                break
        ack = TCPSegment(40000, port, 1001, sa.seq + 1, ACK, 65535)
        await link.send(build_ipv6(U, K, PROTO_TCP, build_tcp(ack, U, K)))
        return sa.seq + 1, sa.wscale or 0

    async def reset(self, link: TunLink, port: int, seq: int) -> None:
        rst = TCPSegment(40000, port, seq, 0, RST, 0)
        await link.send(build_ipv6(U, K, PROTO_TCP, build_tcp(rst, U, K)))

    async def download(self, offload: bool) -> None:
        async with self.link(offload=offload) as link:
            proc, port = self.server("source")
            try:
                rcv, _ = await self.handshake(link, port)
                total = packets = 0
                end = time.perf_counter() + self.seconds
                while time.perf_counter() < end:
                    batch = await link.receive_batch()
                    for p in batch:
                        ip = parse_ipv6(p)
                        if ip.next_header != PROTO_TCP:
                            continue
                        seg = parse_tcp(ip.payload)
                        packets += 1
                        if seg.seq == rcv:
                            rcv = (rcv + len(seg.payload)) & 0xFFFFFFFF
                            total += len(seg.payload)
                    ack = TCPSegment(40000, port, 1001, rcv, ACK, 65535)
                    await link.send(build_ipv6(U, K, PROTO_TCP, build_tcp(ack, U, K)))
                await self.reset(link, port, 1001)
            finally:
                proc.kill()
                proc.wait()
            label = "download offload" if offload else "download plain"
            print(
                f"{label:18} {total / self.seconds / 1e6:10.1f} MB/s "
                f"({packets / self.seconds:.0f} packets/s, "
                f"{total / max(packets, 1):.0f} B/packet)"
            )

    async def upload(self, offload: bool) -> None:
        async with self.link(offload=offload) as link:
            proc, port = self.server("sink")
            try:
                _rcv, shift = await self.handshake(link, port)
                una = nxt = 1001
                wnd = 65535
                chunk = (link.gso_max - 40 - 20) // 1420 * 1420 if offload else link.mtu - 60
                payload = bytes(chunk)
                end = time.perf_counter() + self.seconds
                while time.perf_counter() < end:
                    out: list[bytes] = []
                    while nxt - una + chunk <= wnd and len(out) < 64:
                        seg = TCPSegment(40000, port, nxt, _rcv, ACK, 65535, payload=payload)
                        out.append(build_ipv6(U, K, PROTO_TCP, build_tcp(seg, U, K)))
                        nxt += chunk
                    if out:
                        await link.send_batch(out)
                    for p in await link.receive_batch():
                        ip = parse_ipv6(p)
                        if ip.next_header != PROTO_TCP:
                            continue
                        seg = parse_tcp(ip.payload)
                        if seg.ack > una:
                            una = seg.ack
                        wnd = seg.window << shift
                total = una - 1001
                await self.reset(link, port, nxt)
            finally:
                proc.kill()
                proc.wait()
            label = "upload 64K GSO" if offload else "upload MTU-sized"
            print(f"{label:18} {total / self.seconds / 1e6:10.1f} MB/s (chunk {chunk} B)")


async def main(seconds: float) -> None:
    ns = f"tunbench-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        b = Bench(ns, seconds)
        await b.ping_pong()
        await b.burst()
        await b.download(offload=False)
        await b.download(offload=True)
        await b.upload(offload=False)
        await b.upload(offload=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("tun_bench needs root (CAP_NET_ADMIN and network namespaces)")
    trio.run(main, args.seconds)
