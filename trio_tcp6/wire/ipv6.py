"""The IPv6 header and a bounded extension-header walk (RFC 8200).

:func:`parse_ipv6` checks the fixed header, trims link-layer padding beyond the
payload length, and walks the extension headers a host must process — Hop-by-Hop
Options (0, only directly after the fixed header), Routing (43), Fragment (44) and
Destination Options (60) — until it reaches the upper-layer protocol. The common
case, no extension headers, costs one ``struct.unpack_from``.

Bounds: at most :data:`MAX_EXT_HEADERS` extension headers and
:data:`MAX_EXT_BYTES` bytes of them per packet. A legitimate packet needs far less
(RFC 7112 wants the whole chain in the first fragment anyway); anything beyond is
dropped as ``ipv6_ext_chain_too_long`` so that crafted chains cost bounded work.

Errors are :class:`~trio_tcp6.wire.errors.ParseError` with these reasons:

``ipv6_truncated``
    fewer than 40 bytes.
``ipv6_bad_version``
    the version field is not 6.
``ipv6_bad_payload_length``
    the payload length exceeds the bytes present.
``ipv6_ext_truncated``
    an extension header (or an option inside one) runs past the payload.
``ipv6_ext_chain_too_long``
    more than :data:`MAX_EXT_HEADERS` headers or :data:`MAX_EXT_BYTES` bytes.
``ipv6_no_next_header``
    the chain ends in No Next Header (59): nothing to deliver.
``ipv6_fragment``
    a real fragment (:class:`FragmentError`, carrying offset/more/identification);
    reassembly is not implemented. Atomic fragments (offset 0, M clear; RFC 6946)
    are processed as ordinary packets.
Parameter problems
    ``ipv6_hop_by_hop_not_first``, ``ipv6_unrecognized_option``,
    ``ipv6_routing_header`` and ``ipv6_unknown_next_header`` raise
    :class:`ParameterProblemError`: RFC 8200 asks for an ICMPv6 Parameter Problem
    with the given ``code`` and ``pointer`` when ``send_icmp`` is true.

The upper-layer protocol is not judged here: pass ``protocols`` to
:func:`parse_ipv6` to turn any other upper layer into ``ipv6_unknown_next_header``.

Two cheaper reads serve the per-packet path and the ICMPv6 error rules:
:func:`peek_ipv6` reads only the fixed header (one ``struct`` call; the caller falls
back to :func:`parse_ipv6` for anything it does not take), and
:func:`find_upper_layer` follows the extension-header chain without validating it.
The fixed header's fields have named offsets (:data:`IPV6_SRC`, :data:`IPV6_DST`,
:data:`IPV6_NEXT_HEADER_OFFSET`) for code that must look at one field of a packet
without parsing it.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from typing import TypeAlias

import attrs

from .errors import ParseError

__all__ = [
    "DEFAULT_HOP_LIMIT",
    "ECN_CE",
    "ECN_ECT0",
    "ECN_ECT1",
    "ECN_MASK",
    "ECN_NOT_ECT",
    "EXT_DESTINATION_OPTIONS",
    "EXT_FRAGMENT",
    "EXT_HOP_BY_HOP",
    "EXT_ROUTING",
    "IPV6_DST",
    "IPV6_HEADER_LEN",
    "IPV6_NEXT_HEADER_OFFSET",
    "IPV6_SRC",
    "MAX_EXT_BYTES",
    "MAX_EXT_HEADERS",
    "NO_NEXT_HEADER",
    "PROTO_ICMPV6",
    "PROTO_TCP",
    "PROTO_UDP",
    "ExtensionHeader",
    "FragmentError",
    "IPv6Packet",
    "ParameterProblemError",
    "build_ipv6",
    "build_ipv6_header",
    "ecn_of",
    "find_upper_layer",
    "parse_ipv6",
    "peek_ipv6",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

#: Length of the fixed header (RFC 8200 §3).
IPV6_HEADER_LEN = 40
#: Offset of the Next Header field in the fixed header.
IPV6_NEXT_HEADER_OFFSET = 6
#: Where the source address lies in the fixed header (``packet[IPV6_SRC]``).
IPV6_SRC = slice(8, 24)
#: Where the destination address lies in the fixed header (``packet[IPV6_DST]``).
IPV6_DST = slice(24, 40)
#: The hop limit of the packets we send (the builders' default).
DEFAULT_HOP_LIMIT = 64
EXT_HOP_BY_HOP = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DESTINATION_OPTIONS = 60
NO_NEXT_HEADER = 59
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

# The ECN field: the two low bits of the Traffic Class (RFC 3168 §5, RFC 8200 §7).
#: Not ECN-Capable Transport.
ECN_NOT_ECT = 0
#: ECT(1) (RFC 3168 §5; L4S's codepoint since RFC 9331).
ECN_ECT1 = 1
#: ECT(0): what an RFC 3168 sender marks its data with.
ECN_ECT0 = 2
#: Congestion Experienced: set by a router instead of dropping an ECT packet.
ECN_CE = 3
#: The ECN bits of a Traffic Class value.
ECN_MASK = 3

#: Most extension headers walked in one packet.
MAX_EXT_HEADERS = 8
#: Most bytes of extension headers walked in one packet.
MAX_EXT_BYTES = 1024

_EXT_TYPES = frozenset({EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_DESTINATION_OPTIONS})
# Header types that end the walk without an upper-layer payload to deliver.
_STOP_TYPES = _EXT_TYPES | {NO_NEXT_HEADER}

# version/traffic class/flow label, payload length, next header, hop limit, src, dst
_FIXED = struct.Struct("!IHBB16s16s")
# version/traffic class byte, payload length, next header, src, dst (for peek_ipv6)
_PEEK = struct.Struct("!B3xHBx16s16s")
_FRAG = struct.Struct("!HI")

# Parameter Problem codes (RFC 4443 §3.4).
PP_ERRONEOUS_FIELD = 0
PP_UNRECOGNIZED_NEXT_HEADER = 1
PP_UNRECOGNIZED_OPTION = 2


class ParameterProblemError(ParseError):
    """A packet to discard with an ICMPv6 Parameter Problem (RFC 8200 §4).

    ``code`` and ``pointer`` (offset into the packet of the offending byte) are the
    fields of the Parameter Problem message; send it only if ``send_icmp``.
    """

    def __init__(
        self, reason: str, message: str, *, code: int, pointer: int, send_icmp: bool = True
    ) -> None:
        super().__init__(reason, message)
        self.code = code
        self.pointer = pointer
        self.send_icmp = send_icmp


class FragmentError(ParseError):
    """A non-atomic fragment; reassembly is not implemented (reason ``ipv6_fragment``)."""

    def __init__(self, offset: int, more: bool, identification: int, next_header: int) -> None:
        super().__init__(
            "ipv6_fragment",
            f"fragment offset={offset} more={more} id={identification:#x}",
        )
        self.offset = offset
        self.more = more
        self.identification = identification
        self.next_header = next_header


def _pad(length: int) -> bytes:
    """Padding options that fill ``length`` bytes (Pad1 or PadN)."""
    if length == 0:
        return b""
    if length == 1:
        return b"\x00"
    return bytes((1, length - 2)) + bytes(length - 2)


@attrs.define(slots=True, eq=True, frozen=True)
class ExtensionHeader:
    """One extension header as on the wire, minus its first two bytes.

    ``header_type`` is the protocol number that names it (0, 43, 44, 60). ``body`` is
    everything after the Next Header and length bytes: ``2 + len(body)`` is a
    multiple of 8, and for a Fragment header ``body`` is exactly 6 bytes (the
    reserved second byte is not kept).
    """

    header_type: int
    body: bytes

    @property
    def length(self) -> int:
        return 2 + len(self.body)

    # -- Fragment (44) -----------------------------------------------------------
    @classmethod
    def fragment(
        cls, offset: int = 0, more: bool = False, identification: int = 0
    ) -> ExtensionHeader:
        """A Fragment header; ``offset`` in 8-octet units (13 bits)."""
        return cls(EXT_FRAGMENT, _FRAG.pack((offset << 3) | more, identification))

    @property
    def fragment_fields(self) -> tuple[int, bool, int]:
        """(offset in 8-octet units, more fragments, identification)."""
        off_m, ident = _FRAG.unpack_from(self.body)
        return off_m >> 3, bool(off_m & 1), ident

    # -- Routing (43) ------------------------------------------------------------
    @classmethod
    def routing(
        cls, routing_type: int, segments_left: int, data: bytes = bytes(4)
    ) -> ExtensionHeader:
        """A Routing header; ``data`` is the type-specific part (4 + 8k bytes)."""
        return cls(EXT_ROUTING, bytes((routing_type, segments_left)) + data)

    # -- Hop-by-Hop (0) and Destination Options (60) ------------------------------
    @classmethod
    def with_options(
        cls, header_type: int, options: Iterable[tuple[int, bytes]] = ()
    ) -> ExtensionHeader:
        """An options header holding ``(type, data)`` TLVs, padded to 8 bytes."""
        body = bytearray()
        for opt_type, opt_data in options:
            if opt_type == 0:
                body.append(0)
            else:
                body += bytes((opt_type, len(opt_data))) + opt_data
        body += _pad(-(len(body) + 2) % 8)
        return cls(header_type, bytes(body))

    def options(self) -> list[tuple[int, bytes]]:
        """The TLVs of an options header, padding (Pad1/PadN) left out."""
        out: list[tuple[int, bytes]] = []
        body = self.body
        i = 0
        while i < len(body):
            opt_type = body[i]
            if opt_type == 0:
                i += 1
                continue
            if i + 1 >= len(body):
                break  # malformed; parse_ipv6 never lets such a header through
            opt_len = body[i + 1]
            if opt_type != 1:
                out.append((opt_type, body[i + 2 : i + 2 + opt_len]))
            i += 2 + opt_len
        return out


@attrs.define(slots=True, eq=True)
class IPv6Packet:
    """A parsed IPv6 packet: fixed-header fields, the extension headers walked,
    and the upper-layer protocol and payload.

    ``payload`` from :func:`parse_ipv6` is a memoryview into the input buffer (no
    copy); it compares equal to bytes with the same content.
    """

    src: bytes
    dst: bytes
    next_header: int
    payload: bytes | memoryview
    hop_limit: int = DEFAULT_HOP_LIMIT
    traffic_class: int = 0
    flow_label: int = 0
    ext_headers: tuple[ExtensionHeader, ...] = ()

    @property
    def payload_offset(self) -> int:
        """Offset of the upper-layer payload from the start of the packet."""
        return IPV6_HEADER_LEN + sum(h.length for h in self.ext_headers)

    @property
    def next_header_pointer(self) -> int:
        """Offset of the byte that holds :attr:`next_header` (for Parameter Problem)."""
        if not self.ext_headers:
            return 6
        return self.payload_offset - self.ext_headers[-1].length

    def to_bytes(self) -> bytes:
        return build_ipv6(
            self.src,
            self.dst,
            self.next_header,
            self.payload,
            hop_limit=self.hop_limit,
            traffic_class=self.traffic_class,
            flow_label=self.flow_label,
            ext_headers=self.ext_headers,
        )


def _check_options(data: Buffer, start: int, end: int, dst: bytes, header_type: int) -> None:
    """Validate the TLVs of an options header at ``data[start:end]`` (RFC 8200 §4.2)."""
    i = start
    while i < end:
        opt_type = data[i]
        if opt_type == 0:  # Pad1
            i += 1
            continue
        if i + 2 > end or i + 2 + data[i + 1] > end:
            raise ParseError("ipv6_ext_truncated", f"option at offset {i} overruns its header")
        if opt_type != 1:  # not PadN: an option we do not implement
            action = opt_type >> 6
            if action:
                # 01 discard silently, 10 discard + ICMP, 11 discard + ICMP unless
                # the destination is multicast.
                send_icmp = action == 2 or (action == 3 and dst[0] != 0xFF)
                which = "hop-by-hop" if header_type == EXT_HOP_BY_HOP else "destination"
                raise ParameterProblemError(
                    "ipv6_unrecognized_option",
                    f"unrecognized {which} option type {opt_type:#x} at offset {i}",
                    code=PP_UNRECOGNIZED_OPTION,
                    pointer=i,
                    send_icmp=send_icmp,
                )
        i += 2 + data[i + 1]


def parse_ipv6(data: Buffer, *, protocols: Collection[int] | None = None) -> IPv6Packet:
    """Parse one IPv6 packet (see the module docstring for the errors raised).

    Bytes beyond the payload length (link padding) are ignored. If ``protocols`` is
    given, an upper layer not in it raises :class:`ParameterProblemError` with code 1
    (unrecognized Next Header) instead of being returned.
    """
    if len(data) < IPV6_HEADER_LEN:
        raise ParseError("ipv6_truncated", f"{len(data)} bytes, need 40")
    vtf, plen, nh, hop_limit, src, dst = _FIXED.unpack_from(data)
    if vtf >> 28 != 6:
        raise ParseError("ipv6_bad_version", f"version {vtf >> 28}")
    end = IPV6_HEADER_LEN + plen
    if end > len(data):
        raise ParseError(
            "ipv6_bad_payload_length",
            f"payload length {plen} but only {len(data) - IPV6_HEADER_LEN} bytes follow",
        )
    if nh in _STOP_TYPES:
        offset, nh, exts, pointer = _walk(data, nh, end, dst)
    else:
        offset, exts, pointer = IPV6_HEADER_LEN, (), 6
    if protocols is not None and nh not in protocols:
        raise ParameterProblemError(
            "ipv6_unknown_next_header",
            f"unrecognized next header {nh}",
            code=PP_UNRECOGNIZED_NEXT_HEADER,
            pointer=pointer,
        )
    return IPv6Packet(
        src,
        dst,
        nh,
        memoryview(data)[offset:end],
        hop_limit,
        (vtf >> 20) & 0xFF,
        vtf & 0xFFFFF,
        exts,
    )


def ecn_of(data: Buffer) -> int:
    """The ECN field (:data:`ECN_CE` ...) of an IPv6 packet ``data`` of at least two
    bytes: bits 4-5 of its second byte, the low two bits of the Traffic Class."""
    return (data[1] >> 4) & ECN_MASK


def peek_ipv6(data: bytes | memoryview) -> tuple[bytes, bytes, int, memoryview] | None:
    """The fixed header's (source, destination, next header, payload view), or None
    if ``data`` is shorter than 40 bytes, not version 6, or shorter than its payload
    length says.

    The per-packet fast path: one ``struct`` call, no extension-header walk and no
    checks beyond those three. The payload view is trimmed to the payload length, as
    :func:`parse_ipv6` trims it; when ``next header`` is an upper-layer protocol the
    result is what :func:`parse_ipv6` would return. Anything else (an extension
    header, None) needs :func:`parse_ipv6`, which raises the right error. ``data``
    is ``bytes`` or a byte ``memoryview`` of bytes that do not change (a link's view
    behind a header it strips): the addresses come back as ``bytes`` copies, the
    payload as a view of ``data``.
    """
    if len(data) < IPV6_HEADER_LEN:
        return None
    version, plen, nh, src, dst = _PEEK.unpack_from(data)
    end = IPV6_HEADER_LEN + plen
    if version >> 4 != 6 or end > len(data):
        return None
    return src, dst, nh, memoryview(data)[IPV6_HEADER_LEN:end]


def find_upper_layer(data: Buffer) -> tuple[int, int] | None:
    """(upper-layer protocol, its offset) of the IPv6 packet ``data``, following the
    extension headers parse_ipv6 walks (Hop-by-Hop, Routing, Fragment, Destination
    Options) without validating them, or None if the chain cannot be followed.

    For packets that :func:`parse_ipv6` may have refused (an ICMPv6 error about one
    must know what it carries). At most :data:`MAX_EXT_HEADERS` - 1 extension headers
    are followed; a chain that runs past ``data`` (or a packet shorter than the fixed
    header) gives None. The offset may equal ``len(data)`` (an empty upper layer).
    """
    end = len(data)
    if end < IPV6_HEADER_LEN:
        return None
    nh, offset = data[IPV6_NEXT_HEADER_OFFSET], IPV6_HEADER_LEN
    for _ in range(MAX_EXT_HEADERS - 1):
        if nh not in _EXT_TYPES:
            break
        if offset + 8 > end:
            return None
        length = 8 if nh == EXT_FRAGMENT else (data[offset + 1] + 1) * 8
        nh, offset = data[offset], offset + length
    if nh in _EXT_TYPES or offset > end:
        return None
    return nh, offset


def _walk(
    data: Buffer, nh: int, end: int, dst: bytes
) -> tuple[int, int, tuple[ExtensionHeader, ...], int]:
    """Walk the extension headers from offset 40 up to ``end``.

    Returns (payload offset, upper-layer protocol, headers, pointer to the byte
    holding the upper-layer protocol number).
    """
    offset = IPV6_HEADER_LEN
    pointer = 6  # where the current ``nh`` value was read from
    exts: list[ExtensionHeader] = []
    while nh in _STOP_TYPES:
        if nh == NO_NEXT_HEADER:
            raise ParseError("ipv6_no_next_header", "next header is No Next Header (59)")
        if len(exts) >= MAX_EXT_HEADERS:
            raise ParseError("ipv6_ext_chain_too_long", f"more than {MAX_EXT_HEADERS} headers")
        if nh == EXT_HOP_BY_HOP and exts:
            # RFC 8200 §4.1: only directly after the IPv6 header; elsewhere it is
            # handled as an unrecognized Next Header value.
            raise ParameterProblemError(
                "ipv6_hop_by_hop_not_first",
                f"hop-by-hop options header at offset {offset}",
                code=PP_UNRECOGNIZED_NEXT_HEADER,
                pointer=pointer,
            )
        if offset + 8 > end:
            raise ParseError("ipv6_ext_truncated", f"extension header {nh} at offset {offset}")
        length = 8 if nh == EXT_FRAGMENT else (data[offset + 1] + 1) * 8
        if offset + length > end:
            raise ParseError(
                "ipv6_ext_truncated", f"extension header {nh} of {length} bytes at {offset}"
            )
        if offset + length - IPV6_HEADER_LEN > MAX_EXT_BYTES:
            raise ParseError(
                "ipv6_ext_chain_too_long", f"more than {MAX_EXT_BYTES} bytes of headers"
            )
        body = bytes(data[offset + 2 : offset + length])
        if nh == EXT_FRAGMENT:
            off_m, ident = _FRAG.unpack_from(body)
            if off_m & 0xFFF9:  # nonzero offset or M set (the 2 reserved bits ignored)
                raise FragmentError(off_m >> 3, bool(off_m & 1), ident, data[offset])
        elif nh == EXT_ROUTING:
            if body[1]:  # segments left: we are a host and route nothing onwards
                raise ParameterProblemError(
                    "ipv6_routing_header",
                    f"routing type {body[0]} with {body[1]} segments left",
                    code=PP_ERRONEOUS_FIELD,
                    pointer=offset + 2,
                )
        else:
            _check_options(data, offset + 2, offset + length, dst, nh)
        exts.append(ExtensionHeader(nh, body))
        pointer = offset
        nh = data[offset]
        offset += length
    return offset, nh, tuple(exts), pointer


def build_ipv6_header(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload_length: int,
    hop_limit: int = DEFAULT_HOP_LIMIT,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """The 40-byte fixed header alone (the hot path: the caller concatenates)."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("IPv6 addresses must be 16 bytes")
    if not 0 <= payload_length <= 0xFFFF:
        raise ValueError(f"payload length {payload_length} out of range (no jumbograms)")
    return _FIXED.pack(
        0x60000000 | (traffic_class << 20) | flow_label,
        payload_length,
        next_header,
        hop_limit,
        src,
        dst,
    )


