"""The direct stack's IPv6 output: the packets of the engines' segments, on the link.

:class:`IPv6Output` builds the IPv6 packet of each segment a connection hands the
stack (with a partial checksum while the link offloads checksums, shedding SACK
blocks rather than exceed the MTU), cuts super-segments into MTU-sized packets on a
link that does not segment them itself (software GSO, :data:`SOFTWARE_GSO`), and
sends them in the forms the link declares (``send_nowait`` at once in the caller,
else batches, waiting for the link).

It also holds the packets the link reader produces itself -- RSTs for segments
nobody owns (RFC 9293 §3.10.7.1, within a per-destination budget), TIME-WAIT and
SYN-cookie answers, ICMPv6 replies -- in :attr:`IPv6Output.pending`, sent once per
batch by :meth:`IPv6Output.flush_pending`, never waiting for a busy link.
"""

from __future__ import annotations

from collections import Counter

import attrs
import trio

from ..links.base import Link, LinkCapabilities
from ..tcp.seq import MASK
from ..wire.ipv6 import IPV6_HEADER_LEN, PROTO_TCP, build_ipv6_header
from ..wire.tcp import (
    ACK,
    RST,
    TCP_HEADER_LEN,
    TCP_MAX_HEADER_LEN,
    TCPSegment,
    build_ipv6_tcp_ts_partial,
    build_ipv6_tcp_ts_partial_cut,
    build_tcp_header,
    build_tcp_header_partial,
    cut_segment,
    options_length,
    tcp_pseudo_base,
)
from .flowhost import UnsentPackets

__all__ = [
    "RST_BUDGET_DESTINATIONS",
    "SOFTWARE_GSO",
    "SOFTWARE_GSO_MAX",
    "IPv6Output",
]

#: Destinations whose RST budget is tracked within one second; beyond that, new
#: destinations get no RST until the next second (bounds the table's memory).
RST_BUDGET_DESTINATIONS = 4096
#: Software GSO (on by default): on a link that does not segment TCP packets itself
#: (no ``gso_max`` above its MTU) the engines still send new data in super-segments
#: of up to :data:`SOFTWARE_GSO_MAX` bytes a packet, and the stack cuts each into
#: MTU-sized packets when it builds them, exactly as a TSO link would. The packets
#: on the link are the ones the engine would have sent segment by segment; the
#: engine does its per-segment work (building, the scoreboard, ACK processing)
#: once per super-segment. Linux's TCP does the same on every device (GSO is
#: always on since the 2018 commit "tcp: switch to GSO being always on"; a device
#: without TSO gets the cut in software, ``skb_gso_segment``). Read when a stack
#: opens (by :class:`IPv6Output`); tests switch it off to compare.
SOFTWARE_GSO = True
#: The largest packet a super-segment makes before the cut (as a TUN link's
#: ``gso_max``): 65535 bytes, the most an IPv6 payload length field holds.
SOFTWARE_GSO_MAX = 0xFFFF
#: Destinations whose pseudo-header sum is cached (the cache starts over when full).
PSEUDO_CACHE_SIZE = 4096


