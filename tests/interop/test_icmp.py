"""The stack's ICMPv6 rules, in virtual time on a VirtualNetwork (no privileges):
Packet Too Big (RFC 8201, RFC 5927), errors as soft/hard errors (RFC 5461, as
Linux), Parameter Problem for what we cannot process (RFC 8200 §4, RFC 4443 §3.4),
and the rules for sending errors (RFC 4443 §2.4 (e), (f))."""

from __future__ import annotations

import errno
import ipaddress

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow, DirectStack
from trio_tcp6.runtime.stack import ICMP_ERROR_BURST, ICMP_ERROR_RATE, PMTU_TIMEOUT
from trio_tcp6.tcp.events import State
from trio_tcp6.wire.icmpv6 import (
    DestinationUnreachable,
    EchoRequest,
    PacketTooBig,
    ParameterProblem,
    TimeExceeded,
    build_icmpv6,
    parse_icmpv6,
)
from trio_tcp6.wire.ipv6 import (
    EXT_DESTINATION_OPTIONS,
    EXT_HOP_BY_HOP,
    EXT_ROUTING,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    ExtensionHeader,
    build_ipv6,
    build_ipv6_header,
    parse_ipv6,
)
from trio_tcp6.wire.tcp import ACK, TCPSegment, build_tcp

A, B, C = "2001:db8::a", "2001:db8::b", "2001:db8::c"
PA, PB, PC = (ipaddress.IPv6Address(x).packed for x in (A, B, C))


def icmp_packet(msg: object, src: bytes = PC, dst: bytes = PA) -> bytes:
    body = build_icmpv6(msg, src, dst)  # type: ignore[arg-type]
    return build_ipv6_header(src, dst, PROTO_ICMPV6, len(body)) + body


def quote(flow: DirectFlow, seq: int | None = None, size: int = 1440) -> bytes:
    """Our own segment on ``flow`` as an ICMPv6 error would quote it."""
    conn = flow._conn
    seg = TCPSegment(
        flow.local_port, flow._remote_port, conn.snd_una if seq is None else seq, 0, ACK, 1000
    )
    dst = flow.remote_packed
    tcp = build_tcp(seg, PA, dst) + b"q" * size
    return (build_ipv6_header(PA, dst, PROTO_TCP, len(tcp)) + tcp)[:1232]


async def pair(a: DirectStack, b: DirectStack, port: int) -> tuple[DirectFlow, DirectFlow]:
    listener = await b.open_tcp_listener(port)
    flow = await a.open_tcp_stream(B, port)
    peer = await listener.accept()
    await listener.aclose()
    assert isinstance(flow, DirectFlow) and isinstance(peer, DirectFlow)
    return flow, peer


async def icmp_from(link: tcp6.Link, timeout: float = 2.0) -> object | None:
    with trio.move_on_after(timeout):
        while True:
            pkt = parse_ipv6(await link.receive())
            if pkt.next_header == PROTO_ICMPV6:
                assert pkt.src == PA
                return parse_icmpv6(pkt.payload, pkt.src, pkt.dst)
    return None


