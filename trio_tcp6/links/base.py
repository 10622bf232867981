"""The Link protocol: how a stack sends and receives raw IPv6 packets, and what else a
link may offer (:class:`LinkCapabilities`).

Every link has ``mtu``, ``send`` and ``receive`` (:class:`Link`). Anything more -- the
batch forms, a send that never waits, checksum and segmentation offload -- a link
declares in one typed record, :class:`LinkCapabilities`, returned by a
``capabilities`` property (:class:`DeclaresCapabilities`). The stack reads it once,
with :func:`capabilities_of`, when it starts on the link; a link without the property
is used through ``send`` and ``receive`` alone. The record is modelled on smoltcp's
``DeviceCapabilities``; the MTU stays the :class:`Link` protocol's own ``mtu`` (every
link has one), so the record holds only what is optional.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "ChecksumOffload",
    "DeclaresCapabilities",
    "InlineInput",
    "Link",
    "LinkCapabilities",
    "Packet",
    "ReceiveBatch",
    "ReceiveBatchMarked",
    "SendBatch",
    "SendBatchPartial",
    "SendNowait",
    "SendNowaitPartial",
    "SendPartial",
    "SetInlineInput",
    "capabilities_of",
]

Packet = bytes | bytearray | memoryview


@runtime_checkable
class Link(Protocol):
    """Anything that moves whole IPv6 packets (no link-layer header).

    ``send`` may wait while the link is busy; ``receive`` waits for the next packet
    and raises ``trio.ClosedResourceError`` (or ``BrokenResourceError``,
    ``EndOfChannel``) once the link is gone. What a link offers beyond these it
    declares with :class:`LinkCapabilities` (see :class:`DeclaresCapabilities`).
    """

    @property
    def mtu(self) -> int: ...

    async def send(self, packet: Packet) -> None: ...

    async def receive(self) -> bytes: ...


# -- the forms a link may offer (callables, usually the link's bound methods) ----------

#: ``await receive_batch()``: every packet queued, at least one (waits if none).
ReceiveBatch = Callable[[], Awaitable[list[bytes]]]
#: ``await send_batch(packets)``: send several packets at once (one checkpoint).
SendBatch = Callable[[list[bytes]], Awaitable[None]]
#: ``send_nowait(packet)``: send synchronously, no checkpoint; ``trio.WouldBlock`` if
#: the link cannot take the packet after all (the stack then waits with ``send``).
SendNowait = Callable[[bytes], None]
#: ``await receive_batch_offload()``: :data:`ReceiveBatch` with a mark per packet,
#: see :class:`ChecksumOffload`. A packet may be a read-only ``memoryview`` (of bytes
#: that never change: a link's view behind a header it strips).
ReceiveBatchMarked = Callable[[], Awaitable[Sequence[tuple[bytes | memoryview, bool]]]]
#: ``input(packet, partial)``: a receiving stack's synchronous packet input (see
#: :attr:`LinkCapabilities.inline_input`); ``partial`` as in :class:`ChecksumOffload`'s
#: marked batches. It must not raise and must not wait.
InlineInput = Callable[[bytes, bool], None]
#: ``set_inline_input(input)``: register the stack's :data:`InlineInput` (None: withdraw).
SetInlineInput = Callable[[InlineInput | None], None]


class SendPartial(Protocol):
    """``await send(packet, partial_checksum=True)``: a TCP packet (no extension
    headers) whose checksum field holds only the folded IPv6 pseudo-header sum."""

    def __call__(self, packet: bytes, /, *, partial_checksum: bool = ...) -> Awaitable[None]: ...


class SendBatchPartial(Protocol):
    """``await send_batch(packets, partial_checksum=True)``: :class:`SendPartial`
    for several packets at once."""

    def __call__(
        self, packets: list[bytes], /, *, partial_checksum: bool = ...
    ) -> Awaitable[None]: ...


class SendNowaitPartial(Protocol):
    """``send_nowait(packet, partial_checksum=True)``: :class:`SendPartial` without
    waiting (``trio.WouldBlock`` as for :data:`SendNowait`)."""

    def __call__(self, packet: bytes, /, *, partial_checksum: bool = ...) -> None: ...


@attrs.frozen
class ChecksumOffload:
    """A link's checksum offload (how Linux's loopback and NICs spare the CPU:
    ``CHECKSUM_PARTIAL``, virtio ``NEEDS_CSUM``).

    * ``active()`` -- asked before every batch the stack sends, as it may change over
      time (a VirtualNetwork stops offloading once corruption is configured; a closed
      TUN link stops). While it is True the stack may send TCP packets (no extension
      headers) with a *partial* checksum: the checksum field holds only the folded
      IPv6 pseudo-header sum (see
      :func:`~trio_tcp6.wire.tcp.build_tcp_header_partial`), through ``send`` and,
      when the link offers them, ``send_batch`` / ``send_nowait`` -- the partial forms
      of the same calls, ``partial_checksum=True``. The link then completes the
      checksum wherever a full one is needed (a wire, a capture, a receiver that does
      not take partial packets, a corrupting path).
    * ``receive_batch()`` -- like :data:`ReceiveBatch`, but each packet comes with a
      ``partial`` mark: True means a TCP packet an offloading sender sent with a
      partial checksum and nobody altered since (or whose checksum the link vouches
      for), so the receiver skips verifying it (and completes it,
      :func:`~trio_tcp6.wire.tcp.complete_tcp_checksum`, before passing it on).
      Unmarked packets are verified as usual. A stack given this reads the link with
      it instead of :attr:`LinkCapabilities.receive_batch`.

    A link that declares ``send_batch`` or ``send_nowait`` in
    :class:`LinkCapabilities` and checksum offload must give their partial forms
    here too (ValueError otherwise), so that the stack's choice of send form never
    depends on whether a packet is partial.
    """

    active: Callable[[], bool]
    send: SendPartial
    receive_batch: ReceiveBatchMarked
    send_batch: SendBatchPartial | None = None
    send_nowait: SendNowaitPartial | None = None


@attrs.frozen
class LinkCapabilities:
    """What a link offers beyond :class:`Link` (all optional; the default offers
    nothing). Each form is a callable, usually one of the link's bound methods.

    * ``receive_batch`` (:data:`ReceiveBatch`) -- the stack prefers it to ``receive``:
      one wake-up per burst.
    * ``send_batch`` (:data:`SendBatch`) -- the stack sends each batch of packets (the
      segments one connection produced at once) with one call.
    * ``send_nowait`` (:data:`SendNowait`) -- for a link that never (or almost never)
      blocks a sender: the stack then transmits without a scheduling point, even
      from inside a user's ``send_all``, instead of waking the connection's sender
      task.
    * ``checksum_offload`` (:class:`ChecksumOffload`) -- partial checksums out, and
      marked packets in.
    * ``gso_max`` -- segmentation offload (TSO): the largest IPv6 packet ``send``
      takes when it is larger than the MTU; the link (or the kernel behind it) cuts
      a TCP packet of up to this size into MTU-sized segments of ``MTU - 40 - TCP
      header`` payload bytes each. 0 (or anything up to the MTU): no segmentation
      offload. A super-segment comes with a full checksum over all of it, or a
      partial one under checksum offload. The stack uses it only when no smaller MSS
      is configured (the link's cut would not respect it).
    * ``inline_input`` (:data:`SetInlineInput`) -- for an in-memory link: the stack
      registers its synchronous packet input while its reader runs, and the link may
      then hand it a packet *in the sending task's call* instead of queueing it for
      the reader, whenever nothing is queued ahead of it -- as Linux's loopback runs
      the receive path in the sender's context (the softirq its ``netif_rx`` raises).
      It saves the reader's wake-up on every packet of an idle host; the segment
      still reaches its connection through the connection's inbox. The link
      guarantees that input never nests (a packet sent from inside an inline input is
      queued) and never overtakes a queued packet.
    * ``resolve`` -- host names the link's network knows (a VirtualNetwork's
      ``attach(addr, name=...)``): ``resolve(name)`` is the address, or None.
    * ``seed`` -- a simulated network's seed for the host on this link (see
      :meth:`~trio_tcp6.links.VirtualNetwork.stack_seed`): a stack not given a seed
      of its own derives its secrets from it, so that the run is reproducible.
      None (real links): the stack's secrets come from the OS.
    """

    receive_batch: ReceiveBatch | None = None
    send_batch: SendBatch | None = None
    send_nowait: SendNowait | None = None
    checksum_offload: ChecksumOffload | None = None
    gso_max: int = 0
    inline_input: SetInlineInput | None = None
    resolve: Callable[[str], ipaddress.IPv6Address | None] | None = None
    seed: bytes | None = None

    def __attrs_post_init__(self) -> None:
        if self.inline_input is not None and self.send_nowait is None:
            # The stack answers inline input (RSTs, SYN-ACKs) without waiting.
            raise ValueError("a link with inline_input needs send_nowait")
        offload = self.checksum_offload
        if offload is None:
            return
        if self.send_batch is not None and offload.send_batch is None:
            raise ValueError("a link with send_batch and checksum offload needs its partial form")
        if self.send_nowait is not None and offload.send_nowait is None:
            raise ValueError("a link with send_nowait and checksum offload needs its partial form")


@runtime_checkable
class DeclaresCapabilities(Protocol):
    """A link that declares what it offers beyond :class:`Link`."""

    @property
    def capabilities(self) -> LinkCapabilities:
        """What this link offers; read once, when a stack starts on it."""
        ...


_NOTHING = LinkCapabilities()


def capabilities_of(link: Link) -> LinkCapabilities:
    """What ``link`` declares (:class:`DeclaresCapabilities`), or a record that
    offers nothing for a link that only has ``mtu``, ``send`` and ``receive``."""
    if isinstance(link, DeclaresCapabilities):
        return link.capabilities
    return _NOTHING
