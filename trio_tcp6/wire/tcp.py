"""TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018): parse and build.

STUB: the segment type below is fixed (the engine is written against it); the
parse/build functions are being implemented.
"""

from __future__ import annotations

import attrs

__all__ = [
    "ACK", "CWR", "ECE", "FIN", "PSH", "RST", "SYN", "URG",
    "TCPSegment", "build_tcp", "parse_tcp",
]

# Control bits (the low byte of the flags field).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80


@attrs.define(slots=True, eq=True)
class TCPSegment:
    """One TCP segment, header fields plus the options we understand.

    ``window`` is the raw 16-bit field as on the wire (not scaled). Options that are
    absent are ``None`` (or ``False``/``()``). ``payload`` is the segment's data.
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: bytes = b""
    urgent: int = 0
    #: MSS option (kind 2), only meaningful on SYNs.
    mss: int | None = None
    #: Window scale shift count (kind 3) as sent, possibly > 14 (the receiver clamps).
    wscale: int | None = None
    #: SACK-permitted option (kind 4).
    sack_permitted: bool = False
    #: SACK blocks (kind 5): (left edge, right edge) pairs, as sent.
    sack_blocks: tuple[tuple[int, int], ...] = ()
    #: Timestamps option (kind 8): (TSval, TSecr).
    timestamps: tuple[int, int] | None = None

    # -- convenience -------------------------------------------------------------
    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)

    @property
    def seg_len(self) -> int:
        """SEG.LEN of RFC 9293: payload bytes plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN and 1)


def parse_tcp(data: bytes | bytearray | memoryview) -> TCPSegment:
    """Parse a TCP header, its options and payload (no checksum check)."""
    raise NotImplementedError


def build_tcp(seg: TCPSegment, src: bytes, dst: bytes) -> bytes:
    """Serialise ``seg`` with a correct checksum over the IPv6 pseudo-header."""
    raise NotImplementedError
