"""Queue disciplines in front of a simulated link: the :class:`Queue` protocol and
the drop-tail queue (:class:`DropTail`).

A link direction (see :mod:`trio_tcp6.sim.link`) keeps packets in its queue while
its serializer is busy with an earlier one, and takes the next packet out with
:meth:`Queue.dequeue` the moment the serializer frees up. A queue therefore decides
two things: which packets it refuses on arrival (:meth:`Queue.enqueue` returns
False: the packet is dropped, and the queue counts it), and which packet goes next
(an active queue manager such as CoDel may also drop at dequeue time, or return a
copy of the packet with the IPv6 Traffic Class's ECN field set to CE).

Times are the simulator's virtual seconds, passed in by the link (a queue never
reads a clock), so a queue is testable by feeding it times by hand. The sojourn
time of a packet is its dequeue time minus its enqueue time.
"""

from __future__ import annotations

import builtins
from collections import deque
from typing import Protocol, runtime_checkable

__all__ = ["DropTail", "Queue"]


@runtime_checkable
class Queue(Protocol):
    """What a link direction needs from the queue in front of its serializer."""

    def enqueue(self, packet: builtins.bytes, now: float) -> bool:
        """Take ``packet`` at time ``now``; False if it was dropped instead (the queue
        counts the drop)."""
        ...

    def dequeue(self, now: float) -> builtins.bytes | None:
        """The next packet to transmit at time ``now`` (possibly a CE-marked copy), or
        None when the queue holds nothing to send."""
        ...

    def __len__(self) -> int:
        """Packets held."""
        ...

    @property
    def bytes(self) -> int:
        """Bytes held."""
        ...

    def stats(self) -> dict[str, float]:
        """Counters: at least ``drops``, ``marks``, ``enqueued``, ``dequeued`` and the
        sojourn times ``sojourn_last``, ``sojourn_max``, ``sojourn_mean`` (seconds)."""
        ...


class DropTail:
    """A FIFO that refuses a packet arriving when it is full (tail drop).

    ``DropTail(packets=N)`` holds at most N packets; ``DropTail(bytes=N)`` at most N
    bytes (a packet that would exceed it is dropped; a packet larger than N is never
    taken). Exactly one of the two limits must be given. The packet being
    serialized has left the queue and does not count against the limit.
    """

    __slots__ = (
        "_bytes",
        "_fifo",
        "_sojourn_sum",
        "dequeued",
        "drops",
        "enqueued",
        "limit_bytes",
        "limit_packets",
        "sojourn_last",
        "sojourn_max",
    )

    def __init__(self, *, packets: int | None = None, bytes: int | None = None) -> None:
        if (packets is None) == (bytes is None):
            raise ValueError("DropTail takes exactly one of packets= or bytes=")
        limit = packets if packets is not None else bytes
        assert limit is not None
        if limit < 1:
            raise ValueError("a DropTail limit must be at least 1")
        #: Most packets held (None: limited by bytes).
        self.limit_packets = packets
        #: Most bytes held (None: limited by packets).
        self.limit_bytes = bytes
        self._fifo: deque[tuple[builtins.bytes, float]] = deque()
        self._bytes = 0
        self.enqueued = 0
        self.dequeued = 0
        self.drops = 0
        self.sojourn_last = 0.0
        self.sojourn_max = 0.0
        self._sojourn_sum = 0.0

    def __repr__(self) -> str:
        limit = (
            f"packets={self.limit_packets}"
            if self.limit_packets is not None
            else f"bytes={self.limit_bytes}"
        )
        return f"DropTail({limit})"

    def enqueue(self, packet: builtins.bytes, now: float) -> bool:
        """Append ``packet`` unless the queue is full (then count a drop)."""
        if self.limit_packets is not None:
            full = len(self._fifo) >= self.limit_packets
        else:
            assert self.limit_bytes is not None
            full = self._bytes + len(packet) > self.limit_bytes
        if full:
            self.drops += 1
            return False
        self._fifo.append((packet, now))
        self._bytes += len(packet)
        self.enqueued += 1
        return True

    def dequeue(self, now: float) -> builtins.bytes | None:
        """The oldest packet, or None."""
        if not self._fifo:
            return None
        packet, at = self._fifo.popleft()
        self._bytes -= len(packet)
        self.dequeued += 1
        sojourn = now - at
        self.sojourn_last = sojourn
        if sojourn > self.sojourn_max:
            self.sojourn_max = sojourn
        self._sojourn_sum += sojourn
        return packet

    def __len__(self) -> int:
        return len(self._fifo)

    @property
    def bytes(self) -> int:
        """Bytes held."""
        return self._bytes

    def stats(self) -> dict[str, float]:
        """``drops``, ``marks`` (always 0: drop-tail never marks), ``enqueued``,
        ``dequeued``, ``packets``/``bytes`` held now and the sojourn times of the
        dequeued packets (``sojourn_last``, ``sojourn_max``, ``sojourn_mean``)."""
        return {
            "drops": self.drops,
            "marks": 0,
            "enqueued": self.enqueued,
            "dequeued": self.dequeued,
            "packets": len(self._fifo),
            "bytes": self._bytes,
            "sojourn_last": self.sojourn_last,
            "sojourn_max": self.sojourn_max,
            "sojourn_mean": self._sojourn_sum / self.dequeued if self.dequeued else 0.0,
        }
