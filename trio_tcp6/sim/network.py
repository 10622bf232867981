"""The simulated network: hosts, routers, cables, and one virtual-time event heap.

::

    net = Network(seed=1)
    a = net.host("a", "2001:db8:1::a")
    b = net.host("b", "2001:db8:2::b")
    r1, r2 = net.router("r1"), net.router("r2")
    net.connect(a, r1, delay=0.001)
    net.connect(r1, r2, rate=10e6, delay=0.010, queue=lambda: DropTail(packets=100))
    net.connect(r2, b, delay=0.001)
    # then: trio_tcp6.open_stack(a.link, a.address), ... inside trio

Topology: a :class:`~trio_tcp6.sim.host.Host` has one interface (one cable) and
sends everything out of it; a :class:`~trio_tcp6.sim.router.Router` has any number.
Every cable (:class:`~trio_tcp6.sim.link.Cable`) is full duplex, each direction a
:class:`~trio_tcp6.sim.link.Channel` with its own queue and serializer.

Addresses: each host has the address it was given; each router one address for
all its interfaces (``address=``, or ``2001:db8:ffff::N`` for the N-th router made).
Routes are computed whenever the topology changes: every router gets a /128 route
to every node's address along a shortest path by hop count (hosts never forward;
ties go to the cable connected first). :meth:`Network.route` adds static routes
of any prefix, which win over computed routes of the same prefix.

Time: everything is scheduled on one heap of events keyed by ``(time, sequence)``
-- the sequence number breaks ties in the order events were scheduled, so two
packets due at the same instant are always handled in the same order. One trio
system task serves it, spawned lazily when the first event is scheduled (no
``async with`` needed, though the network is an async context manager that closes
it). It sleeps with trio deadlines only, so a simulation runs in virtual time
under ``trio.testing.MockClock(autojump_threshold=0)``; an event is handled with
its own due time as "now", so times add up exactly.

Determinism: the same seed and the same program give the same run, whatever
order trio runs ready tasks in. Each channel draws its random fates from its own
generator (see :mod:`trio_tcp6.sim.link`), ties on the heap are broken by its
sequence, and every packet a host sends enters through :meth:`Network.host_send`,
which (by default, ``deterministic=True``) holds it until the end of its instant:
once every task is blocked, the scheduler first serves the events due at that
instant, then offers the held packets to their cables in a canonical order (by
sending host, then bytes; a host's packets of equal key keep their order) -- see
:class:`~trio_tcp6.links.replay.InstantOrder`. So two hosts sending at the same
instant, or one host's connections whose tasks run in either order, put the same
packets on the wire in the same order. Each host's link declares a seed derived
from the network's seed and the host's address, from which a stack opened on it
draws its secrets (ISNs, ports, timestamp offsets, SYN cookies). The price is one
extra scheduling pass per instant in which hosts send (``deterministic=False``
offers each packet at once, in send order).

Capture: :meth:`Network.capture` writes a pcap of the packets as they leave a
cable (at the far end of either direction, at the time they arrive there), of one
cable or all of them; a packet crossing three cables then appears three times,
with its Hop Limit as on each.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any, BinaryIO

import trio

from ..alarm import Alarm
from ..links.base import Packet
from ..links.capture import Capture as LinkCapture
from ..links.replay import InstantOrder, derive_seed, packet_key
from ..wire.pcap import PcapWriter
from .host import Host
from .link import Cable, Channel, QueueFactory
from .node import Node
from .router import Router

__all__ = ["Capture", "Network"]

AddressLike = str | ipaddress.IPv6Address

#: Where the default router addresses come from (the N-th router gets ``::N``).
ROUTER_PREFIX = ipaddress.IPv6Network("2001:db8:ffff::/64")

Event = tuple[float, int, Callable[[bytes, float], None], bytes]


class Capture(LinkCapture):
    """A running capture (from :meth:`Network.capture`); stop it with :meth:`close`
    or use it as a context manager. ``count``: packets written; ``cable``: the cable
    it writes (None: every cable). A write or close error stops it and is kept in
    ``error`` (see :class:`trio_tcp6.links.capture.Capture`, which it extends)."""

    def __init__(self, net: Network, writer: PcapWriter, cable: Cable | None) -> None:
        super().__init__(writer, net.stop_capture)
        self.cable = cable


class Network:
    """A simulated IPv6 network in virtual time; see the module docstring.

    ``seed`` (an int) determines every random fate in the network and the secrets
    of the stacks opened on its hosts; ``deterministic`` (default True) releases
    each instant's host packets in canonical order (see the module docstring).
    """

    def __init__(self, seed: int = 0, *, deterministic: bool = True) -> None:
        self.seed = seed
        #: Host packets held until the end of their instant (``deterministic``).
        self._order: InstantOrder[tuple[Channel, bytes]] | None = (
            InstantOrder() if deterministic else None
        )
        self.hosts: list[Host] = []
        self.routers: list[Router] = []
        self.cables: list[Cable] = []
        self._names: dict[str, Node] = {}
        self._addresses: dict[bytes, Node] = {}
        self._static: dict[Router, list[tuple[ipaddress.IPv6Network, Channel]]] = {}
        self._heap: list[Event] = []
        self._seq = 0
        self._task: trio.lowlevel.Task | None = None
        self._alarm = Alarm("a network has one scheduler task")
        self._captures: list[Capture] = []
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<Network seed={self.seed} hosts={len(self.hosts)} routers={len(self.routers)}"
            f" cables={len(self.cables)}>"
        )

    # -- building the topology --------------------------------------------------------

    def _add(self, node: Node) -> None:
        if node.name in self._names:
            raise ValueError(f"a node named {node.name!r} exists already")
        if node.packed in self._addresses:
            raise ValueError(f"address {node.address} is taken")
        self._names[node.name] = node
        self._addresses[node.packed] = node

    def host(self, name: str, address: AddressLike) -> Host:
        """A new host ``name`` with ``address``; connect it to one router (or host)."""
        host = Host(self, name, ipaddress.IPv6Address(address))
        self._add(host)
        self.hosts.append(host)
        return host

    def router(self, name: str, address: AddressLike | None = None) -> Router:
        """A new router ``name``; ``address``: the source of its ICMPv6 messages
        (default: the next one of ``2001:db8:ffff::/64``)."""
        if address is None:
            address = ROUTER_PREFIX[len(self.routers) + 1]
        router = Router(name, ipaddress.IPv6Address(address))
        self._add(router)
        self.routers.append(router)
        self._recompute()
        return router

    def node(self, name: str) -> Node:
        """The host or router called ``name`` (KeyError if none)."""
        return self._names[name]

    def node_by_address(self, address: AddressLike | bytes) -> Node:
        """The host or router with ``address`` (KeyError if none)."""
        packed = address if isinstance(address, bytes) else ipaddress.IPv6Address(address).packed
        return self._addresses[packed]

    def connect(
        self,
        a: Node | str,
        b: Node | str,
        *,
        rate: float | None = None,
        delay: float = 0.0,
        mtu: int = 1500,
        loss: float = 0.0,
        queue: QueueFactory | None = None,
        name: str | None = None,
    ) -> Cable:
        """Connect ``a`` and ``b`` with a full-duplex cable.

        ``rate``: bits per second of each direction (None: no serialization time);
        ``delay``: one-way propagation delay in seconds; ``mtu``: the largest packet
        (at least 1280); ``loss``: the probability each packet is lost, drawn per
        packet and direction; ``queue``: a factory called once per direction for the
        queue in front of the serializer (default: a 10000-packet drop-tail).
        ``name``: the cable's (default ``"a-b"``). A host takes one cable only.
        """
        na, nb = self._resolve_node(a), self._resolve_node(b)
        if na is nb:
            raise ValueError("a cable needs two different nodes")
        for node in (na, nb):
            if isinstance(node, Host) and node.cables:
                raise ValueError(f"host {node.name} has its one interface connected already")
        label = name if name is not None else f"{na.name}-{nb.name}"
        if any(c.name == label for c in self.cables):
            raise ValueError(f"a cable named {label!r} exists already")
        cable = Cable(
            self, na, nb, name=label, rate=rate, delay=delay, mtu=mtu, loss=loss, queue=queue
        )
        self.cables.append(cable)
        na.cables.append(cable)
        nb.cables.append(cable)
        for node in (na, nb):
            if isinstance(node, Host):
                node.channel = cable.direction(node)
        self._recompute()
        return cable

    def route(
        self, router: Router | str, prefix: str | ipaddress.IPv6Network, via: Node | str
    ) -> None:
        """A static route on ``router``: packets to ``prefix`` leave by the (first)
        cable to the neighbour ``via``. Wins over a computed route of the same
        prefix; a longer prefix still wins over it."""
        r = self._resolve_node(router)
        if not isinstance(r, Router):
            raise ValueError(f"{r.name} is not a router")
        channel = r.neighbour_channel(self._resolve_node(via))
        self._static.setdefault(r, []).append((ipaddress.IPv6Network(prefix), channel))
        self._recompute()

    def _resolve_node(self, node: Node | str) -> Node:
        return self._names[node] if isinstance(node, str) else node

    def _recompute(self) -> None:
        """Shortest paths by hop count from every router to every node (BFS; hosts
        are leaves), then the static routes on top."""
        for router in self.routers:
            first: dict[Node, Channel] = {}
            seen: set[Node] = {router}
            frontier: list[Node] = []
            for cable in router.cables:
                channel = cable.direction(router)
                if channel.dst not in seen:
                    seen.add(channel.dst)
                    first[channel.dst] = channel
                    frontier.append(channel.dst)
            while frontier:
                following: list[Node] = []
                for node in frontier:
                    if isinstance(node, Host):
                        continue
                    for cable in node.cables:
                        far = cable.direction(node).dst
                        if far not in seen:
                            seen.add(far)
                            first[far] = first[node]
                            following.append(far)
                frontier = following
            routes = [
                (ipaddress.IPv6Network((node.address, 128)), channel)
                for node, channel in first.items()
            ]
            routes.extend(self._static.get(router, []))
            router.set_routes(routes)

    def resolve(self, name: str) -> ipaddress.IPv6Address | None:
        """The address of the host called ``name``, or None."""
        node = self._names.get(name)
        return node.address if isinstance(node, Host) else None

    # -- moving packets ---------------------------------------------------------------

    def host_send(self, host: Host, packet: Packet) -> None:
        """Every packet a host sends enters the network here."""
        data = packet if type(packet) is bytes else bytes(packet)
        host.sent += 1
        channel = host.channel
        if channel is None or self._closed:
            host.dropped_unconnected += 1
            return
        if len(data) > channel.mtu:
            host.dropped_mtu += 1
            return
        if self._order is None:
            channel.offer(data, trio.current_time())
            return
        self._order.hold(packet_key(host.packed, data), (channel, data))
        if self._task is None:
            self._task = trio.lowlevel.spawn_system_task(
                self._run, name="trio_tcp6.sim.Network.scheduler"
            )
        else:
            self._alarm.wake()

    def stack_seed(self, host: Host) -> bytes:
        """The seed a stack on ``host`` derives its secrets from: a function of the
        network's seed and the host's address."""
        return derive_seed(self.seed, "stack", host.packed)

    @property
    def deterministic(self) -> bool:
        """Whether host packets are released in canonical order at the end of each
        instant."""
        return self._order is not None

    def deliver(self, channel: Channel, packet: bytes, now: float) -> None:
        """``packet`` reached the far end of ``channel`` at ``now``."""
        if self._captures:
            for cap in self._captures:
                if cap.cable is None or cap.cable is channel.cable:
                    cap.write(packet, now)
        channel.dst.receive(channel, packet, now)

    def schedule(self, at: float, action: Callable[[bytes, float], None], packet: bytes) -> None:
        """Call ``action(packet, at)`` at virtual time ``at`` (ties: in the order
        scheduled)."""
        if self._closed:
            return
        self._seq += 1
        heappush(self._heap, (at, self._seq, action, packet))
        if self._task is None:
            self._task = trio.lowlevel.spawn_system_task(
                self._run, name="trio_tcp6.sim.Network.scheduler"
            )
        else:
            self._alarm.wake_by(at)

    async def _run(self) -> None:
        heap = self._heap
        order = self._order
        try:
            while not self._closed:
                if order:
                    # The end of an instant: once every task is blocked, the events
                    # due now, then what the hosts sent now, in canonical order.
                    assert order is not None
                    held = await order.settle()
                    if self._closed:
                        break
                    now = trio.current_time()
                    self._serve_due(now)
                    for channel, data in held:
                        channel.offer(data, now)
                    continue
                self._serve_due(trio.current_time())
                if self._closed or order:
                    continue
                await self._alarm.sleep_until(heap[0][0] if heap else math.inf)
        finally:
            self._task = None

    def _serve_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _seq, action, packet = heappop(heap)
            action(packet, at)

    # -- capture, stats, lifetime -------------------------------------------------------

    def capture(
        self, target: str | os.PathLike[str] | BinaryIO, *, link: Cable | str | None = None
    ) -> Capture:
        """Write a pcap of the packets leaving ``link`` (a cable or its name; None:
        every cable) to ``target`` (a path or a binary file)."""
        cable: Cable | None
        if isinstance(link, str):
            matches = [c for c in self.cables if c.name == link]
            if not matches:
                raise KeyError(f"no cable named {link!r}")
            cable = matches[0]
        else:
            cable = link
        cap = Capture(self, PcapWriter(target), cable)
        self._captures = [*self._captures, cap]
        return cap

    def stop_capture(self, cap: LinkCapture) -> None:
        """Forget ``cap`` (its :meth:`Capture.close` calls this)."""
        self._captures = [c for c in self._captures if c is not cap]

    def channel(self, name: str) -> Channel:
        """The cable direction called ``name`` (``"r1->r2"``)."""
        for cable in self.cables:
            for channel in cable.channels():
                if channel.name == name:
                    return channel
        raise KeyError(name)

    def stats(self) -> dict[str, Any]:
        """Every counter: ``{"routers": {name: Router.stats()}, "hosts": {name:
        Host.stats()}, "channels": {"a->b": Channel.stats()}, "in_flight": events
        pending}``. A pair of nodes joined by several cables has its channels named
        ``"cable:a->b"``."""
        channels: dict[str, dict[str, float]] = {}
        for cable in self.cables:
            for channel in cable.channels():
                key = (
                    channel.name
                    if channel.name not in channels
                    else f"{cable.name}:{channel.name}"
                )
                channels[key] = channel.stats()
        return {
            "routers": {r.name: r.stats() for r in self.routers},
            "hosts": {h.name: h.stats() for h in self.hosts},
            "channels": channels,
            "in_flight": len(self._heap),
        }

    def close(self) -> None:
        """Discard the events pending, stop the scheduler, close the hosts' links and
        every capture."""
        if self._closed:
            return
        self._closed = True
        self._heap.clear()
        if self._order is not None:
            self._order.clear()
        self._alarm.wake()
        for host in self.hosts:
            host.link.close()
        for cap in list(self._captures):
            cap.close()

    async def __aenter__(self) -> Network:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await trio.lowlevel.checkpoint()
