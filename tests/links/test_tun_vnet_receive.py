"""The TUN link's receive side behind a virtio-net header, without a TUN device.

A ``SOCK_SEQPACKET`` socket pair keeps message boundaries, so a :class:`TunLink` on one
end reads exactly what the test writes on the other, one packet per read, as from a
TUN device opened with ``IFF_VNET_HDR``. This checks what the link makes of the
header's flags, with frames a kernel would never send (a wrong checksum behind
``DATA_VALID`` or behind no flag), and that a stack on the link verifies exactly the
checksums the header does not vouch for (virtio 1.x, 5.1.6.4: ``DATA_VALID`` means
the device validated the checksum; ``NEEDS_CSUM`` means the packet carries only the
partial sum and needs no verification on local delivery). No privileges needed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

import trio_tcp6 as tcp6
from trio_tcp6.links.tun import TunLink
from trio_tcp6.wire import (
    ACK,
    CWR,
    PROTO_ICMPV6,
    PROTO_TCP,
    SYN,
    EchoRequest,
    TCPSegment,
    build_icmpv6,
    build_ipv6,
    build_tcp,
    parse_ipv6,
    parse_tcp,
)
from trio_tcp6.wire.checksum import complete_checksum, pseudo_header_sum, verify_transport
from trio_tcp6.wire.ipv6 import peek_ipv6
from trio_tcp6.wire.tcp import partial_tcp_checksum
from trio_tcp6.wire.virtio import (
    CSUM_VNET_HDR,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
    gso_header_for,
    pack_vnet_hdr,
)

KERNEL = ipaddress.IPv6Address("fd00:7463:70:fe::1").packed
US = ipaddress.IPv6Address("fd00:7463:70:fe::2").packed
PORT = 5000


def syn(payload: bytes = b"", src_port: int = 40000) -> bytes:
    """A SYN from the kernel side to our listener, with a correct checksum."""
    seg = TCPSegment(src_port, PORT, 1000, 0, SYN, 65535, payload=payload, mss=1440)
    return build_ipv6(KERNEL, US, PROTO_TCP, build_tcp(seg, KERNEL, US))


def corrupt(packet: bytes) -> bytes:
    """``packet`` with a wrong TCP checksum (the field off by one)."""
    (field,) = struct.unpack_from("!H", packet, 40 + 16)
    return packet[:56] + struct.pack("!H", field ^ 1) + packet[58:]


def with_partial_checksum(packet: bytes) -> bytes:
    """``packet`` with the TCP checksum field holding the pseudo-header sum only, as
    the kernel hands up a ``NEEDS_CSUM`` packet."""
    field = struct.pack("!H", partial_tcp_checksum(packet))
    return packet[:56] + field + packet[58:]


def vnet(flags: int = 0, gso_type: int = 0, start: int = 0, offset: int = 0) -> bytes:
    return VNET_HDR.pack(flags, gso_type, 0, 0, start, offset)


NEEDS_CSUM_TCP = vnet(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 40, 16)


class MTU1500TunLink(TunLink):
    """A TunLink whose device reports MTU 1500 (the socket pair has none)."""

    def read_mtu(self) -> int:
        self._mtu = 1500
        return 1500


@asynccontextmanager
async def fake_tun(
    cls: type[TunLink] = TunLink,
) -> AsyncIterator[tuple[TunLink, socket.socket]]:
    """A TunLink with a virtio header and offload on a socket pair: (link, the
    kernel's end)."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    link = cls(
        ours.detach(),  # the link owns and closes the descriptor
        "lo",  # read_mtu asks some interface: loopback exists everywhere
        vnet_hdr=True,
        offload=True,
        netns=None,
        control=socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    with kernel:
        try:
            yield link, kernel
        finally:
            link.close()


async def test_offload_receive_marks_what_the_header_vouches_for() -> None:
    packet = syn(b"x" * 100)
    bad = corrupt(packet)
    icmp = build_ipv6(
        KERNEL, US, PROTO_ICMPV6, build_icmpv6(EchoRequest(7, 1, b"ping"), KERNEL, US)
    )
    # NEEDS_CSUM on ICMPv6: the field holds the folded pseudo-header sum.
    partial = pseudo_header_sum(KERNEL, US, len(icmp) - 40, PROTO_ICMPV6)
    icmp_partial = icmp[:42] + struct.pack("!H", partial) + icmp[44:]
    async with fake_tun() as (link, kernel):
        kernel.send(vnet(VIRTIO_NET_HDR_F_DATA_VALID) + bad)
        kernel.send(vnet() + bad)
        kernel.send(NEEDS_CSUM_TCP + with_partial_checksum(packet))
        kernel.send(vnet(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 40, 2) + icmp_partial)
        kernel.send(vnet(VIRTIO_NET_HDR_F_DATA_VALID) + icmp)
        batch = await link.receive_batch_offload()
        assert [trusted for _, trusted in batch] == [True, False, True, False, False]
        assert [bytes(p) for p, _ in batch[:3]] == [bad, bad, with_partial_checksum(packet)]
        # Behind the header: views of the reads, not copies.
        assert all(type(p) is memoryview and p.readonly for p, _ in batch[:3])
        # A NEEDS_CSUM packet the stack cannot take partial is completed by the link.
        completed = parse_ipv6(batch[3][0])
        assert verify_transport(KERNEL, US, PROTO_ICMPV6, completed.payload)
        stats = link.stats()
        assert stats["rx_packets"] == 5
        assert stats["rx_csum_trusted"] == 2
        assert stats["rx_csum_completed"] == 1
        assert stats["rx_waits"] == 0  # everything was there at the first read
        assert stats["rx_empty_reads"] == 1  # the read that ended the burst


async def test_plain_receive_copies_and_completes() -> None:
    packet = syn(b"y" * 50)
    async with fake_tun() as (link, kernel):
        kernel.send(NEEDS_CSUM_TCP + with_partial_checksum(packet))
        kernel.send(vnet(VIRTIO_NET_HDR_F_DATA_VALID) + packet)
        first = await link.receive()
        assert type(first) is bytes and first == packet  # the checksum completed
        assert await link.receive_batch() == [packet]


async def test_runts_and_non_ipv6_reads_are_dropped() -> None:
    async with fake_tun() as (link, kernel):
        kernel.send(b"\x00" * 5)  # shorter than the virtio header
        kernel.send(vnet())  # a header and nothing behind it
        kernel.send(vnet() + b"\x45" + bytes(39))  # IPv4
        kernel.send(vnet(VIRTIO_NET_HDR_F_DATA_VALID) + syn())
        (only,) = await link.receive_batch_offload()
        assert bytes(only[0]) == syn()
        stats = link.stats()
        assert stats["rx_bad_vnet"] == 1
        assert stats["rx_not_ipv6"] == 2
        assert stats["rx_packets"] == 1


async def test_gso_super_segment_is_counted_and_handed_up_whole() -> None:
    payload = bytes(range(256)) * 200  # 51,200 bytes: far beyond any MTU
    seg = TCPSegment(40000, PORT, 1000, 1, ACK, 65535, payload=payload)
    packet = with_partial_checksum(build_ipv6(KERNEL, US, PROTO_TCP, build_tcp(seg, KERNEL, US)))
    header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 60, 1428, 40, 16)
    async with fake_tun() as (link, kernel):
        kernel.send(header + packet)
        ((got, trusted),) = await link.receive_batch_offload()
        assert trusted and bytes(got) == packet
        assert parse_tcp(parse_ipv6(got).payload).payload == payload
        assert link.stats()["rx_gso"] == 1


