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
    ``send_batch(packets)``; the stack prefers them when present.
    """

    @property
    def mtu(self) -> int: ...

    async def send(self, packet: Packet) -> None: ...

    async def receive(self) -> bytes: ...