async def test_packet_too_big_per_destination(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork(delay=0.005)
    raw = net.attach(C)
    async with (
        tcp6.open_stack(net.attach(A), A) as a,
        tcp6.open_stack(net.attach(B), B) as b,
    ):
        first, _ = await pair(a, b, 80)
        second, _ = await pair(a, b, 81)
        assert first.info().mss > 1300 and second.info().mss > 1300
        # Below the IPv6 minimum: discarded (RFC 8201 §4).
        await raw.send(icmp_packet(PacketTooBig(1000, quote(first))))
        # A sequence number not in flight: ignored (RFC 5927 §4.1).
        await raw.send(icmp_packet(PacketTooBig(1300, quote(first, first._conn.snd_una + 9999))))
        await trio.sleep(0.1)
        stats = a.stats()
        assert stats["drop_icmp_ptb_below_minimum"] == 1
        assert stats["drop_icmp_bad_seq"] == 1
        assert first.info().mss > 1300
        # A valid one lowers every connection to B at once.
        await raw.send(icmp_packet(PacketTooBig(1300, quote(first))))
        await trio.sleep(0.1)
        assert a.stats()["icmp_packet_too_big"] == 1
        assert a.path_mtu(B, trio.current_time()) == 1300
        assert first.info().mss <= 1300 - 60 and second.info().mss <= 1300 - 60
        # Never raised by a PTB.
        await raw.send(icmp_packet(PacketTooBig(1400, quote(second))))
        await trio.sleep(0.1)
        assert a.path_mtu(B, trio.current_time()) == 1300
        assert second.info().mss <= 1300 - 60
        # A new connection to B starts with the remembered MTU, and data flows.
        third, peer = await pair(a, b, 82)
        assert third.info().mss <= 1300 - 60
        await third.send_all(b"z" * 50_000)
        got = 0
        while got < 50_000:
            got += len(await peer.receive_some())
        # The entry expires (RFC 8201 §4: try the larger MTU again).
        await trio.sleep(PMTU_TIMEOUT + 1)
        assert a.path_mtu(B, trio.current_time()) == 1500
        fourth, _ = await pair(a, b, 83)
        assert fourth.info().mss > 1300


@pytest.mark.parametrize(
    "msg",
    [
        DestinationUnreachable(3),
        DestinationUnreachable(1),
        TimeExceeded(0),
        ParameterProblem(0, 7),
    ],
    ids=["host-unreachable", "prohibited", "time-exceeded", "param-problem"],
)
async def test_errors_on_an_established_connection_are_soft(
    autojump_clock: trio.testing.MockClock, msg: DestinationUnreachable
) -> None:
    net = tcp6.VirtualNetwork(delay=0.005)
    raw = net.attach(C)
    async with (
        tcp6.open_stack(net.attach(A), A) as a,
        tcp6.open_stack(net.attach(B), B) as b,
    ):
        flow, peer = await pair(a, b, 80)
        assert a.soft_error(flow) is None
        msg.invoking = quote(flow)
        await raw.send(icmp_packet(msg))
        await trio.sleep(0.1)
        error = a.soft_error(flow)
        assert isinstance(error, tcp6.TCPError)
        assert a.stats()["icmp_soft_errors"] == 1
        assert flow.info().state is State.ESTABLISHED
        await flow.send_all(b"still here")
        assert await peer.receive_some() == b"still here"


@pytest.mark.parametrize(
    ("msg", "error", "err"),
    [
        (DestinationUnreachable(0), tcp6.Unknown, errno.ENETUNREACH),
        (DestinationUnreachable(1), tcp6.Unknown, errno.EACCES),
        (DestinationUnreachable(3), tcp6.Unknown, errno.EHOSTUNREACH),
        (DestinationUnreachable(4), tcp6.Refused, errno.ECONNREFUSED),
        (TimeExceeded(0), tcp6.Unknown, errno.EHOSTUNREACH),
        (ParameterProblem(1, 6), tcp6.Refused, errno.ECONNREFUSED),
    ],
)
async def test_errors_fail_a_connect_at_once(
    autojump_clock: trio.testing.MockClock,
    msg: DestinationUnreachable,
    error: type[tcp6.TCPError],
    err: int,
) -> None:
    """An ICMPv6 error about our SYN ends the attempt, with Linux's errno; the
    mirage call returns it as ``Error(...)``."""
    net = tcp6.VirtualNetwork(delay=0.005)
    router = net.attach(C)
    net.attach(B)  # nobody answers there
    async with tcp6.open_stack(net.attach(A), A) as a:
        async with trio.open_nursery() as nursery:
            results: list[object] = []

            async def attempt() -> None:
                results.append(await a.create_connection((B, 80)))

            nursery.start_soon(attempt)
            await trio.testing.wait_all_tasks_blocked()
            (flow,) = a.flows
            msg.invoking = quote(flow, flow._conn.iss, 0)
            start = trio.current_time()
            await router.send(icmp_packet(msg))
        assert trio.current_time() - start < 0.1
        match results:
            case [tcp6.Error(e)]:
                assert type(e) is error and e.errno == err
            case _:
                pytest.fail(str(results))
        assert a.stats()["flows_open"] == 0


async def test_parameter_problem_and_its_rate_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        udp = build_ipv6(PC, PA, PROTO_UDP, b"\x00" * 16)
        await raw.send(udp)
        msg = await icmp_from(raw)
        assert msg == ParameterProblem(1, 6, udp)
        # After a Destination Options header: the pointer names that header's byte.
        dopt = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes(6))
        packet = build_ipv6(PC, PA, PROTO_UDP, b"x" * 8, ext_headers=[dopt])
        await raw.send(packet)
        assert await icmp_from(raw) == ParameterProblem(1, 40, packet)
        # An unrecognised option whose type says "discard and send ICMP" (10xxxxxx).
        opt = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes((0x80 | 0x1E, 4, 0, 0, 0, 0)))
        packet = build_ipv6(PC, PA, PROTO_TCP, b"x" * 20, ext_headers=[opt])
        await raw.send(packet)
        assert await icmp_from(raw) == ParameterProblem(2, 42, packet)
        # 00xxxxxx: skip the option and go on (the TCP segment is then judged).
        # Rate limit: a burst, then ICMP_ERROR_RATE per second.
        await trio.sleep(10)
        for _ in range(3 * ICMP_ERROR_BURST):
            await raw.send(udp)
        got = 0
        while await icmp_from(raw, 0.01) is not None:
            got += 1
        assert got == ICMP_ERROR_BURST
        assert a.stats()["icmp_errors_rate_limited"] == 2 * ICMP_ERROR_BURST
        await trio.sleep(1.0)
        for _ in range(3 * ICMP_ERROR_BURST):
            await raw.send(udp)
        got = 0
        while await icmp_from(raw, 0.01) is not None:
            got += 1
        assert got == min(ICMP_ERROR_BURST, int(ICMP_ERROR_RATE))


