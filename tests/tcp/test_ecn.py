"""ECN (RFC 3168) end to end: the engine's bookkeeping, the IPv6 Traffic Class the
stack writes and reads, and a VirtualNetwork path whose marking hook sets CE.

The marking hook wraps a stack's link (the VirtualNetwork itself is not changed):
packets the stack receives pass through it, and it may rewrite their ECN field as a
router's AQM would (RFC 3168 §5: CE only on ECT packets).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.links.base import Link, Packet
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.ipv6 import (
    ECN_CE,
    ECN_ECT0,
    ECN_NOT_ECT,
    IPV6_HEADER_LEN,
    build_ipv6_header,
    ecn_of,
    parse_ipv6,
)
from trio_tcp6.wire.tcp import (
    ACK,
    CWR,
    ECE,
    SYN,
    TCPSegment,
    build_ipv6_tcp_ts_partial,
    build_tcp,
    parse_tcp,
    tcp_pseudo_base,
)
from trio_tcp6.wire.virtio import (
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_TCPV6,
    gso_header_for,
)

from ..runtime.helpers import A, B, receive_exactly

ECN_BOTH = tcp6.TCPConfig(ecn=True)


# -- wire ---------------------------------------------------------------------------------
def test_ecn_field_in_traffic_class() -> None:
    src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
    for ecn in (ECN_NOT_ECT, 1, ECN_ECT0, ECN_CE):
        header = build_ipv6_header(src, dst, 6, 0, traffic_class=ecn)
        assert ecn_of(header) == ecn
        assert parse_ipv6(header).traffic_class == ecn
    # The DSCP bits above it are not ECN.
    assert ecn_of(build_ipv6_header(src, dst, 6, 0, traffic_class=0xFC)) == 0


def test_fast_builder_writes_segment_ecn() -> None:
    src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
    seg = TCPSegment.data(1, 2, 3, 4, ACK, 100, b"xy", 0, (), (5, 6), ECN_ECT0)
    packet = build_ipv6_tcp_ts_partial(seg, src, dst, tcp_pseudo_base(src, dst))
    assert packet is not None
    assert ecn_of(packet) == ECN_ECT0
    assert packet[0] >> 4 == 6  # still version 6
    plain = build_ipv6_tcp_ts_partial(
        TCPSegment.data(1, 2, 3, 4, ACK, 100, b"xy", 0, (), (5, 6)),
        src,
        dst,
        tcp_pseudo_base(src, dst),
    )
    assert plain is not None and ecn_of(plain) == ECN_NOT_ECT
    assert plain[2:] == packet[2:]  # nothing else differs


# -- engine: two connections back to back ------------------------------------------------
class Pair:
    """Two engines wired directly, in virtual time; ``mark`` may rewrite each
    segment's ECN field on its way (``mark(seg, to_server)``)."""

    def __init__(
        self,
        client_cfg: tcp6.TCPConfig,
        server_cfg: tcp6.TCPConfig,
        mark: Callable[[TCPSegment, bool], None] | None = None,
    ) -> None:
        self.now = 0.0
        self.mark = mark
        self.server_cfg = server_cfg
        self.client = Connection.connect(
            client_cfg, local_port=1000, remote_port=80, iss=100, mss=1440, now=0.0
        )
        self.server: Connection | None = None
        self.sent: list[tuple[bool, TCPSegment]] = []

    def run(self, until: float, step: float = 0.005) -> None:
        """Deliver every segment after ``step`` seconds, firing timers, up to ``until``."""
        while self.now < until:
            moved = True
            while moved:
                moved = False
                for to_server, conn in ((True, self.client), (False, self.server)):
                    if conn is None:
                        continue
                    for seg in conn.take_segments():
                        moved = True
                        self.sent.append((to_server, seg))
                        if self.mark is not None:
                            self.mark(seg, to_server)
                        self.deliver(seg, to_server)
                    conn.take_events()
            self.now = round(self.now + step, 6)
            for conn in (self.client, self.server):
                deadline = None if conn is None else conn.next_deadline
                if conn is not None and deadline is not None and deadline <= self.now:
                    conn.on_timer(self.now)

    def deliver(self, seg: TCPSegment, to_server: bool) -> None:
        if to_server:
            if self.server is None:
                self.server = Connection.accept(
                    self.server_cfg, seg, iss=9000, mss=1440, now=self.now
                )
            else:
                self.server.on_segment(seg, self.now)
        else:
            self.client.on_segment(seg, self.now)


