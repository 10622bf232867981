"""Active queue management: CoDel (RFC 8289) and FQ-CoDel (RFC 8290).

Both are queues for a simulated link (the queue protocol of :mod:`trio_tcp6.sim`):
``enqueue(packet, now)`` stores an IPv6 packet with its arrival time,
``dequeue(now)`` hands the link the next packet to serialize. CoDel decides at
dequeue time, from the *sojourn time* of the packet at the head (how long it
waited), whether the queue has a standing backlog: once every packet for a whole
``interval`` (100 ms) has waited longer than ``target`` (5 ms), it drops one, and
keeps dropping at a rate that grows with the square root of the drop count
(``interval / sqrt(count)``, the control law) until the sojourn time falls below
target again. With ``ecn=True`` (the default) a packet that is ECN-capable
(ECT(0) or ECT(1) in the IPv6 Traffic Class) is marked Congestion Experienced
instead of dropped, and the marked copy is what ``dequeue`` returns.

FQ-CoDel hashes packets by their IPv6 5-tuple into flow queues, runs CoDel on
each, and serves them with deficit round robin; a flow that was idle starts on the
*new* list, served before the *old* one, so a sparse flow (a ping, a DNS query, the
ACKs of a download) does not wait behind a bulk flow's backlog.

Time is whatever ``now`` the caller passes (seconds, float): the queues need no
clock, and tests drive them by hand.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque

__all__ = ["CoDel", "FQCoDel", "ecn_codepoint", "set_ce"]

#: ECN field values (RFC 3168 §5) in the low two bits of the Traffic Class.
NOT_ECT = 0b00
ECT_1 = 0b01
ECT_0 = 0b10
CE = 0b11

_TCP = 6
_UDP = 17


def ecn_codepoint(packet: bytes) -> int:
    """The ECN field of an IPv6 packet: the low two bits of its Traffic Class.

    The header starts ``version(4) | traffic class(8) | flow label(20)``, so the ECN
    bits are bits 5-4 of byte 1. A packet too short to hold them reads as Not-ECT.
    """
    if len(packet) < 2:
        return NOT_ECT
    return (packet[1] >> 4) & 0b11


def set_ce(packet: bytes) -> bytes:
    """A copy of ``packet`` with its ECN field set to CE (0b11).

    IPv6 has no header checksum and the TCP checksum's pseudo-header does not cover
    the Traffic Class, so nothing else changes.
    """
    marked = bytearray(packet)
    marked[1] |= CE << 4
    return bytes(marked)


class _SojournStats:
    """Counters shared by both queues; sojourn times of the packets delivered."""

    __slots__ = (
        "dequeued",
        "drops",
        "enqueued",
        "marks",
        "overflow_drops",
        "sojourn_last",
        "sojourn_max",
        "sojourn_sum",
    )

    def __init__(self) -> None:
        self.enqueued = 0
        self.dequeued = 0
        self.drops = 0
        self.marks = 0
        self.overflow_drops = 0
        self.sojourn_last = 0.0
        self.sojourn_max = 0.0
        self.sojourn_sum = 0.0

    def delivered(self, sojourn: float) -> None:
        self.dequeued += 1
        self.sojourn_last = sojourn
        self.sojourn_sum += sojourn
        if sojourn > self.sojourn_max:
            self.sojourn_max = sojourn

    def as_dict(self) -> dict[str, float]:
        return {
            "enqueued": self.enqueued,
            "dequeued": self.dequeued,
            "drops": self.drops,
            "codel_drops": self.drops - self.overflow_drops,
            "overflow_drops": self.overflow_drops,
            "marks": self.marks,
            "sojourn_last": self.sojourn_last,
            "sojourn_max": self.sojourn_max,
            "sojourn_sum": self.sojourn_sum,
            "sojourn_mean": self.sojourn_sum / self.dequeued if self.dequeued else 0.0,
        }


class _FlowQueue:
    """Packets of one queue (CoDel's only one, or one FQ-CoDel flow), with their
    arrival times, and the CoDel state variables of RFC 8289 §5 for it."""

    __slots__ = (
        "bytes",
        "count",
        "deficit",
        "drop_next",
        "dropping",
        "first_above_time",
        "lastcount",
        "listed",
        "packets",
    )

    def __init__(self) -> None:
        self.packets: deque[tuple[float, bytes]] = deque()
        self.bytes = 0
        # RFC 8289 §5 state: "first_above_time" 0 means "not above target".
        self.first_above_time = 0.0
        self.drop_next = 0.0
        self.count = 0
        self.lastcount = 0
        self.dropping = False
        # FQ-CoDel only: DRR deficit and which list holds the flow (None, "new", "old").
        self.deficit = 0
        self.listed: str | None = None


class _CoDelLaw:
    """The CoDel algorithm (RFC 8289 §5), applied to any :class:`_FlowQueue`.

    The ``backlog`` its methods take is the bytes the whole queue holds (for
    FQ-CoDel all flows together, as Linux counts it): with no more than
    ``maxpacket`` left once the head packet is out (``bytes()`` in the RFC's
    pseudocode) there is no standing queue to shrink, whatever the sojourn time.
    """

    __slots__ = ("ecn", "interval", "maxpacket", "stats", "target")

    def __init__(
        self, target: float, interval: float, ecn: bool, maxpacket: int, stats: _SojournStats
    ) -> None:
        self.target = target
        self.interval = interval
        self.ecn = ecn
        self.maxpacket = maxpacket
        self.stats = stats

    def control_law(self, t: float, count: int) -> float:
        """The next drop time: ``t + interval / sqrt(count)`` (RFC 8289 §5.6)."""
        return t + self.interval / math.sqrt(count)

    def _pop(self, q: _FlowQueue, now: float, backlog: int) -> tuple[float, bytes, bool] | None:
        """RFC 8289 ``dodequeue``: the head packet, its sojourn time, and whether
        the sojourn time has been above target for at least an interval."""
        if not q.packets:
            q.first_above_time = 0.0
            return None
        enqueued_at, packet = q.packets.popleft()
        q.bytes -= len(packet)
        sojourn = now - enqueued_at
        ok_to_drop = False
        if sojourn < self.target or backlog - len(packet) <= self.maxpacket:
            q.first_above_time = 0.0
        elif q.first_above_time == 0.0:
            q.first_above_time = now + self.interval
        elif now >= q.first_above_time:
            ok_to_drop = True
        return sojourn, packet, ok_to_drop

    def _congested(self, packet: bytes) -> bytes | None:
        """Signal congestion with ``packet``: the CE-marked copy to deliver, or None
        when it is dropped (not ECN-capable, or ECN off)."""
        if self.ecn:
            codepoint = ecn_codepoint(packet)
            if codepoint == CE:
                self.stats.marks += 1
                return packet
            if codepoint != NOT_ECT:
                self.stats.marks += 1
                return set_ce(packet)
        self.stats.drops += 1
        return None

    def dequeue(self, q: _FlowQueue, now: float, backlog: int) -> bytes | None:
        """RFC 8289 ``dequeue``: the next packet to send from ``q``, after the drops
        (or marks) the control law asks for; ``backlog`` is the whole queue's bytes
        before this call. Returns None when ``q`` runs empty."""
        head = self._pop(q, now, backlog)
        if head is None:
            q.dropping = False
            return None
        sojourn, packet, ok_to_drop = head
        backlog -= len(packet)
        if q.dropping:
            if not ok_to_drop:
                # The sojourn time went below target: leave the dropping state.
                q.dropping = False
            while q.dropping and now >= q.drop_next:
                q.count += 1
                marked = self._congested(packet)
                if marked is not None:
                    # A mark delivers the packet: one signal per drop time, as a drop.
                    q.drop_next = self.control_law(q.drop_next, q.count)
                    self.stats.delivered(sojourn)
                    return marked
                head = self._pop(q, now, backlog)
                if head is None:
                    q.dropping = False
                    return None
                sojourn, packet, ok_to_drop = head
                backlog -= len(packet)
                if not ok_to_drop:
                    q.dropping = False
                else:
                    q.drop_next = self.control_law(q.drop_next, q.count)
        elif ok_to_drop:
            # Enter the dropping state. If it was left only a little while ago, the
            # drop rate that controlled the queue then is a good place to start
            # (RFC 8289 §5.5): resume from the drops made since the last entry.
            delta = q.count - q.lastcount
            q.count = delta if delta > 1 and now - q.drop_next < 16 * self.interval else 1
            q.lastcount = q.count
            q.dropping = True
            q.drop_next = self.control_law(now, q.count)
            marked = self._congested(packet)
            if marked is not None:
                self.stats.delivered(sojourn)
                return marked
            head = self._pop(q, now, backlog)
            if head is None:
                return None
            sojourn, packet, _ = head
        self.stats.delivered(sojourn)
        return packet


class CoDel:
    """A CoDel queue (RFC 8289): one FIFO whose head packets are dropped (or
    ECN-marked) when they have waited more than ``target`` for ``interval``.

    ``limit`` bounds the packets held (Linux's default, 1000): an arrival at a full
    queue is dropped and counted as an overflow drop. ``mtu`` is the largest
    packet: with no more than that left behind, a packet is never dropped.
    """

    def __init__(
        self,
        *,
        target: float = 0.005,
        interval: float = 0.100,
        limit: int = 1000,
        ecn: bool = True,
        mtu: int = 1500,
    ) -> None:
        if target <= 0 or interval <= 0 or limit <= 0:
            raise ValueError("target, interval and limit must be positive")
        self.limit = limit
        self._stats = _SojournStats()
        self._law = _CoDelLaw(target, interval, ecn, mtu, self._stats)
        self._queue = _FlowQueue()

    def enqueue(self, packet: bytes, now: float) -> bool:
        """Store ``packet`` with its arrival time; False (dropped, counted) when full."""
        if len(self._queue.packets) >= self.limit:
            self._stats.drops += 1
            self._stats.overflow_drops += 1
            return False
        self._queue.packets.append((now, packet))
        self._queue.bytes += len(packet)
        self._stats.enqueued += 1
        return True

    def dequeue(self, now: float) -> bytes | None:
        """The next packet to send (a CE-marked copy if CoDel marked it), or None."""
        return self._law.dequeue(self._queue, now, self._queue.bytes)

    def __len__(self) -> int:
        return len(self._queue.packets)

    @property
    def bytes(self) -> int:
        """Bytes held."""
        return self._queue.bytes

    @property
    def dropping(self) -> bool:
        """Whether CoDel is in its dropping state."""
        return self._queue.dropping

    def stats(self) -> dict[str, float]:
        """``enqueued``, ``dequeued``, ``drops`` (all: ``codel_drops`` +
        ``overflow_drops``), ``marks``, and the sojourn time of delivered packets:
        ``sojourn_last``, ``sojourn_max``, ``sojourn_mean``, ``sojourn_sum`` (for a
        mean over a window: difference two snapshots), in seconds; ``count`` (the
        control law's drop count) and ``dropping`` (0/1)."""
        result = self._stats.as_dict()
        result["count"] = self._queue.count
        result["dropping"] = float(self._queue.dropping)
        return result


class FQCoDel:
    """FQ-CoDel (RFC 8290): ``flows`` flow queues, each a CoDel queue, served by
    deficit round robin with ``quantum`` bytes per round, new flows first.

    Packets go to the flow ``hash(source, destination, next header, source port,
    destination port) mod flows``, the hash keyed with a salt drawn from ``seed``
    (so the same seed maps flows the same way in every run, and different seeds
    perturb collisions). ``limit`` bounds the packets held across all flows
    (10240, as Linux): at overflow the head packet of the flow holding the most
    bytes is dropped (RFC 8290 §4.1.3), which is usually not the arriving one --
    ``enqueue`` then returns True and the drop shows in ``stats()`` as an
    ``overflow_drops``. Ports are read when the next header is TCP or UDP right
    after the fixed header; otherwise they count as zero.
    """

    def __init__(
        self,
        *,
        flows: int = 1024,
        quantum: int = 1514,
        target: float = 0.005,
        interval: float = 0.100,
        limit: int = 10240,
        ecn: bool = True,
        mtu: int = 1500,
        seed: int = 0,
    ) -> None:
        if flows <= 0 or quantum <= 0 or limit <= 0:
            raise ValueError("flows, quantum and limit must be positive")
        if target <= 0 or interval <= 0:
            raise ValueError("target and interval must be positive")
        self.quantum = quantum
        self.limit = limit
        self._salt = random.Random(seed).randbytes(16)
        self._flows = [_FlowQueue() for _ in range(flows)]
        self._new: deque[_FlowQueue] = deque()
        self._old: deque[_FlowQueue] = deque()
        self._packets = 0
        self._bytes = 0
        self._stats = _SojournStats()
        self._law = _CoDelLaw(target, interval, ecn, mtu, self._stats)

    def flow_index(self, packet: bytes) -> int:
        """The flow queue ``packet`` belongs to (0 .. flows-1)."""
        next_header = packet[6] if len(packet) > 6 else 0
        key = bytearray(packet[8:40])
        key.append(next_header)
        if next_header in (_TCP, _UDP) and len(packet) >= 44:
            key += packet[40:44]
        digest = hashlib.blake2b(key, digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "big") % len(self._flows)

    def enqueue(self, packet: bytes, now: float) -> bool:
        """Store ``packet`` in its flow; at overflow drop from the fattest flow.

        Returns False only when the packet itself was the one dropped (its flow was
        the fattest and held nothing but it)."""
        flow = self._flows[self.flow_index(packet)]
        flow.packets.append((now, packet))
        flow.bytes += len(packet)
        self._packets += 1
        self._bytes += len(packet)
        self._stats.enqueued += 1
        if flow.listed is None:
            flow.listed = "new"
            flow.deficit = self.quantum
            self._new.append(flow)
        if self._packets > self.limit:
            fattest = max(self._flows, key=lambda f: f.bytes)
            _, dropped = fattest.packets.popleft()
            fattest.bytes -= len(dropped)
            self._packets -= 1
            self._bytes -= len(dropped)
            self._stats.drops += 1
            self._stats.overflow_drops += 1
            if dropped is packet and not flow.packets:
                return False
        return True

    def dequeue(self, now: float) -> bytes | None:
        """The next packet by DRR over the new, then the old flows (RFC 8290 §4.2)."""
        while True:
            if self._new:
                lst = self._new
            elif self._old:
                lst = self._old
            else:
                return None
            flow = lst[0]
            if flow.deficit <= 0:
                # Its quantum is spent: next round, from the tail of the old list.
                flow.deficit += self.quantum
                lst.popleft()
                flow.listed = "old"
                self._old.append(flow)
                continue
            held_packets, held_bytes = len(flow.packets), flow.bytes
            packet = self._law.dequeue(flow, now, self._bytes)
            # CoDel may have dropped packets of the flow besides the one returned.
            self._packets -= held_packets - len(flow.packets)
            self._bytes -= held_bytes - flow.bytes
            if packet is None:
                lst.popleft()
                if lst is self._new and self._old:
                    # An emptied new flow goes to the old list once, so that a flow
                    # that sends one packet per round cannot stay "new" for ever.
                    flow.listed = "old"
                    self._old.append(flow)
                else:
                    flow.listed = None
                continue
            flow.deficit -= len(packet)
            return packet

    def __len__(self) -> int:
        return self._packets

    @property
    def bytes(self) -> int:
        """Bytes held across all flows."""
        return self._bytes

    def stats(self) -> dict[str, float]:
        """As :meth:`CoDel.stats` (``drops`` over all flows), plus ``flows_active``:
        flow queues on the new or old list; ``new_flows``/``old_flows``: their
        lengths."""
        result = self._stats.as_dict()
        result["new_flows"] = len(self._new)
        result["old_flows"] = len(self._old)
        result["flows_active"] = len(self._new) + len(self._old)
        return result
