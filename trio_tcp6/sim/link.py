"""Simulated links: a full-duplex :class:`Cable` between two nodes, made of two
independent :class:`Channel` directions.

One direction works like a NIC and its wire:

1. a packet handed to the channel (:meth:`Channel.offer`) may be lost (``loss``,
   drawn per packet, see *Determinism* below), otherwise it goes into the
   channel's queue (:mod:`trio_tcp6.sim.queue`), which may refuse it (a drop);
2. the serializer takes one packet at a time out of the queue and is busy with it
   for ``len * 8 / rate`` seconds (``rate`` in bits per second; ``None``: no
   serialization time at all);
3. the packet then travels for ``delay`` seconds and is handed to the node at the
   far end. (A cable with neither rate nor delay hands it over at once, within the
   call that offered it.)

So a packet's sojourn in the queue is the time it waited for the serializer, and
the busy time of a channel (the sum of its serialization times) over an interval is
its utilisation. Everything is scheduled on the network's virtual-time event heap
(:class:`~trio_tcp6.sim.network.Network`); a channel never sleeps itself.

Determinism: the random fate of each packet (only ``loss`` today) is drawn from the
channel's own generator, seeded from the network's seed, the cable's name and the
direction, in the order of the channel's own packet counter -- never from a
network-wide generator, so traffic on one link never shifts the fates on another.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from .queue import DropTail, Queue

if TYPE_CHECKING:
    from .network import Network
    from .node import Node

__all__ = ["Cable", "Channel", "QueueFactory"]

#: Makes the queue of one direction (called once per direction).
QueueFactory = Callable[[], Queue]

#: The queue of a channel given no ``queue=``: deep enough never to matter for a
#: link whose rate no sender can exceed.
DEFAULT_QUEUE_PACKETS = 10_000


class Channel:
    """One direction of a :class:`Cable`: queue, serializer, propagation delay.

    ``name`` is ``"a->b"`` (the node names). :attr:`queue` is the queue in front of
    the serializer; :meth:`stats` the counters.
    """

    __slots__ = (
        "_free_at",
        "_net",
        "_random",
        "_wakeup",
        "busy_time",
        "cable",
        "delay",
        "dropped_loss",
        "dst",
        "loss",
        "mtu",
        "name",
        "offered",
        "queue",
        "rate",
        "sent_bytes",
        "sent_packets",
        "src",
    )

    def __init__(
        self,
        net: Network,
        cable: Cable,
        src: Node,
        dst: Node,
        *,
        rate: float | None,
        delay: float,
        mtu: int,
        loss: float,
        queue: Queue,
        seed: str,
    ) -> None:
        self._net = net
        self.cable = cable
        self.src = src
        self.dst = dst
        self.name = f"{src.name}->{dst.name}"
        self.rate = rate
        self.delay = delay
        self.mtu = mtu
        self.loss = loss
        self.queue = queue
        # str seeds are hashed with SHA-512 by random.Random: the same on every run
        # (no PYTHONHASHSEED involved).
        self._random = random.Random(seed)
        # The serializer is busy until then; a wake-up is scheduled for that time
        # while packets wait in the queue.
        self._free_at = -math.inf
        self._wakeup = False
        #: Packets offered to this direction (its packet counter; lost ones included).
        self.offered = 0
        self.dropped_loss = 0
        self.sent_packets = 0
        self.sent_bytes = 0
        #: Seconds the serializer spent sending (utilisation = busy_time / elapsed).
        self.busy_time = 0.0

    def __repr__(self) -> str:
        return f"<Channel {self.name} rate={self.rate} delay={self.delay}>"

    def offer(self, packet: bytes, now: float) -> None:
        """A node hands ``packet`` to this direction at time ``now``."""
        self.offered += 1
        if self.loss and self._random.random() < self.loss:
            self.dropped_loss += 1
            return
        if not self.queue.enqueue(packet, now):
            return
        if now >= self._free_at:
            self._start(now)
        elif not self._wakeup:
            # Busy: take the next packet out when the serializer frees up.
            self._wakeup = True
            self._net.schedule(self._free_at, self._free, b"")

    def _free(self, _: bytes, now: float) -> None:
        self._wakeup = False
        if now >= self._free_at:
            self._start(now)
        elif len(self.queue):
            # An arrival at the very instant the serializer freed up started the
            # next packet already: wait for that one to end.
            self._wakeup = True
            self._net.schedule(self._free_at, self._free, b"")

    def _start(self, now: float) -> None:
        """The serializer is free at ``now``: put the next queued packet on the wire
        (every queued packet, without a rate). The serializer's end is an event only
        while packets wait for it: a channel whose queue stays empty costs one event
        per packet, its arrival."""
        net = self._net
        queue = self.queue
        rate = self.rate
        delay = self.delay
        while True:
            packet = queue.dequeue(now)
            if packet is None:
                return
            size = len(packet)
            self.sent_packets += 1
            self.sent_bytes += size
            if rate is None:
                if delay:
                    net.schedule(now + delay, self._arrive, packet)
                else:
                    # Nothing to wait for: hand it over in this call (no task hop).
                    net.deliver(self, packet, now)
                continue
            busy = size * 8 / rate
            self.busy_time += busy
            done = now + busy
            self._free_at = done
            net.schedule(done + delay, self._arrive, packet)
            if len(queue) and not self._wakeup:
                self._wakeup = True
                net.schedule(done, self._free, b"")
            return

    def _arrive(self, packet: bytes, now: float) -> None:
        self._net.deliver(self, packet, now)

    def stats(self) -> dict[str, float]:
        """``sent_packets``/``sent_bytes`` (put on the wire: counted when their
        serialization starts), ``busy_time`` (seconds of serialization, counted then too),
        ``offered``, ``drops`` (= ``dropped_loss`` + ``dropped_queue``), and the
        queue's own counters prefixed ``queue_``."""
        q = self.queue.stats()
        out: dict[str, float] = {
            "offered": self.offered,
            "sent_packets": self.sent_packets,
            "sent_bytes": self.sent_bytes,
            "busy_time": self.busy_time,
            "dropped_loss": self.dropped_loss,
            "dropped_queue": q.get("drops", 0),
            "drops": self.dropped_loss + q.get("drops", 0),
        }
        for key, value in q.items():
            out[f"queue_{key}"] = value
        return out


