"""The direct, userspace TCP/IPv6 stack: :func:`open_stack`.

One task reads the link (with the batch form it declares, see
:class:`~trio_tcp6.links.base.LinkCapabilities`) and, for each
packet, synchronously: parses the IPv6 header, verifies the checksum, answers ICMPv6
echo requests, applies Packet Too Big to the connection it quotes, and hands TCP
segments to their connection by 4-tuple — or to a listener (new connection, SYN
cookie), or answers with a RST (RFC 9293 §3.10.7.1). Packets the reader itself
produces (RSTs, echo replies, cookie SYN-ACKs) are sent once per batch.

Every connection is a :class:`~trio_tcp6.runtime.flow.DirectFlow` with a task pair in
this stack's nursery; the stack is its :class:`~trio_tcp6.runtime.flow.FlowHost` and
each listener's :class:`~trio_tcp6.runtime.listener.ListenerHost`. A connection that
enters TIME-WAIT leaves its flow for the stack's
:class:`~trio_tcp6.runtime.timewait.TimeWaitTable` (outside ``max_connections``), where
the reader answers for it until 2*MSL are over. Leaving
``open_stack`` resets every flow still open, closes every listener and cancels every
task.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs
import trio

from ..config import TCPConfig
from ..errors import TCPError, Unknown
from ..links.base import Link, LinkCapabilities, ReceiveBatchMarked, capabilities_of
from ..links.replay import derive_seed
from ..tcp.connection import DEFAULT_IPV6_MSS, Connection, choose_shift, shared_config
from ..tcp.isn import ISNGenerator, SynCookies, decode_ts_options, encode_ts_options
from ..tcp.memory import MemoryAccount, relieve
from ..tcp.ports import EphemeralPorts
from ..tcp.seq import MASK, seq_gt
from ..wire.errors import ParseError
from ..wire.ipv6 import (
    ECN_MASK,
    IPV6_HEADER_LEN,
    PROTO_ICMPV6,
    PROTO_TCP,
    IPv6Packet,
    ParameterProblemError,
    build_ipv6_header,
    parse_ipv6,
    peek_ipv6,
)
from ..wire.tcp import (
    ACK,
    IPV6_TCP_HEADERS_LEN,
    RST,
    SYN,
    TCP_HEADER_LEN,
    TCP_MAX_HEADER_LEN,
    TCPSegment,
    build_ipv6_tcp_ts_partial,
    build_ipv6_tcp_ts_partial_cut,
    build_tcp_header,
    build_tcp_header_partial,
    cut_segment,
    options_length,
    parse_tcp,
    tcp_pseudo_base,
    verify_tcp_checksum,
)
from .base import Buffer, Stack, check_port, parse_host
from .flow import DirectFlow, UnsentPackets

# The ICMPv6 and PMTU constants stay importable from here, where they always were.
from .icmp import ICMP_ERROR_BURST as ICMP_ERROR_BURST
from .icmp import ICMP_ERROR_RATE as ICMP_ERROR_RATE
from .icmp import PMTU_CACHE_SIZE as PMTU_CACHE_SIZE
from .icmp import PMTU_TIMEOUT as PMTU_TIMEOUT
from .icmp import ICMPv6Handler
from .listener import DirectListener
from .timewait import FlowKey, TimeWaitTable

__all__ = ["DirectStack", "open_stack"]

_UNSPECIFIED = bytes(16)
#: Seconds after the last cookie we sent during which cookie ACKs are checked.
COOKIE_CHECK_WINDOW = 128.0
#: Destinations whose RST budget is tracked within one second; beyond that, new
#: destinations get no RST until the next second (bounds the table's memory).
RST_BUDGET_DESTINATIONS = 4096
#: Under memory pressure the stack prunes out-of-order data across its connections
#: at most once per this many seconds (the walk is O(n log n) in the connections).
MEMORY_RELIEF_INTERVAL = 0.1
#: Software GSO (on by default): on a link that does not segment TCP packets itself
#: (no ``gso_max`` above its MTU) the engines still send new data in super-segments
#: of up to :data:`SOFTWARE_GSO_MAX` bytes a packet, and the stack cuts each into
#: MTU-sized packets when it builds them, exactly as a TSO link would. The packets
#: on the link are the ones the engine would have sent segment by segment; the
#: engine does its per-segment work (building, the scoreboard, ACK processing)
#: once per super-segment. Linux's TCP does the same on every device (GSO is
#: always on since the 2018 commit "tcp: switch to GSO being always on"; a device
#: without TSO gets the cut in software, ``skb_gso_segment``). Read when a stack
#: opens; tests switch it off to compare.
SOFTWARE_GSO = True
#: The largest packet a super-segment makes before the cut (as a TUN link's
#: ``gso_max``): 65535 bytes, the most an IPv6 payload length field holds.
SOFTWARE_GSO_MAX = 0xFFFF
logger = logging.getLogger("trio_tcp6")


class DirectStack(Stack):
    """A userspace TCP/IPv6 stack on one link and one address (see :func:`open_stack`)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        link: Link,
        address: str | ipaddress.IPv6Address,
        config: TCPConfig,
        hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
        seed: int | bytes | None = None,
    ) -> None:
        super().__init__(nursery, hosts)
        self.link = link
        self.address = parse_host(address)
        self.config = config
        self._addr = self.address.packed
        #: What the link offers beyond send/receive (read once).
        self.capabilities: LinkCapabilities = capabilities_of(link)
        #: Largest payload our link carries; the engine caps it with ``config.mss``.
        self._mtu = int(link.mtu)
        self._link_mss = max(64, self._mtu - IPV6_TCP_HEADERS_LEN)
        self._our_mss = min(self._link_mss, config.mss) if config.mss else self._link_mss
        #: TSO: a link that segments TCP packets up to ``gso_max`` bytes at its MTU
        #: (TunLink with offload) lets the engines send super-segments of up to this
        #: much payload (0: off; not with a smaller configured MSS, which the link's
        #: cut at MTU - 40 - TCP header length would not respect).
        gso_max = self.capabilities.gso_max
        #: Software GSO: a link that does not segment gets super-segments all the
        #: same, and :meth:`transmit_nowait` cuts them into MTU-sized packets
        #: (:data:`SOFTWARE_GSO`).
        self._cut = gso_max <= self._mtu and SOFTWARE_GSO and self._mtu < SOFTWARE_GSO_MAX
        if self._cut:
            gso_max = SOFTWARE_GSO_MAX
        tso_ok = gso_max > self._mtu and self._our_mss == self._link_mss
        self._tso_max = gso_max - IPV6_HEADER_LEN - TCP_MAX_HEADER_LEN if tso_ok else 0
        self._cut = self._cut and tso_ok
        #: Payloads longer than this may need cutting (those that fit the MTU even
        #: with the longest TCP header certainly do not).
        self._cut_above = self._mtu - IPV6_HEADER_LEN - TCP_MAX_HEADER_LEN
        self._flows: dict[FlowKey, DirectFlow] = {}
        self._listeners: dict[int, DirectListener] = {}
        self._local_ports: Counter[int] = Counter()
        self._counters: Counter[str] = Counter()
        #: Connections in TIME-WAIT (not in ``_flows``; their local ports stay counted).
        self.time_wait = TimeWaitTable(
            config.max_time_wait, self._counters, self._time_wait_released
        )
        # Every secret from the seed (ours, or the link's for a simulated network),
        # else from the OS.
        if seed is None:
            seed = self.capabilities.seed

        def secret(label: str) -> bytes | None:
            return None if seed is None else derive_seed(seed, label)

        self._isn = ISNGenerator(secret("isn"))
        # An independent secret: TSval must not leak F.
        self._ts_offsets = ISNGenerator(secret("ts-offset"))
        self._cookies = SynCookies(secret("syncookie"))
        self._last_cookie: float | None = None
        self._ports = EphemeralPorts(secret("ports"))
        self._rst_second = -1
        #: RSTs sent this second, by destination address (see :meth:`_rst_allowed`).
        self._rst_counts: dict[bytes, int] = {}
        self._pending: list[bytes] = []
        caps = self.capabilities
        self._send_batch = caps.send_batch
        #: A link that never blocks a sender may offer ``send_nowait``: flows then
        #: transmit without a scheduling point per batch.
        self._send_nowait = caps.send_nowait
        self._offload = caps.checksum_offload
        self._send_nowait_partial = self._offload.send_nowait if self._offload else None
        #: Pseudo-header sums without the length, by destination (fast packet path).
        self._pseudo: dict[bytes, int] = {}
        self._shut_down = False
        # ICMPv6: echo, errors about our segments, path MTUs, the errors we send.
        self._icmp = ICMPv6Handler(
            self._addr,
            self._mtu,
            self._flows,
            self._counters,
            lambda packet: self._pending.append(packet),
            self._malformed,
        )
        # The address of the last peer a passive open came from: the flows from one
        # peer share it (168 bytes with its int, for every accepted connection).
        self._last_peer: ipaddress.IPv6Address | None = None
        #: What all connections buffer, against ``config.memory_limit`` (tcp_mem).
        self.memory = MemoryAccount(config.memory_limit, self._counters)
        self._memory_relief_at = -1e18

    # -- bookkeeping --------------------------------------------------------------------------
    def _register(self, flow: DirectFlow) -> None:
        self._flows[flow.key] = flow
        self._local_ports[flow.local_port] += 1
        flow.engine.tso_max_bytes = self._tso_max
        flow.start(self._nursery)
        self._apply_path_mtu(flow, trio.current_time())
        # The SYN (or SYN-ACK) leaves now, on a link that never blocks: not one
        # scheduling round later with the sender task's first step, which would
        # add a round to every handshake (two per connection).
        flow.flush()

    def unregister(self, flow: DirectFlow) -> None:
        """(:class:`~trio_tcp6.runtime.flow.FlowHost`) ``flow`` reached CLOSED: its
        4-tuple and local port are free."""
        if self._flows.get(flow.key) is flow:
            del self._flows[flow.key]
            self._release_port(flow.local_port)

    def time_wait_entered(self, flow: DirectFlow) -> None:
        """(:class:`~trio_tcp6.runtime.flow.FlowHost`) ``flow``'s connection entered
        TIME-WAIT: it no longer counts against ``max_connections``; the TIME-WAIT
        table keeps its engine (and its local port in use) until 2*MSL are over."""
        key = flow.key
        if self._flows.get(key) is flow:
            del self._flows[key]
            self.time_wait.add(key, flow.engine, trio.current_time())

    def _time_wait_released(self, key: FlowKey) -> None:
        self._release_port(key[2])

    def _release_port(self, port: int) -> None:
        self._local_ports[port] -= 1
        if self._local_ports[port] <= 0:
            del self._local_ports[port]

    def remove_listener(self, listener: DirectListener) -> None:
        """(:class:`~trio_tcp6.runtime.listener.ListenerHost`) ``listener`` was
        closed: its port is free."""
        if self._listeners.get(listener.port) is listener:
            del self._listeners[listener.port]

    @property
    def counters(self) -> Counter[str]:
        """The live counters behind :meth:`stats` (flows and engines add to them)."""
        return self._counters

    @property
    def shut_down(self) -> bool:
        """True once the ``open_stack`` block is being left."""
        return self._shut_down

    @property
    def sends_nowait(self) -> bool:
        """True when the link declares ``send_nowait``: :meth:`transmit_nowait`
        can send without waiting."""
        return self._send_nowait is not None

    #: The stack's time: the trio clock, ``trio.current_time`` itself (a flow reads
    #: it in every call and every batch; a method around it would add a frame).
    clock = staticmethod(trio.current_time)

    def _ts_offset(self, local_port: int, remote: bytes, remote_port: int) -> int:
        return self._ts_offsets.offset(self._addr, local_port, remote, remote_port)

    @property
    def flows(self) -> list[DirectFlow]:
        """The connections the stack holds (every state but CLOSED and TIME-WAIT)."""
        return list(self._flows.values())

    # -- output -----------------------------------------------------------------------------
    def _packet(self, dst: bytes, seg: TCPSegment, partial: bool = False) -> bytes:
        """The IPv6 packet carrying ``seg``; ``partial``: with a partial checksum (for
        a link that offloads checksums: the payload is not summed)."""
        if partial:
            # Fast path (every data segment and ACK with offload): one struct call for
            # both headers, the pseudo-header sum from a per-destination constant.
            base = self._pseudo.get(dst)
            if base is None:
                if len(self._pseudo) >= 4096:
                    self._pseudo.clear()
                base = self._pseudo[dst] = tcp_pseudo_base(self._addr, dst)
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

    def _cut_packets(self, dst: bytes, seg: TCPSegment, partial: bool) -> list[bytes]:
        """The packets of ``seg``, a super-segment if it does not fit the MTU: cut
        into segments of MTU - 40 - TCP header length payload bytes, as a TSO link
        cuts one (software GSO)."""
        size = self._mtu - IPV6_HEADER_LEN - TCP_HEADER_LEN - options_length(seg)
        if len(seg.payload) <= size:
            return [self._packet(dst, seg, partial)]
        self._counters["gso_cut"] += 1
        if partial:
            base = self._pseudo.get(dst)
            if base is None:
                if len(self._pseudo) >= 4096:
                    self._pseudo.clear()
                base = self._pseudo[dst] = tcp_pseudo_base(self._addr, dst)
            fast = build_ipv6_tcp_ts_partial_cut(seg, self._addr, dst, base, size)
            if fast is not None:
                return fast
        packet = self._packet
        return [packet(dst, piece, partial) for piece in cut_segment(seg, size)]

    async def transmit(self, dst: bytes, segs: list[TCPSegment]) -> None:
        """(:class:`~trio_tcp6.runtime.flow.FlowHost`) Send ``segs`` to ``dst``,
        waiting for the link if it is busy."""
        rest = self.transmit_nowait(dst, segs)
        if rest is not None:
            await self._send_packets(*rest)

    def transmit_nowait(self, dst: bytes, segs: list[TCPSegment]) -> UnsentPackets | None:
        """(:class:`~trio_tcp6.runtime.flow.FlowHost`) Build the packets of ``segs``
        and send what the link takes without waiting (``send_nowait``, a link that
        never blocks a sender); returns None when all went, else the packets left
        and their ``partial`` flag, to be sent with :meth:`send_unsent`."""
        # Checksum offload: asked per batch, it may change.
        offload = self._offload
        partial = offload is not None and offload.active()
        packet = self._packet
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
        send_nowait = self._send_nowait
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
        """(:class:`~trio_tcp6.runtime.flow.FlowHost`) Send what
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
                    await self.link.send(packet)
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            self._counters["drop_link_error"] += len(packets)

    async def _flush_pending(self) -> None:
        packets = self._pending
        if packets:
            self._pending = []
            send_nowait = self._send_nowait
            if send_nowait is None:
                await self._send_packets(packets)
                return
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
        if count >= self.config.rst_rate_limit:
            return False
        if not count and len(counts) >= RST_BUDGET_DESTINATIONS:
            return False
        counts[dst] = count + 1
        return True

    def _reset_for(self, src: bytes, seg: TCPSegment, now: float) -> None:
        """RFC 9293 §3.10.7.1: answer a segment nobody owns (never a RST for a RST)."""
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
        self._pending.append(self._packet(src, rst))
        self._counters["resets_sent"] += 1
        self._counters["segments_out"] += 1

    # -- input ------------------------------------------------------------------------------
    async def _reader(self) -> None:
        link = self.link
        if self._offload is not None:
            await self._offload_reader(self._offload.receive_batch)
            return
        receive_batch = self.capabilities.receive_batch
        while True:
            try:
                if receive_batch is not None:
                    packets = await receive_batch()
                else:
                    packets = [await link.receive()]
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel):
                self._counters["link_closed"] += 1
                return
            now = trio.current_time()
            for packet in packets:
                try:
                    self._ip_input(packet, now)
                except Exception as exc:
                    self._input_failed(exc)
            if self.memory.relief_due:
                self._relieve_memory(now)
            if self._pending:
                await self._flush_pending()

    async def _offload_reader(self, receive: ReceiveBatchMarked) -> None:
        """:meth:`_reader` for a link with checksum offload: packets marked partial
        are TCP packets whose checksum needs no verification."""
        ip_input = self._ip_input
        while True:
            try:
                batch = await receive()
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel):
                self._counters["link_closed"] += 1
                return
            now = trio.current_time()
            for packet, partial in batch:
                try:
                    ip_input(packet, now, partial)
                except Exception as exc:
                    self._input_failed(exc)
            if self.memory.relief_due:
                self._relieve_memory(now)
            if self._pending:
                await self._flush_pending()

    def _relieve_memory(self, now: float) -> None:
        """Memory pressure: prune out-of-order data across the connections, those
        holding most first (:func:`~trio_tcp6.tcp.memory.relieve`), at most once
        per :data:`MEMORY_RELIEF_INTERVAL`."""
        if now < self._memory_relief_at:
            return
        self._memory_relief_at = now + MEMORY_RELIEF_INTERVAL
        for flow, exc in relieve(self.memory, [(f.engine, f) for f in self._flows.values()]):
            flow.engine_failed(exc)

    def _input_failed(self, exc: Exception) -> None:
        """A bug hit while processing one inbound packet (outside any connection's
        own processing): drop the packet, count and log it, keep the stack going."""
        self._counters["engine_errors"] += 1
        logger.error("trio_tcp6: internal error processing a packet; dropped", exc_info=exc)

    def _drop(self, reason: str) -> None:
        self._counters["drop_" + reason] += 1

    def _malformed(self, exc: ParseError) -> None:
        c = self._counters
        c["drop_malformed"] += 1
        c["drop_malformed_" + exc.reason] += 1

    def _ip_input(self, data: Buffer, now: float, partial: bool = False) -> None:
        """One IPv6 packet from the link; ``partial``: a TCP packet with a partial
        checksum from an offloading link (trusted, not verified)."""
        c = self._counters
        c["packets_in"] += 1
        head = peek_ipv6(data) if type(data) is bytes or type(data) is memoryview else None
        if head is not None:
            # Fast path: TCP right after the fixed header (what parse_ipv6 would find
            # with no extension headers), payload trimmed to the payload length.
            src, dst, nh, payload = head
            if nh == PROTO_TCP and dst == self._addr:
                # (The ECN field, as wire.ipv6.ecn_of reads it, inline: per packet.)
                self._tcp_input(src, payload, now, partial, (data[1] >> 4) & ECN_MASK)
                return
        try:
            pkt = parse_ipv6(data)
        except ParameterProblemError as exc:
            self._parameter_problem(data, exc, now)
            return
        except ParseError as exc:
            self._malformed(exc)
            return
        if pkt.dst != self._addr:
            self._drop("not_for_us")
            return
        nh = pkt.next_header
        if nh == PROTO_TCP:
            self._tcp_input(pkt.src, pkt.payload, now, partial, pkt.traffic_class & ECN_MASK)
        elif nh == PROTO_ICMPV6:
            self._icmp_input(pkt.src, pkt.payload, now)
        else:
            self._unknown_protocol(data, pkt, now)

    def _tcp_input(
        self, src: bytes, payload: Buffer, now: float, trusted: bool = False, ecn: int = 0
    ) -> None:
        """A TCP segment from ``src``; ``ecn``: its packet's ECN field, which the
        segment carries to the engine (RFC 3168 §6.1.3)."""
        c = self._counters
        if not trusted and not verify_tcp_checksum(payload, src, self._addr):
            c["drop_bad_checksum"] += 1
            return
        try:
            seg = parse_tcp(payload)
        except ParseError as exc:
            self._malformed(exc)
            return
        if ecn:
            seg.ecn = ecn
        c["segments_in"] += 1
        key = (src, seg.src_port, seg.dst_port)
        flow = self._flows.get(key)
        if flow is not None:
            if (
                not flow.handshake_complete
                and seg.flags & (ACK | RST) == ACK
                and flow.listener is not None
            ):
                listener = self._listeners.get(flow.local_port)
                if (
                    listener is not None
                    and listener is flow.listener
                    and not listener.may_complete(flow)
                ):
                    # Linux: the handshake's ACK finds the accept queue full and
                    # is dropped; the SYN-ACK retransmission or the client's
                    # retry completes it once there is room.
                    c["drop_accept_queue_full"] += 1
                    return
            try:
                flow.inbox.send_nowait(seg)
            except trio.WouldBlock:
                c["drop_flow_queue_full"] += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                c["drop_closed"] += 1
            return
        iss_floor: int | None = None
        tw = self.time_wait.get(key, now) if self.time_wait else None
        if tw is not None:
            if not (
                seg.flags & SYN
                and seg.dst_port in self._listeners
                and self.time_wait.accepts_syn(key, tw, seg)
            ):
                for out in self.time_wait.segment(key, tw, seg, now):
                    self._pending.append(self._packet(src, out))
                    c["segments_out"] += 1
                return
            # RFC 6191: a newer SYN may reuse a TIME-WAIT 4-tuple. The new ISS must
            # lie above every sequence number the old connection used (RFC 1122
            # §4.2.2.13), so that its old duplicates miss the new window.
            c["time_wait_reused"] += 1
            iss_floor = (tw.snd_nxt + 0x10000) & MASK
            self.time_wait.remove(key, now)
        elif src[0] == 0xFF or src == _UNSPECIFIED:
            # RFC 4291 §2.5.2, §2.7: never the source of a segment; answering it
            # would reach a group, or nobody.
            c["drop_bad_source"] += 1
            return
        listener = self._listeners.get(seg.dst_port)
        if listener is not None:
            self._listen_input(listener, src, seg, now, iss_floor)
            return
        c["drop_no_listener"] += 1
        self._reset_for(src, seg, now)

    def _peer_address(self, src: bytes) -> ipaddress.IPv6Address:
        peer = self._last_peer
        if peer is None or peer.packed != src:
            peer = self._last_peer = ipaddress.IPv6Address(src)
        return peer

    def _listen_input(
        self,
        listener: DirectListener,
        src: bytes,
        seg: TCPSegment,
        now: float,
        iss_floor: int | None = None,
    ) -> None:
        """RFC 9293 §3.10.7.2: a segment for a listening port. ``iss_floor``: the
        ISS must be above it (a SYN that took over a TIME-WAIT 4-tuple)."""
        c = self._counters
        cfg = self.config
        flags = seg.flags
        if flags & RST:
            c["drop_listen_rst"] += 1
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(listener, src, seg, now):
                return
            c["drop_listen_bad_ack"] += 1
            self._reset_for(src, seg, now)
            return
        if not flags & SYN:
            c["drop_listen_no_syn"] += 1
            return
        if seg.src_port == seg.dst_port and src == self._addr:
            # LAND: a spoofed SYN from our own address and port would make a
            # connection with itself that ACKs its own ACKs for ever.
            c["drop_land"] += 1
            return
        if len(self._flows) >= cfg.max_connections:
            c["drop_max_connections"] += 1
            return
        if listener.accept_queue_full:
            c["drop_accept_queue_full"] += 1
            return
        if listener.half_open >= cfg.syn_backlog:
            if cfg.syn_cookies:
                self._send_cookie(src, seg, now)
            else:
                c["drop_syn_backlog_full"] += 1
            return
        lport, rport = seg.dst_port, seg.src_port
        iss = self._isn.isn(self._addr, lport, src, rport, now)
        if iss_floor is not None and not seq_gt(iss, iss_floor):
            iss = iss_floor
        conn = Connection.accept(
            self._accepted_config(listener),
            seg,
            iss=iss,
            mss=self._link_mss,
            now=now,
            stats=c,
            ts_offset=self._ts_offset(lport, src, rport),
            memory=self.memory,
        )
        flow = DirectFlow(self, conn, self._peer_address(src), rport, lport, listener)
        listener.add_half_open(flow)
        c["passive_opens"] += 1
        self._register(flow)

    def _accepted_config(self, listener: DirectListener) -> TCPConfig:
        """The configuration of a connection accepted by ``listener``: with
        TCP_NODELAY from the start if the listener gives it to accepted flows
        (``accept()`` then has nothing to change)."""
        cfg = self.config
        return shared_config(cfg, nagle=False) if listener.nodelay and cfg.nagle else cfg

    def _send_cookie(self, src: bytes, seg: TCPSegment, now: float) -> None:
        """A stateless SYN-ACK whose ISN is a SYN cookie (RFC 4987 §3.6)."""
        cfg = self.config
        lport, rport = seg.dst_port, seg.src_port
        peer_mss = seg.mss if seg.mss is not None else DEFAULT_IPV6_MSS
        cookie = self._cookies.make(
            self._addr, lport, src, rport, seg.seq, min(peer_mss, self._our_mss), now
        )
        wscale: int | None = None
        sack = False
        timestamps: tuple[int, int] | None = None
        if cfg.timestamps and seg.timestamps is not None:
            # Without timestamps there is nowhere to keep window scale and SACK.
            peer_ws = min(seg.wscale, 14) if cfg.window_scale and seg.wscale is not None else None
            sack = cfg.sack and seg.sack_permitted
            tsval = (int(now * 1000) + self._ts_offset(lport, src, rport)) & MASK
            timestamps = (encode_ts_options(tsval, peer_ws, sack), seg.timestamps[0])
            if peer_ws is not None:
                wscale = choose_shift(cfg.receive_buffer)
        syn_ack = TCPSegment.handshake(
            lport,
            rport,
            cookie,
            min(cfg.receive_buffer, 0xFFFF),
            ack=(seg.seq + 1) & MASK,
            mss=self._our_mss,
            wscale=wscale,
            sack_permitted=sack,
            timestamps=timestamps,
        )
        self._pending.append(self._packet(src, syn_ack))
        self._last_cookie = now
        c = self._counters
        c["syn_cookies_sent"] += 1
        c["segments_out"] += 1

    def _cookie_ack(
        self, listener: DirectListener, src: bytes, seg: TCPSegment, now: float
    ) -> bool:
        """The ACK completing a SYN-cookie handshake? Then the connection is made."""
        cfg = self.config
        if not cfg.syn_cookies or self._last_cookie is None:
            return False
        if now - self._last_cookie > COOKIE_CHECK_WINDOW:
            return False
        c = self._counters
        lport, rport = seg.dst_port, seg.src_port
        cookie = (seg.ack - 1) & MASK
        mss = self._cookies.check(self._addr, lport, src, rport, (seg.seq - 1) & MASK, cookie, now)
        if mss is None:
            c["syn_cookies_failed"] += 1
            return False
        c["syn_cookies_validated"] += 1
        if len(self._flows) >= cfg.max_connections or listener.accept_queue_full:
            c["drop_accept_queue_full"] += 1
            return True
        if seg.timestamps is not None:
            peer_ws, sack = decode_ts_options(seg.timestamps[1])
        else:
            peer_ws, sack = None, False
        conn = Connection.accept_cookie(
            self._accepted_config(listener),
            seg,
            iss=cookie,
            peer_mss=mss,
            peer_wscale=peer_ws,
            sack_permitted=sack,
            timestamps=seg.timestamps is not None,
            mss=self._link_mss,
            now=now,
            stats=c,
            ts_offset=self._ts_offset(lport, src, rport),
            memory=self.memory,
        )
        flow = DirectFlow(self, conn, self._peer_address(src), rport, lport, listener)
        c["passive_opens"] += 1
        self._register(flow)
        return True

    # -- ICMPv6 (runtime/icmp.py) -------------------------------------------------------------
    def _icmp_input(self, src: bytes, payload: Buffer, now: float) -> None:
        self._icmp.input(src, payload, now)

    def _parameter_problem(self, data: Buffer, exc: ParameterProblemError, now: float) -> None:
        self._icmp.parameter_problem(data, exc, now)

    def _unknown_protocol(self, data: Buffer, pkt: IPv6Packet, now: float) -> None:
        self._icmp.unknown_protocol(data, pkt, now)

    def _apply_path_mtu(self, flow: DirectFlow, now: float) -> None:
        self._icmp.apply_path_mtu(flow, now)

    def path_mtu(self, destination: bytes | str | ipaddress.IPv6Address, now: float) -> int:
        """The path MTU we use towards ``destination``: the link MTU unless a Packet
        Too Big lowered it less than :data:`~trio_tcp6.runtime.icmp.PMTU_TIMEOUT`
        seconds before ``now``."""
        return self._icmp.path_mtu(destination, now)

    def soft_error(self, flow: DirectFlow) -> TCPError | None:
        """The last ICMPv6 error reported for ``flow`` that did not abort it (Linux's
        ``sk_err_soft``), or None."""
        return self._icmp.soft_error(flow)

    # -- Stack API ----------------------------------------------------------------------------
    @property
    def localhost(self) -> ipaddress.IPv6Address:
        """``"localhost"`` is the stack's own address (the link carries the
        packets: a VirtualNetwork delivers them back to us)."""
        return self.address

    def lookup(self, name: str) -> ipaddress.IPv6Address | None:
        """A name the link knows (``VirtualNetwork.attach(addr, name=...)``)."""
        resolve = self.capabilities.resolve
        return resolve(name) if resolve is not None else None

    def _own_address(self, host: str | ipaddress.IPv6Address) -> None:
        addr = self.resolve(host)
        if addr != self.address and not addr.is_unspecified:
            raise OSError(errno.EADDRNOTAVAIL, f"{addr} is not this stack's address")

    async def open_tcp_stream(
        self,
        host: str | ipaddress.IPv6Address,
        port: int,
        *,
        local_address: str | ipaddress.IPv6Address | None = None,
    ) -> DirectFlow:
        port = check_port(port, connect=True)
        remote = self.resolve(host)
        if local_address is not None:
            self._own_address(local_address)
        if self._shut_down:
            raise trio.ClosedResourceError("the stack was closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        c = self._counters
        cfg = self.config
        if len(self._flows) >= cfg.max_connections:
            c["attempt_fails"] += 1
            raise Unknown("too many connections", errno.ENOBUFS)
        rp = remote.packed
        flows, listeners, time_wait = self._flows, self._listeners, self.time_wait
        lport = self._ports.choose(
            self._addr,
            rp,
            port,
            lambda p: p in listeners or (rp, port, p) in flows or (rp, port, p) in time_wait,
        )
        if lport is None:
            c["attempt_fails"] += 1
            raise Unknown("no free local port", errno.EADDRNOTAVAIL)
        now = trio.current_time()
        conn = Connection.connect(
            # trio's default, TCP_NODELAY, from the start: nothing is sent before the
            # handshake completes, and a set_nodelay() call per connection is saved.
            shared_config(cfg, nagle=False) if cfg.nagle else cfg,
            local_port=lport,
            remote_port=port,
            iss=self._isn.isn(self._addr, lport, rp, port, now),
            mss=self._link_mss,
            now=now,
            stats=c,
            ts_offset=self._ts_offset(lport, rp, port),
            memory=self.memory,
        )
        flow = DirectFlow(self, conn, remote, port, lport)
        c["active_opens"] += 1
        self._register(flow)
        try:
            await flow.wait_connected()
        except TCPError:
            c["attempt_fails"] += 1
            flow.abort()
            raise
        except BaseException:
            c["attempt_fails"] += 1
            flow.abort(Unknown("connection attempt cancelled", errno.ECANCELED))
            raise
        return flow

    async def open_tcp_listener(
        self,
        port: int,
        *,
        host: str | ipaddress.IPv6Address | None = None,
        backlog: int | None = None,
    ) -> DirectListener:
        """Listen on ``port`` (0 picks a free one; see ``listener.port``); accepted
        flows get ``TCP_NODELAY``. ``host`` must be the stack's address (or ``::``)."""
        await trio.lowlevel.checkpoint()
        listener = self._listen_nowait(port, backlog, None if host is None else self.resolve(host))
        listener.nodelay = True
        return listener

    def _listen_nowait(
        self, port: int, backlog: int | None, host: ipaddress.IPv6Address | None = None
    ) -> DirectListener:
        if self._shut_down:
            raise trio.ClosedResourceError("the stack was closed")
        port = check_port(port, connect=False)
        if host is not None:
            self._own_address(host)
        if port == 0:
            chosen = self._ports.choose(
                self._addr,
                b"",
                0,
                lambda p: p in self._listeners or p in self._local_ports,
            )
            if chosen is None:
                raise OSError(errno.EADDRINUSE, "no free port to listen on")
            port = chosen
        elif port in self._listeners:
            raise OSError(errno.EADDRINUSE, f"port {port} is already listening")
        listener = DirectListener(
            self, port, backlog if backlog is not None else self.config.syn_backlog
        )
        self._listeners[port] = listener
        return listener

    async def input(
        self,
        src: str | ipaddress.IPv6Address,
        dst: str | ipaddress.IPv6Address,
        payload: Buffer,
    ) -> None:
        """Process one TCP segment (an IPv6 payload) from ``src`` to ``dst``."""
        src_b, dst_b = parse_host(src).packed, parse_host(dst).packed
        if dst_b != self._addr:
            self._drop("not_for_us")
        else:
            self._tcp_input(src_b, payload, trio.current_time())
        if self._pending:
            await self._flush_pending()
        else:
            await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        """Counters: ``segments_in``/``segments_out``, ``retransmits``, ``resets_sent``,
        ``challenge_acks``, ``syn_cookies_sent``/``syn_cookies_validated``,
        ``icmp_echo_replies``, ``gso_cut`` (super-segments cut into packets by the
        stack, :data:`SOFTWARE_GSO`), every ``drop_<reason>`` (``drop_bad_checksum``,
        ``drop_malformed`` and ``drop_malformed_<ParseError.reason>``,
        ``drop_no_listener``, ...), ``engine_errors`` (internal errors contained: each
        aborted one connection or dropped one packet), the engine's own counters;
        ``flows_open`` (connections counted against ``max_connections``: all but
        TIME-WAIT), ``time_wait`` (connections in the TIME-WAIT table) and
        ``time_wait_recycled`` (entries closed early because the table was full);
        and the stack-wide memory account (``TCPConfig.memory_limit``):
        ``memory_held`` (bytes all connections buffer now), ``memory_held_peak``,
        ``memory_limit`` (0: unlimited), ``memory_pressure`` (1 while under
        pressure), ``memory_pressure_episodes``, ``memory_relief_walks`` (prunes
        across connections), ``memory_ofo_pruned`` (out-of-order ranges discarded
        for it) and ``drop_memory_pressure`` (segments whose data it dropped)."""
        d = dict.fromkeys(_ALWAYS, 0)
        d.update(self._counters)
        d.update(self.memory.gauges())
        d["flows_open"] = len(self._flows)
        d["time_wait"] = len(self.time_wait)
        d["listeners_open"] = len(self._listeners)
        return d

    # -- shutdown ---------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        self._shut_down = True
        self._close_mirage_listeners()
        for listener in list(self._listeners.values()):
            listener.close_nowait()
        error = Unknown("connection aborted: the stack was closed", errno.ECONNABORTED)
        final: list[tuple[bytes, list[TCPSegment]]] = []
        for flow in list(self._flows.values()):
            flow.abort(error)
            segs = flow.take_output()
            if segs:
                final.append((flow.remote_packed, segs))
        self.time_wait.close_all(trio.current_time())
        self._nursery.cancel_scope.cancel()
        if final or self._pending:
            # Tell the peers (RST), but never hang on a stuck link.
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                await self._flush_pending()
                for dst, segs in final:
                    await self.transmit(dst, segs)

    def __repr__(self) -> str:
        return f"<DirectStack [{self.address}] flows={len(self._flows)}>"


