"""pcap writer (STUB: interface fixed, implementation in progress)."""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["PcapWriter"]


class PcapWriter:
    """Write raw IPv6 packets to a classic pcap file (LINKTYPE_IPV6 = 229).

    ``PcapWriter(path_or_binary_file)``; ``write(packet, timestamp)`` with the
    timestamp in seconds (float, any epoch, e.g. trio's clock); ``close()``; usable
    as a context manager.
    """

    def __init__(self, target: str | BinaryIO, *, snaplen: int = 262144) -> None:
        raise NotImplementedError

    def write(self, packet: bytes | bytearray | memoryview, timestamp: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
