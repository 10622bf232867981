"""The virtio-net header codec (trio_tcp6.wire.virtio).

scapy has no virtio-net layer: these tests pin the layout of linux/virtio_net.h byte
by byte, and the TUN link's offload tests (tests/links/test_tun.py) check it against
a real kernel, which rejects or misreads a wrong header.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_tcp6.wire.icmpv6 import EchoRequest, build_icmpv6
from trio_tcp6.wire.ipv6 import PROTO_ICMPV6, PROTO_TCP, build_ipv6
from trio_tcp6.wire.tcp import (
    ACK,
    CWR,
    PSH,
    TCPSegment,
    build_tcp,
    complete_tcp_checksum,
    partial_tcp_checksum,
    verify_tcp_checksum,
)
from trio_tcp6.wire.virtio import (
    CSUM_VNET_HDR,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
    VNET_HDR_LEN,
    ZERO_VNET_HDR,
    VirtioNetHdr,
    gso_header_for,
    pack_vnet_hdr,
    unpack_vnet_hdr,
)

SRC = bytes.fromhex("fd00746300700ff00000000000000002")
DST = bytes.fromhex("fd00746300700ff00000000000000001")


def tcp_packet(*, payload: bytes = b"", flags: int = ACK, **fields: object) -> bytes:
    seg = TCPSegment(40000, 5000, 1000, 0, flags, 65535, payload, **fields)  # type: ignore[arg-type]
    return build_ipv6(SRC, DST, PROTO_TCP, build_tcp(seg, SRC, DST))


def test_layout_is_linux_virtio_net_hdr() -> None:
    hdr = VirtioNetHdr(1, VIRTIO_NET_HDR_GSO_TCPV6, 60, 1428, 40, 16)
    raw = pack_vnet_hdr(hdr)
    assert len(raw) == VNET_HDR_LEN == 10
    # Two u8 (flags, gso_type), then little-endian u16 hdr_len, gso_size, csum_start,
    # csum_offset (TUNSETVNETLE).
    assert raw == bytes([1, 4, 60, 0]) + (1428).to_bytes(2, "little") + bytes([40, 0, 16, 0])
    assert unpack_vnet_hdr(raw + b"payload") == hdr
    assert unpack_vnet_hdr(bytes(10)) == VirtioNetHdr()
    with pytest.raises(ValueError, match="10 bytes"):
        unpack_vnet_hdr(b"\x00" * 9)
    # The flag and type values of linux/virtio_net.h.
    assert (VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID) == (1, 2)
    assert (VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_ECN) == (
        0,
        4,
        0x80,
    )


@given(
    st.builds(
        VirtioNetHdr,
        st.integers(0, 0xFF),
        st.integers(0, 0xFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    )
)
def test_round_trip(hdr: VirtioNetHdr) -> None:
    raw = pack_vnet_hdr(hdr)
    assert unpack_vnet_hdr(raw) == hdr
    # The receive path's plain-tuple parse reads the same fields.
    assert VNET_HDR.unpack_from(raw + b"\x60") == tuple(hdr)


def test_constant_headers() -> None:
    assert pack_vnet_hdr(VirtioNetHdr()) == ZERO_VNET_HDR
    # A TCP packet that fits the MTU with a partial checksum: NEEDS_CSUM over the TCP
    # segment (after the 40-byte IPv6 header), the field at offset 16 of it.
    assert (
        pack_vnet_hdr(
            VirtioNetHdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 40, 16)
        )
        == CSUM_VNET_HDR
    )


def test_gso_header_small_or_not_tcp_is_zero() -> None:
    small = tcp_packet(payload=b"x" * 100)
    assert gso_header_for(small, 1500) == VirtioNetHdr()
    icmp = build_ipv6(
        SRC, DST, PROTO_ICMPV6, build_icmpv6(EchoRequest(1, 1, bytes(3000)), SRC, DST)
    )
    assert gso_header_for(icmp, 1500) == VirtioNetHdr()
    # Exactly one segment's worth: no GSO either; one byte more is a super-segment.
    one = tcp_packet(payload=bytes(1440))
    assert len(one) == 1500
    assert gso_header_for(one, 1500) == VirtioNetHdr()
    assert gso_header_for(tcp_packet(payload=bytes(1441)), 1500).gso_size == 1440
    # An MTU that leaves no room for payload: nothing to segment to.
    assert gso_header_for(one, 60) == VirtioNetHdr()


def test_gso_header_for_super_segment() -> None:
    big = tcp_packet(payload=bytes(30000), timestamps=(1, 2))
    hdr = gso_header_for(big, 1500)
    assert hdr.flags == VIRTIO_NET_HDR_F_NEEDS_CSUM
    assert hdr.gso_type == VIRTIO_NET_HDR_GSO_TCPV6
    assert hdr.hdr_len == 40 + 32
    assert hdr.gso_size == 1500 - 40 - 32
    assert (hdr.csum_start, hdr.csum_offset) == (40, 16)
    assert gso_header_for(big, 1500, gso_size=1000).gso_size == 1000
    # CWR on a super-segment: the ECN bit tells the kernel to clear it after the first.
    ecn = tcp_packet(payload=bytes(5000), flags=ACK | CWR)
    assert gso_header_for(ecn, 1500).gso_type == VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN


def test_partial_checksum_completed_at_the_header_offsets() -> None:
    """The NEEDS_CSUM contract with the offsets gso_header_for announces."""
    for size in (0, 1, 1439, 30001):
        full = tcp_packet(payload=os.urandom(size), flags=ACK | PSH)
        hdr = gso_header_for(full, 1500)
        partial = bytearray(full)
        start, offset = (40, 16) if not hdr.flags else (hdr.csum_start, hdr.csum_offset)
        at = start + offset
        partial[at : at + 2] = partial_tcp_checksum(full).to_bytes(2, "big")
        assert not verify_tcp_checksum(memoryview(partial)[40:], SRC, DST) or size == 0
        assert complete_tcp_checksum(partial) == full