_ALWAYS = (
    "segments_in",
    "segments_out",
    "retransmits",
    "resets_sent",
    "challenge_acks",
    "syn_cookies_sent",
    "syn_cookies_validated",
    "icmp_echo_replies",
    "drop_bad_checksum",
    "drop_malformed",
    "drop_no_listener",
    "engine_errors",
    "time_wait_recycled",
)


@asynccontextmanager
async def open_stack(
    link: Link,
    address: str | ipaddress.IPv6Address,
    *,
    config: TCPConfig | None = None,
    hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
    seed: int | bytes | None = None,
) -> AsyncIterator[DirectStack]:
    """The direct, userspace TCP/IPv6 stack on ``link`` with ``address``.

    ``hosts`` maps names to addresses for ``open_tcp_stream`` and friends (a TUN
    setup has no resolver; ``"localhost"`` and the names a VirtualNetwork knows
    need no entry).

    Its tasks (the link reader, each connection's task pair, mirage ``listen``
    callbacks) live in a nursery scoped to this block; leaving the block resets
    what is still open (users get ``BrokenResourceError`` / ``Error(Unknown)``),
    frees every port and cancels every task.

    Everything its connections buffer is bounded together by
    ``config.memory_limit`` (default 64 MiB; see :class:`~trio_tcp6.TCPConfig`):
    under pressure windows and send buffers stop growing and out-of-order data is
    pruned, never data accepted in order; ``stack.stats()`` shows it
    (``memory_held``, ``memory_pressure``, ...).

    ``seed`` (int or bytes): every secret the stack draws -- the RFC 6528 ISN and
    timestamp-offset secrets, the ephemeral-port secret (RFC 6056), the SYN-cookie
    secret -- is derived from it (BLAKE2, one label per purpose), so a simulated run
    repeats exactly. Without one, a link that declares a ``seed`` (a seeded
    VirtualNetwork: from its seed and the address) provides it; on other links the
    secrets are random (``os.urandom``), as they must be on a real network.
    """
    async with trio.open_nursery() as nursery:
        stack = DirectStack(
            nursery, link, address, config if config is not None else TCPConfig(), hosts, seed
        )
        nursery.start_soon(stack._reader)
        nursery.start_soon(stack.time_wait.run)
        try:
            yield stack
        finally:
            await stack._shutdown()
