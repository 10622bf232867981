"""Routers: Hop Limit and Time Exceeded (a traceroute finds each router in order),
Destination Unreachable (a connect fails at once), Packet Too Big, echo, RFC 4443
§2.4's rules and rate limit, longest-prefix and static routes."""

from __future__ import annotations

import errno
import itertools

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.sim import Host, Network, Router
from trio_tcp6.wire.icmpv6 import (
    UNREACH_NO_ROUTE,
    DestinationUnreachable,
    EchoReply,
    PacketTooBig,
    TimeExceeded,
    parse_icmpv6,
)
from trio_tcp6.wire.ipv6 import parse_ipv6

from .util import echo, no_next_header


def chain(hops: int, **cable: object) -> tuple[Network, Host, list[Router], Host]:
    """a - r1 - r2 - ... - r<hops> - b, each cable with ``cable``'s knobs."""
    net = Network(seed=1)
    a = net.host("a", "2001:db8:1::a")
    b = net.host("b", "2001:db8:2::b")
    routers = [net.router(f"r{i + 1}") for i in range(hops)]
    nodes = [a, *routers, b]
    for left, right in itertools.pairwise(nodes):
        net.connect(left, right, delay=0.001, **cable)  # type: ignore[arg-type]
    return net, a, routers, b


def drain(host: Host) -> int:
    """How many packets wait for ``host`` (taking them)."""
    n = 0
    while host.link.receive_nowait() is not None:
        n += 1
    return n


def icmp_of(packet: bytes) -> tuple[bytes, object]:
    """(source address, parsed ICMPv6 message, checksum verified)."""
    ip = parse_ipv6(packet)
    return ip.src, parse_icmpv6(ip.payload, ip.src, ip.dst)


