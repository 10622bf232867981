"""VirtualNetwork: an in-memory IPv6 network in trio time, with impairments.

Every attached address reaches every other. A packet is routed by the destination
address in bytes 24..40 of its IPv6 header (the header is not otherwise parsed); the
source of a path is the *sending link's* address, whatever the packet claims.

Cost model -- this is the project's simulator, so the common case is cheap:

* A packet on an unimpaired path (no delay, no loss, no rate, ...) goes straight into
  the destination's inbound deque and wakes its parked receiver: no task hop, no
  random draw, no timer (with ``deterministic=True``, see the end of this
  docstring, every packet waits for the end of its instant instead).
* ``rate``/``queue`` model one outbound wire per *sending link*, shared by all its
  destinations; each packet occupies it for ``len / rate`` of its own path's rate.
* Any other packet gets its fate from :class:`~trio_tcp6.links.impair.Impairer` (see
  that module for the order: rate/queue, loss, corrupt, duplicate, delay/jitter,
  reorder). If it is due later it waits in the network's delivery task
  (:class:`~trio_tcp6.links.delivery.DeliveryTask`: one heap, one lazily spawned
  trio system task that sleeps on trio deadlines only, so everything runs in virtual
  time under ``trio.testing.MockClock(autojump_threshold=0)``; no ``async with``
  needed, the task ends with :meth:`VirtualNetwork.close` or with the trio run).

Drops, all counted in :meth:`VirtualNetwork.stats`: larger than the MTU
(``dropped_mtu``, the network never fragments), shorter than an IPv6 header
(``dropped_malformed``), unknown destination or destination detached before arrival
(``dropped_no_route``), the sender's rate queue full (``dropped_queue``), random loss
(``dropped_loss``); with ``backpressure=False`` also the receiver's bounded inbound
queue full (``dropped_rx_overflow``).

Inbound queues and backpressure (:class:`~trio_tcp6.links.inbound.InboundQueue`):
each host has a bounded inbound queue (default 4096 packets and 16 MiB per link,
``rx_queue``/``rx_queue_bytes``), counting the packets queued *and* those in flight
towards the host. A full queue is not a loss -- the receiving host is merely busy --
so by default (``backpressure=True``) a sender waits for room: ``send``/
``send_batch`` block until the receiver takes packets, and ``send_nowait`` raises
:class:`trio.WouldBlock` (taking nothing), which a stack answers by sending the rest
with ``send_batch`` from a task. The room goes round-robin among the waiting senders
and no flow starves another (the inbound module says how). With
``backpressure=False`` a full queue drops, counted as ``dropped_rx_overflow``. Only
the host's inbound queue pushes back: the impairments' ``rate``/``queue`` wire and
their ``loss`` still drop as configured, and the network's own ICMPv6 errors are
dropped when the queue is full.

Impairments are layered: the network-wide values (constructor, or ``impair()`` with
both ``src`` and ``dst`` None), then ``impair(dst=B)`` (all traffic *to* B), then
``impair(src=A)`` (all traffic *from* A), then ``impair(src=A, dst=B)`` (that one
direction). Each call sets only the named knobs in its layer; the most specific layer
that sets a knob wins. ``impair(src=A, dst=B, loss=1.0)`` cuts A→B only.

Checksum offload (like Linux's loopback, which never checksums TCP on ``lo``): a link
has ``checksum_offload`` True while the network can carry partial checksums -- from
creation (``VirtualNetwork(checksum_offload=True)``, the default) until corruption is
configured anywhere on the network (``corrupt`` > 0 in the constructor or any
``impair()`` call: then False for every link, for good). While it is True a stack may
send a TCP packet whose checksum field holds only the pseudo-header sum
(``send(packet, partial_checksum=True)``, as Linux ``CHECKSUM_PARTIAL``). The network
keeps that mark with the packet and completes the checksum whenever a full one is
needed: before corrupting it, for every capture (pcaps always show correct
checksums), and when a receiver reads it with the plain ``receive``/``receive_batch``/
``receive_nowait``. Only ``receive_batch_offload()`` hands partial packets up as they
are, marked, so that an offload-aware stack skips both the completion and its own
verification of them (they are correct by construction and were never corrupted);
every packet sent without the mark (a hand-made packet with a bad checksum, say) is
delivered unmarked and verified as usual.

Unattached addresses: a packet to an address nobody has is answered, as a router
would, with an ICMPv6 Destination Unreachable, code 3 (address unreachable, RFC 4443
§3.1) from :attr:`VirtualNetwork.ROUTER`, delivered at once to the sending link
(``unreachable=False``: dropped silently). It quotes the packet, so a stack fails a
connection attempt at once instead of retrying its SYN for minutes. As RFC 4443
§2.4 demands, there is none for an ICMPv6 error, a multicast destination or an
unspecified source, and they are rate limited (a burst of
:attr:`VirtualNetwork.UNREACHABLE_BURST`, then :attr:`VirtualNetwork.UNREACHABLE_RATE`
per second). Counted as ``icmp_unreachable_sent`` / ``icmp_unreachable_rate_limited``
(outside the ``sent``/``delivered`` balance: no link sent them).

Names: ``net.attach(addr, name="server")`` lets the stacks on the network resolve
``"server"`` (:meth:`VirtualNetwork.resolve`, declared to stacks as the link's
``resolve`` capability).

Capture (``net.capture(path)``): every packet is written when it *arrives* at its
destination (after corruption; both copies of a duplicate; with the trio-clock time
of arrival), including packets the receiver then drops for a full inbound queue.
Packets dropped inside the network (loss, queue, MTU, no route) are not written.

Determinism (see :mod:`trio_tcp6.links.replay`): with a ``seed``, each path (source
link, destination) draws its packets' fates from its own generator, derived from the
seed and the two addresses, in that path's order; and each host's stack derives its
secrets (ISNs, timestamp offsets, ephemeral ports, SYN cookies) from the seed and its
address (:meth:`VirtualNetwork.stack_seed`, declared as the link's ``seed``
capability) unless it is given a seed of its own. The same seed and the same
sequence of ``send`` calls then give the same run. The sequence itself still depends
on the order in which trio runs the tasks that are ready at one instant; with
``deterministic=True`` it does not: every packet sent during an instant is held
until every task is blocked, then routed (fates drawn, delivered or scheduled) in a
canonical order -- by sending link, destination, protocol and ports, each flow's
packets in their own order -- after the packets the delay heap releases at that
instant (in the order they were scheduled). Nothing arrives synchronously then: a
packet sent is delivered after the next scheduling pass, even on an unimpaired
path, which costs a task hop per instant (not per packet). The same seed and the
same program then give a byte-identical capture and the same counters whatever
order trio picks, as long as the program's own tasks on one host do not race on
state of their own (:mod:`~trio_tcp6.links.replay` explains why).
"""

