"""VirtualNetwork: an in-memory IPv6 network in trio time, with impairments.

Every attached address reaches every other. A packet is routed by the destination
address in bytes 24..40 of its IPv6 header (the header is not otherwise parsed); the
source of a path is the *sending link's* address, whatever the packet claims.

The common case is cheap: a packet on an unimpaired path goes straight into the
destination's inbound queue, with no task hop, random draw or timer; the others get
their fate from the impairments and may wait in the network's delay heap, all in
trio time (:mod:`trio_tcp6.links.forwarding` says what each packet costs).

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

Inline delivery (``inline_delivery=True``, the default): a stack started on a link
registers its packet input with it (the link's ``inline_input`` capability). A packet
on an unimpaired path to such a host, with nothing in the host's inbound queue ahead
of it, then does not wait there for the host's reader task: the host's IPv6 input runs
in the sending call -- parsing, demultiplexing, and handing the segment to its
connection's inbox, whose receiver task the engine work is left to -- as Linux's
loopback runs the receive softirq in the sender's context. Inputs never nest: a packet
sent while one runs (a RST or SYN-ACK the input answers with) is queued as usual.
The host saves its reader's wake-up per packet; what the model counts is unchanged (a
packet inline-delivered counts as delivered and received, and is captured). With
``deterministic=True``, or on an impaired path, every packet is queued.

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
import os
from collections.abc import Callable
from typing import Any, BinaryIO, ClassVar

import trio

from ..wire.ipv6 import IPV6_HEADER_LEN
from .base import Packet
from .capture import Capture
from .forwarding import ForwardingPlane
from .host import VirtualLink
from .impair import Impairments, Wire, check_names
from .paths import ImpairmentLayers
from .replay import derive_seed
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


class VirtualNetwork:
    """An in-memory IPv6 network; see the module docstring for the model.

    ``VirtualNetwork(*, mtu=1500, seed=None, delay=0.0, jitter=0.0, loss=0.0,
    duplicate=0.0, reorder=0.0, corrupt=0.0, rate=None, queue=None, rx_queue=4096,
    rx_queue_bytes=16 MiB, checksum_offload=True, unreachable=True, backpressure=True,
    deterministic=False, inline_delivery=True)``.
    ``seed`` (int or bytes) seeds the fates and the stacks' secrets;
    ``deterministic=True`` releases each instant's packets in a canonical order (see
    the module docstring: with a seed, a run then replays exactly).
    ``backpressure=False`` drops packets at a full inbound queue instead of making
    their senders wait (see the module docstring).
    ``inline_delivery=False`` always queues packets for the receiving host's reader
    task (see the module docstring).
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

    #: ``route(link, packet, partial, queue)``: route one packet ``link`` sends (what
    #: :class:`VirtualLink`'s send calls do; send through the link). Returns the
    #: destination link instead when backpressure holds the packet back. The
    #: forwarding plane's own call (:mod:`trio_tcp6.links.forwarding`), bound here so
    #: that a link's send costs one lookup.
    route: Callable[[VirtualLink, Packet, bool, bool], VirtualLink | None]

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
        inline_delivery: bool = True,
    ) -> None:
        if mtu < IPV6_HEADER_LEN:
            raise ValueError("mtu must be at least 40 (one IPv6 header)")
        if rx_queue < 1 or rx_queue_bytes < 1:
            raise ValueError("rx_queue and rx_queue_bytes must be positive")
        self.seed = seed
        #: Whether links offer the stacks inline input (see the module docstring);
        #: read when a stack starts on a link.
        self.inline_delivery = bool(inline_delivery)
        self._rx_queue = rx_queue
        self._rx_queue_bytes = rx_queue_bytes
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
        self._plane = ForwardingPlane(
            self,
            mtu=mtu,
            layers=self._layers,
            replies=UnreachableReplies(self.UNREACHABLE_BURST, self.UNREACHABLE_RATE),
            backpressure=bool(backpressure),
            deterministic=bool(deterministic),
        )
        self.route = self._plane.route
        self._closed = False
        # Checksum offload: off for good once corruption is configured anywhere.
        self._offload = bool(checksum_offload) and not self._layers.base.corrupt
        #: Answer packets to unattached addresses with Destination Unreachable.
        self.unreachable = unreachable
        self._names: dict[str, bytes] = {}

    @property
    def mtu(self) -> int:
        """The largest packet the network carries (it never fragments)."""
        return self._plane.mtu

    @mtu.setter
    def mtu(self, mtu: int) -> None:
        self._plane.mtu = mtu

    @property
    def deterministic(self) -> bool:
        """Whether each instant's packets are released in a canonical order."""
        return self._plane.deterministic

    def stack_seed(self, address: AddressLike) -> bytes | None:
        """The seed a stack at ``address`` derives its secrets from (None without a
        network seed): a function of the network's seed and the address."""
        if self.seed is None:
            return None
        return derive_seed(self.seed, "stack", _packed(address))

    @property
    def backpressure(self) -> bool:
        """Whether a full inbound queue makes senders wait (True) or drops (False)."""
        return self._plane.backpressure

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
        plane = self._plane
        if key in plane.links:
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
        plane.links[key] = link
        plane.wires.setdefault(key, Wire())
        plane.paths.retarget(key, link)
        return link

    def resolve(self, name: str) -> ipaddress.IPv6Address | None:
        """The address attached with ``name`` (case-insensitive), or None."""
        key = self._names.get(name.lower().rstrip("."))
        return None if key is None else ipaddress.IPv6Address(key)

    def _detach(self, link: VirtualLink) -> None:
        key = link.packed
        links = self._plane.links
        if links.get(key) is link:
            del links[key]
            for label in [n for n, k in self._names.items() if k == key]:
                del self._names[label]
            self._plane.paths.retarget(key, None)

    @property
    def links(self) -> list[VirtualLink]:
        return list(self._plane.links.values())

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
        self._plane.refresh_paths()

    def clear_impairments(
        self, src: AddressLike | None = None, dst: AddressLike | None = None
    ) -> None:
        """Forget the overrides of one layer (both None: reset everything to zero)."""
        key = (None if src is None else _packed(src), None if dst is None else _packed(dst))
        self._layers.clear(key)
        self._plane.refresh_paths()

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

    # -- data path ----------------------------------------------------------------

    # -- capture, stats, lifetime ---------------------------------------------------

    def capture(self, target: str | os.PathLike[str] | BinaryIO) -> Capture:
        """Start writing every packet that arrives anywhere to a pcap file.

        Returns a :class:`Capture`: call ``close()`` or use ``with net.capture(p):``.
        ``net.close()`` closes every capture.
        """
        from ..wire.pcap import PcapWriter

        cap = Capture(PcapWriter(target), self._stop_capture)
        plane = self._plane
        plane.captures = [*plane.captures, cap]
        return cap

    def _stop_capture(self, cap: Capture) -> None:
        plane = self._plane
        plane.captures = [c for c in plane.captures if c is not cap]

    def stats(self) -> dict[str, int]:
        """Counters: sent, delivered, dropped_* by reason, duplicated, corrupted,
        reordered; plus ``in_flight`` (packets scheduled but not yet arrived) and the
        network's own ``icmp_unreachable_sent``/``icmp_unreachable_rate_limited``.

        ``sent + duplicated == delivered + dropped_* + in_flight``.
        """
        plane = self._plane
        d = plane.counters.as_dict()
        d["in_flight"] = len(plane.delivery)
        d["icmp_unreachable_sent"] = plane.replies.sent
        d["icmp_unreachable_rate_limited"] = plane.replies.limited
        return d

    def close(self) -> None:
        """Detach every link, discard packets in flight, stop the captures."""
        if self._closed:
            return
        self._closed = True
        plane = self._plane
        for link in list(plane.links.values()):
            link.close()
        plane.delivery.close()
        for cap in list(plane.captures):
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
