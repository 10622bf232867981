"""Our TSO super-segments through a real kernel router onto a lossy wire.

    our stack ── TUN (offload) ── namespace A (forwarding) ── TUN "wire" ── relay in
    this process (drops 2% each way) ── TUN "wire" ── namespace B (kernel socket)

The stack hands its TUN super-segments (``tx_gso``) with partial checksums; router A
cuts them to the wire MTU in software (the wire TUN has no offloads) and completes
every checksum, so the relay sees ordinary MTU-sized packets and drops single ones
out of super-segments. B's kernel SACKs the holes; our retransmissions fill them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from tests.netns import NetNS, NetNSFactory, tun_name, ula_prefix
from trio_tcp6.links.tun import TunLink, open_tun
from trio_tcp6.wire.tcp import verify_tcp_checksum

from .conftest import TunSetup, kernel_peer, needs_kernel, send_pattern, tun_stack, wait_line


@attrs.define
class Wire:
    b_address: str
    dropped: list[int] = attrs.Factory(lambda: [0, 0])
    forwarded: list[int] = attrs.Factory(lambda: [0, 0])
    biggest: list[int] = attrs.Factory(lambda: [0, 0])
    bad_checksums: int = 0


def _tcp_checksum_ok(p: bytes) -> bool:
    if len(p) < 60 or p[6] != 6:
        return True
    return verify_tcp_checksum(memoryview(p)[40:], p[8:24], p[24:40])


@asynccontextmanager
async def lossy_wire(
    a: NetNS, b: NetNS, t: TunSetup, loss: float, seed: int
) -> AsyncIterator[Wire]:
    prefix = ula_prefix()
    async with (
        open_tun(tun_name(), netns=a.name, offload=False) as wa,
        open_tun(tun_name(), netns=b.name, offload=False) as wb,
        trio.open_nursery() as nursery,
    ):
        a.configure_tun(wa.name, prefix[1])
        b.configure_tun(wb.name, prefix[2])
        b.ip("-6", "route", "add", str(t.prefix), "dev", wb.name)
        a.sysctl("net.ipv6.conf.all.forwarding", 1)
        wire = Wire(str(prefix[2]))
        rng = random.Random(seed)

        async def relay(src: TunLink, dst: TunLink, i: int) -> None:
            while True:
                for p in await src.receive_batch():
                    wire.biggest[i] = max(wire.biggest[i], len(p))
                    if not _tcp_checksum_ok(p):
                        wire.bad_checksums += 1
                    if rng.random() < loss:
                        wire.dropped[i] += 1
                        continue
                    wire.forwarded[i] += 1
                    await dst.send(p)

        nursery.start_soon(relay, wa, wb, 0)
        nursery.start_soon(relay, wb, wa, 1)
        try:
            yield wire
        finally:
            nursery.cancel_scope.cancel()


@needs_kernel
async def test_super_segments_through_a_router_onto_a_lossy_wire(
    netns_factory: NetNSFactory,
) -> None:
    a, b = netns_factory(), netns_factory()
    size = 30_000_000
    async with tun_stack(a, offload=True) as t, lossy_wire(a, b, t, 0.02, 7) as wire:
        assert t.tun.offload and t.tun.checksum_offload
        peer = kernel_peer(b, "listen", wire.b_address, 6101, "sink")
        flow = await t.stack.open_tcp_stream(wire.b_address, 6101)
        data = random.Random(61).randbytes(size)
        await send_pattern(flow, data)
        await flow.send_eof()
        line = await wait_line(peer, "RECEIVED", 180)
        assert line == f"RECEIVED {size} {hashlib.sha256(data).hexdigest()}"
        link = t.tun.stats()
        stats = t.stack.stats()
        assert link["tx_gso"] > 0  # super-segments went to router A ...
        assert wire.biggest[0] <= 1500  # ... which cut them to the wire MTU
        assert wire.bad_checksums == 0  # and completed our partial checksums
        assert wire.dropped[0] > 100 and wire.dropped[1] > 10
        assert stats["retransmits"] > 0
        assert stats["drop_bad_checksum"] == 0
        await flow.aclose()