async def test_no_error_where_rfc_4443_forbids_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Never an error about a packet to multicast (unless the option says so), from
    the unspecified or a multicast address, or not addressed to us."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        multicast = ipaddress.IPv6Address("ff02::1").packed
        now = trio.current_time()
        for src, dst in ((PC, multicast), (bytes(16), PA), (multicast, PA), (PC, PB)):
            a._input.ip_input(build_ipv6(src, dst, PROTO_UDP, b"\x00" * 8), now)
        # 11xxxxxx to multicast: no error either.
        opt = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes((0xC0 | 0x1E, 4, 0, 0, 0, 0)))
        a._input.ip_input(build_ipv6(PC, multicast, PROTO_TCP, b"x" * 20, ext_headers=[opt]), now)
        assert a._output.pending == []
        assert a.stats().get("icmp_errors_sent", 0) == 0
        assert a.stats()["icmp_errors_suppressed"] == 2  # the two bad sources
        # An echo request from a multicast source gets no reply.
        a._input.ip_input(icmp_packet(EchoRequest(1, 1, b"hi"), src=multicast), now)
        assert a._output.pending == []
        await raw.send(icmp_packet(EchoRequest(1, 2, b"hi")))
        assert await icmp_from(raw) is not None


async def test_parameter_problem_for_extension_headers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A Hop-by-Hop header not first (code 1, pointer at the Next Header naming it),
    a Routing header with segments left (code 0, pointer at its Routing Type),
    and no error about an ICMPv6 error even behind an extension header."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        dopt = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes(6))
        hbh = ExtensionHeader(EXT_HOP_BY_HOP, bytes(6))
        packet = build_ipv6(PC, PA, PROTO_TCP, b"x" * 20, ext_headers=[dopt, hbh])
        await raw.send(packet)
        assert await icmp_from(raw) == ParameterProblem(1, 40, packet)
        routing = ExtensionHeader(EXT_ROUTING, bytes((0, 1, 0, 0, 0, 0)))
        packet = build_ipv6(PC, PA, PROTO_TCP, b"x" * 20, ext_headers=[routing])
        await raw.send(packet)
        assert await icmp_from(raw) == ParameterProblem(0, 42, packet)  # the Routing Type
        # An unrecognised "send ICMP" option in front of an ICMPv6 error: silence.
        opt = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes((0x80 | 0x1E, 4, 0, 0, 0, 0)))
        error = build_icmpv6(DestinationUnreachable(0, b"q" * 48), PC, PA)
        await raw.send(build_ipv6(PC, PA, PROTO_ICMPV6, error, ext_headers=[opt]))
        assert await icmp_from(raw) is None
        assert a.stats()["icmp_errors_suppressed"] == 1
        # ... but an echo request there does get its Parameter Problem.
        echo = build_icmpv6(EchoRequest(7, 7, b"hi"), PC, PA)
        packet = build_ipv6(PC, PA, PROTO_ICMPV6, echo, ext_headers=[opt])
        await raw.send(packet)
        assert await icmp_from(raw) == ParameterProblem(2, 42, packet)
