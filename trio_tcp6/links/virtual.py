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

Impairments are layered (:mod:`trio_tcp6.links.paths`): the network-wide values,
then ``impair(dst=B)``, ``impair(src=A)`` and ``impair(src=A, dst=B)``; each call sets
only the knobs it names, and the most specific layer that sets a knob wins.
``impair(src=A, dst=B, loss=1.0)`` cuts A→B only.

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

Unattached addresses: a packet to an address nobody has is answered at once, as a
router would, with an ICMPv6 Destination Unreachable (address unreachable) from
:attr:`VirtualNetwork.ROUTER`, within RFC 4443's rules and rate limit
(:mod:`trio_tcp6.links.unreachable`; ``unreachable=False``: dropped silently), so a
stack fails a connection attempt at once instead of retrying its SYN for minutes.

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
until every task is blocked, then routed in a canonical order (by sending link,
destination, protocol and ports, each flow's packets in their own order) after the
packets the delay heap releases at that instant. Nothing arrives synchronously then,
which costs a task hop per instant (not per packet). The same seed and the same
program then give a byte-identical capture and the same counters whatever order trio
picks, as long as the program's own tasks on one host do not race on state of their
own (:mod:`~trio_tcp6.links.replay` explains why).
"""

from __future__ import annotations

import ipaddress
import math
import os
from typing import Any, BinaryIO, ClassVar

import trio

from ..wire.ipv6 import IPV6_DST, IPV6_HEADER_LEN
from ..wire.tcp import complete_tcp_checksum
from .base import Packet
from .capture import Capture
from .delivery import DeliveryTask
from .host import VirtualLink
from .impair import Counters, Impairer, Impairments, Wire, check_names
from .paths import ImpairmentLayers, Path, PathTable
from .replay import derive_seed, packet_key, path_random
from .unreachable import UnreachableReplies

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


#: A packet held for the instant's release: (sending link, path, destination, packet,
#: partial); path and destination None for a packet to an address nobody has.
_Held = tuple[VirtualLink, Path | None, VirtualLink | None, bytes, bool]
#: A packet due later: (destination, packet, partial).
_Due = tuple[VirtualLink, bytes, bool]


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
        self._layers = ImpairmentLayers(
            Impairments(
                delay=delay,
                jitter=jitter,
                loss=loss,
                duplicate=duplicate,
                reorder=reorder,
                corrupt=corrupt,
                rate=rate,
                queue=queue,
            )
        )
        self._links: dict[bytes, VirtualLink] = {}
        self._paths = PathTable()
        self._wires: dict[bytes, Wire] = {}
        self._captures: list[Capture] = []
        self._closed = False
        # Checksum offload: off for good once corruption is configured anywhere.
        self._offload = bool(checksum_offload) and not self._layers.base.corrupt
        #: Answer packets to unattached addresses with Destination Unreachable.
        self.unreachable = unreachable
        self._backpressure = bool(backpressure)
        self._unreach = UnreachableReplies(self.UNREACHABLE_BURST, self.UNREACHABLE_RATE)
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
            detach=self._detach,
            offload_active=lambda: self._offload,
        )
        self._links[key] = link
        self._wires.setdefault(key, Wire())
        self._paths.retarget(key, link)
        return link

    def resolve(self, name: str) -> ipaddress.IPv6Address | None:
        """The address attached with ``name`` (case-insensitive), or None."""
        key = self._names.get(name.lower().rstrip("."))
        return None if key is None else ipaddress.IPv6Address(key)

    def _detach(self, link: VirtualLink) -> None:
        key = link.packed
        if self._links.get(key) is link:
            del self._links[key]
            for label in [n for n, k in self._names.items() if k == key]:
                del self._names[label]
            self._paths.retarget(key, None)

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
        self._layers.set(key, changes)
        self._refresh_paths()

    def clear_impairments(
        self, src: AddressLike | None = None, dst: AddressLike | None = None
    ) -> None:
        """Forget the overrides of one layer (both None: reset everything to zero)."""
        key = (None if src is None else _packed(src), None if dst is None else _packed(dst))
        self._layers.clear(key)
        self._refresh_paths()

    def overrides(
        self, src: AddressLike | None = None, dst: AddressLike | None = None
    ) -> dict[str, Any]:
        """The knobs one layer sets, as ``impair()`` took them (a copy; both None: every
        network-wide value). ``clear_impairments`` then ``impair(**saved)`` restores it."""
        key = (None if src is None else _packed(src), None if dst is None else _packed(dst))
        return self._layers.overrides(key)

    def impairments(self, src: AddressLike, dst: AddressLike) -> Impairments:
        """The impairments that apply now to packets from ``src`` to ``dst``."""
        return self._layers.resolve(_packed(src), _packed(dst))

    def _refresh_paths(self) -> None:
        self._paths.refresh(self._layers.resolve, _now_or(-math.inf))

    # -- data path ----------------------------------------------------------------

    def route(
        self, link: VirtualLink, packet: Packet, partial: bool = False, queue: bool = True
    ) -> VirtualLink | None:
        """Route one packet ``link`` sends (what :class:`VirtualLink`'s send calls do;
        send through the link); returns the destination link instead when
        backpressure holds the packet back (its inbound queue is full, or ``queue``
        and other senders wait for it already: nothing was done)."""
        data = packet if type(packet) is bytes else bytes(packet)
        c = self._counters
        c.sent += 1
        link.sent += 1
        if len(data) > self.mtu:
            c.dropped_mtu += 1
            return None
        path = link.paths.get(data[IPV6_DST])
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
        path: Path | None,
        dest: VirtualLink | None,
        data: bytes,
        partial: bool,
    ) -> None:
        self._delivery.hold(packet_key(link.packed, data), (link, path, dest, data, partial))

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
        if not self.unreachable or link.closed:
            return
        now = _now_or(0.0)
        reply = self._unreach.reply(data, self.ROUTER.packed, now)
        if reply is None:
            return
        if self._captures:
            self._capture(reply, now)
        if link.inbound.arrive(reply):
            self._unreach.sent += 1

    def _new_path(self, link: VirtualLink, dst: bytes) -> Path:
        src = link.packed
        path = self._paths.get(src, dst)
        if path is None:
            if len(self._paths) >= self.PATH_CACHE_SIZE:
                self._evict_idle_paths()
            rng = None if self.seed is None else path_random(self.seed, src, dst)
            path = Path(self._layers.resolve(src, dst), self._links.get(dst), rng)
            self._paths.add(src, dst, path)
        link.paths[dst] = path
        return path

    def _evict_idle_paths(self) -> None:
        """Forget idle paths, oldest first, down to 3/4 of :attr:`PATH_CACHE_SIZE`
        (amortized: one sweep per quarter of the cache), and the sources' cached
        references to them."""
        target = self.PATH_CACHE_SIZE * 3 // 4
        for src, dst, path in self._paths.evict_idle(target, _now_or(math.inf)):
            src_link = self._links.get(src)
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
        at, data, copies = self._impairer.fate(
            imp, data, now, self._wires[link.packed], path.state
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
        if dest.closed:
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
        d["icmp_unreachable_sent"] = self._unreach.sent
        d["icmp_unreachable_rate_limited"] = self._unreach.limited
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
