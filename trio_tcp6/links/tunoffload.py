"""The TUN link's offloads, packet by packet: what a received virtio-net header
says, and which header a packet to send gets.

:class:`~trio_tcp6.links.tun.TunLink` reads and writes; the rules for the 10-byte
header in front of every packet (the codec is :mod:`trio_tcp6.wire.virtio`) live
here, apart from the read loop and the writes, because they follow the kernel's
virtio contract (``linux/virtio_net.h``, ``drivers/net/tun.c``) rather than the
Link protocol. Negotiating the offloads when the device is created is
:mod:`trio_tcp6.links.tundev`.

Offloads (``offload=True``, the default; ``offload=False`` turns them off) — the
device is opened with ``IFF_VNET_HDR``, and every
packet in both directions is prefixed by a 10-byte ``struct virtio_net_hdr``
(little-endian: ``TUNSETVNETLE``), which the link adds and strips:

* Receive: ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO6)`` tells the kernel we accept
  packets with a partial checksum (``VIRTIO_NET_HDR_F_NEEDS_CSUM``: the TCP checksum
  field holds only the folded pseudo-header sum) and TCP super-segments of up to 64 KiB
  (``VIRTIO_NET_HDR_GSO_TCPV6``, ``gso_size`` = the sender's MSS). A super-segment is
  simply one large TCP segment (longer than the MTU: the stack must accept segments
  longer than its MSS, which RFC 9293 allows). :meth:`TunLink.receive_batch_offload`
  (the Link protocol's checksum offload, see :mod:`trio_tcp6.links.base`) hands such
  partial TCP packets up as they are, marked trusted, and marks ``DATA_VALID`` TCP
  packets trusted too: the stack skips verifying what the kernel vouches for. The plain
  ``receive*`` calls complete every partial checksum in software first, so they always
  return packets with a correct checksum. If the kernel refuses ``TUNSETOFFLOAD`` the
  link still works, with :attr:`TunLink.offload` false and only MTU-sized packets; if
  it refuses ``IFF_VNET_HDR`` too, the device is a plain one (no virtio header,
  :attr:`TunLink.vnet_hdr` false). Both fallbacks are silent: asking costs nothing.
* Send: the stack may send TCP packets of up to :attr:`TunLink.gso_max` bytes. A
  packet longer than the MTU is sent as a super-segment: ``gso_type`` TCPV6,
  ``gso_size`` = MTU - 40 - TCP header length (or the ``gso_size`` argument of
  :meth:`TunLink.send`), ``hdr_len`` = 40 + TCP header length, and ``NEEDS_CSUM`` with
  ``csum_start`` 40, ``csum_offset`` 16; the kernel segments it (each segment gets a
  copy of the header; FIN and PSH only the last) and checksums each segment where
  needed. :attr:`TunLink.checksum_offload` is True with a virtio header: the stack
  then builds TCP packets with a partial checksum (``partial_checksum=True`` on
  :meth:`TunLink.send`, :meth:`TunLink.send_batch`, :meth:`TunLink.send_nowait`:
  the field already holds the pseudo-header sum, see :func:`partial_tcp_checksum`),
  which go out with ``NEEDS_CSUM`` whatever their size: the kernel trusts them on local
  delivery and completes them when it forwards them. Without ``partial_checksum`` the
  link rewrites a super-segment's checksum field to the pseudo-header sum (from the
  IPv6 header, without touching the payload) and sends packets that fit the MTU with
  an all-zero header (the kernel verifies their checksum as usual); without a virtio
  header it completes partial checksums in software.
"""

from __future__ import annotations

from typing import Protocol

from ..wire.checksum import complete_checksum
from ..wire.ipv6 import IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFFSET, PROTO_TCP
from ..wire.tcp import CWR, TCP_CHECKSUM_OFFSET, TCP_HEADER_LEN
from ..wire.virtio import (
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
    VNET_HDR_LEN,
    VirtioNetHdr,
    pack_vnet_hdr,
)
from .base import Packet

__all__ = ["PARTIAL", "PLAIN", "VALID", "GsoHeaders", "ReceiveCounters", "received_mark"]

#: Marks of received packets: verify the checksum as usual ...
PLAIN = 0
#: ... a TCP packet whose checksum field holds only the pseudo-header sum
#: (``NEEDS_CSUM``): trusted, completed before a plain receive hands it up ...
PARTIAL = 1
#: ... or a packet whose checksum the kernel validated (``DATA_VALID``).
VALID = 2