class IPv6Output:
    """The output side of one direct stack (see the module docstring).

    ``address``: the stack's own (packed); ``mtu``: the link's; ``link_mss``: the
    largest payload the link carries; ``our_mss``: the MSS the stack announces
    (``link_mss``, capped by ``config.mss``); ``counters``: the stack's (``segments_out``,
    ``gso_cut``, ``resets_sent``, ``drop_link_error``, ...); ``rst_rate_limit``:
    RSTs a second to one destination (``config.rst_rate_limit``).
    """

    def __init__(
        self,
        link: Link,
        capabilities: LinkCapabilities,
        address: bytes,
        mtu: int,
        link_mss: int,
        our_mss: int,
        counters: Counter[str],
        rst_rate_limit: int,
    ) -> None:
        self._link = link
        self._addr = address
        self._counters = counters
        self._rst_rate_limit = rst_rate_limit
        self._mtu = mtu
        self._link_mss = link_mss
        #: TSO: a link that segments TCP packets up to ``gso_max`` bytes at its MTU
        #: (TunLink with offload) lets the engines send super-segments of up to this
        #: much payload (0: off; not with a smaller configured MSS, which the link's
        #: cut at MTU - 40 - TCP header length would not respect).
        gso_max = capabilities.gso_max
        # Software GSO: a link that does not segment gets super-segments all the
        # same, and transmit_nowait cuts them into MTU-sized packets.
        cut = gso_max <= mtu and SOFTWARE_GSO and mtu < SOFTWARE_GSO_MAX
        if cut:
            gso_max = SOFTWARE_GSO_MAX
        tso_ok = gso_max > mtu and our_mss == link_mss
        #: What each connection's ``tso_max_bytes`` is set to (0: one MSS a segment).
        self.tso_max = gso_max - IPV6_HEADER_LEN - TCP_MAX_HEADER_LEN if tso_ok else 0
        self._cut = cut and tso_ok
        #: Payloads longer than this may need cutting (those that fit the MTU even
        #: with the longest TCP header certainly do not).
        self._cut_above = mtu - IPV6_HEADER_LEN - TCP_MAX_HEADER_LEN
        self._send_batch = capabilities.send_batch
        #: A link that never blocks a sender may offer ``send_nowait``: flows then
        #: transmit without a scheduling point per batch.
        self.send_nowait = capabilities.send_nowait
        self._offload = offload = capabilities.checksum_offload
        self._send_nowait_partial = offload.send_nowait if offload else None
        #: Pseudo-header sums without the length, by destination (fast packet path).
        self._pseudo: dict[bytes, int] = {}
        #: Packets the link reader produced (RSTs, TIME-WAIT and cookie answers,
        #: ICMPv6), sent after its batch by :meth:`flush_pending`; always this list.
        self.pending: list[bytes] = []
        self._rst_second = -1
        #: RSTs sent this second, by destination address (see :meth:`_rst_allowed`).
        self._rst_counts: dict[bytes, int] = {}

    # -- building ---------------------------------------------------------------------------
    def packet(self, dst: bytes, seg: TCPSegment, partial: bool = False) -> bytes:
        """The IPv6 packet carrying ``seg``; ``partial``: with a partial checksum (for
        a link that offloads checksums: the payload is not summed)."""
        if partial:
            # Fast path (every data segment and ACK with offload): one struct call for
            # both headers, the pseudo-header sum from a per-destination constant.
            base = self._pseudo.get(dst)
            if base is None:
                base = self._new_pseudo_base(dst)
            fast = build_ipv6_tcp_ts_partial(seg, self._addr, dst, base)
            if fast is not None:
                return fast
        src = self._addr
        build = build_tcp_header_partial if partial else build_tcp_header
        header = build(seg, src, dst)
        payload = seg.payload
        size = len(header) + len(payload)
        if (
            size + IPV6_HEADER_LEN > self._mtu
            and seg.sack_blocks
            and len(payload) <= self._link_mss
        ):
            # SACK blocks are advisory: shed them rather than send a packet the link
            # cannot carry (counted: the engine should have left room for them).
            self._counters["sack_blocks_trimmed"] += 1
            blocks = seg.sack_blocks
            while blocks and size + IPV6_HEADER_LEN > self._mtu:
                blocks = blocks[:-1]
                header = build(attrs.evolve(seg, sack_blocks=blocks), src, dst)
                size = len(header) + len(payload)
        ip = build_ipv6_header(src, dst, PROTO_TCP, size, traffic_class=seg.ecn)
        return b"".join((ip, header, payload)) if payload else ip + header

    def _new_pseudo_base(self, dst: bytes) -> int:
        """The pseudo-header sum toward ``dst``, cached (the lookup stays inline in
        the callers: it runs for every packet, the miss once per destination)."""
        if len(self._pseudo) >= PSEUDO_CACHE_SIZE:
            self._pseudo.clear()
        base = self._pseudo[dst] = tcp_pseudo_base(self._addr, dst)
        return base

    def _cut_packets(self, dst: bytes, seg: TCPSegment, partial: bool) -> list[bytes]:
        """The packets of ``seg``, a super-segment if it does not fit the MTU: cut
        into segments of MTU - 40 - TCP header length payload bytes, as a TSO link
        cuts one (software GSO)."""
        size = self._mtu - IPV6_HEADER_LEN - TCP_HEADER_LEN - options_length(seg)
        if len(seg.payload) <= size:
            return [self.packet(dst, seg, partial)]
        self._counters["gso_cut"] += 1
        if partial:
            base = self._pseudo.get(dst)
            if base is None:
                base = self._new_pseudo_base(dst)
            fast = build_ipv6_tcp_ts_partial_cut(seg, self._addr, dst, base, size)
            if fast is not None:
                return fast
        packet = self.packet
        return [packet(dst, piece, partial) for piece in cut_segment(seg, size)]

    # -- a connection's segments ------------------------------------------------------------
    async def transmit(self, dst: bytes, segs: list[TCPSegment]) -> None:
        """(:class:`~trio_tcp6.runtime.flowhost.FlowHost`) Send ``segs`` to ``dst``,
        waiting for the link if it is busy."""
        rest = self.transmit_nowait(dst, segs)
        if rest is not None:
            await self._send_packets(*rest)

    def transmit_nowait(self, dst: bytes, segs: list[TCPSegment]) -> UnsentPackets | None:
        """(:class:`~trio_tcp6.runtime.flowhost.FlowHost`) Build the packets of ``segs``
        and send what the link takes without waiting (``send_nowait``, a link that
        never blocks a sender); returns None when all went, else the packets left
        and their ``partial`` flag, to be sent with :meth:`send_unsent`."""
        # Checksum offload: asked per batch, it may change.
        offload = self._offload
        partial = offload is not None and offload.active()
        packet = self.packet
        if self._cut:
            packets: list[bytes] = []
            above = self._cut_above
            for seg in segs:
                if len(seg.payload) > above:
                    packets.extend(self._cut_packets(dst, seg, partial))
                else:
                    packets.append(packet(dst, seg, partial))
        else:
            packets = [packet(dst, seg, partial) for seg in segs]
        self._counters["segments_out"] += len(packets)
        send_nowait = self.send_nowait
        if send_nowait is None:
            return packets, partial
        i = 0
        try:
            if partial:
                send_partial = self._send_nowait_partial
                assert send_partial is not None  # (LinkCapabilities requires it)
                for i, pkt in enumerate(packets):  # noqa: B007
                    send_partial(pkt, partial_checksum=True)
            else:
                for i, pkt in enumerate(packets):  # noqa: B007
                    send_nowait(pkt)
        except trio.WouldBlock:
            return packets[i:], partial  # the link is full after all: wait for it
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            self._counters["drop_link_error"] += len(packets) - i
        return None

    async def send_unsent(self, unsent: UnsentPackets) -> None:
        """(:class:`~trio_tcp6.runtime.flowhost.FlowHost`) Send what
        :meth:`transmit_nowait` left, waiting for the link."""
        await self._send_packets(*unsent)

    async def _send_packets(self, packets: list[bytes], partial: bool = False) -> None:
        try:
            if partial:
                offload = self._offload
                assert offload is not None  # (partial only with checksum offload)
                if offload.send_batch is not None:
                    await offload.send_batch(packets, partial_checksum=True)
                else:
                    for packet in packets:
                        await offload.send(packet, partial_checksum=True)
            elif self._send_batch is not None:
                await self._send_batch(packets)
            else:
                for packet in packets:
                    await self._link.send(packet)
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            self._counters["drop_link_error"] += len(packets)

    # -- the reader's own packets -----------------------------------------------------------
    async def flush_pending(self) -> None:
        """Send :attr:`pending` (the reader's answers), then empty it."""
        pending = self.pending
        if pending:
            if self.send_nowait is not None:
                self.flush_pending_nowait()
                return
            packets = pending.copy()
            pending.clear()
            await self._send_packets(packets)

    def flush_pending_nowait(self) -> None:
        """Send :attr:`pending` with the link's ``send_nowait`` (it must have it), then
        empty it; what the link refuses is dropped and counted."""
        pending = self.pending
        if pending:
            packets = pending.copy()
            pending.clear()
            send_nowait = self.send_nowait
            assert send_nowait is not None
            # The link reader never waits for a busy link (a link that pushes back,
            # as a VirtualNetwork does on a full inbound queue): two readers waiting
            # on each other's queues would stop both hosts. These are RSTs and
            # TIME-WAIT/cookie answers: the peer retransmits what they answer.
            for i, packet in enumerate(packets):
                try:
                    send_nowait(packet)
                except trio.WouldBlock:
                    self._counters["drop_link_busy"] += len(packets) - i
                    return
                except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
                    self._counters["drop_link_error"] += len(packets) - i
                    return

    def _rst_allowed(self, dst: bytes, now: float) -> bool:
        """May we send one more RST to ``dst`` this second?

        The budget is per destination address, never stack-wide: a shared counter
        is a side channel (CVE-2016-5696): an off-path attacker spoofs a segment at
        a guessed 4-tuple (a RST answers it only if no connection owns it) and
        counts the RSTs its own probes still get. Per destination, what a host
        receives depends only on what it sent itself."""
        second = int(now)
        counts = self._rst_counts
        if second != self._rst_second:
            self._rst_second = second
            counts.clear()
        count = counts.get(dst, 0)
        if count >= self._rst_rate_limit:
            return False
        if not count and len(counts) >= RST_BUDGET_DESTINATIONS:
            return False
        counts[dst] = count + 1
        return True

    def reset_for(self, src: bytes, seg: TCPSegment, now: float) -> None:
        """RFC 9293 §3.10.7.1: queue the RST answering ``seg`` from ``src``, a
        segment nobody owns (never a RST for a RST; within the RST budget)."""
        if seg.flags & RST:
            return
        if not self._rst_allowed(src, now):
            self._counters["resets_rate_limited"] += 1
            return
        if seg.flags & ACK:
            rst = TCPSegment.reset(seg.dst_port, seg.src_port, seg.ack)
        else:
            ack = (seg.seq + seg.seg_len) & MASK
            rst = TCPSegment.reset(seg.dst_port, seg.src_port, 0, ack)
        self.pending.append(self.packet(src, rst))
        self._counters["resets_sent"] += 1
        self._counters["segments_out"] += 1
