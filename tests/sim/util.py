"""Helpers shared by the simulator tests: raw packets, and a bulk transfer between
two stacks."""

from __future__ import annotations

import ipaddress

import trio

import trio_tcp6 as tcp6
from trio_tcp6.sim import Host
from trio_tcp6.wire.icmpv6 import EchoRequest, build_icmpv6
from trio_tcp6.wire.ipv6 import PROTO_ICMPV6, build_ipv6_header


def echo(src: Host | str, dst: Host | str, *, hop_limit: int = 64, seq: int = 1) -> bytes:
    """An ICMPv6 Echo Request from ``src`` to ``dst`` with ``hop_limit``."""
    s = src.packed if isinstance(src, Host) else ipaddress.IPv6Address(src).packed
    d = dst.packed if isinstance(dst, Host) else ipaddress.IPv6Address(dst).packed
    body = build_icmpv6(EchoRequest(7, seq, b"ping"), s, d)
    return build_ipv6_header(s, d, PROTO_ICMPV6, len(body), hop_limit=hop_limit) + body


def no_next_header(src: Host, dst: Host, size: int, *, hop_limit: int = 64) -> bytes:
    """A packet of ``size`` bytes carrying nothing (next header 59)."""
    payload = bytes(size - 40)
    return build_ipv6_header(src.packed, dst.packed, 59, len(payload), hop_limit=hop_limit) + (
        payload
    )


class Sink:
    """A server that reads everything and counts it, with the virtual time of each
    read (for throughput over a window)."""

    def __init__(self) -> None:
        self.received = 0
        self.samples: list[tuple[float, int]] = []
        self.data = bytearray()
        self.keep = False

    async def __call__(self, stream: trio.abc.Stream) -> None:
        while chunk := await stream.receive_some(1 << 16):
            self.received += len(chunk)
            self.samples.append((trio.current_time(), self.received))
            if self.keep:
                self.data += chunk

    def between(self, start: float, end: float) -> int:
        """Bytes received in the virtual-time window [start, end)."""
        at_start = max((n for t, n in self.samples if t < start), default=0)
        at_end = max((n for t, n in self.samples if t < end), default=0)
        return at_end - at_start


async def bulk(stack: tcp6.Stack, dst: Host, port: int, until: float) -> None:
    """Send as fast as the connection takes it until virtual time ``until``."""
    flow = await stack.open_tcp_stream(dst.address, port)
    chunk = b"x" * (1 << 14)
    while trio.current_time() < until:
        await flow.send_all(chunk)
    await flow.aclose()