def test_engines_negotiate_and_mark_new_data() -> None:
    p = Pair(ECN_BOTH, ECN_BOTH)
    p.run(0.05)
    assert p.server is not None
    assert p.client.info().ecn and p.server.info().ecn
    syn = p.sent[0][1]
    assert syn.flags & (SYN | ECE | CWR) == SYN | ECE | CWR and syn.ecn == ECN_NOT_ECT
    synack = p.sent[1][1]
    assert synack.flags & (ECE | CWR) == ECE and synack.ecn == ECN_NOT_ECT
    p.client.send(b"x" * 20000, p.now)
    p.run(0.5)
    data = [s for to_server, s in p.sent if to_server and s.payload]
    acks = [s for to_server, s in p.sent if not to_server and not s.payload]
    assert data and all(s.ecn == ECN_ECT0 for s in data)
    assert acks and all(s.ecn == ECN_NOT_ECT for s in acks)
    assert p.server.receive(1 << 20, p.now) == b"x" * 20000


def test_engines_without_ecn_request_send_not_ect() -> None:
    # Default config on both ends: the server would agree, but nobody asks.
    p = Pair(tcp6.TCPConfig(), tcp6.TCPConfig())
    p.run(0.05)
    p.client.send(b"x" * 5000, p.now)
    p.run(0.5)
    assert p.server is not None
    assert not p.client.info().ecn and not p.server.info().ecn
    assert all(s.ecn == ECN_NOT_ECT and not s.flags & (ECE | CWR) for _, s in p.sent)


def test_ce_mark_reduces_window_once_and_cwr_stops_the_echo() -> None:
    marked: list[int] = []

    def mark(seg: TCPSegment, to_server: bool) -> None:
        # One CE mark on the 15th data segment (a router's AQM).
        if to_server and seg.payload and seg.ecn == ECN_ECT0:
            marked.append(seg.seq)
            if len(marked) == 15:
                seg.ecn = ECN_CE

    p = Pair(ECN_BOTH, ECN_BOTH, mark)
    p.run(0.05)
    p.client.send(b"y" * 200_000, p.now)
    p.run(3.0)
    assert p.server is not None
    client, server = p.client.info(), p.server.info()
    assert server.ce_received == 1
    assert client.ece_received is not None and client.ece_received >= 1
    assert client.cwr_sent == 1
    assert p.client.stats["ecn_reductions"] == 1
    assert client.ssthresh is not None  # the reduction ended slow start
    # ECE from the first echo up to the segment after CWR; none after.
    to_client = [s for to_server, s in p.sent if not to_server and not s.flags & SYN]
    ece_idx = [i for i, s in enumerate(to_client) if s.flags & ECE]
    assert ece_idx == list(range(ece_idx[0], ece_idx[-1] + 1))
    cwr = [s for to_server, s in p.sent if to_server and s.flags & CWR and not s.flags & SYN]
    assert len(cwr) == 1 and cwr[0].ecn == ECN_ECT0 and cwr[0].payload
    assert p.server.receive(1 << 20, p.now) == b"y" * 200_000


def test_server_without_ecn_accept_refuses() -> None:
    p = Pair(ECN_BOTH, tcp6.TCPConfig(ecn_accept=False))
    p.run(0.05)
    assert p.server is not None
    assert not p.client.info().ecn and not p.server.info().ecn
    assert p.sent[1][1].flags & (ECE | CWR) == 0


def test_linux_preset_accepts_but_does_not_ask() -> None:
    cfg = tcp6.TCPConfig.linux()
    assert (cfg.ecn, cfg.ecn_accept) == (False, True)  # net.ipv4.tcp_ecn = 2
    p = Pair(cfg, ECN_BOTH)
    p.run(0.05)
    assert p.sent[0][1].flags & (ECE | CWR) == 0
    p = Pair(ECN_BOTH, cfg)
    p.run(0.05)
    assert p.client.info().ecn


