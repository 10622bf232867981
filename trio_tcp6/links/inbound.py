"""InboundQueue: a simulated host's bounded inbound queue, and fair backpressure.

Each host of an in-memory network has one (a :class:`~trio_tcp6.links.virtual.
VirtualLink`'s, a simulator :class:`~trio_tcp6.sim.host.HostLink`'s): packets wait
in it, as in a NIC's ring the host has not emptied yet, until the host's one
receiving task takes them (one at a time, or every queued packet at once). It holds
at most ``limit`` packets and ``bytes_limit`` bytes, counting the packets queued
*and* those the network has *reserved* room for (in flight towards the host), so a
host's share of the network's memory never exceeds it.

A packet that finds no room is dropped and counted (``dropped``), unless the
network applies backpressure (VirtualNetwork's default): then a full queue is not a
loss but a busy host, and the sender waits for room instead. The network asks
:meth:`InboundQueue.refuses` before it sends; a refused sender parks in
:attr:`InboundQueue.senders`. Each time the receiver takes packets, every waiting
sender is let in for an equal share of the room (:attr:`InboundQueue.share`); a
sender that used its share, or found no room, waits again, and new senders queue
behind the waiting ones, so the room goes round-robin among the senders. Once the
queue is half full, a flow (source address and ports) that already holds its share
of the queue -- the limit divided among the flows queued -- is refused too, so that
a flow with a larger window queues at its sender, not in front of the others.

Packets are kept as ``(packet, partial)``: ``partial`` marks a TCP packet whose
checksum field holds only the pseudo-header sum (checksum offload); the plain
receive forms complete it, :meth:`InboundQueue.take_marked` hands it on as it is.
"""

from __future__ import annotations

import sys
from collections import deque

import trio

from ..alarm import Alarm, Waiters
from ..wire.tcp import complete_tcp_checksum

__all__ = ["InboundQueue"]


def _flow_key(data: bytes) -> bytes:
    # Source address and ports: what backpressure shares the queue among.
    return data[8:24] + data[40:44]


class InboundQueue:
    """One host's inbound queue (see the module docstring): ``limit`` packets and
    ``bytes_limit`` bytes (None: no byte limit), queued and reserved together.

    Counters: ``received`` (packets queued), ``dropped`` (refused for a full queue).
    """

    __slots__ = (
        "alarm",
        "bytes",
        "bytes_limit",
        "closed",
        "dropped",
        "flows",
        "limit",
        "packets",
        "received",
        "reserved",
        "reserved_bytes",
        "senders",
        "share",
    )

    def __init__(self, limit: int, bytes_limit: int | None = None) -> None:
        #: ``(packet, partial)`` in arrival order.
        self.packets: deque[tuple[bytes, bool]] = deque()
        self.bytes = 0
        self.limit = limit
        self.bytes_limit = sys.maxsize if bytes_limit is None else bytes_limit
        #: Packets (and bytes) in flight towards this host: counted in its bound.
        self.reserved = 0
        self.reserved_bytes = 0
        #: Senders waiting for room (backpressure), first come first served.
        self.senders = Waiters()
        #: Packets each sender woken by the last drain may send before it queues again.
        self.share = 1
        #: Backpressure: queued packets per flow (source address and ports).
        self.flows: dict[bytes, int] = {}
        #: The one receiving task sleeps here; an arrival or :meth:`close` wakes it.
        self.alarm = Alarm("another task is already receiving on this link")
        self.closed = False
        self.received = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.packets)

    # -- the network's side ---------------------------------------------------------

    def full(self, size: int) -> bool:
        """No room for one more packet of ``size`` bytes (queued and in flight)."""
        return (
            len(self.packets) + self.reserved >= self.limit
            or self.bytes + self.reserved_bytes + size > self.bytes_limit
        )

    def refuses(self, data: bytes) -> bool:
        """Backpressure's admission: no room, or (the queue half full) ``data``'s flow
        already holds its share of the queue (the limit divided among the flows
        queued here), so that a flow with a larger window queues at its sender, not
        in front of the others."""
        if self.full(len(data)):
            return True
        if 2 * len(self.packets) < self.limit:
            return False  # (shares matter only once the queue is half full)
        flows = self.flows
        held = flows.get(_flow_key(data), 0)
        return held > 0 and held * (len(flows) or 1) >= self.limit

    def backlogged(self) -> bool:
        """Something is queued or in flight here (a drain, and a wake-up, will come)."""
        return bool(self.packets) or self.reserved > 0

    def reserve(self, size: int) -> None:
        """A packet of ``size`` bytes is in flight towards this host."""
        self.reserved += 1
        self.reserved_bytes += size

    def unreserve(self, size: int) -> None:
        """A reserved packet arrives (or is dropped) now."""
        self.reserved -= 1
        self.reserved_bytes -= size

    def arrive(self, data: bytes, partial: bool = False, admitted: bool = False) -> bool:
        """Queue ``data``; False (dropped, counted) when there is no room.
        ``admitted``: the sender already found room (backpressure), queue it."""
        if not admitted and self.full(len(data)):
            self.dropped += 1
            return False
        self.packets.append((data, partial))
        self.bytes += len(data)
        self.received += 1
        if admitted:
            key = data[8:24] + data[40:44]  # _flow_key, inline: once per packet
            flows = self.flows
            flows[key] = flows.get(key, 0) + 1
        self.alarm.wake()
        return True

    # -- the receiver's side --------------------------------------------------------

    async def wait(self) -> None:
        """Return with at least one packet queued; ``trio.ClosedResourceError`` once
        closed and empty. A checkpoint either way."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.packets:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        while not self.packets:
            if self.closed:
                raise trio.ClosedResourceError("link is closed")
            # Woken by an arrival, or by close().
            await self.alarm.sleep_until()

    def pop(self) -> bytes:
        """The first queued packet (there must be one), its checksum complete."""
        data, partial = self.packets.popleft()
        self.bytes -= len(data)
        if self.flows:
            key = data[8:24] + data[40:44]  # _flow_key, inline: once per packet
            held = self.flows.get(key, 0)
            if held > 1:
                self.flows[key] = held - 1
            else:
                self.flows.pop(key, None)
        if self.senders:
            self.wake_senders()
        return complete_tcp_checksum(data) if partial else data

    def take(self) -> list[bytes]:
        """Every queued packet, checksums complete."""
        batch = [
            complete_tcp_checksum(data) if partial else data for data, partial in self.packets
        ]
        self._emptied()
        return batch

    def take_marked(self) -> list[tuple[bytes, bool]]:
        """Every queued packet as ``(packet, partial)``, partial ones as they are."""
        batch = list(self.packets)
        self._emptied()
        return batch

    def _emptied(self) -> None:
        self.packets.clear()
        self.bytes = 0
        self.flows.clear()
        if self.senders:
            self.wake_senders()

    def wake_senders(self) -> None:
        """Room again: let every waiting sender in, each for an equal share of it."""
        room = self.limit - len(self.packets) - self.reserved
        self.share = max(1, room // max(1, len(self.senders)))
        self.senders.unpark_all()

    def close(self) -> None:
        """Discard what is queued; the receiver (and every waiting sender) wakes and
        finds the link closed."""
        self.closed = True
        self.packets.clear()
        self.bytes = 0
        self.flows.clear()
        self.alarm.wake()
        self.senders.unpark_all()
