"""TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018): parse and build.

* :func:`parse_tcp` turns one TCP segment (the IPv6 payload) into a
  :class:`TCPSegment`. It does **not** verify the checksum — that needs the IPv6
  addresses; use :func:`verify_tcp_checksum`. Any malformation raises
  :class:`~trio_tcp6.wire.errors.ParseError` whose ``reason`` is one of
  :data:`PARSE_ERROR_REASONS`; no other exception escapes for any bytes-like input.
* :func:`build_tcp` serialises a segment, options laid out as Linux does, with the
  checksum over the IPv6 pseudo-header filled in.
* :func:`build_tcp_header` returns only the header (with a checksum that already
  covers ``seg.payload``), so a caller that prepends an IPv6 header can join
  ``ipv6 + tcp_header + payload`` once and copy a large payload only once.
* :func:`build_tcp_header_partial` is the same with a *partial* checksum (checksum
  offload: the field holds only the pseudo-header sum, as Linux ``CHECKSUM_PARTIAL`` /
  virtio ``NEEDS_CSUM``), and :func:`complete_tcp_checksum` completes one: the
  payload is never summed by the sender of a link that offloads checksums.
* :func:`build_ipv6_tcp_ts_partial` is the stack's fast path for every data segment
  and ACK on such a link: the whole IPv6 + TCP-with-timestamps header in one
  ``struct`` call, its partial checksum from :func:`tcp_pseudo_base` (a value to
  cache per destination) plus the length.
* :func:`quoted_tcp_fields` reads the ports and sequence number from the 8 bytes of
  a TCP header an ICMPv6 error is sure to quote.

Both directions are on the per-packet hot path: one ``struct`` call for the fixed
header, fast paths for the common option layouts, and the checksum summed piecewise
(pseudo-header, header, payload) so the payload is never concatenated just to be
summed.
"""

from __future__ import annotations

import struct
from typing import TypeAlias

import attr

from .checksum import checksum, complete_checksum, pseudo_header_sum, verify_transport
from .errors import ParseError
from .ipv6 import DEFAULT_HOP_LIMIT, IPV6_DST, IPV6_HEADER_LEN, IPV6_SRC, PROTO_TCP

__all__ = [
    "ACK", "CWR", "ECE", "FIN", "PSH", "RST", "SYN", "URG",
    "IPV6_TCP_HEADERS_LEN", "MAX_OPTIONS_LEN", "PARSE_ERROR_REASONS",
    "SACK_BLOCK_LEN", "SACK_OPTION_BASE_LEN", "TCP_CHECKSUM_OFFSET", "TCP_HEADER_LEN",
    "TCP_MAX_HEADER_LEN", "TCP_PROTOCOL", "TCP_TS_HEADER_LEN", "TS_OPTION_LEN",
    "VIEW_MIN", "Payload", "TCPSegment", "build_ipv6_tcp_ts_partial",
    "build_ipv6_tcp_ts_partial_cut", "build_tcp", "build_tcp_header",
    "build_tcp_header_partial", "complete_tcp_checksum", "cut_segment",
    "options_length", "parse_tcp", "partial_tcp_checksum", "quoted_tcp_fields",
    "tcp_pseudo_base", "verify_tcp_checksum",
]  # fmt: skip

# Control bits (the low byte of the flags field).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

#: IPv6 next-header value of TCP (:data:`trio_tcp6.wire.ipv6.PROTO_TCP`).
TCP_PROTOCOL = PROTO_TCP
#: The fixed TCP header, without options (data offset 5).
TCP_HEADER_LEN = 20
#: The longest TCP header (data offset 15 words).
TCP_MAX_HEADER_LEN = 60
#: Offset of the checksum field in the TCP header.
TCP_CHECKSUM_OFFSET = 16
#: Options may take at most 40 bytes (data offset 15 words minus the 5 fixed ones).
MAX_OPTIONS_LEN = 40
#: IPv6 plus TCP headers without options or extension headers: MSS = MTU - 60
#: (RFC 9293 §3.7.1, RFC 8200).
IPV6_TCP_HEADERS_LEN = IPV6_HEADER_LEN + TCP_HEADER_LEN
#: Bytes the timestamps option takes in every segment (10, padded by 2 NOPs).
TS_OPTION_LEN = 12
#: The header of every data segment and ACK with timestamps: NOP NOP Timestamps.
TCP_TS_HEADER_LEN = TCP_HEADER_LEN + TS_OPTION_LEN
#: A SACK option's fixed part as laid out (2 NOPs, kind, length; RFC 2018 §3).
SACK_OPTION_BASE_LEN = 4
#: Each SACK block: two 32-bit edges (RFC 2018 §3).
SACK_BLOCK_LEN = 8

