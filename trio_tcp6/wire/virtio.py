"""The virtio-net header (``struct virtio_net_hdr``, linux/virtio_net.h).

A TUN device opened with ``IFF_VNET_HDR`` prefixes every packet in both directions
with these 10 bytes, which carry the offloads: ``NEEDS_CSUM`` (the checksum at
``csum_start + csum_offset`` holds only the folded pseudo-header sum, to be completed
over ``packet[csum_start:]``), ``DATA_VALID`` (the checksum was verified already) and
``gso_type``/``gso_size``/``hdr_len`` (a TCP super-segment for the kernel to cut into
segments of ``gso_size`` payload bytes, each behind a copy of the first ``hdr_len``
bytes). The fields are little-endian here: the link sets ``TUNSETVNETLE``. Offsets
count from the start of the IPv6 header (a TUN device has no link-layer header).

The layout is the kernel's, not scapy's (scapy has no virtio-net layer): the TUN
link's tests check it against a real kernel.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, TypeAlias

from .ipv6 import IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFFSET, PROTO_TCP
from .tcp import CWR, TCP_CHECKSUM_OFFSET, TCP_HEADER_LEN

__all__ = [
    "CSUM_VNET_HDR",
    "VIRTIO_NET_HDR_F_DATA_VALID",
    "VIRTIO_NET_HDR_F_NEEDS_CSUM",
    "VIRTIO_NET_HDR_GSO_ECN",
    "VIRTIO_NET_HDR_GSO_NONE",
    "VIRTIO_NET_HDR_GSO_TCPV4",
    "VIRTIO_NET_HDR_GSO_TCPV6",
    "VNET_HDR",
    "VNET_HDR_LEN",
    "ZERO_VNET_HDR",
    "VirtioNetHdr",
    "gso_header_for",
    "pack_vnet_hdr",
    "unpack_vnet_hdr",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

#: ``flags``: the checksum at ``csum_start + csum_offset`` is partial.
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
#: ``flags`` (device to driver): the checksum was verified.
VIRTIO_NET_HDR_F_DATA_VALID = 2

#: ``gso_type``: an ordinary packet.
VIRTIO_NET_HDR_GSO_NONE = 0
#: ``gso_type``: a TCP/IPv4 super-segment (never sent by this library).
VIRTIO_NET_HDR_GSO_TCPV4 = 1
#: ``gso_type``: a TCP/IPv6 super-segment.
VIRTIO_NET_HDR_GSO_TCPV6 = 4
#: ``gso_type`` bit: the super-segment has CWR set (cleared after the first segment).
VIRTIO_NET_HDR_GSO_ECN = 0x80

#: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (little-endian). Its
#: ``unpack_from`` is the receive path's parse (a plain tuple, no object).
VNET_HDR = struct.Struct("<BBHHHH")
#: Size of ``struct virtio_net_hdr`` (without ``num_buffers``).
VNET_HDR_LEN = VNET_HDR.size
#: The header of a packet without offloads.
ZERO_VNET_HDR = bytes(VNET_HDR_LEN)
#: The header of a TCP packet (TCP right after the fixed IPv6 header) that fits the
#: MTU and carries a partial checksum.
CSUM_VNET_HDR = VNET_HDR.pack(
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
    0,
    0,
    IPV6_HEADER_LEN,
    TCP_CHECKSUM_OFFSET,
)


class VirtioNetHdr(NamedTuple):
    """``struct virtio_net_hdr``, as read from or written to a TUN device opened with
    ``IFF_VNET_HDR``."""

    flags: int = 0
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0


def pack_vnet_hdr(hdr: VirtioNetHdr) -> bytes:
    """The 10 bytes of ``hdr``, little-endian."""
    return VNET_HDR.pack(*hdr)


def unpack_vnet_hdr(data: Buffer) -> VirtioNetHdr:
    """Parse the first :data:`VNET_HDR_LEN` bytes of ``data`` (``ValueError`` if
    shorter)."""
    if len(data) < VNET_HDR_LEN:
        raise ValueError(f"virtio_net_hdr needs {VNET_HDR_LEN} bytes, got {len(data)}")
    return VirtioNetHdr._make(VNET_HDR.unpack_from(data))


def gso_header_for(packet: Buffer, mtu: int, gso_size: int | None = None) -> VirtioNetHdr:
    """The virtio header to send ``packet`` (a whole IPv6 packet) through a device of
    this ``mtu``: all zeros if it fits or is not offloadable, else a TCPV6
    super-segment with ``NEEDS_CSUM`` (the TCP checksum field must then hold
    :func:`~trio_tcp6.wire.tcp.partial_tcp_checksum`). ``gso_size`` defaults to what
    fills the MTU: MTU - 40 - TCP header length."""
    n = len(packet)
    if (
        n <= mtu
        or n < IPV6_HEADER_LEN + TCP_HEADER_LEN
        or packet[IPV6_NEXT_HEADER_OFFSET] != PROTO_TCP
    ):
        return VirtioNetHdr()
    # TCP data offset (header length in 32-bit words) and flags: bytes 12 and 13.
    thlen = (packet[IPV6_HEADER_LEN + 12] >> 4) * 4
    hdr_len = IPV6_HEADER_LEN + thlen
    if gso_size is None:
        gso_size = mtu - hdr_len
    if gso_size <= 0 or n - hdr_len <= gso_size:
        return VirtioNetHdr()
    gso_type = VIRTIO_NET_HDR_GSO_TCPV6
    if packet[IPV6_HEADER_LEN + 13] & CWR:
        gso_type |= VIRTIO_NET_HDR_GSO_ECN
    return VirtioNetHdr(
        VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type,
        hdr_len,
        gso_size,
        IPV6_HEADER_LEN,
        TCP_CHECKSUM_OFFSET,
    )
