"""Hosts of the simulated network and the link a stack runs on.

A :class:`Host` has one interface: the cable it was connected with, and a default
route out of it. Its :attr:`Host.link` (a :class:`HostLink`) is what a stack is
opened on -- ``trio_tcp6.open_stack(host.link, host.address)`` -- and implements the
:class:`~trio_tcp6.links.base.Link` protocol with the batch forms and a
``send_nowait`` that never blocks (see
:class:`~trio_tcp6.links.base.LinkCapabilities`).

Outbound, every packet goes through the network (one entry point, so that a later
stage can order packets sent at the same virtual instant); a packet larger than the
cable's MTU is dropped and counted (hosts never fragment), as is anything sent
before the host is connected. Inbound, packets wait in a bounded queue
(:attr:`HostLink.RX_QUEUE` packets, like a NIC's ring; the
:class:`~trio_tcp6.links.inbound.InboundQueue` a VirtualLink has, without
backpressure); beyond it they are dropped and counted (``rx_dropped``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

import trio

from ..links.base import LinkCapabilities, Packet
from ..links.inbound import InboundQueue
from .node import Node

if TYPE_CHECKING:
    from .link import Channel
    from .network import Network

__all__ = ["Host", "HostLink"]

#: The MTU a host reports before it is connected.
UNCONNECTED_MTU = 1500


class Host(Node):
    """A host (made by :meth:`Network.host <trio_tcp6.sim.network.Network.host>`):
    ``name``, ``address``, :attr:`link` for a stack, :meth:`stats`."""

    def __init__(self, net: Network, name: str, address: ipaddress.IPv6Address) -> None:
        super().__init__(name, address)
        self.network = net
        #: Where this host's packets go: its cable's direction away from it.
        self.channel: Channel | None = None
        self.link = HostLink(self)
        self.sent = 0
        self.received = 0
        self.dropped_mtu = 0
        self.dropped_unconnected = 0

    def receive(self, channel: Channel, packet: bytes, now: float) -> None:
        """A packet arrived: queue it for the stack."""
        self.link.arrive(packet)

    def stats(self) -> dict[str, int]:
        """``sent``, ``received``, ``rx_dropped`` (inbound queue full),
        ``dropped_mtu`` (larger than the cable's MTU), ``dropped_unconnected``."""
        return {
            "sent": self.sent,
            "received": self.received,
            "rx_dropped": self.link.rx_dropped,
            "dropped_mtu": self.dropped_mtu,
            "dropped_unconnected": self.dropped_unconnected,
        }


class HostLink:
    """The :class:`~trio_tcp6.links.base.Link` of one :class:`Host`: ``mtu`` (its
    cable's), ``send``/``send_batch``/``send_nowait`` (never block: the cable's queue
    decides), ``receive``/``receive_batch``/``receive_nowait``, ``close``. One task
    may receive at a time (``trio.BusyResourceError`` otherwise)."""

    #: Packets the inbound queue holds before arrivals are dropped.
    RX_QUEUE: ClassVar[int] = 4096

    def __init__(self, host: Host) -> None:
        self.host = host
        #: The inbound queue (drop-tail at :attr:`RX_QUEUE` packets, no backpressure).
        self.inbound = InboundQueue(self.RX_QUEUE)

    def __repr__(self) -> str:
        return f"<HostLink {self.host.name} {self.host.address}>"

    @property
    def address(self) -> ipaddress.IPv6Address:
        return self.host.address

    @property
    def mtu(self) -> int:
        channel = self.host.channel
        return channel.mtu if channel is not None else UNCONNECTED_MTU

    @property
    def closed(self) -> bool:
        return self.inbound.closed

    @property
    def rx_dropped(self) -> int:
        """Packets dropped for a full inbound queue."""
        return self.inbound.dropped

    @property
    def capabilities(self) -> LinkCapabilities:
        """The batch forms, ``send_nowait``, and name resolution of the hosts."""
        return LinkCapabilities(
            receive_batch=self.receive_batch,
            send_batch=self.send_batch,
            send_nowait=self.send_nowait,
            resolve=self.host.network.resolve,
            seed=self.host.network.stack_seed(self.host),
        )

    # -- sending --------------------------------------------------------------------

    def send_nowait(self, packet: Packet) -> None:
        """Send one packet now (no checkpoint; never :class:`trio.WouldBlock`)."""
        if self.inbound.closed:
            raise trio.ClosedResourceError("link is closed")
        self.host.network.host_send(self.host, packet)

    async def send(self, packet: Packet) -> None:
        """Send one IPv6 packet."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self.send_nowait(packet)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_batch(self, packets: Iterable[Packet]) -> None:
        """Send several packets with one checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.inbound.closed:
            raise trio.ClosedResourceError("link is closed")
        send = self.host.network.host_send
        host = self.host
        for packet in packets:
            send(host, packet)
        await trio.lowlevel.cancel_shielded_checkpoint()

    # -- receiving ------------------------------------------------------------------

    def arrive(self, packet: bytes) -> None:
        """The network delivers ``packet`` to this host."""
        if not self.inbound.closed and self.inbound.arrive(packet):
            self.host.received += 1

    async def receive(self) -> bytes:
        """The next packet (waits for one)."""
        await self.inbound.wait()
        return self.inbound.pop()

    async def receive_batch(self) -> list[bytes]:
        """Every queued packet, waiting for at least one."""
        await self.inbound.wait()
        return self.inbound.take()

    def receive_nowait(self) -> bytes | None:
        """The next queued packet, or None (no checkpoint)."""
        if self.inbound.closed:
            raise trio.ClosedResourceError("link is closed")
        return self.inbound.pop() if self.inbound.packets else None

    def close(self) -> None:
        """Stop receiving (receive then raises ``trio.ClosedResourceError``); the
        host stays in the network. Idempotent."""
        self.inbound.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()