class Cable:
    """A full-duplex link between nodes ``a`` and ``b`` (made by
    :meth:`Network.connect <trio_tcp6.sim.network.Network.connect>`): two
    :class:`Channel` directions, :attr:`forward` (a→b) and :attr:`reverse` (b→a),
    each with its own queue and serializer and the same rate, delay, MTU and loss."""

    __slots__ = ("a", "b", "forward", "mtu", "name", "reverse")

    def __init__(
        self,
        net: Network,
        a: Node,
        b: Node,
        *,
        name: str,
        rate: float | None,
        delay: float,
        mtu: int,
        loss: float,
        queue: QueueFactory | None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (bits per second) or None")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if mtu < 1280:
            raise ValueError("an IPv6 link's MTU is at least 1280 (RFC 8200 §5)")
        if not 0.0 <= loss <= 1.0:
            raise ValueError("loss is a probability")
        self.a = a
        self.b = b
        self.name = name
        self.mtu = mtu

        def make() -> Queue:
            return queue() if queue is not None else DropTail(packets=DEFAULT_QUEUE_PACKETS)

        def channel(src: Node, dst: Node, direction: str) -> Channel:
            return Channel(
                net,
                self,
                src,
                dst,
                rate=rate,
                delay=delay,
                mtu=mtu,
                loss=loss,
                queue=make(),
                seed=f"{net.seed}/{name}/{direction}",
            )

        self.forward = channel(a, b, "forward")
        self.reverse = channel(b, a, "reverse")

    def __repr__(self) -> str:
        return f"<Cable {self.name}>"

    def direction(self, src: Node) -> Channel:
        """The direction that carries packets away from ``src``."""
        if src is self.a:
            return self.forward
        if src is self.b:
            return self.reverse
        raise ValueError(f"{src.name} is not on {self.name}")

    def channels(self) -> tuple[Channel, Channel]:
        """Both directions, forward first."""
        return self.forward, self.reverse