def build_ipv6(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload: Buffer,
    hop_limit: int = DEFAULT_HOP_LIMIT,
    traffic_class: int = 0,
    flow_label: int = 0,
    ext_headers: Iterable[ExtensionHeader] = (),
) -> bytes:
    """A whole packet: fixed header, ``ext_headers`` in order, then ``payload``.

    ``next_header`` is the upper-layer protocol; the chain's Next Header fields and
    lengths are filled in here.
    """
    if not 0 <= traffic_class <= 0xFF or not 0 <= flow_label <= 0xFFFFF:
        raise ValueError("traffic class or flow label out of range")
    exts = tuple(ext_headers)
    if not exts:
        header = build_ipv6_header(
            src, dst, next_header, len(payload), hop_limit, traffic_class, flow_label
        )
        return header + payload
    chain = bytearray()
    for i, ext in enumerate(exts):
        nxt = exts[i + 1].header_type if i + 1 < len(exts) else next_header
        if ext.length % 8:
            raise ValueError(f"extension header length {ext.length} is not a multiple of 8")
        if ext.header_type == EXT_FRAGMENT:
            if len(ext.body) != 6:
                raise ValueError("a fragment header body is 6 bytes")
            chain += bytes((nxt, 0))
        else:
            if ext.length > 2048:
                raise ValueError("extension header longer than 2048 bytes")
            chain += bytes((nxt, ext.length // 8 - 1))
        chain += ext.body
    header = build_ipv6_header(
        src,
        dst,
        exts[0].header_type,
        len(chain) + len(payload),
        hop_limit,
        traffic_class,
        flow_label,
    )
    return header + bytes(chain) + payload
