"""A VirtualNetwork answers packets to unattached addresses as a router would:
ICMPv6 Destination Unreachable, code 3, quoting the packet (RFC 4443 §3.1), never
for an ICMPv6 error, a multicast destination or an unspecified source (§2.4 (e)),
and rate limited (§2.4 (f))."""

from __future__ import annotations

import ipaddress

import trio
import trio.testing

from trio_tcp6.links import VirtualNetwork
from trio_tcp6.wire.icmpv6 import (
    UNREACH_ADDRESS,
    DestinationUnreachable,
    build_icmpv6,
    parse_icmpv6,
)
from trio_tcp6.wire.ipv6 import PROTO_ICMPV6, build_ipv6_header, parse_ipv6

from .test_virtual import A, packet

NOBODY = "2001:db8::99"


def icmp_packet(src: str, dst: str, msg: DestinationUnreachable) -> bytes:
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    body = build_icmpv6(msg, s, d)
    return build_ipv6_header(s, d, PROTO_ICMPV6, len(body)) + body


async def test_unattached_address_is_answered(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a = net.attach(A)
    sent = packet(A, NOBODY, b"hello")
    await a.send(sent)
    reply = parse_ipv6(await a.receive())
    assert reply.src == VirtualNetwork.ROUTER.packed
    assert reply.dst == ipaddress.IPv6Address(A).packed
    msg = parse_icmpv6(reply.payload, reply.src, reply.dst)
    assert msg == DestinationUnreachable(UNREACH_ADDRESS, sent)
    stats = net.stats()
    assert stats["dropped_no_route"] == 1 and stats["icmp_unreachable_sent"] == 1
    # A host that detached is unreachable too (its cached path has no destination).
    b = net.attach(NOBODY)
    await a.send(packet(A, NOBODY))
    assert await b.receive() == packet(A, NOBODY)
    b.close()
    await a.send(packet(A, NOBODY))
    assert a.receive_nowait() is not None
    assert net.stats()["icmp_unreachable_sent"] == 2


async def test_no_answer_where_rfc_4443_forbids_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork()
    a = net.attach(A)
    await a.send(icmp_packet(A, NOBODY, DestinationUnreachable(UNREACH_ADDRESS, b"x" * 48)))
    await a.send(packet(A, "ff02::1"))
    await a.send(packet("::", NOBODY))
    assert a.receive_nowait() is None
    assert net.stats()["icmp_unreachable_sent"] == 0
    assert net.stats()["dropped_no_route"] == 3


async def test_answers_are_rate_limited(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a = net.attach(A, rx_queue=100_000)
    for _ in range(1000):
        a.send_nowait(packet(A, NOBODY))
    assert a.pending() == VirtualNetwork.UNREACHABLE_BURST
    await trio.sleep(1.0)  # refilled: the burst again
    for _ in range(1000):
        a.send_nowait(packet(A, NOBODY))
    assert a.pending() == 2 * VirtualNetwork.UNREACHABLE_BURST
    stats = net.stats()
    assert stats["icmp_unreachable_rate_limited"] == 2000 - 2 * VirtualNetwork.UNREACHABLE_BURST


async def test_unreachable_false_drops_silently() -> None:
    net = VirtualNetwork(unreachable=False)
    a = net.attach(A)
    await a.send(packet(A, NOBODY))
    assert a.receive_nowait() is None
    assert net.stats()["icmp_unreachable_sent"] == 0