async def stack_counters(header: bytes, packet: bytes) -> dict[str, int]:
    """Send ``packet`` (a SYN from port 40000) behind ``header`` to a stack listening
    on :data:`PORT`, then a good SYN from port 40001 as a probe; the stack's counters
    once the probe is answered. The stack takes the packets in order, so by then it
    has either opened a connection for ``packet`` or dropped it: no timeout
    decides."""
    address = str(ipaddress.IPv6Address(US))
    async with fake_tun() as (link, kernel), tcp6.open_stack(link, address) as stack:
        listener = await stack.open_tcp_listener(PORT)
        kernel.setblocking(False)
        kernel.send(header + packet)
        kernel.send(vnet() + syn(src_port=40001))
        answered: set[int] = set()
        with trio.fail_after(10):  # only a safety net: the probe's answer comes
            while 40001 not in answered:
                await trio.lowlevel.wait_readable(kernel)
                reply = os.read(kernel.fileno(), 70000)
                seg = parse_tcp(parse_ipv6(reply[VNET_HDR.size :]).payload)
                if seg.flags & (SYN | ACK) == SYN | ACK:
                    answered.add(seg.dst_port)
        counters = stack.stats()
        await listener.aclose()
        return counters


async def test_stack_skips_the_checksum_only_when_the_header_vouches_for_it() -> None:
    # DATA_VALID: the device checked it; the stack trusts it, even a wrong one.
    counters = await stack_counters(vnet(VIRTIO_NET_HDR_F_DATA_VALID), corrupt(syn()))
    assert (counters["passive_opens"], counters["drop_bad_checksum"]) == (2, 0)
    # NEEDS_CSUM: a partial checksum, trusted on local delivery.
    counters = await stack_counters(NEEDS_CSUM_TCP, with_partial_checksum(syn()))
    assert (counters["passive_opens"], counters["drop_bad_checksum"]) == (2, 0)
    # No flag: verified, and a wrong checksum is dropped.
    counters = await stack_counters(vnet(), corrupt(syn()))
    assert (counters["passive_opens"], counters["drop_bad_checksum"]) == (1, 1)
    # No flag, a right checksum: accepted.
    counters = await stack_counters(vnet(), syn())
    assert (counters["passive_opens"], counters["drop_bad_checksum"]) == (2, 0)


