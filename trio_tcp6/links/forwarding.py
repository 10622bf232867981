"""A :class:`~trio_tcp6.links.virtual.VirtualNetwork`'s forwarding plane: what
happens to each packet a link sends, from the MTU check to its arrival.

The network object is the control plane -- hosts, names, impairment layers,
captures, counters as the user sees them -- and changes rarely; everything here runs
for every packet, so it is read, and kept cheap, on its own. It owns the state the
per-packet path touches (the links by address, the path cache, each sender's wire,
the captures, the delay heap) as plain attributes the network's control methods
update.

Cost model -- this is the project's simulator, so the common case is cheap:

* A packet on an unimpaired path (no delay, no loss, no rate, ...) goes straight into
  the destination's inbound deque and wakes its parked receiver: no task hop, no
  random draw, no timer (with ``deterministic=True`` every packet waits for the end
  of its instant instead). When the destination's stack registered an inline input
  and nothing is queued ahead, it does not even wait for the receiver: the
  destination's input runs in this call (once at a time: what it sends meanwhile is
  queued), as Linux's loopback runs the receive path in the sender's context.
* ``rate``/``queue`` model one outbound wire per *sending link*, shared by all its
  destinations; each packet occupies it for ``len / rate`` of its own path's rate.
* Any other packet gets its fate from :class:`~trio_tcp6.links.impair.Impairer` (see
  that module for the order: rate/queue, loss, corrupt, duplicate, delay/jitter,
  reorder). If it is due later it waits in the network's delivery task
  (:class:`~trio_tcp6.links.delivery.DeliveryTask`: one heap, one lazily spawned
  trio system task that sleeps on trio deadlines only, so everything runs in virtual
  time under ``trio.testing.MockClock(autojump_threshold=0)``; no ``async with``
  needed, the task ends with the network's ``close()`` or with the trio run).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from ..wire.ipv6 import IPV6_HEADER_LEN
from ..wire.tcp import complete_tcp_checksum
from .base import Packet
from .capture import Capture
from .delivery import DeliveryTask
from .host import VirtualLink
from .impair import Counters, Impairer, Wire
from .paths import ImpairmentLayers, Path, PathTable
from .replay import packet_key, path_random
from .unreachable import UnreachableReplies

if TYPE_CHECKING:
    from .virtual import VirtualNetwork

__all__ = ["ForwardingPlane", "now_or"]

#: A packet held for the instant's release: (sending link, path, destination, packet,
#: partial); path and destination None for a packet to an address nobody has.
_Held = tuple[VirtualLink, Path | None, VirtualLink | None, bytes, bool]
#: A packet due later: (destination, packet, partial).
_Due = tuple[VirtualLink, bytes, bool]


class ForwardingPlane:
    """The per-packet path of one network (see the module docstring). ``network``
    is read only off the fast path: its ``seed``, ``unreachable``, ``ROUTER`` and
    ``PATH_CACHE_SIZE`` as they are when a path is made or an answer sent."""

    __slots__ = (
        "_impairer",
        "backpressure",
        "captures",
        "counters",
        "delivery",
        "deterministic",
        "inlining",
        "layers",
        "links",
        "mtu",
        "network",
        "paths",
        "replies",
        "wires",
    )

    def __init__(
        self,
        network: VirtualNetwork,
        *,
        mtu: int,
        layers: ImpairmentLayers,
        replies: UnreachableReplies,
        backpressure: bool,
        deterministic: bool,
    ) -> None:
        self.network = network
        #: The largest packet carried (the network never fragments).
        self.mtu = mtu
        self.layers = layers
        #: The network's own Destination Unreachable answers and their counters.
        self.replies = replies
        self.backpressure = backpressure
        #: Packets held until the end of their instant (``deterministic=True``).
        self.deterministic = deterministic
        #: An inline input is running: packets sent meanwhile are queued, so that
        #: inputs never nest (two hosts answering each other would recurse).
        self.inlining = False
        self.counters = Counters()
        # Only paths without a generator of their own (no seed) draw from its.
        self._impairer = Impairer(counters=self.counters)
        self.delivery: DeliveryTask[_Due, _Held] = DeliveryTask(
            "trio_tcp6.VirtualNetwork.delivery", self._arrive_due, self._release, deterministic
        )
        #: The attached links by packed address.
        self.links: dict[bytes, VirtualLink] = {}
        self.paths = PathTable()
        #: Each sending link's outbound wire (``rate``/``queue``), by packed address.
        self.wires: dict[bytes, Wire] = {}
        #: The running captures (a new list whenever one starts or stops).
        self.captures: list[Capture] = []

    def refresh_paths(self) -> None:
        """Resolve every cached path's impairments again (the layers changed)."""
        self.paths.refresh(self.layers.resolve, now_or(-math.inf))

    def route(
        self, link: VirtualLink, packet: Packet, partial: bool = False, queue: bool = True
    ) -> VirtualLink | None:
        """Route one packet ``link`` sends (what :class:`VirtualLink`'s send calls do,
        as :meth:`VirtualNetwork.route`); returns the destination link instead when
        backpressure holds the packet back (its inbound queue is full, or ``queue``
        and other senders wait for it already: nothing was done)."""
        data = packet if type(packet) is bytes else bytes(packet)
        c = self.counters
        c.sent += 1
        link.sent += 1
        if len(data) > self.mtu:
            c.dropped_mtu += 1
            return None
        # The destination address (wire.ipv6.IPV6_DST) with literal bounds: compiled,
        # indexing bytes with that slice constant raises TypeError.
        dst = data[24:40]
        path = link.paths.get(dst)
        if path is None:
            if len(data) < IPV6_HEADER_LEN:
                c.dropped_malformed += 1
                return None
            if dst not in self.links:
                self._no_route(link, data)  # nothing cached for a destination nobody has
                return None
            path = self._new_path(link, dst)
        dest = path.dest
        if dest is None:
            self._no_route(link, data)
            return None
        inbound = dest.inbound
        admitted = self.backpressure
        if admitted and (inbound.refuses(data) or (queue and inbound.senders)):
            # Not sent after all: the sender waits for room and sends it again.
            c.sent -= 1
            link.sent -= 1
            return dest
        if self.deterministic:
            if admitted:
                # Held towards dest: counted in its bound until released.
                inbound.reserve(len(data))
            self._hold(link, path, dest, data, partial)
            return None
        if path.fast:
            if self.captures:
                self._capture(
                    complete_tcp_checksum(data) if partial else data, trio.current_time()
                )
            inline = dest.inline
            if inline is not None and not inbound.packets and not self.inlining:
                # Nothing queued ahead of it: the destination's input takes it now.
                c.delivered += 1
                inbound.received += 1
                self.inlining = True
                try:
                    inline(data, partial)
                finally:
                    self.inlining = False
                return None
            if inbound.arrive(data, partial, admitted):
                c.delivered += 1
            else:
                c.dropped_rx_overflow += 1
            return None
        self._send_impaired(link, path, dest, data, partial)
        return None

    def _no_route(self, link: VirtualLink, data: bytes) -> None:
        """``data`` has no destination: drop and answer it now, or at the instant's
        release (in flight until then)."""
        if self.deterministic:
            self._hold(link, None, None, data, False)
        else:
            self.counters.dropped_no_route += 1
            self._unreachable(link, data)

    def _hold(
        self,
        link: VirtualLink,
        path: Path | None,
        dest: VirtualLink | None,
        data: bytes,
        partial: bool,
    ) -> None:
        self.delivery.hold(packet_key(link.packed, data), (link, path, dest, data, partial))

    def _release(self, held: list[_Held]) -> None:
        """Route the packets of an instant, in the order given."""
        admitted = self.backpressure
        for link, path, dest, data, partial in held:
            if path is None or dest is None:
                self.counters.dropped_no_route += 1
                self._unreachable(link, data)
                continue
            if admitted:
                dest.inbound.unreserve(len(data))
            self._send_impaired(link, path, dest, data, partial)

    def _unreachable(self, link: VirtualLink, data: bytes) -> None:
        """Answer ``data`` (to an address nobody has) with Destination Unreachable,
        code 3, as a router would (see :mod:`trio_tcp6.links.unreachable`)."""
        if not self.network.unreachable or link.closed:
            return
        now = now_or(0.0)
        reply = self.replies.reply(data, self.network.ROUTER.packed, now)
        if reply is None:
            return
        if self.captures:
            self._capture(reply, now)
        if link.inbound.arrive(reply):
            self.replies.sent += 1

    def _new_path(self, link: VirtualLink, dst: bytes) -> Path:
        src = link.packed
        path = self.paths.get(src, dst)
        if path is None:
            if len(self.paths) >= self.network.PATH_CACHE_SIZE:
                self._evict_idle_paths()
            rng = None if self.network.seed is None else path_random(self.network.seed, src, dst)
            path = Path(self.layers.resolve(src, dst), self.links.get(dst), rng)
            self.paths.add(src, dst, path)
        link.paths[dst] = path
        return path

    def _evict_idle_paths(self) -> None:
        """Forget idle paths, oldest first, down to 3/4 of ``PATH_CACHE_SIZE``
        (amortized: one sweep per quarter of the cache), and the sources' cached
        references to them."""
        target = self.network.PATH_CACHE_SIZE * 3 // 4
        for src, dst, path in self.paths.evict_idle(target, now_or(math.inf)):
            src_link = self.links.get(src)
            if src_link is not None and src_link.paths.get(dst) is path:
                del src_link.paths[dst]

    def _send_impaired(
        self, link: VirtualLink, path: Path, dest: VirtualLink, data: bytes, partial: bool
    ) -> None:
        now = trio.current_time()
        imp = path.imp
        if partial and imp.corrupt:
            # Corruption must hit a complete checksum (the receiver has to catch it).
            data = complete_tcp_checksum(data)
            partial = False
        at, data, copies = self._impairer.fate(imp, data, now, self.wires[link.packed], path.state)
        if not copies:
            return
        admitted = self.backpressure
        if at <= now:
            for _ in range(copies):
                self._deliver(dest, data, now, partial, admitted)
            if imp.trivial:
                path.fast = True  # nothing of this path is pending any more
            return
        schedule = self.delivery.schedule
        inbound = dest.inbound
        for _ in range(copies):
            schedule(at, (dest, data, partial))
            if admitted:
                # In flight towards dest: counted in its bound until it arrives
                # (InboundQueue.reserve, inline: once per delayed packet).
                inbound.reserved += 1
                inbound.reserved_bytes += len(data)

    def _deliver(
        self, dest: VirtualLink, data: bytes, now: float, partial: bool, admitted: bool
    ) -> None:
        c = self.counters
        if dest.closed:
            c.dropped_no_route += 1
            return
        if self.captures:
            self._capture(complete_tcp_checksum(data) if partial else data, now)
        if dest.inbound.arrive(data, partial, admitted):
            c.delivered += 1
        else:
            c.dropped_rx_overflow += 1

    def _capture(self, data: bytes, now: float) -> None:
        for cap in self.captures:
            cap.write(data, now)

    def _arrive_due(self, item: _Due, now: float) -> None:
        """A scheduled packet is due (the delivery task calls this)."""
        dest, data, partial = item
        admitted = self.backpressure
        if admitted:
            inbound = dest.inbound  # (InboundQueue.unreserve, inline: once per packet)
            inbound.reserved -= 1
            inbound.reserved_bytes -= len(data)
        self._deliver(dest, data, now, partial, admitted)


def now_or(default: float) -> float:
    """The trio clock's time, or ``default`` outside a trio run."""
    try:
        return trio.current_time()
    except RuntimeError:
        return default