from __future__ import annotations

import ipaddress
import math
import os
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import attrs
import trio

from ..wire.icmpv6 import (
    MAX_QUOTE,
    UNREACH_ADDRESS,
    DestinationUnreachable,
    build_icmpv6,
    carries_icmpv6_error,
)
from ..wire.ipv6 import IPV6_DST, IPV6_HEADER_LEN, IPV6_SRC, PROTO_ICMPV6, build_ipv6_header
from ..wire.tcp import complete_tcp_checksum
from .base import ChecksumOffload, LinkCapabilities, Packet
from .capture import Capture
from .delivery import DeliveryTask
from .impair import (
    Counters,
    Impairer,
    Impairments,
    PathState,
    Wire,
    check_names,
)
from .inbound import InboundQueue
from .ratelimit import TokenBucket
from .replay import derive_seed, packet_key, path_random

if TYPE_CHECKING:
    pass

__all__ = ["Capture", "VirtualLink", "VirtualNetwork"]

AddressLike = str | ipaddress.IPv6Address | bytes

_DEFAULT_RX_QUEUE = 4096
_DEFAULT_RX_QUEUE_BYTES = 16 * 1024 * 1024


def _packed(address: AddressLike) -> bytes:
    if isinstance(address, bytes):
        if len(address) != 16:
            raise ValueError("a packed IPv6 address has 16 bytes")
        return address
    return ipaddress.IPv6Address(address).packed