#: Every ``ParseError.reason`` :func:`parse_tcp` can raise (stable: used as counter
#: names in ``stack.stats()``).
#:
#: * ``tcp_truncated`` — shorter than the 20-byte fixed header, or the data offset
#:   points past the end of the packet;
#: * ``tcp_bad_data_offset`` — data offset below 5 words;
#: * ``tcp_bad_option_length`` — an option length of 0 or 1, or a length that is
#:   wrong for a known kind (MSS 4, window scale 3, SACK-permitted 2, timestamps 10,
#:   SACK 2 + 8n with n = 1..4);
#: * ``tcp_option_overrun`` — an option (or its length byte) runs past the header.
PARSE_ERROR_REASONS = (
    "tcp_truncated",
    "tcp_bad_data_offset",
    "tcp_bad_option_length",
    "tcp_option_overrun",
)

_M32 = 0xFFFFFFFF
_from_bytes = int.from_bytes

# Fixed header: ports, seq, ack, data offset/reserved byte, flags byte, window,
# checksum, urgent pointer.
_HDR = struct.Struct("!HHIIBBHHH")
# What follows the fixed header in the common data-segment layout: NOP NOP TS.
_WORD_II = struct.Struct("!III")
_II = struct.Struct("!II")
_H = struct.Struct("!H")
_I = struct.Struct("!I")
_NOP_NOP_TS = 0x0101080A  # NOP, NOP, kind 8, length 10
_SACKOK_TS = 0x0402080A  # SACK-permitted (kind 4, len 2), kind 8, length 10
_NOP_NOP_SACKOK = b"\x01\x01\x04\x02"
_NOP_NOP_SACK = 0x01010500  # | option length
# SACK option bodies with 1..4 blocks: 2n 32-bit edges.
_SACK_BODY = [struct.Struct("!" + "I" * (2 * n)) for n in range(5)]
# Fast build paths: fixed header followed by NOP NOP TS [NOP NOP SACK(n)].
_HDR_TS = struct.Struct("!HHIIBBHHHIII")
_HDR_TS_SACK = [struct.Struct("!HHIIBBHHHIIII" + "I" * (2 * n)) for n in range(4)]
# Header lengths of NOP NOP TS NOP NOP SACK(n) -> n.
_TS_SACK_BLOCKS = {44: 1, 52: 2, 60: 3}
_OFF_20 = (TCP_HEADER_LEN >> 2) << 4
_OFF_32 = (TCP_TS_HEADER_LEN >> 2) << 4

#: A segment's data: ``bytes``, or a read-only ``memoryview`` of immutable ``bytes``
#: (a received packet, a queued write) that the stack passes on instead of copying.
Payload: TypeAlias = bytes | memoryview
#: Payloads at least this long are passed on as views rather than copied (by
#: :func:`parse_tcp`, and by the send buffer); shorter ones are copied: a view costs
#: about 200 bytes and pins the whole buffer, which for them outweighs the copy.
VIEW_MIN = 4096

# The IPv6 fixed header followed by the TCP header with NOP NOP Timestamps.
_IP6_TCP_TS = struct.Struct("!IHBB16s16sHHIIBBHHHIII")
_IP6_VERSION_WORD = 6 << 28  # version 6, traffic class 0, flow label 0
# The ports and sequence number at the start of a TCP header.
_PORTS_SEQ = struct.Struct("!HHI")


