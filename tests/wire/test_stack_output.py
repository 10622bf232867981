"""The bytes the direct stack puts on the wire, pinned.

The stack builds its packets with the wire codecs (the IPv6+TCP fast builder for
data segments and ACKs with a partial checksum, the general builders for the rest).
A scripted exchange between two stacks, with their secrets fixed and the clock
virtual, must produce exactly the packets recorded here: a handshake with every SYN
option, data both ways, FINs, a RST for a closed port and an echo reply. It must
produce them both with checksum offload (the fast builder, partial checksums
completed by the network's capture) and without (full checksums from the general
builders), and scapy must read every packet as the stack's own decoders do.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import struct

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectStack
from trio_tcp6.wire.icmpv6 import EchoRequest, build_icmpv6
from trio_tcp6.wire.ipv6 import PROTO_ICMPV6, PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import SYN, TCPSegment, build_tcp, parse_tcp, verify_tcp_checksum

A = "2001:db8:5::a"
B = "2001:db8:5::b"
C = "2001:db8:5::c"
PA, PB, PC = (ipaddress.IPv6Address(x).packed for x in (A, B, C))

#: SHA-256 over the captured packets (each as a 4-byte length and its bytes), recorded
#: from the stack as it was before its byte layouts moved into ``wire/``, then once
#: more when the receive window came to be rounded down to the scale unit (RFC 7323
#: §2.3): packets 6 and 11 (pure ACKs) advertise 32678 units where they advertised
#: 32679 (an edge 8 bytes past the free buffer space); every other byte is unchanged.
#: Then once more with receive coalescing (``trio_tcp6.tcp.coalesce``): each of
#: those two ACKs answers a burst of three segments merged into one, so it
#: acknowledges all three (and advertises the window left after them) where it
#: acknowledged the first two; with coalescing off the old digest is reproduced.
#: Then once more when the ACK of a FIN in ESTABLISHED came to wait on the
#: delayed-ACK timer (as Linux's does): the server's pure ACK of the client's FIN
#: (packet 13) is gone, its own FIN, sent when it closes on the end of the stream,
#: carries it; every other packet is unchanged.
EXPECTED_SHA256 = "10321751f9d88972015e93a8717b98f6aa998fa216ad5c9f90dffe2817b27da0"
EXPECTED_COUNT = 19


def _read_pcap_bytes(data: bytes) -> list[bytes]:
    """The packets of a little-endian classic pcap held in memory."""
    packets, offset = [], 24
    while offset < len(data):
        _sec, _frac, caplen, _len = struct.unpack_from("<IIII", data, offset)
        offset += 16
        packets.append(data[offset : offset + caplen])
        offset += caplen
    return packets


async def _exchange(checksum_offload: bool) -> list[bytes]:
    net = tcp6.VirtualNetwork(delay=0.005, checksum_offload=checksum_offload)
    raw = net.attach(C)
    out = io.BytesIO()
    cap = net.capture(out)
    real_urandom = os.urandom
    os.urandom = lambda n: bytes(range(n))  # fixed ISN, TS offset and port secrets
    try:
        stack_a = tcp6.open_stack(net.attach(A), A)
        stack_b = tcp6.open_stack(net.attach(B), B)
        a: DirectStack = await stack_a.__aenter__()
        b: DirectStack = await stack_b.__aenter__()
    finally:
        os.urandom = real_urandom
    try:
        listener = await b.open_tcp_listener(80)
        client = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        await client.send_all(bytes(range(256)) * 12)
        got = b""
        while len(got) < 3072:
            got += await server.receive_some()
        await server.send_all(b"x" * 5000)
        got = b""
        while len(got) < 5000:
            got += await client.receive_some()
        await client.send_eof()
        assert await server.receive_some() == b""
        await server.aclose()
        await client.aclose()
        await listener.aclose()
        # A SYN for a closed port (RST|ACK) and an echo request (echo reply).
        syn = build_tcp(TCPSegment(40000, 81, 1000, 0, SYN, 65535), PC, PA)
        await raw.send(build_ipv6_header(PC, PA, PROTO_TCP, len(syn)) + syn)
        ping = build_icmpv6(EchoRequest(7, 1, b"ping"), PC, PA)
        await raw.send(build_ipv6_header(PC, PA, PROTO_ICMPV6, len(ping)) + ping)
        await trio.sleep(1)
    finally:
        await stack_b.__aexit__(None, None, None)
        await stack_a.__aexit__(None, None, None)
    cap.close()
    net.close()
    return _read_pcap_bytes(out.getvalue())


def _digest(packets: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in packets:
        h.update(len(p).to_bytes(4, "big") + p)
    return h.hexdigest()


@pytest.mark.parametrize("checksum_offload", [True, False])
def test_scripted_exchange_is_byte_identical(checksum_offload: bool) -> None:
    packets = trio.run(
        _exchange, checksum_offload, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    assert (len(packets), _digest(packets)) == (EXPECTED_COUNT, EXPECTED_SHA256)


def test_scripted_exchange_reads_the_same_in_scapy() -> None:
    scapy = pytest.importorskip("scapy.layers.inet6")
    inet = pytest.importorskip("scapy.layers.inet")
    packets = trio.run(_exchange, True, clock=trio.testing.MockClock(autojump_threshold=0))
    tcp_seen = 0
    for raw in packets:
        ours = parse_ipv6(raw)
        theirs = scapy.IPv6(raw)
        assert (theirs.src, theirs.dst) == (
            str(ipaddress.IPv6Address(ours.src)),
            str(ipaddress.IPv6Address(ours.dst)),
        )
        assert theirs.plen == len(ours.payload) and theirs.hlim == ours.hop_limit
        if ours.next_header != PROTO_TCP:
            continue
        tcp_seen += 1
        assert verify_tcp_checksum(ours.payload, ours.src, ours.dst)
        seg = parse_tcp(ours.payload)
        t = theirs[inet.TCP]
        assert (t.sport, t.dport, t.seq, t.ack) == (seg.src_port, seg.dst_port, seg.seq, seg.ack)
        assert (int(t.flags), t.window, bytes(t.payload)) == (seg.flags, seg.window, seg.payload)
        opts = dict((k, v) for k, v in t.options if k != "NOP")
        assert opts.get("Timestamp") == seg.timestamps
        assert opts.get("MSS") == seg.mss and opts.get("WScale") == seg.wscale
    assert tcp_seen >= 10