# -- the stack over a VirtualNetwork ----------------------------------------------------
class MarkingLink:
    """A link that hands the stack every packet the wrapped one receives, after
    ``mark(packet) -> packet``, and records the ECN field of everything that goes
    through either way (test-only: a router's CE marking on the last hop)."""

    def __init__(self, inner: Link, mark: Callable[[bytes], bytes] | None = None) -> None:
        self.inner = inner
        self.mark = mark
        self.received: list[bytes] = []
        self.sent: list[bytes] = []

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    async def send(self, packet: Packet) -> None:
        self.sent.append(bytes(packet))
        await self.inner.send(packet)

    async def receive(self) -> bytes:
        packet = await self.inner.receive()
        if self.mark is not None:
            packet = self.mark(packet)
        self.received.append(packet)
        return packet


def with_ecn(packet: bytes, ecn: int) -> bytes:
    """``packet`` with its ECN field set to ``ecn`` (the TCP checksum does not cover it)."""
    b = bytearray(packet)
    b[1] = (b[1] & 0xCF) | (ecn << 4)
    return bytes(b)


def tcp_of(packet: bytes) -> TCPSegment:
    return parse_tcp(packet[IPV6_HEADER_LEN:])


class EveryNth:
    """Marks CE on every ``n``-th ECT data packet (and counts the ECT ones)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ect = 0
        self.marks = 0

    def __call__(self, packet: bytes) -> bytes:
        if ecn_of(packet) == ECN_ECT0 and tcp_of(packet).payload:
            self.ect += 1
            if self.ect % self.n == 0:
                self.marks += 1
                return with_ecn(packet, ECN_CE)
        return packet


async def transfer(
    net: tcp6.VirtualNetwork,
    client_cfg: tcp6.TCPConfig,
    server_cfg: tcp6.TCPConfig,
    server_link: MarkingLink,
    size: int,
) -> tuple[tcp6.FlowInfo, tcp6.FlowInfo, dict[str, int], dict[str, int]]:
    """``size`` bytes from the client at A to the server at B (behind
    ``server_link``) and ``size // 10`` back; the two flows' info and stacks' stats."""
    async with (
        tcp6.open_stack(net.attach(A), A, config=client_cfg) as a,
        tcp6.open_stack(server_link, B, config=server_cfg) as b,
    ):
        listener = await b.open_tcp_listener(80)
        client = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        payload = bytes(range(256)) * (size // 256)
        back = payload[: size // 10]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, payload)
            nursery.start_soon(server.send_all, back)
            assert await receive_exactly(server, len(payload)) == payload
            assert await receive_exactly(client, len(back)) == back
        info = client.info(), server.info()
        await client.aclose()
        await server.aclose()
        return info[0], info[1], a.stats(), b.stats()


async def test_virtual_network_ce_marks_reach_the_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork(delay=0.01)
    marker = EveryNth(100)
    link = MarkingLink(net.attach(B), marker)
    cinfo, sinfo, astats, bstats = await transfer(net, ECN_BOTH, ECN_BOTH, link, 1_000_000)
    assert cinfo.ecn and sinfo.ecn
    assert marker.marks >= 3
    assert sinfo.ce_received == marker.marks == bstats["ce_received"]
    assert cinfo.ece_received is not None and cinfo.ece_received >= 1
    assert 1 <= astats["ecn_reductions"] <= marker.marks
    assert astats["cwr_sent"] == astats["ecn_reductions"]
    assert cinfo.retransmits == 0 and astats["retransmits"] == 0
    assert astats["ecn_negotiated"] == bstats["ecn_negotiated"] == 1
    # Our own output (the slow builder: the wrapper offers no checksum offload):
    # the server's data is ECT(0), its SYN-ACK and pure ACKs are not.
    out = [tcp_of(p) for p in link.sent]
    data_tc = {ecn_of(p) for p, s in zip(link.sent, out, strict=True) if s.payload}
    bare_tc = {ecn_of(p) for p, s in zip(link.sent, out, strict=True) if not s.payload}
    assert data_tc == {ECN_ECT0} and bare_tc == {ECN_NOT_ECT}
    assert out[0].flags & (SYN | ECE | CWR) == SYN | ECE
    # The client's (fast builder, partial checksums on the VirtualNetwork).
    seen = [(ecn_of(p), tcp_of(p)) for p in link.received]
    assert {e for e, s in seen if s.payload} == {ECN_ECT0, ECN_CE}
    assert {e for e, s in seen if not s.payload} == {ECN_NOT_ECT}


async def test_virtual_network_without_ecn_sends_not_ect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork(delay=0.01)
    marker = EveryNth(10)
    link = MarkingLink(net.attach(B), marker)
    cinfo, sinfo, astats, bstats = await transfer(
        net, ECN_BOTH, tcp6.TCPConfig(ecn_accept=False), link, 200_000
    )
    assert not cinfo.ecn and not sinfo.ecn
    assert marker.ect == 0  # nothing ECT, so an AQM would drop, not mark
    assert {ecn_of(p) for p in link.sent + link.received} == {ECN_NOT_ECT}
    assert astats.get("ecn_negotiated", 0) == bstats.get("ecn_negotiated", 0) == 0


async def test_syn_cookie_connection_is_not_ecn(autojump_clock: trio.testing.MockClock) -> None:
    # The cookie keeps no ECN bit: its SYN-ACK does not agree, both ends stay non-ECN.
    net = tcp6.VirtualNetwork(delay=0.01)
    link = MarkingLink(net.attach(B))
    cinfo, sinfo, _astats, bstats = await transfer(
        net, ECN_BOTH, tcp6.TCPConfig(ecn=True, syn_backlog=0), link, 100_000
    )
    assert bstats["syn_cookies_sent"] >= 1 and bstats["syn_cookies_validated"] >= 1
    assert not cinfo.ecn and not sinfo.ecn
    synack = tcp_of(link.sent[0])
    assert synack.flags & SYN and not synack.flags & ECE
    assert {ecn_of(p) for p in link.sent + link.received} == {ECN_NOT_ECT}


@pytest.mark.parametrize("ecn", [ECN_ECT0, ECN_CE])
async def test_ect_syn_is_refused(autojump_clock: trio.testing.MockClock, ecn: int) -> None:
    # RFC 3168 §6.1.1: a SYN is never ECT; one that arrives ECT or CE went through a
    # path that rewrites the field, and the server does not agree to ECN (as Linux).
    def mark(packet: bytes) -> bytes:
        return with_ecn(packet, ecn) if tcp_of(packet).flags & SYN else packet

    net = tcp6.VirtualNetwork(delay=0.01)
    link = MarkingLink(net.attach(B), mark)
    cinfo, sinfo, _a, _b = await transfer(net, ECN_BOTH, ECN_BOTH, link, 10_000)
    assert not cinfo.ecn and not sinfo.ecn


def test_tso_super_segment_with_cwr_gets_gso_ecn() -> None:
    # The CWR of a TSO super-segment must reach the kernel as VIRTIO_NET_HDR_GSO_ECN
    # (it sets CWR on the first wire segment only).
    marked: list[int] = []

    def mark(seg: TCPSegment, to_server: bool) -> None:
        if to_server and seg.payload and seg.ecn == ECN_ECT0:
            marked.append(seg.seq)
            if len(marked) == 3:
                seg.ecn = ECN_CE

    p = Pair(ECN_BOTH, ECN_BOTH, mark)
    p.client.tso_max_bytes = 64000
    p.run(0.05)
    p.client.send(b"z" * 400_000, p.now)
    p.run(2.0)
    cwr = [s for to_server, s in p.sent if to_server and s.flags & CWR and not s.flags & SYN]
    assert len(cwr) == 1 and len(cwr[0].payload) > 1500 and cwr[0].ecn == ECN_ECT0
    src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
    tcp = build_tcp(cwr[0], src, dst)
    packet = build_ipv6_header(src, dst, 6, len(tcp), traffic_class=cwr[0].ecn) + tcp
    hdr = gso_header_for(packet, 1500)
    assert hdr.gso_type == VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN
