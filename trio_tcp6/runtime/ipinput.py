"""The direct stack's input: the link reader, IPv6 input and the TCP demultiplexer.

One task (:meth:`IPv6Input.run`) reads the link, with the batch form it declares
(see :class:`~trio_tcp6.links.base.LinkCapabilities`); a link that offers inline input
(an in-memory network) may instead hand a packet to :meth:`IPv6Input.inline_input` in
the sender's call when nothing is queued ahead of it. Each packet is processed
synchronously: the IPv6 header is parsed (a fast path for TCP right after the fixed
header), ICMPv6 goes to the stack's :class:`~trio_tcp6.runtime.icmp.ICMPv6Handler`,
the TCP checksum is verified (unless an offloading link marked the packet) and the
segment goes to its connection by 4-tuple -- into the flow's inbox -- or, when no
live connection owns it, to the TIME-WAIT table, to the listener of its port
(:class:`~trio_tcp6.runtime.passive.PassiveOpen`), or is answered with a RST (RFC
9293 §3.10.7.1). What the input answers itself is queued on the stack's
:class:`~trio_tcp6.runtime.ipoutput.IPv6Output` and sent once per batch (at once after
an inline packet); after each batch, under memory pressure, the reader also prunes
out-of-order data across the connections.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import trio

from ..links.base import Link, LinkCapabilities, ReceiveBatchMarked
from ..tcp.memory import MemoryAccount, relieve
from ..tcp.seq import MASK
from ..wire.errors import ParseError
from ..wire.ipv6 import (
    ECN_MASK,
    PROTO_ICMPV6,
    PROTO_TCP,
    ParameterProblemError,
    parse_ipv6,
    peek_ipv6,
)
from ..wire.tcp import ACK, RST, SYN, complete_tcp_checksum, parse_tcp, verify_tcp_checksum
from .base import Buffer
from .flow import DirectFlow
from .icmp import ICMPv6Handler
from .ipoutput import IPv6Output
from .listener import DirectListener
from .passive import PassiveOpen
from .timewait import FlowKey, TimeWaitTable

__all__ = ["MEMORY_RELIEF_INTERVAL", "IPv6Input"]

#: Under memory pressure the stack prunes out-of-order data across its connections
#: at most once per this many seconds (the walk is O(n log n) in the connections).
MEMORY_RELIEF_INTERVAL = 0.1
_UNSPECIFIED = bytes(16)
logger = logging.getLogger("trio_tcp6")


class IPv6Input:
    """The input side of one direct stack (see the module docstring).

    ``address``: the stack's own (packed); ``mtu``: the link's; ``counters``: the
    stack's; ``flows``, ``listeners`` and ``time_wait``: the stack's tables (read
    here; segments for a TIME-WAIT entry are fed to it); ``memory``: the stack's
    account; ``output``: where the reader's answers go; ``passive``: what a segment
    for a listening port goes to. Its :attr:`icmp` handler is the stack's.
    """

    def __init__(
        self,
        link: Link,
        capabilities: LinkCapabilities,
        address: bytes,
        mtu: int,
        counters: Counter[str],
        flows: Mapping[FlowKey, DirectFlow],
        listeners: Mapping[int, DirectListener],
        time_wait: TimeWaitTable,
        memory: MemoryAccount,
        output: IPv6Output,
        passive: PassiveOpen,
    ) -> None:
        self._link = link
        self._capabilities = capabilities
        self._addr = address
        self._counters = counters
        self._flows = flows
        self._listeners = listeners
        self._time_wait = time_wait
        self._memory = memory
        self._memory_relief_at = -1e18
        self._output = output
        # Always the same list (IPv6Output.pending): read once per batch.
        self._pending = output.pending
        self._passive = passive
        #: ICMPv6: echo, errors about our segments, path MTUs, the errors we send.
        self.icmp = ICMPv6Handler(
            address, mtu, flows, counters, output.pending.append, self.malformed
        )

    # -- the link reader --------------------------------------------------------------------
    async def run(self) -> None:
        """Read the link until it closes, processing each packet (the stack's task).
        While it runs, a link that offers inline input may also hand packets to
        :meth:`inline_input` in its senders' calls."""
        set_inline = self._capabilities.inline_input
        if set_inline is not None:
            set_inline(self.inline_input)
        try:
            await self._read()
        finally:
            if set_inline is not None:
                set_inline(None)

    def inline_input(self, packet: bytes, partial: bool) -> None:
        """(:data:`~trio_tcp6.links.base.InlineInput`) One packet the link hands over
        in its sender's call instead of queueing it for the reader: processed as the
        reader would (a segment goes into its connection's inbox, for the
        connection's receiver task), and what it answers is sent at once."""
        now = trio.current_time()
        if partial and self._capabilities.checksum_offload is None:
            # (The plain reader takes complete checksums only, and verifies them.)
            packet = complete_tcp_checksum(packet)
            partial = False
        try:
            self.ip_input(packet, now, partial)
        except Exception as exc:
            self._input_failed(exc)
        if self._memory.relief_due:
            self._relieve_memory(now)
        if self._pending:
            self._output.flush_pending_nowait()

    async def _read(self) -> None:
        link = self._link
        offload = self._capabilities.checksum_offload
        if offload is not None:
            await self._offload_reader(offload.receive_batch)
            return
        receive_batch = self._capabilities.receive_batch
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
                    self.ip_input(packet, now)
                except Exception as exc:
                    self._input_failed(exc)
            if self._memory.relief_due:
                self._relieve_memory(now)
            if self._pending:
                await self._output.flush_pending()

    async def _offload_reader(self, receive: ReceiveBatchMarked) -> None:
        """:meth:`run` for a link with checksum offload: packets marked partial
        are TCP packets whose checksum needs no verification."""
        ip_input = self.ip_input
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
            if self._memory.relief_due:
                self._relieve_memory(now)
            if self._pending:
                await self._output.flush_pending()

    def _relieve_memory(self, now: float) -> None:
        """Memory pressure: prune out-of-order data across the connections, those
        holding most first (:func:`~trio_tcp6.tcp.memory.relieve`), at most once
        per :data:`MEMORY_RELIEF_INTERVAL`."""
        if now < self._memory_relief_at:
            return
        self._memory_relief_at = now + MEMORY_RELIEF_INTERVAL
        for flow, exc in relieve(self._memory, [(f.engine, f) for f in self._flows.values()]):
            flow.engine_failed(exc)

    def _input_failed(self, exc: Exception) -> None:
        """A bug hit while processing one inbound packet (outside any connection's
        own processing): drop the packet, count and log it, keep the stack going."""
        self._counters["engine_errors"] += 1
        logger.error("trio_tcp6: internal error processing a packet; dropped", exc_info=exc)

    def drop(self, reason: str) -> None:
        """Count a packet dropped for ``reason`` (``drop_<reason>``)."""
        self._counters["drop_" + reason] += 1

    def malformed(self, exc: ParseError) -> None:
        """Count a packet that did not parse (``drop_malformed`` and
        ``drop_malformed_<reason>``)."""
        c = self._counters
        c["drop_malformed"] += 1
        c["drop_malformed_" + exc.reason] += 1

    # -- IPv6 -------------------------------------------------------------------------------
    def ip_input(self, data: Buffer, now: float, partial: bool = False) -> None:
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
                self.tcp_input(src, payload, now, partial, (data[1] >> 4) & ECN_MASK)
                return
        try:
            pkt = parse_ipv6(data)
        except ParameterProblemError as problem:
            # (Its own name: the compiled build types a name by its first except.)
            self.icmp.parameter_problem(data, problem, now)
            return
        except ParseError as exc:
            self.malformed(exc)
            return
        if pkt.dst != self._addr:
            self.drop("not_for_us")
            return
        nh = pkt.next_header
        if nh == PROTO_TCP:
            self.tcp_input(pkt.src, pkt.payload, now, partial, pkt.traffic_class & ECN_MASK)
        elif nh == PROTO_ICMPV6:
            self.icmp.input(pkt.src, pkt.payload, now)
        else:
            self.icmp.unknown_protocol(data, pkt, now)

    # -- TCP: the demultiplexer -------------------------------------------------------------
    def tcp_input(
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
            self.malformed(exc)
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
        time_wait = self._time_wait
        tw = time_wait.get(key, now) if time_wait else None
        if tw is not None:
            if not (
                seg.flags & SYN
                and seg.dst_port in self._listeners
                and time_wait.accepts_syn(key, tw, seg)
            ):
                packet = self._output.packet
                for out in time_wait.segment(key, tw, seg, now):
                    self._pending.append(packet(src, out))
                    c["segments_out"] += 1
                return
            # RFC 6191: a newer SYN may reuse a TIME-WAIT 4-tuple. The new ISS must
            # lie above every sequence number the old connection used (RFC 1122
            # §4.2.2.13), so that its old duplicates miss the new window.
            c["time_wait_reused"] += 1
            iss_floor = (tw.snd_nxt + 0x10000) & MASK
            time_wait.remove(key, now)
        elif src[0] == 0xFF or src == _UNSPECIFIED:
            # RFC 4291 §2.5.2, §2.7: never the source of a segment; answering it
            # would reach a group, or nobody.
            c["drop_bad_source"] += 1
            return
        listener = self._listeners.get(seg.dst_port)
        if listener is not None:
            self._passive.listen_input(listener, src, seg, now, iss_floor)
            return
        c["drop_no_listener"] += 1
        self._output.reset_for(src, seg, now)