async def test_hop_limit_one_is_answered_by_the_first_router(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, routers, b = chain(3)
    sent = echo(a, b, hop_limit=1)
    await a.link.send(sent)
    await trio.sleep(1)
    src, msg = icmp_of(a.link.receive_nowait() or b"")
    assert src == routers[0].packed
    assert msg == TimeExceeded(0, sent)  # code 0, the whole packet quoted
    assert b.link.receive_nowait() is None
    r1 = net.stats()["routers"]["r1"]
    assert r1["hop_limit_exceeded"] == 1 and r1["icmp_sent"] == 1 and r1["forwarded"] == 0


async def test_traceroute_finds_each_router_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, _routers, b = chain(4)
    found = []
    for hop_limit in range(1, 6):
        await a.link.send(echo(a, b, hop_limit=hop_limit, seq=hop_limit))
        await trio.sleep(1)
        reply = a.link.receive_nowait()
        if reply is None:
            arrived = b.link.receive_nowait()
            assert arrived is not None
            assert arrived[7] == hop_limit - 4  # decremented once per router
            found.append("b")
            break
        src, msg = icmp_of(reply)
        assert isinstance(msg, TimeExceeded) and msg.code == 0
        found.append(net.node_by_address(src).name)
    assert found == ["r1", "r2", "r3", "r4", "b"]
    assert [net.stats()["routers"][f"r{i}"]["hop_limit_exceeded"] for i in range(1, 5)] == [
        1,
        1,
        1,
        1,
    ]


async def test_a_router_answers_a_ping(autojump_clock: trio.testing.MockClock) -> None:
    net, a, routers, _b = chain(2)
    await a.link.send(echo(a, routers[1].address.compressed))
    await trio.sleep(1)
    src, msg = icmp_of(a.link.receive_nowait() or b"")
    assert src == routers[1].packed and msg == EchoReply(7, 1, b"ping")
    assert net.stats()["routers"]["r2"]["echo_replies"] == 1


async def test_no_route_is_destination_unreachable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, routers, _b = chain(2)
    sent = echo(a, "2001:db8:99::1")
    await a.link.send(sent)
    await trio.sleep(1)
    src, msg = icmp_of(a.link.receive_nowait() or b"")
    assert src == routers[0].packed
    assert msg == DestinationUnreachable(UNREACH_NO_ROUTE, sent)
    assert net.stats()["routers"]["r1"]["no_route"] == 1


async def test_connect_to_an_unroutable_address_fails_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _net, a, _routers, _b = chain(2)
    async with tcp6.open_stack(a.link, a.address) as stack:
        start = trio.current_time()
        with pytest.raises(tcp6.Unknown) as info:
            await stack.open_tcp_stream("2001:db8:99::1", 80)
        assert info.value.errno == errno.ENETUNREACH
        assert trio.current_time() - start == pytest.approx(0.002)  # one round trip to r1
        assert stack.stats()["icmp_unreachable_aborts"] == 1


async def test_packet_too_big_names_the_next_link_mtu(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = Network()
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r1, r2 = net.router("r1"), net.router("r2")
    net.connect(a, r1)
    net.connect(r1, r2, mtu=1280)
    net.connect(r2, b)
    await a.link.send(no_next_header(a, b, 1280))  # fits exactly
    big = no_next_header(a, b, 1281)
    await a.link.send(big)
    await trio.sleep(1)
    assert len(b.link.receive_nowait() or b"") == 1280
    assert b.link.receive_nowait() is None
    src, msg = icmp_of(a.link.receive_nowait() or b"")
    assert src == r1.packed and isinstance(msg, PacketTooBig)
    assert msg.mtu == 1280 and msg.invoking == big[:1232]  # the quote fits 1280 bytes
    assert net.stats()["routers"]["r1"]["packet_too_big"] == 1
    # A host never sends more than its own cable's MTU: dropped and counted.
    await a.link.send(no_next_header(a, b, 1501))
    assert net.stats()["hosts"]["a"]["dropped_mtu"] == 1


async def test_no_error_about_an_error_nor_for_bad_sources(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, _routers, b = chain(2)
    # An ICMPv6 error with hop limit 1: dropped silently (RFC 4443 §2.4 (e)).
    await a.link.send(echo(a, b, hop_limit=1))
    await trio.sleep(1)
    error = a.link.receive_nowait()
    assert error is not None
    forged = bytearray(error)
    forged[7] = 1
    forged[8:24], forged[24:40] = a.packed, b.packed
    await a.link.send(bytes(forged))
    await a.link.send(echo("::", b, hop_limit=1))  # unspecified source
    await a.link.send(echo("ff02::1", b, hop_limit=1))  # multicast source
    await trio.sleep(1)
    assert a.link.receive_nowait() is None
    r1 = net.stats()["routers"]["r1"]
    assert r1["icmp_suppressed"] == 3 and r1["icmp_sent"] == 1
    await a.link.send(b"\x60" + bytes(20))  # shorter than a header: counted, no crash
    await trio.sleep(1)
    assert net.stats()["routers"]["r1"]["dropped_malformed"] == 1


async def test_icmp_errors_are_rate_limited_per_router(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, _routers, b = chain(2)
    for i in range(50):
        a.link.send_nowait(echo(a, b, hop_limit=1, seq=i))
    await trio.sleep(0.5)
    assert drain(a) == Router.ICMP_BURST
    r1 = net.stats()["routers"]["r1"]
    assert r1["icmp_sent"] == Router.ICMP_BURST
    assert r1["icmp_rate_limited"] == 50 - Router.ICMP_BURST
    assert r1["hop_limit_exceeded"] == 50
    await trio.sleep(10)  # the bucket refills to its burst, no more
    for i in range(50):
        a.link.send_nowait(echo(a, b, hop_limit=1, seq=i))
    await trio.sleep(0.5)
    assert net.stats()["routers"]["r1"]["icmp_sent"] == 2 * Router.ICMP_BURST


async def test_longest_prefix_and_static_routes(autojump_clock: trio.testing.MockClock) -> None:
    #        r2
    # a - r1    r4 - b
    #        r3
    net = Network()
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r1, r2, r3, r4 = (net.router(f"r{i}") for i in range(1, 5))
    net.connect(a, r1)
    net.connect(r1, r2)
    net.connect(r1, r3)
    net.connect(r2, r4)
    net.connect(r3, r4)
    net.connect(r4, b)

    async def through() -> str:
        before = {n: net.channel(n).sent_packets for n in ("r1->r2", "r1->r3")}
        await a.link.send(echo(a, b))
        await trio.sleep(1)
        assert b.link.receive_nowait() is not None
        return next(n for n in before if net.channel(n).sent_packets > before[n])

    assert await through() == "r1->r2"  # equal hop counts: the cable connected first
    net.route(r1, "2001:db8:2::/48", via=r3)
    assert await through() == "r1->r2"  # the computed /128 is longer than the /48
    net.route(r1, "2001:db8:2::b/128", via="r3")
    assert await through() == "r1->r3"  # a static route wins at the same length
    # A /48 alone routes everything in it: b2 is only reachable through it.
    net.route(r1, "2001:db8:3::/48", via=r2)
    await a.link.send(echo(a, "2001:db8:3::1"))
    await trio.sleep(1)
    assert net.stats()["routers"]["r2"]["no_route"] == 1  # r1 forwarded, r2 had none
