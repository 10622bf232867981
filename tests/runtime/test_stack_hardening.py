"""Attacks on the direct stack's input path (issue: hardening), in virtual time.

Each test is named for the attack it replays: spoofed sources, off-path inference
through shared rate limits, SYN floods with cookies, LAND, misaddressed packets,
Packet Too Big below the IPv6 minimum MTU, accept-queue and half-open exhaustion.
"""

from __future__ import annotations

import ipaddress
import math

import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.wire.icmpv6 import PacketTooBig, build_icmpv6
from trio_tcp6.wire.ipv6 import PROTO_ICMPV6, PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import ACK, RST, SYN, TCPSegment, build_tcp, parse_tcp

from .helpers import A, B, connect, receive_exactly, two_stacks

C = "2001:db8::c"
X = "2001:db8::99"  # nobody's address
PA = ipaddress.IPv6Address(A).packed
PB = ipaddress.IPv6Address(B).packed
PC = ipaddress.IPv6Address(C).packed
PX = ipaddress.IPv6Address(X).packed


def tcp_packet(
    seg: TCPSegment, src: bytes, dst: bytes, *, csum_dst: bytes | None = None, hbh: bool = False
) -> bytes:
    """An IPv6 packet carrying ``seg``; its checksum is computed for ``csum_dst``
    (default ``dst``); ``hbh``: behind an (empty) Hop-by-Hop Options header."""
    body = build_tcp(seg, src, csum_dst if csum_dst is not None else dst)
    if not hbh:
        return build_ipv6_header(src, dst, PROTO_TCP, len(body)) + body
    options = bytes([PROTO_TCP, 0, 1, 4, 0, 0, 0, 0])  # next header TCP, PadN
    return build_ipv6_header(src, dst, 0, len(options) + len(body)) + options + body


def tcp_replies(link: tcp6.VirtualLink) -> list[TCPSegment]:
    """Every TCP segment queued at ``link`` (drained)."""
    out = []
    while (packet := link.receive_nowait()) is not None:
        pkt = parse_ipv6(packet)
        if pkt.next_header == PROTO_TCP:
            out.append(parse_tcp(pkt.payload))
    return out


async def raw_handshake(raw: tcp6.VirtualLink, dst: bytes, sport: int, dport: int) -> int:
    """Open a connection from the raw host by hand; returns the server's ISS."""
    await raw.send(tcp_packet(TCPSegment(sport, dport, 1000, 0, SYN, 65535), PC, dst))
    with trio.fail_after(5):
        syn_ack = parse_tcp(parse_ipv6(await raw.receive()).payload)
    assert syn_ack.flags == SYN | ACK
    await raw.send(
        tcp_packet(TCPSegment(sport, dport, 1001, syn_ack.seq + 1, ACK, 65535), PC, dst)
    )
    return syn_ack.seq


class InjectLink:
    """A link that reads from a VirtualLink plus packets handed to :meth:`inject`
    (what a network that misdelivers packets would hand the stack)."""

    def __init__(self, inner: tcp6.VirtualLink) -> None:
        self._inner = inner
        self._in, self._out = trio.open_memory_channel[bytes](math.inf)

    @property
    def mtu(self) -> int:
        return self._inner.mtu

    async def send(self, packet: bytes | bytearray | memoryview) -> None:
        await self._inner.send(packet)

    async def receive(self) -> bytes:
        return await self._out.receive()

    def inject(self, packet: bytes) -> None:
        self._in.send_nowait(packet)

    async def forward(self) -> None:
        while True:
            self._in.send_nowait(await self._inner.receive())