# attr.s with auto_attribs is the form mypyc compiles to a native class (C fields,
# read and written directly by the compiled engine); __init__, __eq__ and __repr__
# are written out so that they are native code too (attrs would generate them in
# Python, and with slots=True mypyc keeps none of its generated methods). attrs still
# gives fields() and evolve(), and the slots of the pure build.
@attr.s(auto_attribs=True, slots=True, init=False, eq=False, repr=False)
class TCPSegment:
    """One TCP segment, header fields plus the options we understand.

    ``window`` is the raw 16-bit field as on the wire (not scaled). Options that are
    absent are ``None`` (or ``False``/``()``). ``payload`` is the segment's data, a
    :data:`Payload`: ``bytes`` or a read-only view of immutable bytes, never a
    bytearray (the compiled build checks the type). Segments compare equal when
    every field is equal (a view equals the bytes it shows).
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: Payload = b""
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
    #: The ECN field of the IPv6 packet (RFC 3168 §5, not part of the TCP header):
    #: on input what the packet arrived with, on output what to send it with
    #: (``wire.ipv6.ECN_ECT0`` ...). The stack's IPv6 layer reads and writes it.
    ecn: int = 0

    def __init__(
        self,
        src_port: int,
        dst_port: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        payload: Payload = b"",
        urgent: int = 0,
        mss: int | None = None,
        wscale: int | None = None,
        sack_permitted: bool = False,
        sack_blocks: tuple[tuple[int, int], ...] = (),
        timestamps: tuple[int, int] | None = None,
        ecn: int = 0,
    ) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.urgent = urgent
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack_blocks = sack_blocks
        self.timestamps = timestamps
        self.ecn = ecn

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TCPSegment):
            return NotImplemented
        return (
            self.src_port == other.src_port
            and self.dst_port == other.dst_port
            and self.seq == other.seq
            and self.ack == other.ack
            and self.flags == other.flags
            and self.window == other.window
            and self.payload == other.payload
            and self.urgent == other.urgent
            and self.mss == other.mss
            and self.wscale == other.wscale
            and self.sack_permitted == other.sack_permitted
            and self.sack_blocks == other.sack_blocks
            and self.timestamps == other.timestamps
            and self.ecn == other.ecn
        )

    def __repr__(self) -> str:
        return (
            f"TCPSegment(src_port={self.src_port!r}, dst_port={self.dst_port!r}, "
            f"seq={self.seq!r}, ack={self.ack!r}, flags={self.flags!r}, "
            f"window={self.window!r}, payload={bytes(self.payload)!r}, urgent={self.urgent!r}, "
            f"mss={self.mss!r}, wscale={self.wscale!r}, "
            f"sack_permitted={self.sack_permitted!r}, sack_blocks={self.sack_blocks!r}, "
            f"timestamps={self.timestamps!r}, ecn={self.ecn!r})"
        )

    # -- named constructors (the one place the positional layout is written) -------
    @classmethod
    def reset(
        cls,
        src_port: int,
        dst_port: int,
        seq: int,
        ack: int | None = None,
        *,
        timestamps: tuple[int, int] | None = None,
    ) -> TCPSegment:
        """A reset: plain RST at ``seq``, or RST|ACK acknowledging ``ack`` if given
        (RFC 9293 §3.10.7.1); window 0, no option but ``timestamps`` (TSval, TSecr)
        if given (RFC 7323 §3.2)."""
        if ack is None:
            return cls(src_port, dst_port, seq, 0, RST, 0, timestamps=timestamps)
        return cls(src_port, dst_port, seq, ack, RST | ACK, 0, timestamps=timestamps)

    @classmethod
    def handshake(
        cls,
        src_port: int,
        dst_port: int,
        seq: int,
        window: int,
        *,
        ack: int | None = None,
        mss: int | None = None,
        wscale: int | None = None,
        sack_permitted: bool = False,
        timestamps: tuple[int, int] | None = None,
    ) -> TCPSegment:
        """A SYN, or a SYN-ACK acknowledging ``ack`` if given, with the handshake
        options (MSS, window scale, SACK-permitted, timestamps)."""
        flags = SYN if ack is None else SYN | ACK
        return cls(
            src_port,
            dst_port,
            seq,
            0 if ack is None else ack,
            flags,
            window,
            b"",
            0,
            mss,
            wscale,
            sack_permitted,
            (),
            timestamps,
        )

    @classmethod
    def data(
        cls,
        src_port: int,
        dst_port: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        payload: Payload,
        urgent: int,
        sack_blocks: tuple[tuple[int, int], ...],
        timestamps: tuple[int, int] | None,
        ecn: int = 0,
    ) -> TCPSegment:
        """A segment of a synchronized connection (data, ACK, FIN, probe): the options
        such a segment may carry are SACK blocks and timestamps; ``ecn`` is the IPv6
        ECN field to send it with."""
        return cls(
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window,
            payload,
            urgent,
            None,
            None,
            False,
            sack_blocks,
            timestamps,
            ecn,
        )

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


# =====================================================================================
# Parsing
# =====================================================================================


def parse_tcp(data: bytes | bytearray | memoryview) -> TCPSegment:
    """Parse a TCP header, its options and payload (no checksum check).

    ``data`` is the whole segment (the IPv6 payload). A payload of at least
    :data:`VIEW_MIN` bytes in immutable memory (``data`` is ``bytes``, or a read-only
    view of ``bytes``) is returned as a view of it, not copied; any other payload as a
    fresh ``bytes`` copy, so a mutable ``data`` may be reused afterwards. Unknown
    options with a sane length are skipped; a repeated option overrides the earlier
    one; parsing stops at End of Option List. The four reserved bits before the
    flags byte (including AccECN's AE bit) are ignored; :func:`build_tcp` sends them
    as zero.
    Raises :class:`ParseError` (reasons in :data:`PARSE_ERROR_REASONS`) for
    malformed input.
    """
    if type(data) is memoryview and (data.format != "B" or data.ndim != 1):
        data = data.tobytes()  # a view of other items: work on its bytes
    n = len(data)
    if n < 20:
        raise ParseError("tcp_truncated", f"TCP segment of {n} bytes is shorter than 20")
    sport, dport, seq, ack, off, flags, window, _csum, urgent = _HDR.unpack_from(data)
    hlen = (off >> 4) << 2
    if hlen == 20:
        payload = _view(data, 20) if n >= 20 + VIEW_MIN else bytes(data[20:])
        return TCPSegment(sport, dport, seq, ack, flags, window, payload, urgent)
    if hlen < 20:
        raise ParseError("tcp_bad_data_offset", f"TCP data offset {hlen >> 2} is below 5")
    if hlen > n:
        raise ParseError(
            "tcp_truncated", f"TCP header of {hlen} bytes overruns the {n}-byte segment"
        )
    if hlen >= 32:
        word, tsval, tsecr = _WORD_II.unpack_from(data, 20)
        if word == _NOP_NOP_TS:
            if hlen == 32:  # NOP NOP TS: every data segment and ACK.
                payload = _view(data, 32) if n >= 32 + VIEW_MIN else bytes(data[32:])
                return TCPSegment(
                    sport, dport, seq, ack, flags, window, payload, urgent,
                    None, None, False, (), (tsval, tsecr),
                )  # fmt: skip
            # NOP NOP TS NOP NOP SACK(1..3 blocks) filling the header exactly.
            count = _TS_SACK_BLOCKS.get(hlen, 0)
            if count and _I.unpack_from(data, 32)[0] == _NOP_NOP_SACK | (hlen - 34):
                edges = _SACK_BODY[count].unpack_from(data, 36)
                return TCPSegment(
                    sport, dport, seq, ack, flags, window, _view(data, hlen), urgent,
                    None, None, False, tuple(zip(edges[0::2], edges[1::2], strict=True)),
                    (tsval, tsecr),
                )  # fmt: skip
    seg = TCPSegment(sport, dport, seq, ack, flags, window, _view(data, hlen), urgent)
    _parse_options(data, hlen, seg)
    return seg


def _view(data: bytes | bytearray | memoryview, start: int) -> Payload:
    """``data[start:]`` as :func:`parse_tcp` returns a payload: a view if it is at
    least :data:`VIEW_MIN` bytes of immutable memory, else a copy."""
    if len(data) - start >= VIEW_MIN:
        if type(data) is bytes:
            return memoryview(data)[start:]
        if type(data) is memoryview and data.readonly and type(data.obj) is bytes:
            return data[start:]
    return bytes(data[start:])


def _parse_options(data: bytes | bytearray | memoryview, end: int, seg: TCPSegment) -> None:
    """Walk the options in ``data[20:end]`` and store what we understand in ``seg``."""
    i = 20
    while i < end:
        kind = data[i]
        if kind == 1:  # NOP
            i += 1
            continue
        if kind == 0:  # End of Option List: the rest is padding.
            return
        if i + 1 >= end:
            raise ParseError("tcp_option_overrun", f"TCP option kind {kind} has no length byte")
        length = data[i + 1]
        if length < 2:
            raise ParseError(
                "tcp_bad_option_length", f"TCP option kind {kind} has length {length}"
            )
        nxt = i + length
        if nxt > end:
            raise ParseError(
                "tcp_option_overrun",
                f"TCP option kind {kind} of length {length} overruns the header",
            )
        if kind == 8:
            if length != 10:
                _bad_length(kind, length)
            seg.timestamps = _II.unpack_from(data, i + 2)
        elif kind == 5:
            count, rest = divmod(length - 2, 8)
            if rest or not 1 <= count <= 4:
                _bad_length(kind, length)
            edges = _SACK_BODY[count].unpack_from(data, i + 2)
            seg.sack_blocks = tuple(zip(edges[0::2], edges[1::2], strict=True))
        elif kind == 2:
            if length != 4:
                _bad_length(kind, length)
            seg.mss = _H.unpack_from(data, i + 2)[0]
        elif kind == 3:
            if length != 3:
                _bad_length(kind, length)
            seg.wscale = data[i + 2]
        elif kind == 4:
            if length != 2:
                _bad_length(kind, length)
            seg.sack_permitted = True
        i = nxt


def _bad_length(kind: int, length: int) -> None:
    raise ParseError("tcp_bad_option_length", f"TCP option kind {kind} has length {length}")


def verify_tcp_checksum(data: bytes | bytearray | memoryview, src: bytes, dst: bytes) -> bool:
    """Whether the TCP segment ``data`` from ``src`` to ``dst`` (16-byte IPv6
    addresses) has a correct checksum over the IPv6 pseudo-header (RFC 8200 §8.1)."""
    return verify_transport(src, dst, TCP_PROTOCOL, data)


# =====================================================================================
# Building
# =====================================================================================


def options_length(seg: TCPSegment) -> int:
    """Bytes of options :func:`build_tcp` emits for ``seg`` (a multiple of 4, <= 40).

    Handy for the engine to size payloads: a full-sized segment carries
    ``mss - options_length(seg)`` bytes when the MSS excludes options.
    """
    used = 0
    if seg.mss is not None:
        used += 4
    if seg.timestamps is not None:
        used += 12
    elif seg.sack_permitted:
        used += 4
    if seg.wscale is not None:
        used += 4
    if seg.sack_blocks:
        count = min(len(seg.sack_blocks), (MAX_OPTIONS_LEN - 4 - used) // 8)
        if count > 0:
            used += 4 + 8 * count
    return used


def _options(seg: TCPSegment) -> bytes:
    """Serialise the options, Linux's layout, every part 4-byte aligned.

    MSS; timestamps (preceded by SACK-permitted if set, else by NOP NOP);
    NOP NOP SACK-permitted (only without timestamps); NOP window scale;
    NOP NOP SACK with as many blocks as still fit in 40 bytes.
    """
    parts: list[bytes] = []
    used = 0
    if seg.mss is not None:
        parts.append(struct.pack("!BBH", 2, 4, seg.mss))
        used += 4
    if seg.timestamps is not None:
        tsval, tsecr = seg.timestamps
        word = _SACKOK_TS if seg.sack_permitted else _NOP_NOP_TS
        parts.append(_WORD_II.pack(word, tsval & _M32, tsecr & _M32))
        used += 12
    elif seg.sack_permitted:
        parts.append(_NOP_NOP_SACKOK)
        used += 4
    if seg.wscale is not None:
        parts.append(struct.pack("!BBBB", 1, 3, 3, seg.wscale))
        used += 4
    if seg.sack_blocks:
        count = min(len(seg.sack_blocks), (MAX_OPTIONS_LEN - 4 - used) // 8)
        if count > 0:
            parts.append(_I.pack(_NOP_NOP_SACK | (2 + 8 * count)))
            edges = [edge & _M32 for block in seg.sack_blocks[:count] for edge in block]
            parts.append(_SACK_BODY[count].pack(*edges))
    return b"".join(parts)


def _field_error(seg: TCPSegment, src: bytes, dst: bytes) -> ValueError:
    """Explain why ``seg`` cannot be built (called only after struct refused it)."""
    for name, value, limit in (
        ("src_port", seg.src_port, 0xFFFF),
        ("dst_port", seg.dst_port, 0xFFFF),
        ("flags", seg.flags, 0xFF),
        ("window", seg.window, 0xFFFF),
        ("urgent", seg.urgent, 0xFFFF),
        ("mss", seg.mss, 0xFFFF),
        ("wscale", seg.wscale, 0xFF),
    ):
        if value is not None and not (isinstance(value, int) and 0 <= value <= limit):
            return ValueError(f"TCPSegment.{name}={value!r} is not in 0..{limit}")
    if len(src) != 16 or len(dst) != 16:
        return ValueError("IPv6 addresses must be 16 bytes")
    return ValueError(f"cannot build {seg!r} from {src!r} to {dst!r}")


def _pack_header(seg: TCPSegment, csum: int = 0) -> bytes:
    """Header and options of ``seg``, with ``csum`` in the checksum field."""
    if seg.mss is None and seg.wscale is None and not seg.sack_permitted:
        # Fast paths (every data segment): no options, or NOP NOP TS [NOP NOP SACK].
        ts = seg.timestamps
        blocks = seg.sack_blocks
        if ts is None:
            if not blocks:
                return _HDR.pack(
                    seg.src_port, seg.dst_port, seg.seq & _M32, seg.ack & _M32, _OFF_20,
                    seg.flags, seg.window, csum, seg.urgent,
                )  # fmt: skip
        elif not blocks:
            return _HDR_TS.pack(
                seg.src_port, seg.dst_port, seg.seq & _M32, seg.ack & _M32, _OFF_32,
                seg.flags, seg.window, csum, seg.urgent,
                _NOP_NOP_TS, ts[0] & _M32, ts[1] & _M32,
            )  # fmt: skip
        else:
            count = min(len(blocks), 3)
            edges = [edge & _M32 for block in blocks[:count] for edge in block]
            return _HDR_TS_SACK[count].pack(
                seg.src_port, seg.dst_port, seg.seq & _M32, seg.ack & _M32,
                (9 + 2 * count) << 4, seg.flags, seg.window, csum, seg.urgent,
                _NOP_NOP_TS, ts[0] & _M32, ts[1] & _M32,
                _NOP_NOP_SACK | (2 + 8 * count), *edges,
            )  # fmt: skip
    options = _options(seg)
    return _HDR.pack(
        seg.src_port, seg.dst_port, seg.seq & _M32, seg.ack & _M32,
        (5 + (len(options) >> 2)) << 4, seg.flags, seg.window, csum, seg.urgent,
    ) + options  # fmt: skip


def _header(seg: TCPSegment, src: bytes, dst: bytes) -> tuple[bytes, int]:
    """The header of ``seg`` with a zero checksum field, and the checksum to patch in
    (at offset 16) that covers pseudo-header, header and ``seg.payload``.

    The pseudo-header (RFC 8200 §8.1: src, dst, 32-bit length, next header) and the
    header are summed in one go: a big-endian integer is congruent mod 0xFFFF to the
    sum of its 16-bit words (``2**16 ≡ 1``), which is what the one's-complement sum
    computes (see :mod:`.checksum`); the header is whole 32-bit words, so the
    payload's sum (odd trailing byte padded) simply adds on.
    """
    try:
        header = _pack_header(seg)
        if len(src) != 16 or len(dst) != 16:
            raise ValueError("IPv6 addresses must be 16 bytes")
        payload = seg.payload
        total = (
            _from_bytes(src, "big") + _from_bytes(dst, "big") + _from_bytes(header, "big")
            + len(header) + len(payload) + TCP_PROTOCOL
        ) % 0xFFFF  # fmt: skip
    except (struct.error, TypeError, ValueError) as exc:
        raise _field_error(seg, src, dst) from exc
    if payload:
        # A nonzero multiple of 0xFFFF is 0xFFFF ("negative zero"), never 0.
        return header, checksum(payload, total or 0xFFFF)
    return header, (0xFFFF - total if total else 0)


def build_tcp_header(seg: TCPSegment, src: bytes, dst: bytes) -> bytes:
    """Serialise the header and options of ``seg``, without the payload.

    The checksum covers the IPv6 pseudo-header, this header *and* ``seg.payload``,
    so ``header + seg.payload`` is the complete segment. This lets a caller build
    ``ipv6_header + tcp_header + payload`` with a single copy of the payload.

    ``seq``, ``ack``, SACK edges and timestamps are taken mod 2**32; other fields
    out of range (ports, window, urgent, flags, mss, wscale) raise ``ValueError``,
    as do addresses that are not 16 bytes: that would be our bug, not a peer's.
    """
    header, csum = _header(seg, src, dst)
    return b"".join((header[:16], _H.pack(csum), header[18:]))


def build_tcp_header_partial(seg: TCPSegment, src: bytes, dst: bytes) -> bytes:
    """:func:`build_tcp_header` with a *partial* checksum (checksum offload).

    The checksum field holds the folded, uncomplemented IPv6 pseudo-header sum
    (addresses, TCP length = header + ``seg.payload``, next header 6): the value
    Linux keeps in a ``CHECKSUM_PARTIAL`` packet and a virtio ``NEEDS_CSUM`` header
    promises. Summing the whole segment over that field and complementing gives the
    real checksum (:func:`complete_tcp_checksum`). Cost: independent of the payload.
    Send such a header only on a link that offloads checksums
    (``send(packet, partial_checksum=True)``).
    """
    try:
        if len(src) != 16 or len(dst) != 16:
            raise ValueError("IPv6 addresses must be 16 bytes")
        length = _options_len_fast(seg) + len(seg.payload)
        return _pack_header(seg, pseudo_header_sum(src, dst, length, TCP_PROTOCOL))
    except (struct.error, TypeError, ValueError) as exc:
        raise _field_error(seg, src, dst) from exc


def _options_len_fast(seg: TCPSegment) -> int:
    """The TCP header length :func:`_pack_header` produces for ``seg``."""
    if seg.mss is None and seg.wscale is None and not seg.sack_permitted:
        if seg.timestamps is None:
            if not seg.sack_blocks:
                return 20
        elif not seg.sack_blocks:
            return 32
        else:
            return 36 + 8 * min(len(seg.sack_blocks), 3)
    return 20 + len(_options(seg))


def partial_tcp_checksum(packet: bytes | bytearray | memoryview) -> int:
    """The value Linux expects in the TCP checksum field of a ``NEEDS_CSUM`` packet:
    the folded (not complemented) pseudo-header sum over the IPv6 addresses, the TCP
    length (the whole TCP segment, header included) and next header 6.

    ``packet`` is a whole IPv6 packet carrying TCP right after its fixed header; only
    that header is read, so this costs the same for 64 KiB as for 64 bytes.
    """
    mv = memoryview(packet)
    return pseudo_header_sum(mv[IPV6_SRC], mv[IPV6_DST], len(mv) - IPV6_HEADER_LEN, TCP_PROTOCOL)


def complete_tcp_checksum(packet: bytes | bytearray | memoryview) -> bytes:
    """Complete the partial checksum of a whole IPv6 packet carrying TCP right after
    its fixed header (see :func:`build_tcp_header_partial`): the Internet checksum of
    the TCP segment, summed over the partial value in its field, replaces that value.
    Returns a new packet (one copy); a packet too short to hold a TCP header is
    returned unchanged (as bytes)."""
    if len(packet) < IPV6_HEADER_LEN + TCP_HEADER_LEN:
        return bytes(packet)
    return complete_checksum(packet, IPV6_HEADER_LEN, TCP_CHECKSUM_OFFSET)


def tcp_pseudo_base(src: bytes, dst: bytes) -> int:
    """The IPv6 pseudo-header of TCP from ``src`` to ``dst`` (RFC 8200 §8.1) summed
    without its length, unfolded: the per-destination constant that
    :func:`build_ipv6_tcp_ts_partial` takes (a sender caches it)."""
    return _from_bytes(src, "big") + _from_bytes(dst, "big") + TCP_PROTOCOL


def build_ipv6_tcp_ts_partial(
    seg: TCPSegment, src: bytes, dst: bytes, pseudo_base: int
) -> bytes | None:
    """The whole IPv6 packet carrying ``seg`` with a partial checksum, if ``seg``'s
    only option is timestamps (every data segment and ACK); else None.

    The fixed IPv6 header (hop limit :data:`~trio_tcp6.wire.ipv6.DEFAULT_HOP_LIMIT`)
    and the TCP header with NOP NOP Timestamps come from a single ``struct`` call; the
    checksum field holds the pseudo-header sum ``pseudo_base`` (from
    :func:`tcp_pseudo_base` for ``src`` and ``dst``) plus the TCP length, the value
    :func:`build_tcp_header_partial` computes; the Traffic Class is ``seg.ecn``.
    The per-packet fast path: fields are
    not masked or explained, so None also means one is out of range (sequence
    numbers and timestamps beyond 32 bits, a segment beyond 65535 bytes): build such
    a segment with the general builders, which mask or explain them.
    """
    ts = seg.timestamps
    if (
        ts is None
        or seg.sack_blocks
        or seg.mss is not None
        or seg.wscale is not None
        or seg.sack_permitted
    ):
        return None
    tsval, tsecr = ts
    payload = seg.payload
    tcp_len = TCP_TS_HEADER_LEN + len(payload)
    csum = (pseudo_base + tcp_len) % 0xFFFF or 0xFFFF  # the sum is never zero
    try:
        header = _IP6_TCP_TS.pack(
            _IP6_VERSION_WORD | seg.ecn << 20, tcp_len, TCP_PROTOCOL, DEFAULT_HOP_LIMIT,
            src, dst,
            seg.src_port, seg.dst_port, seg.seq, seg.ack, _OFF_32, seg.flags,
            seg.window, csum, seg.urgent, _NOP_NOP_TS, tsval, tsecr,
        )  # fmt: skip
    except struct.error:
        return None
    return header + payload if payload else header


def cut_segment(seg: TCPSegment, size: int) -> list[TCPSegment]:
    """``seg`` cut into segments of ``size`` payload bytes (the last one shorter),
    as a NIC's TSO or Linux's software GSO (``tcp_gso_segment``) cuts a
    super-segment: every field copied, SEQ advanced by the offset, FIN and PSH only
    on the last one, CWR only on the first. ``[seg]`` itself if it is not longer
    than ``size`` (or ``size`` is not positive)."""
    payload = seg.payload
    n = len(payload)
    if size <= 0 or n <= size:
        return [seg]
    view = memoryview(payload)
    flags = seg.flags
    out: list[TCPSegment] = []
    for off in range(0, n, size):
        end = off + size
        if end >= n:
            end = n
            f = flags
        else:
            f = flags & ~(FIN | PSH)
        if off:
            f &= ~CWR
        out.append(
            attr.evolve(seg, seq=(seg.seq + off) & _M32, flags=f, payload=bytes(view[off:end]))
        )
    return out


def build_ipv6_tcp_ts_partial_cut(
    seg: TCPSegment, src: bytes, dst: bytes, pseudo_base: int, size: int
) -> list[bytes] | None:
    """The IPv6 packets carrying the super-segment ``seg`` cut into segments of
    ``size`` payload bytes (the last one shorter), each built as
    :func:`build_ipv6_tcp_ts_partial` builds a segment; None in the same cases.

    The cut is the one a NIC's TSO or Linux's software GSO makes
    (``tcp_gso_segment``): each segment gets a copy of the header with SEQ advanced
    by its offset; FIN and PSH only on the last one, CWR only on the first. Each
    packet is one copy of its part of the payload (no intermediate slices)."""
    ts = seg.timestamps
    if (
        ts is None
        or seg.sack_blocks
        or seg.mss is not None
        or seg.wscale is not None
        or seg.sack_permitted
        or seg.urgent
        or size <= 0
    ):
        return None
    payload = seg.payload
    n = len(payload)
    if n <= size:
        one = build_ipv6_tcp_ts_partial(seg, src, dst, pseudo_base)
        return None if one is None else [one]
    tsval, tsecr = ts
    view = memoryview(payload)
    word = _IP6_VERSION_WORD | seg.ecn << 20
    flags = seg.flags
    # FIN and PSH belong to the last segment, CWR to the first only.
    middle = flags & ~(FIN | PSH)
    later = middle & ~CWR
    seq = seg.seq
    if seq > _M32 or seg.ack > _M32 or tsval > _M32 or tsecr > _M32:
        return None
    pack = _IP6_TCP_TS.pack
    out: list[bytes] = []
    off = 0
    try:
        while off < n:
            end = off + size
            if end >= n:
                end = n
                f = flags if off == 0 else flags & ~CWR
            else:
                f = middle if off == 0 else later
            tcp_len = TCP_TS_HEADER_LEN + end - off
            csum = (pseudo_base + tcp_len) % 0xFFFF or 0xFFFF
            header = pack(
                word, tcp_len, TCP_PROTOCOL, DEFAULT_HOP_LIMIT, src, dst,
                seg.src_port, seg.dst_port, (seq + off) & _M32, seg.ack, _OFF_32, f,
                seg.window, csum, 0, _NOP_NOP_TS, tsval, tsecr,
            )  # fmt: skip
            out.append(header + view[off:end])
            off = end
    except struct.error:
        return None
    return out


def quoted_tcp_fields(data: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(source port, destination port, sequence number) from the first 8 bytes of a
    TCP header: what an ICMPv6 error quoting a TCP segment always carries (RFC 4443
    §2.4 (c) keeps far more, RFC 5927 §4.1 needs no more). Shorter ``data`` raises
    :class:`ParseError` (``tcp_truncated``)."""
    if len(data) < _PORTS_SEQ.size:
        raise ParseError("tcp_truncated", f"a TCP quote of {len(data)} bytes, need 8")
    sport, dport, seq = _PORTS_SEQ.unpack_from(data)
    return sport, dport, seq


def build_tcp(seg: TCPSegment, src: bytes, dst: bytes) -> bytes:
    """Serialise ``seg`` with a correct checksum over the IPv6 pseudo-header.

    ``src`` and ``dst`` are the 16-byte IPv6 addresses. Options are laid out as Linux
    lays them out (SYN: MSS, SACK-permitted + timestamps, NOP window scale; data:
    NOP NOP timestamps, NOP NOP SACK) and never exceed 40 bytes: SACK blocks that do
    not fit are dropped from the end (3 fit with timestamps, 4 without). See
    :func:`build_tcp_header` for range rules.
    """
    header, csum = _header(seg, src, dst)
    return b"".join((header[:16], _H.pack(csum), header[18:], seg.payload))
