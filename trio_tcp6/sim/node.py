"""What hosts and routers share: a :class:`Node` of the simulated network has a
name, one IPv6 address, and the cables attached to it."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .link import Cable, Channel

__all__ = ["Node"]


class Node:
    """A host or a router: ``name``, ``address`` (an :class:`ipaddress.IPv6Address`)
    and ``cables`` (in the order they were connected)."""

    def __init__(self, name: str, address: ipaddress.IPv6Address) -> None:
        self.name = name
        self.address = address
        #: The address in its 16-byte form, as it appears in packets.
        self.packed = address.packed
        self.cables: list[Cable] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.address}>"

    def receive(self, channel: Channel, packet: bytes, now: float) -> None:
        """A packet arrived over ``channel`` at virtual time ``now``."""
        raise NotImplementedError

    def neighbour_channel(self, other: Node) -> Channel:
        """The direction of the first cable from this node to ``other``."""
        for cable in self.cables:
            channel = cable.direction(self)
            if channel.dst is other:
                return channel
        raise ValueError(f"{self.name} is not connected to {other.name}")
