"""The Link protocol: how a stack sends and receives raw IPv6 packets."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Link", "Packet"]

Packet = bytes | bytearray | memoryview


@runtime_checkable
class Link(Protocol):
    """Anything that moves whole IPv6 packets (no link-layer header).

    A link may additionally offer the batch forms ``receive_batch() -> list[bytes]``
    (everything queued, at least one packet, waiting if none) and
    ``send_batch(packets)``; the stack prefers them when present. A link that never
    blocks a sender may offer ``send_nowait(packet)`` (synchronous, no checkpoint;
    ``trio.WouldBlock`` if it cannot take the packet after all): the stack then
    transmits without a scheduling point, even from inside a user's call.

    Checksum offload (optional; how Linux's loopback and NICs spare the CPU):

    * ``checksum_offload: bool`` -- may change over time; absent means False. While
      it is True the stack may send TCP packets (no extension headers) with a
      *partial* checksum, ``await link.send(packet, partial_checksum=True)``,
      ``await link.send_batch(packets, partial_checksum=True)`` or
      ``link.send_nowait(packet, partial_checksum=True)``: the checksum field
      holds only the folded IPv6 pseudo-header sum (Linux ``CHECKSUM_PARTIAL``,
      virtio ``NEEDS_CSUM``; see :func:`~trio_tcp6.wire.tcp.build_tcp_header_partial`).
      The link then completes the checksum wherever a full one is needed (a wire, a
      capture, a receiver that does not take partial packets, a corrupting path).
    * ``receive_batch_offload() -> list[tuple[bytes, bool]]`` -- like
      ``receive_batch`` but each packet comes with a ``partial`` mark: True means a
      TCP packet an offloading sender sent with a partial checksum and nobody altered
      since, so the receiver skips verifying it (and completes it,
      :func:`~trio_tcp6.wire.tcp.complete_tcp_checksum`, before passing it on).
      Unmarked packets are verified as usual.

    :class:`~trio_tcp6.links.virtual.VirtualNetwork` links offer both (offload on
    until corruption is configured on the network); so does
    :class:`~trio_tcp6.links.tun.TunLink` opened with ``offload=True`` (partial
    checksums go to the kernel as virtio ``NEEDS_CSUM``; packets the kernel
    checksummed come up marked), which also offers ``gso_max`` above the MTU: the
    stack may then send TCP super-segments that the kernel cuts to the wire MTU.
    """

    @property
    def mtu(self) -> int: ...

    async def send(self, packet: Packet) -> None: ...

    async def receive(self) -> bytes: ...