class _Path:
    """Cached state of one direction src→dst."""

    __slots__ = ("dest", "fast", "imp", "state")

    def __init__(
        self, imp: Impairments, dest: VirtualLink | None, rng: random.Random | None
    ) -> None:
        self.imp = imp
        self.dest = dest
        self.state = PathState(rng)
        self.fast = imp.trivial


#: A packet held for the instant's release: (sending link, path, destination, packet,
#: partial); path and destination None for a packet to an address nobody has.
_Held = tuple["VirtualLink", "_Path | None", "VirtualLink | None", bytes, bool]
#: A packet due later: (destination, packet, partial).
_Due = tuple["VirtualLink", bytes, bool]


class VirtualLink:
    """One host interface on a :class:`VirtualNetwork` (made by ``net.attach``).

    A :class:`~trio_tcp6.links.Link`: ``mtu``, ``address``, ``send``/``send_batch``,
    ``receive``/``receive_batch``, ``close``/``aclose`` (detaches; receive then
    raises ``trio.ClosedResourceError``). One task may receive at a time
    (``trio.BusyResourceError`` otherwise). Checksum offload (see the module
    docstring): ``checksum_offload``, ``partial_checksum=`` on the send forms,
    ``receive_batch_offload``; ``send_nowait``. :attr:`capabilities` declares
    all of them. Extras: ``receive_nowait``, ``pending()``, ``stats()``.
    """

    __slots__ = ("_closed", "_net", "_packed", "_paths", "address", "inbound", "sent")

    def __init__(
        self, net: VirtualNetwork, address: bytes, rx_queue: int, rx_queue_bytes: int
    ) -> None:
        self._net = net
        self._packed = address
        self.address = ipaddress.IPv6Address(address)
        #: This host's inbound queue and the backpressure on its senders.
        self.inbound = InboundQueue(rx_queue, rx_queue_bytes)
        self._closed = False
        # destination address bytes -> _Path (a cache of net._paths for this source)
        self._paths: dict[bytes, _Path] = {}
        self.sent = 0

    def __repr__(self) -> str:
        return f"<VirtualLink {self.address} mtu={self.mtu}{' closed' if self._closed else ''}>"

    @property
    def mtu(self) -> int:
        return self._net.mtu

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def checksum_offload(self) -> bool:
        """Whether partial TCP checksums may be sent now (False for good once the
        network may corrupt packets; see the module docstring)."""
        return self._net._offload

    @property
    def capabilities(self) -> LinkCapabilities:
        """Everything (see :class:`~trio_tcp6.links.base.LinkCapabilities`): the
        batch forms, ``send_nowait``, and checksum offload while
        :attr:`checksum_offload` is True."""
        return LinkCapabilities(
            receive_batch=self.receive_batch,
            send_batch=self.send_batch,
            send_nowait=self.send_nowait,
            checksum_offload=ChecksumOffload(
                active=lambda: self._net._offload,
                send=self.send,
                receive_batch=self.receive_batch_offload,
                send_batch=self.send_batch,
                send_nowait=self.send_nowait,
            ),
            resolve=self._net.resolve,
            seed=self._net.stack_seed(self._packed),
        )

    @property
    def network(self) -> VirtualNetwork:
        return self._net

    @property
    def received(self) -> int:
        """Packets queued for this host."""
        return self.inbound.received

    @property
    def rx_dropped(self) -> int:
        """Packets dropped for a full inbound queue."""
        return self.inbound.dropped

    def stats(self) -> dict[str, int]:
        """This host's view: packets sent, received, dropped for a full inbound queue."""
        return {"sent": self.sent, "received": self.received, "rx_dropped": self.rx_dropped}

    async def send(self, packet: Packet, *, partial_checksum: bool = False) -> None:
        """Send one IPv6 packet (bytes, bytearray or memoryview; copied).

        ``partial_checksum``: a TCP packet (no extension headers) whose checksum field
        holds only the pseudo-header sum; the network completes it where needed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        send = self._net._send
        full = send(self, packet, partial_checksum, True)
        while full is not None:
            await self._queue_for(full)
            full = send(self, packet, partial_checksum, False)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _queue_for(self, dest: VirtualLink) -> None:
        """Backpressure: wait at the back of ``dest``'s line of senders until a drain
        lets us in."""
        await dest.inbound.senders.park()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")

    async def send_batch(
        self, packets: Iterable[Packet], *, partial_checksum: bool = False
    ) -> None:
        """Send several packets with a single checkpoint (``partial_checksum`` applies
        to every one of them, see :meth:`send`)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        send = self._net._send
        # After waiting for a full destination, this batch may send ``budget`` more
        # packets before it lets the other waiting senders go first (round-robin).
        turn: VirtualLink | None = None
        budget = 0
        for packet in packets:
            if turn is not None and budget <= 0:
                if turn.inbound.backlogged():
                    await self._queue_for(turn)  # back of the line until the next drain
                    budget = turn.inbound.share
                else:
                    turn = None  # (nothing queued there any more to be drained)
            full = send(self, packet, partial_checksum, turn is None)
            while full is not None:
                await self._queue_for(full)
                turn, budget = full, full.inbound.share
                full = send(self, packet, partial_checksum, False)
            budget -= 1
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, packet: Packet, *, partial_checksum: bool = False) -> None:
        """Send one packet synchronously (no checkpoint); :class:`trio.WouldBlock`
        (the packet was not taken) when the destination's inbound queue is full and
        the network applies backpressure (see the module docstring)."""
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        if self._net._send(self, packet, partial_checksum, True) is not None:
            raise trio.WouldBlock

    async def receive(self) -> bytes:
        """The next packet (waits for one), its checksum complete."""
        await self.inbound.wait()
        return self.inbound.pop()

    async def receive_batch(self) -> list[bytes]:
        """Every queued packet, waiting for at least one; checksums complete."""
        await self.inbound.wait()
        return self.inbound.take()

    async def receive_batch_offload(self) -> list[tuple[bytes, bool]]:
        """Every queued packet as ``(packet, partial)``, waiting for at least one.

        ``partial`` packets are TCP packets as an offloading sender sent them: the
        checksum field holds only the pseudo-header sum, and the packet was neither
        corrupted nor altered on the way, so a receiver need not verify it (and must
        complete it, :func:`~trio_tcp6.wire.tcp.complete_tcp_checksum`, before
        passing it anywhere else). Other packets are verified as usual.
        """
        await self.inbound.wait()
        return self.inbound.take_marked()

    def receive_nowait(self) -> bytes | None:
        """The next queued packet (checksum complete), or None (no checkpoint)."""
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        return self.inbound.pop() if self.inbound.packets else None

    def pending(self) -> int:
        """How many packets wait in the inbound queue."""
        return len(self.inbound.packets)

    def close(self) -> None:
        """Detach from the network. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._net._detach(self)
        # Our receiver wakes to ClosedResourceError; senders waiting for our queue
        # find no route now (or their own link closed).
        self.inbound.close()
        for path in self._paths.values():
            dest = path.dest
            if dest is not None and dest.inbound.senders:
                dest.inbound.senders.unpark_all()  # ours raise ClosedResourceError

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> VirtualLink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class VirtualNetwork:
    """An in-memory IPv6 network; see the module docstring for the model.

    ``VirtualNetwork(*, mtu=1500, seed=None, delay=0.0, jitter=0.0, loss=0.0,
    duplicate=0.0, reorder=0.0, corrupt=0.0, rate=None, queue=None, rx_queue=4096,
    rx_queue_bytes=16 MiB, checksum_offload=True, unreachable=True, backpressure=True,
    deterministic=False)``.
    ``seed`` (int or bytes) seeds the fates and the stacks' secrets;
    ``deterministic=True`` releases each instant's packets in a canonical order (see
    the module docstring: with a seed, a run then replays exactly).
    ``backpressure=False`` drops packets at a full inbound queue instead of making
    their senders wait (see the module docstring).
    ``checksum_offload=False`` makes every stack compute and verify every checksum
    (as over a real wire); ``unreachable=False`` drops packets to unattached
    addresses silently instead of answering them (see the module docstring).
    Usable directly, or as ``async with``/``with`` (closes at the end).

    The per-direction state (a cached path) exists only towards attached addresses
    and for at most :attr:`PATH_CACHE_SIZE` directions: beyond that, idle paths
    (nothing of theirs in flight) are forgotten, oldest first, and rebuilt on next
    use. A host answering spoofed sources therefore costs no memory per source.
    A rebuilt path's generator starts again from the seed, and which paths are
    evicted depends on the order they were first used: exact replay holds for runs
    that use fewer directions than that.
    """

    #: Cached paths (src→dst directions) kept before idle ones are evicted.
    PATH_CACHE_SIZE: ClassVar[int] = 4096
    #: The source address of the network's own ICMPv6 errors (its "router").
    ROUTER: ClassVar[ipaddress.IPv6Address] = ipaddress.IPv6Address("fe80::1")
    #: Destination Unreachable messages sent back to back at most ...
    UNREACHABLE_BURST: ClassVar[int] = 10
    #: ... and then per second (RFC 4443 §2.4 (f): a token bucket).
    UNREACHABLE_RATE: ClassVar[float] = 100.0

    def __init__(
        self,
        *,
        mtu: int = 1500,
        seed: int | bytes | None = None,
        delay: float = 0.0,
        jitter: float = 0.0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        rate: float | None = None,
        queue: int | None = None,
        rx_queue: int = _DEFAULT_RX_QUEUE,
        rx_queue_bytes: int = _DEFAULT_RX_QUEUE_BYTES,
        checksum_offload: bool = True,
        unreachable: bool = True,
        backpressure: bool = True,
        deterministic: bool = False,
    ) -> None:
        if mtu < IPV6_HEADER_LEN:
            raise ValueError("mtu must be at least 40 (one IPv6 header)")
        if rx_queue < 1 or rx_queue_bytes < 1:
            raise ValueError("rx_queue and rx_queue_bytes must be positive")
        self.mtu = mtu
        self.seed = seed
        self._rx_queue = rx_queue
        self._rx_queue_bytes = rx_queue_bytes
        self._counters = Counters()
        # Only paths without a generator of their own (no seed) draw from its.
        self._impairer = Impairer(counters=self._counters)
        #: Packets held until the end of their instant (``deterministic=True``).
        self._deterministic = bool(deterministic)
        self._delivery: DeliveryTask[_Due, _Held] = DeliveryTask(
            "trio_tcp6.VirtualNetwork.delivery", self._arrive_due, self._release, deterministic
        )
        self._base = Impairments(
            delay=delay,
            jitter=jitter,
            loss=loss,
            duplicate=duplicate,
            reorder=reorder,
            corrupt=corrupt,
            rate=rate,
            queue=queue,
        )
        # (src, dst) with None wildcards -> knob overrides of that layer
        self._layers: dict[tuple[bytes | None, bytes | None], dict[str, Any]] = {}
        self._links: dict[bytes, VirtualLink] = {}
        self._paths: dict[tuple[bytes, bytes], _Path] = {}
        self._wires: dict[bytes, Wire] = {}
        self._captures: list[Capture] = []
        self._closed = False
        # Checksum offload: off for good once corruption is configured anywhere.
        self._offload = bool(checksum_offload) and not self._base.corrupt
        #: Answer packets to unattached addresses with Destination Unreachable.
        self.unreachable = unreachable
        self._backpressure = bool(backpressure)
        self._unreach_limit = TokenBucket(self.UNREACHABLE_BURST, self.UNREACHABLE_RATE)
        self._unreach_sent = 0
        self._unreach_limited = 0
        self._names: dict[str, bytes] = {}

    @property
    def deterministic(self) -> bool:
        """Whether each instant's packets are released in a canonical order."""
        return self._deterministic

    def stack_seed(self, address: AddressLike) -> bytes | None:
        """The seed a stack at ``address`` derives its secrets from (None without a
        network seed): a function of the network's seed and the address."""
        if self.seed is None:
            return None
        return derive_seed(self.seed, "stack", _packed(address))

    @property
    def backpressure(self) -> bool:
        """Whether a full inbound queue makes senders wait (True) or drops (False)."""
        return self._backpressure

    # -- hosts --------------------------------------------------------------------

    def attach(
        self,
        address: AddressLike,
        *,
        rx_queue: int | None = None,
        rx_queue_bytes: int | None = None,
        name: str | None = None,
    ) -> VirtualLink:
        """A new host interface with ``address``; ValueError if it is taken.
        ``name``: a host name the stacks on this network resolve to ``address``
        (ValueError if another attached host has it)."""
        if self._closed:
            raise trio.ClosedResourceError("network is closed")
        key = _packed(address)
        if key in self._links:
            raise ValueError(f"address {ipaddress.IPv6Address(key)} is already attached")
        if name is not None:
            label = name.lower().rstrip(".")
            if not label:
                raise ValueError("a host name must not be empty")
            if label in self._names:
                raise ValueError(f"name {name!r} is already attached")
            self._names[label] = key
        link = VirtualLink(
            self,
            key,
            rx_queue if rx_queue is not None else self._rx_queue,
            rx_queue_bytes if rx_queue_bytes is not None else self._rx_queue_bytes,
        )
        self._links[key] = link
        self._wires.setdefault(key, Wire())
        for (_src, dst), path in self._paths.items():
            if dst == key:
                path.dest = link
        return link

    def resolve(self, name: str) -> ipaddress.IPv6Address | None:
        """The address attached with ``name`` (case-insensitive), or None."""
        key = self._names.get(name.lower().rstrip("."))
        return None if key is None else ipaddress.IPv6Address(key)

    def _detach(self, link: VirtualLink) -> None:
        key = link._packed
        if self._links.get(key) is link:
            del self._links[key]
            for label in [n for n, k in self._names.items() if k == key]:
                del self._names[label]
            for (_src, dst), path in self._paths.items():
                if dst == key:
                    path.dest = None

    @property
    def links(self) -> list[VirtualLink]:
        return list(self._links.values())

    # -- impairments --------------------------------------------------------------

    def impair(
        self, src: AddressLike | None = None, dst: AddressLike | None = None, **changes: Any
    ) -> None:
        """Set impairment knobs for src→dst (None = any); see the module docstring.

        Unknown knob names raise TypeError; invalid values raise ValueError.
        """
        check_names(changes)
        key = (None if src is None else _packed(src), None if dst is None else _packed(dst))
        if changes.get("corrupt"):
            # Sticky: a receiver must never trust a packet that may be corrupted.
            self._offload = False
        if key == (None, None):
            self._base = self._base.evolve(**changes)
        else:
            layer = self._layers.get(key, {})
            merged = {**layer, **changes}
            Impairments(**merged)  # validate before storing
            self._layers[key] = merged
        self._refresh_paths()

    def clear_impairments(
        self, src: AddressLike | None = None, dst: AddressLike | None = None
    ) -> None:
        """Forget the overrides of one layer (both None: reset everything to zero)."""
        key = (None if src is None else _packed(src), None if dst is None else _packed(dst))
        if key == (None, None):
            self._base = Impairments()
            self._layers.clear()
        else:
            self._layers.pop(key, None)
        self._refresh_paths()

    def overrides(
        self, src: AddressLike | None = None, dst: AddressLike | None = None
    ) -> dict[str, Any]:
        """The knobs one layer sets, as ``impair()`` took them (a copy; both None: every
        network-wide value). ``clear_impairments`` then ``impair(**saved)`` restores it."""
        key = (None if src is None else _packed(src), None if dst is None else _packed(dst))
        if key == (None, None):
            return attrs.asdict(self._base)
        return dict(self._layers.get(key, {}))

    def impairments(self, src: AddressLike, dst: AddressLike) -> Impairments:
        """The impairments that apply now to packets from ``src`` to ``dst``."""
        return self._resolve(_packed(src), _packed(dst))

    def _resolve(self, src: bytes, dst: bytes) -> Impairments:
        if not self._layers:
            return self._base
        knobs: dict[str, Any] = {}
        for key in ((None, dst), (src, None), (src, dst)):
            layer = self._layers.get(key)
            if layer:
                knobs.update(layer)
        return self._base.evolve(**knobs) if knobs else self._base

    def _refresh_paths(self) -> None:
        now = _now_or(-math.inf)
        for (src, dst), path in self._paths.items():
            path.imp = self._resolve(src, dst)
            path.fast = path.imp.trivial and path.state.last_at <= now

    # -- data path ----------------------------------------------------------------

    def _send(
        self, link: VirtualLink, packet: Packet, partial: bool = False, queue: bool = True
    ) -> VirtualLink | None:
        """Route one packet; returns the destination link instead when backpressure
        holds the packet back (its inbound queue is full, or ``queue`` and other
        senders wait for it already: nothing was done)."""
        data = packet if type(packet) is bytes else bytes(packet)
        c = self._counters
        c.sent += 1
        link.sent += 1
        if len(data) > self.mtu:
            c.dropped_mtu += 1
            return None
        path = link._paths.get(data[IPV6_DST])
        if path is None:
            if len(data) < IPV6_HEADER_LEN:
                c.dropped_malformed += 1
                return None
            dst = data[IPV6_DST]
            if dst not in self._links:
                self._no_route(link, data)  # nothing cached for a destination nobody has
                return None
            path = self._new_path(link, dst)
        dest = path.dest
        if dest is None:
            self._no_route(link, data)
            return None
        inbound = dest.inbound
        admitted = self._backpressure
        if admitted and (inbound.refuses(data) or (queue and inbound.senders)):
            # Not sent after all: the sender waits for room and sends it again.
            c.sent -= 1
            link.sent -= 1
            return dest
        if self._deterministic:
            if admitted:
                # Held towards dest: counted in its bound until released.
                inbound.reserve(len(data))
            self._hold(link, path, dest, data, partial)
            return None
        if path.fast:
            if self._captures:
                self._capture(
                    complete_tcp_checksum(data) if partial else data, trio.current_time()
                )
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
        if self._deterministic:
            self._hold(link, None, None, data, False)
        else:
            self._counters.dropped_no_route += 1
            self._unreachable(link, data)

    def _hold(
        self,
        link: VirtualLink,
        path: _Path | None,
        dest: VirtualLink | None,
        data: bytes,
        partial: bool,
    ) -> None:
        self._delivery.hold(packet_key(link._packed, data), (link, path, dest, data, partial))

    def _release(self, held: list[_Held]) -> None:
        """Route the packets of an instant, in the order given."""
        admitted = self._backpressure
        for link, path, dest, data, partial in held:
            if path is None or dest is None:
                self._counters.dropped_no_route += 1
                self._unreachable(link, data)
                continue
            if admitted:
                dest.inbound.unreserve(len(data))
            self._send_impaired(link, path, dest, data, partial)

    def _unreachable(self, link: VirtualLink, data: bytes) -> None:
        """Answer ``data`` (to an address nobody has) with Destination Unreachable,
        code 3, as a router would (see the module docstring)."""
        if not self.unreachable or link._closed:
            return
        src = data[IPV6_SRC]
        if data[IPV6_DST.start] == 0xFF or src == bytes(16) or carries_icmpv6_error(data):
            return  # RFC 4443 §2.4 (e)
        now = _now_or(0.0)
        if not self._unreach_limit.take(now):
            self._unreach_limited += 1
            return
        router = self.ROUTER.packed
        msg = DestinationUnreachable(UNREACH_ADDRESS, bytes(data[:MAX_QUOTE]))
        body = build_icmpv6(msg, router, src)
        reply = build_ipv6_header(router, src, PROTO_ICMPV6, len(body)) + body
        if self._captures:
            self._capture(reply, now)
        if link.inbound.arrive(reply):
            self._unreach_sent += 1

    def _new_path(self, link: VirtualLink, dst: bytes) -> _Path:
        src = link._packed
        path = self._paths.get((src, dst))
        if path is None:
            if len(self._paths) >= self.PATH_CACHE_SIZE:
                self._evict_idle_paths()
            rng = None if self.seed is None else path_random(self.seed, src, dst)
            path = _Path(self._resolve(src, dst), self._links.get(dst), rng)
            self._paths[(src, dst)] = path
        link._paths[dst] = path
        return path

    def _evict_idle_paths(self) -> None:
        """Forget idle paths, oldest first, down to 3/4 of :attr:`PATH_CACHE_SIZE`
        (amortized: one sweep per quarter of the cache). A path with a packet still
        in flight is kept: its state keeps the direction FIFO."""
        now = _now_or(math.inf)
        target = self.PATH_CACHE_SIZE * 3 // 4
        paths, links = self._paths, self._links
        for key, path in list(paths.items()):
            if len(paths) <= target:
                break
            if path.state.last_at > now:
                continue
            del paths[key]
            src_link = links.get(key[0])
            if src_link is not None and src_link._paths.get(key[1]) is path:
                del src_link._paths[key[1]]

    def _send_impaired(
        self, link: VirtualLink, path: _Path, dest: VirtualLink, data: bytes, partial: bool
    ) -> None:
        now = trio.current_time()
        imp = path.imp
        if partial and imp.corrupt:
            # Corruption must hit a complete checksum (the receiver has to catch it).
            data = complete_tcp_checksum(data)
            partial = False
        at, data, copies = self._impairer.fate(
            imp, data, now, self._wires[link._packed], path.state
        )
        if not copies:
            return
        admitted = self._backpressure
        if at <= now:
            for _ in range(copies):
                self._deliver(dest, data, now, partial, admitted)
            if imp.trivial:
                path.fast = True  # nothing of this path is pending any more
            return
        schedule = self._delivery.schedule
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
        c = self._counters
        if dest._closed:
            c.dropped_no_route += 1
            return
        if self._captures:
            self._capture(complete_tcp_checksum(data) if partial else data, now)
        if dest.inbound.arrive(data, partial, admitted):
            c.delivered += 1
        else:
            c.dropped_rx_overflow += 1

    def _capture(self, data: bytes, now: float) -> None:
        for cap in self._captures:
            cap.write(data, now)

    def _arrive_due(self, item: _Due, now: float) -> None:
        """A scheduled packet is due (the delivery task calls this)."""
        dest, data, partial = item
        admitted = self._backpressure
        if admitted:
            inbound = dest.inbound  # (InboundQueue.unreserve, inline: once per packet)
            inbound.reserved -= 1
            inbound.reserved_bytes -= len(data)
        self._deliver(dest, data, now, partial, admitted)

    # -- capture, stats, lifetime ---------------------------------------------------

    def capture(self, target: str | os.PathLike[str] | BinaryIO) -> Capture:
        """Start writing every packet that arrives anywhere to a pcap file.

        Returns a :class:`Capture`: call ``close()`` or use ``with net.capture(p):``.
        ``net.close()`` closes every capture.
        """
        from ..wire.pcap import PcapWriter

        cap = Capture(PcapWriter(target), self._stop_capture)
        self._captures = [*self._captures, cap]
        return cap

    def _stop_capture(self, cap: Capture) -> None:
        self._captures = [c for c in self._captures if c is not cap]

    def stats(self) -> dict[str, int]:
        """Counters: sent, delivered, dropped_* by reason, duplicated, corrupted,
        reordered; plus ``in_flight`` (packets scheduled but not yet arrived) and the
        network's own ``icmp_unreachable_sent``/``icmp_unreachable_rate_limited``.

        ``sent + duplicated == delivered + dropped_* + in_flight``.
        """
        d = self._counters.as_dict()
        d["in_flight"] = len(self._delivery)
        d["icmp_unreachable_sent"] = self._unreach_sent
        d["icmp_unreachable_rate_limited"] = self._unreach_limited
        return d

    def close(self) -> None:
        """Detach every link, discard packets in flight, stop the captures."""
        if self._closed:
            return
        self._closed = True
        for link in list(self._links.values()):
            link.close()
        self._delivery.close()
        for cap in list(self._captures):
            cap.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def __enter__(self) -> VirtualNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> VirtualNetwork:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _now_or(default: float) -> float:
    try:
        return trio.current_time()
    except RuntimeError:
        return default
