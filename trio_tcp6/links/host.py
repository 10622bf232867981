"""A host's interface on a :class:`~trio_tcp6.links.virtual.VirtualNetwork`:
:class:`VirtualLink`, what ``net.attach()`` returns.

The link is the host's side of the network -- its address, its inbound queue, its
send and receive calls and the backpressure it waits on -- and the network the
shared side (paths, impairments, the delay heap, captures). They are separate
modules because a reader of one needs the other only through a few names: the link
routes a packet through the network's :meth:`~trio_tcp6.links.virtual.VirtualNetwork.route`,
and the network reads the link's public :attr:`~VirtualLink.packed`,
:attr:`~VirtualLink.paths`, :attr:`~VirtualLink.closed`, ``inbound`` and ``sent``.
The model (drops, backpressure, checksum offload) is described in
:mod:`trio_tcp6.links.virtual`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import trio

from .base import ChecksumOffload, InlineInput, LinkCapabilities, Packet
from .inbound import InboundQueue

if TYPE_CHECKING:
    from .paths import Path
    from .virtual import VirtualNetwork

__all__ = ["VirtualLink"]


class VirtualLink:
    """One host interface on a :class:`~trio_tcp6.links.virtual.VirtualNetwork`
    (made by ``net.attach``).

    A :class:`~trio_tcp6.links.Link`: ``mtu``, ``address``, ``send``/``send_batch``,
    ``receive``/``receive_batch``, ``close``/``aclose`` (detaches; receive then
    raises ``trio.ClosedResourceError``). One task may receive at a time
    (``trio.BusyResourceError`` otherwise). Checksum offload (see
    :mod:`trio_tcp6.links.virtual`): ``checksum_offload``, ``partial_checksum=`` on
    the send forms, ``receive_batch_offload``; ``send_nowait``. :attr:`capabilities`
    declares all of them. Extras: ``receive_nowait``, ``pending()``, ``stats()``.
    """

    __slots__ = (
        "_detach",
        "_net",
        "_offload_active",
        "address",
        "closed",
        "inbound",
        "inline",
        "packed",
        "paths",
        "sent",
    )

    def __init__(
        self,
        net: VirtualNetwork,
        address: bytes,
        rx_queue: int,
        rx_queue_bytes: int,
        *,
        detach: Callable[[VirtualLink], None],
        offload_active: Callable[[], bool],
    ) -> None:
        self._net = net
        # What the network does when the link closes, and whether it carries partial
        # checksums now: its own state, handed over by attach().
        self._detach = detach
        self._offload_active = offload_active
        #: The address as 16 bytes: the network's routing key for this host.
        self.packed = address
        self.address = ipaddress.IPv6Address(address)
        #: This host's inbound queue and the backpressure on its senders.
        self.inbound = InboundQueue(rx_queue, rx_queue_bytes)
        #: True once the link is closed (detached). A plain attribute, not a
        #: property: the network reads it for every delayed packet it delivers.
        self.closed = False
        #: The network's cache of this source's paths, by destination address.
        self.paths: dict[bytes, Path] = {}
        self.sent = 0
        #: The receiving stack's synchronous input while its reader runs (see
        #: :meth:`set_inline_input`), else None.
        self.inline: InlineInput | None = None

    def __repr__(self) -> str:
        return f"<VirtualLink {self.address} mtu={self.mtu}{' closed' if self.closed else ''}>"

    @property
    def mtu(self) -> int:
        return self._net.mtu

    @property
    def checksum_offload(self) -> bool:
        """Whether partial TCP checksums may be sent now (False for good once the
        network may corrupt packets; see :mod:`trio_tcp6.links.virtual`)."""
        return self._offload_active()

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
                active=self._offload_active,
                send=self.send,
                receive_batch=self.receive_batch_offload,
                send_batch=self.send_batch,
                send_nowait=self.send_nowait,
            ),
            inline_input=self.set_inline_input if self._net.inline_delivery else None,
            resolve=self._net.resolve,
            seed=self._net.stack_seed(self.packed),
        )

    def set_inline_input(self, handler: InlineInput | None) -> None:
        """(:attr:`~trio_tcp6.links.base.LinkCapabilities.inline_input`) While set, a
        packet that arrives on an unimpaired path with nothing queued ahead of it is
        handed to ``handler(packet, partial)`` in the sender's call instead of the
        inbound queue (see :mod:`trio_tcp6.links.virtual`); None withdraws it."""
        self.inline = handler

    @property
    def network(self) -> VirtualNetwork:
        return self._net

    @property
    def received(self) -> int:
        """Packets that arrived for this host (queued, or handed over inline)."""
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
        if self.closed:
            raise trio.ClosedResourceError("link is closed")
        send = self._net.route
        full = send(self, packet, partial_checksum, True)
        while full is not None:
            await self._queue_for(full)
            full = send(self, packet, partial_checksum, False)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _queue_for(self, dest: VirtualLink) -> None:
        """Backpressure: wait at the back of ``dest``'s line of senders until a drain
        lets us in."""
        await dest.inbound.senders.park()
        if self.closed:
            raise trio.ClosedResourceError("link is closed")

    async def send_batch(
        self, packets: Iterable[Packet], *, partial_checksum: bool = False
    ) -> None:
        """Send several packets with a single checkpoint (``partial_checksum`` applies
        to every one of them, see :meth:`send`)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.closed:
            raise trio.ClosedResourceError("link is closed")
        send = self._net.route
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
        the network applies backpressure (see :mod:`trio_tcp6.links.virtual`)."""
        if self.closed:
            raise trio.ClosedResourceError("link is closed")
        if self._net.route(self, packet, partial_checksum, True) is not None:
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
        if self.closed:
            raise trio.ClosedResourceError("link is closed")
        return self.inbound.pop() if self.inbound.packets else None

    def pending(self) -> int:
        """How many packets wait in the inbound queue."""
        return len(self.inbound.packets)

    def close(self) -> None:
        """Detach from the network. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._detach(self)
        # Our receiver wakes to ClosedResourceError; senders waiting for our queue
        # find no route now (or their own link closed).
        self.inbound.close()
        for path in self.paths.values():
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