class ReceiveCounters(Protocol):
    """The counters :func:`received_mark` keeps (the link's ``stats()``)."""

    rx_gso: int
    rx_bad_vnet: int
    rx_csum_completed: int


def received_mark(data: bytes, counts: ReceiveCounters) -> tuple[bytes, int, int]:
    """``(data, offset of the packet, mark)`` for a read whose virtio header has
    flags or a GSO type. A ``NEEDS_CSUM`` TCP packet (checksum field right behind
    the fixed IPv6 header) stays partial (:data:`PARTIAL`); any other
    ``NEEDS_CSUM`` packet is completed here; ``DATA_VALID`` marks the packet
    :data:`VALID` (virtio 1.x, 5.1.6.4: the device validated the checksum).
    Without either flag the packet is plain: its checksum is verified as usual.
    ``b""`` for a header that cannot be honoured. Counted in ``counts``:
    ``rx_gso``, ``rx_bad_vnet``, ``rx_csum_completed``."""
    flags, gso_type, _hdr_len, _gso_size, start, offset = VNET_HDR.unpack_from(data)
    if gso_type != VIRTIO_NET_HDR_GSO_NONE:
        counts.rx_gso += 1
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        if (
            start == IPV6_HEADER_LEN
            and offset == TCP_CHECKSUM_OFFSET
            and len(data) >= VNET_HDR_LEN + IPV6_HEADER_LEN + TCP_HEADER_LEN
            and data[VNET_HDR_LEN + IPV6_NEXT_HEADER_OFFSET] == PROTO_TCP
        ):
            return data, VNET_HDR_LEN, PARTIAL
        mv = memoryview(data)[VNET_HDR_LEN:]
        try:
            packet = complete_checksum(mv, start, offset)
        except ValueError:
            counts.rx_bad_vnet += 1
            return b"", 0, PLAIN
        counts.rx_csum_completed += 1
        return packet, 0, PLAIN
    if flags & VIRTIO_NET_HDR_F_DATA_VALID:
        return data, VNET_HDR_LEN, VALID
    return data, VNET_HDR_LEN, PLAIN


class GsoHeaders:
    """The packed virtio headers of the super-segments a link sends, cached."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        # (TCP header words, CWR, gso_size, MTU) ->
        # (largest length sent without GSO, packed header or None).
        self._cache: dict[tuple[int, int, int | None, int], tuple[int, bytes | None]] = {}

    def prefix(self, packet: Packet, gso_size: int | None, mtu: int) -> bytes | None:
        """The packed virtio header :func:`gso_header_for` gives ``packet`` (longer
        than the MTU) when that is a super-segment, else None. Cached by what it
        depends on besides the length (TCP header length, CWR, ``gso_size``, ``mtu``):
        building and packing the header per 64 KiB frame cost as much as a copy of
        it in the pure build."""
        if (
            len(packet) < IPV6_HEADER_LEN + TCP_HEADER_LEN
            or packet[IPV6_NEXT_HEADER_OFFSET] != PROTO_TCP
        ):
            return None
        words = packet[IPV6_HEADER_LEN + 12] >> 4
        cwr = packet[IPV6_HEADER_LEN + 13] & CWR
        key = (words, cwr, gso_size, mtu)
        entry = self._cache.get(key)
        if entry is None:
            hdr_len = IPV6_HEADER_LEN + words * 4
            size = mtu - hdr_len if gso_size is None else gso_size
            gso_type = VIRTIO_NET_HDR_GSO_TCPV6 | (VIRTIO_NET_HDR_GSO_ECN if cwr else 0)
            hdr = VirtioNetHdr(
                VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type,
                hdr_len,
                size,
                IPV6_HEADER_LEN,
                TCP_CHECKSUM_OFFSET,
            )
            entry = (hdr_len + size, pack_vnet_hdr(hdr) if size > 0 else None)
            if len(self._cache) >= 64:  # a few keys in practice; stay bounded
                self._cache.clear()
            self._cache[key] = entry
        # gso_header_for: a super-segment when the payload exceeds one segment.
        if entry[1] is None or len(packet) <= entry[0]:
            return None
        return entry[1]
