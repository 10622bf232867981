"""A classic pcap writer (and a small reader) for raw IPv6 packets.

Files use the nanosecond-resolution magic ``0xa1b23c4d`` (libpcap 1.5+, tshark and
Wireshark read it) and link type ``LINKTYPE_IPV6`` (229): each record is one IPv6
packet with no link-layer header. Every record is written with a single ``write``
and flushed, so a reader (``tshark -r`` on a running capture) sees whole records.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

__all__ = ["LINKTYPE_IPV6", "LINKTYPE_RAW", "PcapWriter", "read_pcap"]

LINKTYPE_RAW = 101
LINKTYPE_IPV6 = 229

_MAGIC_NS = 0xA1B23C4D
_MAGIC_US = 0xA1B2C3D4
_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """Write raw IPv6 packets to a classic pcap file (LINKTYPE_IPV6 = 229).

    ``PcapWriter(path_or_binary_file)``; ``write(packet, timestamp)`` with the
    timestamp in seconds (float, any non-negative epoch, e.g. trio's clock);
    ``close()``; usable as a context manager. Packets longer than ``snaplen`` are cut
    (the record keeps their original length). A file object passed in is flushed but
    not closed by :meth:`close`; a path is opened (truncated) and closed here.
    """

    def __init__(
        self, target: str | os.PathLike[str] | BinaryIO, *, snaplen: int = 262144
    ) -> None:
        if snaplen <= 0:
            raise ValueError("snaplen must be positive")
        self.snaplen = snaplen
        self._owned = isinstance(target, (str, os.PathLike))
        self._file: BinaryIO | None = (
            open(target, "wb")  # noqa: SIM115 (closed in close())
            if isinstance(target, (str, os.PathLike))
            else target
        )
        self._file.write(struct.pack("<IHHiIII", _MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_IPV6))
        self._file.flush()
        self.count = 0

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, packet: bytes | bytearray | memoryview, timestamp: float) -> None:
        """Append one packet captured at ``timestamp`` seconds."""
        f = self._file
        if f is None:
            raise ValueError("write to a closed PcapWriter")
        if timestamp < 0:
            raise ValueError(f"negative timestamp {timestamp}")
        ns = round(timestamp * 1e9)
        sec, nsec = divmod(ns, 1_000_000_000)
        length = len(packet)
        cap = min(length, self.snaplen)
        data = packet if cap == length else packet[:cap]
        f.write(_RECORD.pack(sec & 0xFFFFFFFF, nsec, cap, length) + data)
        f.flush()
        self.count += 1

    def close(self) -> None:
        f = self._file
        if f is None:
            return
        self._file = None
        if self._owned:
            f.close()
        else:
            f.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_pcap(path: str | os.PathLike[str]) -> list[tuple[float, bytes]]:
    """Read a classic pcap file: ``[(timestamp, packet bytes), ...]``.

    Accepts either byte order and microsecond or nanosecond timestamps. Meant for
    tests and tools; a cut-short final record raises ``ValueError``.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError("not a pcap file: too short")
    for endian in ("<", ">"):
        (magic,) = struct.unpack_from(endian + "I", data)
        if magic in (_MAGIC_NS, _MAGIC_US):
            break
    else:
        raise ValueError("not a classic pcap file (bad magic)")
    scale = 1e-9 if magic == _MAGIC_NS else 1e-6
    record = struct.Struct(endian + "IIII")
    out: list[tuple[float, bytes]] = []
    offset = 24
    while offset < len(data):
        if offset + 16 > len(data):
            raise ValueError("truncated pcap record header")
        sec, frac, cap, _orig = record.unpack_from(data, offset)
        offset += 16
        if offset + cap > len(data):
            raise ValueError("truncated pcap record")
        out.append((sec + frac * scale, data[offset : offset + cap]))
        offset += cap
    return out