# -- SYN cookies: the SYN-ACK's TSval must not run ahead of the clock ---------------------------
async def test_syn_flood_cookie_clients_never_stall_on_paws(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """During a flood that engages cookies, request/response connections complete
    without the client's PAWS dropping the server's first data (which, with a
    SYN-ACK TSval ahead of the clock, stalled 65-85% of them for an RTO)."""
    config = tcp6.TCPConfig(syn_backlog=1)
    async with two_stacks(config, delay=0.0005) as (net, a, b):
        listener = await b.open_tcp_listener(80)
        raw = net.attach(C)
        # A half-open connection that never completes keeps the SYN backlog full.
        await raw.send(tcp_packet(TCPSegment(40000, 80, 1, 0, SYN, 65535), PC, PB))

        async def serve() -> None:
            while True:
                flow = await listener.accept()
                await flow.send_all((await receive_exactly(flow, 7)).upper())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            for i in range(24):
                await trio.sleep(0.0013 * i)  # a spread of clock values
                start = trio.current_time()
                flow = await a.open_tcp_stream(B, 80)
                await flow.send_all(b"request")
                assert await receive_exactly(flow, 7) == b"REQUEST"
                assert trio.current_time() - start < 0.1, f"connection {i} stalled"
                await flow.aclose()
            nursery.cancel_scope.cancel()
        assert b.stats()["syn_cookies_validated"] == 24
        assert a.stats().get("drop_paws", 0) == 0


# -- off-path inference through rate limits (CVE-2016-5696 class) -----------------------------
async def test_rst_budget_tells_an_off_path_attacker_nothing_about_a_port(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An attacker spoofs a segment from the victim's 4-tuple guess, then counts the
    RSTs its own probes to a closed port get: with one stack-wide budget a wrong
    guess (answered with a RST, spending the budget) gave one RST fewer than a right
    one (the connection swallowed it). The count must not depend on the guess."""
    config = tcp6.TCPConfig(rst_rate_limit=10)
    async with two_stacks(config) as (net, a, b):
        victim, _server = await connect(a, b)
        right = victim.local_port
        wrong = right + 1 if right < 65535 else right - 1
        raw = net.attach(C)
        counts: dict[int, list[int]] = {right: [], wrong: []}
        t0 = math.ceil(trio.current_time()) + 0.25
        for rounds, guess in enumerate((right, wrong) * 3):
            await trio.sleep_until(t0 + 1.5 * rounds)  # each round in a fresh budget period
            spoof = TCPSegment(guess, 80, 12345, 67890, ACK, 1000)
            await raw.send(tcp_packet(spoof, PA, PB))
            for i in range(10):
                await raw.send(tcp_packet(TCPSegment(41000 + i, 9, 1, 1, ACK, 1000), PC, PB))
            await trio.sleep(0.1)
            counts[guess].append(sum(1 for seg in tcp_replies(raw) if seg.rst))
        assert counts[right] == counts[wrong] == [10, 10, 10]
        assert b.stats()["resets_sent"] >= 60 + 3  # the wrong guesses were answered


async def test_challenge_ack_budget_tells_an_off_path_attacker_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 5961 §7: the challenge-ACK budget is per connection. Spoofed SYNs and RSTs
    at the victim's 4-tuple (a right guess makes the victim's connection send
    challenge ACKs) never change how many challenge ACKs the attacker's own
    connection gets for its in-window SYNs."""
    config = tcp6.TCPConfig(challenge_ack_limit=5, rst_rate_limit=10)
    async with two_stacks(config) as (net, a, b):
        victim, _server = await connect(a, b)
        right = victim.local_port
        wrong = right + 1 if right < 65535 else right - 1
        listener = await b.open_tcp_listener(81)
        raw = net.attach(C)
        iss = await raw_handshake(raw, PB, 42000, 81)
        await listener.accept()
        counts: dict[int, list[int]] = {right: [], wrong: []}
        before = b.stats()["challenge_acks"]
        t0 = math.ceil(trio.current_time()) + 0.25
        for rounds, guess in enumerate((right, wrong) * 3):
            await trio.sleep_until(t0 + 1.5 * rounds)  # each round in a fresh budget period
            for flags in (SYN, RST, SYN, RST):
                for quarter in range(4):  # some of these pass the victim's PAWS check
                    n = quarter << 30
                    seg = TCPSegment(guess, 80, n, 0, flags, 1000, timestamps=(n, 0))
                    await raw.send(tcp_packet(seg, PA, PB))
            for _ in range(8):  # in-window SYNs on the attacker's own connection
                syn = TCPSegment(42000, 81, 1001, iss + 1, SYN, 65535)
                await raw.send(tcp_packet(syn, PC, PB))
            await trio.sleep(0.1)
            counts[guess].append(sum(1 for seg in tcp_replies(raw) if seg.flags == ACK))
        assert counts[right] == counts[wrong] == [5, 5, 5]
        # The right guesses did reach the victim's connection (its own budget).
        assert b.stats()["challenge_acks"] - before > 30


# -- input checks: impossible sources, LAND, own address ---------------------------------------
async def test_multicast_and_unspecified_sources_are_dropped_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A TCP segment can never come from a multicast or the unspecified address
    (RFC 4291 §2.7, §2.5.2): no half-open connection, no SYN-ACK, no RST."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(B), B) as b:
        listener = await b.open_tcp_listener(80)
        sources = (ipaddress.IPv6Address("ff02::1").packed, bytes(16))
        for src in sources:
            for port in (80, 9):  # a listener and a closed port
                seg = TCPSegment(40000, port, 1, 0, SYN, 65535)
                await raw.send(tcp_packet(seg, src, PB))
        await trio.sleep(1)
        stats = b.stats()
        assert stats["drop_bad_source"] == 4
        assert listener.half_open == 0
        assert stats["segments_out"] == 0 and stats["resets_sent"] == 0
        # An ordinary source is still served.
        await raw.send(tcp_packet(TCPSegment(40000, 80, 1, 0, SYN, 65535), PC, PB))
        await trio.sleep(0.1)
        assert [seg.flags for seg in tcp_replies(raw)] == [SYN | ACK]


async def test_land_syn_starts_no_loop(autojump_clock: trio.testing.MockClock) -> None:
    """A spoofed SYN from the stack's own address and port to itself (LAND) is
    dropped and counted: it used to start a connection ACKing itself for ever."""
    net = tcp6.VirtualNetwork(delay=0.001)
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(B), B) as b:
        listener = await b.open_tcp_listener(80)
        await raw.send(tcp_packet(TCPSegment(80, 80, 1, 0, SYN, 65535), PB, PB))
        await trio.sleep(2)
        stats = b.stats()
        assert stats["drop_land"] == 1
        assert stats["segments_out"] == 0
        assert listener.half_open == 0 and not b.flows


async def test_connection_to_own_address_works(autojump_clock: trio.testing.MockClock) -> None:
    """A stack connecting to its own address (a different local port) still works."""
    net = tcp6.VirtualNetwork()
    async with tcp6.open_stack(net.attach(B), B) as b:
        listener = await b.open_tcp_listener(80)
        client = await b.open_tcp_stream(B, 80)
        server = await listener.accept()
        await client.send_all(b"ping" * 1000)
        assert await receive_exactly(server, 4000) == b"ping" * 1000
        await server.send_all(b"pong")
        assert await receive_exactly(client, 4) == b"pong"
        assert b.stats().get("drop_land", 0) == 0


# -- the destination-address check, on both IPv6 input paths ---------------------------------
async def test_misaddressed_syn_is_dropped_on_both_input_paths(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A SYN whose destination is not our address (its checksum made for ours, so
    only the address check stands in the way) is dropped and counted, whether it
    takes the fast path (TCP right after the fixed header) or the extension-header
    path (behind Hop-by-Hop options)."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    link = InjectLink(net.attach(B))
    async with trio.open_nursery() as nursery, tcp6.open_stack(link, B) as b:
        nursery.start_soon(link.forward)
        listener = await b.open_tcp_listener(80)
        for hbh in (False, True):
            before = b.stats().get("drop_not_for_us", 0)
            seg = TCPSegment(40000 + hbh, 80, 1, 0, SYN, 65535)
            link.inject(tcp_packet(seg, PC, PX, csum_dst=PB, hbh=hbh))
            await trio.sleep(1)
            stats = b.stats()
            assert stats.get("drop_not_for_us", 0) == before + 1, f"hbh={hbh}"
            assert stats["drop_bad_checksum"] == 0
            assert listener.half_open == 0 and stats["segments_out"] == 0
            assert raw.pending() == 0
        # The same SYNs correctly addressed are served on both paths.
        for hbh in (False, True):
            link.inject(tcp_packet(TCPSegment(40002 + hbh, 80, 1, 0, SYN, 65535), PC, PB, hbh=hbh))
        await trio.sleep(0.1)
        assert [seg.flags for seg in tcp_replies(raw)] == [SYN | ACK, SYN | ACK]
        nursery.cancel_scope.cancel()


# -- Packet Too Big below the IPv6 minimum MTU ---------------------------------------------
async def test_packet_too_big_below_1280_is_ignored_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 8201 §4: a PTB below 1280 (1250, and 1279 at the edge) quoting one of our
    segments is discarded at the stack, counted, and remembered nowhere; 1280 itself
    is applied."""
    async with two_stacks(delay=0.01) as (net, a, b):
        client, _server = await connect(a, b)
        mss_before = client.info().mss
        raw = net.attach(C)
        conn = client._conn

        def ptb(mtu: int) -> bytes:
            seg = TCPSegment(client.local_port, 80, conn.snd_una, conn.rcv_nxt, ACK, 1000)
            quoted = build_ipv6_header(PA, PB, PROTO_TCP, 20) + build_tcp(seg, PA, PB)
            body = build_icmpv6(PacketTooBig(mtu, quoted), PC, PA)
            return build_ipv6_header(PC, PA, PROTO_ICMPV6, len(body)) + body

        for mtu in (1250, 1279):
            await raw.send(ptb(mtu))
        await trio.sleep(0.1)
        stats = a.stats()
        assert stats.get("drop_icmp_ptb_below_minimum", 0) == 2
        assert stats.get("icmp_packet_too_big", 0) == 0
        assert a.path_mtu(B, trio.current_time()) == 1500
        assert client.info().mss == mss_before
        await raw.send(ptb(1280))
        await trio.sleep(0.1)
        assert a.path_mtu(B, trio.current_time()) == 1280
        assert client.info().mss <= 1280 - 60 < mss_before


# -- half-open connections and the accept queue -------------------------------------------------
async def test_half_open_connection_gives_up_after_synack_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An unanswered SYN-ACK is retransmitted ``synack_retries`` times (default 5, as
    Linux tcp_synack_retries: 1 + 2 + ... + 32 = 63 s), not ``syn_retries`` (7, for
    our own SYNs: ~255 s)."""
    assert tcp6.TCPConfig().synack_retries == 5
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(B), B) as b:
        listener = await b.open_tcp_listener(80)
        await raw.send(tcp_packet(TCPSegment(40000, 80, 1, 0, SYN, 65535), PC, PB))
        arrivals: list[float] = []
        with trio.move_on_after(62.9):
            while True:
                await raw.receive()
                arrivals.append(trio.current_time())
        assert listener.half_open == 1
        await trio.sleep(0.2)  # 63.1 s: the last one timed out
        assert listener.half_open == 0
        assert [round(t) for t in arrivals] == [0, 1, 3, 7, 15, 31]
        assert raw.pending() == 0


async def test_accept_queue_never_exceeds_its_backlog(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Handshakes already under way when the accept queue fills must not overfill it:
    the completing ACK is dropped (counted) and the client's retry completes it once
    there is room, as Linux does."""
    async with two_stacks(delay=0.001) as (_net, a, b):
        listener = await b.open_tcp_listener(80, backlog=2)
        flows: list[tcp6.Flow] = []

        async def client() -> None:
            flows.append(await a.open_tcp_stream(B, 80))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(client)
            await trio.sleep(0.5)
            assert listener.queued == 2
            assert b.stats()["drop_accept_queue_full"] >= 3
            accepted = []
            with trio.fail_after(30):
                for _ in range(5):
                    accepted.append(await listener.accept())
                    assert listener.queued <= 2
        assert len(flows) == 5
        # Every accepted connection carries data both ways.
        for server in accepted:
            await server.send_all(b"hello")
        for flow in flows:
            assert await receive_exactly(flow, 5) == b"hello"