def test_complete_checksum_reference() -> None:
    """The partial form the tests build completes to the packet's real checksum."""
    packet = syn(b"z" * 33)
    assert complete_checksum(with_partial_checksum(packet), 40, 16) == packet


def test_peek_ipv6_takes_a_view_behind_the_header() -> None:
    """The stack's fast path reads the packets the link hands up as views."""
    packet = syn(b"w" * 64)
    view = memoryview(vnet() + packet)[VNET_HDR.size :]
    head = peek_ipv6(view)
    assert head is not None
    src, dst, nh, payload = head
    assert (src, dst, nh, bytes(payload)) == (KERNEL, US, PROTO_TCP, packet[40:])
    assert type(src) is bytes and type(dst) is bytes
    assert head[:3] == peek_ipv6(packet)[:3]  # type: ignore[index]


@pytest.mark.parametrize("partial", [True, False])
async def test_sent_super_segments_carry_what_gso_header_for_says(partial: bool) -> None:
    """The link's cached GSO headers are gso_header_for's, at the boundaries: a
    payload of one segment or less is no super-segment, TCP header lengths, CWR,
    an explicit gso_size, and a gso_size that leaves no room."""
    cases = []
    for options in ({}, {"timestamps": (1, 2)}, {"timestamps": (1, 2), "sack_blocks": ((5, 9),)}):
        for flags in (ACK, ACK | CWR):
            for gso_size in (None, 1000, 1448, 2000, 0):
                for extra in (-1, 0, 1, 30_000):
                    seg = TCPSegment(40000, PORT, 1, 1, flags, 100, **options)  # type: ignore[arg-type]
                    hlen = len(build_tcp(seg, US, KERNEL))
                    size = 1500 - 40 - hlen if gso_size is None else gso_size
                    n = max(1500 + 1 - 40 - hlen, size + extra)
                    seg.payload = bytes(n)
                    cases.append(
                        (build_ipv6(US, KERNEL, PROTO_TCP, build_tcp(seg, US, KERNEL)), gso_size)
                    )
    async with fake_tun(MTU1500TunLink) as (link, kernel):
        assert link.mtu == 1500
        for packet, gso_size in cases:
            wire = with_partial_checksum(packet) if partial else packet
            link.send_nowait(wire, gso_size=gso_size, partial_checksum=partial)
            got = kernel.recv(70000)
            hdr = gso_header_for(packet, 1500, gso_size)
            want = pack_vnet_hdr(hdr)
            if not hdr.flags and partial:
                want = CSUM_VNET_HDR
            assert got[: VNET_HDR.size] == want, (len(packet), gso_size)
        assert link.stats()["tx_gso"] == sum(
            1 for p, g in cases if gso_header_for(p, 1500, g).flags
        )
