"""ICMPv6 messages (RFC 4443): parse and build.

Error messages (types 0..127) quote the invoking packet; :func:`build_icmpv6` cuts
the quote so the whole message fits the IPv6 minimum MTU (RFC 4443 §2.4(c)):
at most :data:`MAX_QUOTE` bytes. Informational messages are types 128..255.
Types without a class of their own parse to :class:`UnknownICMPv6`, not an error.

Parse errors (:class:`~trio_tcp6.wire.errors.ParseError` reasons):
``icmpv6_truncated`` (shorter than the message's fixed part) and
``icmpv6_bad_checksum`` (only checked when ``src`` and ``dst`` are given).
"""

from __future__ import annotations

import struct
from typing import ClassVar, TypeAlias

import attrs

from .checksum import ones_sum, pseudo_header_sum, transport_checksum
from .errors import ParseError
from .ipv6 import IPV6_HEADER_LEN, PROTO_ICMPV6, IPv6Packet, find_upper_layer, parse_ipv6

__all__ = [
    "ICMPV6_DEST_UNREACHABLE",
    "ICMPV6_ECHO_REPLY",
    "ICMPV6_ECHO_REQUEST",
    "ICMPV6_PACKET_TOO_BIG",
    "ICMPV6_PARAMETER_PROBLEM",
    "ICMPV6_TIME_EXCEEDED",
    "IPV6_MIN_MTU",
    "MAX_QUOTE",
    "DestinationUnreachable",
    "EchoReply",
    "EchoRequest",
    "ICMPv6Message",
    "PacketTooBig",
    "ParameterProblem",
    "TimeExceeded",
    "UnknownICMPv6",
    "build_icmpv6",
    "carries_icmpv6_error",
    "is_error_type",
    "parse_icmpv6",
    "parse_invoking",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

ICMPV6_DEST_UNREACHABLE = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_PARAMETER_PROBLEM = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129

#: Destination Unreachable codes (RFC 4443 §3.1).
UNREACH_NO_ROUTE = 0
UNREACH_ADMIN_PROHIBITED = 1
UNREACH_BEYOND_SCOPE = 2
UNREACH_ADDRESS = 3
UNREACH_PORT = 4
UNREACH_POLICY = 5
UNREACH_REJECT_ROUTE = 6

IPV6_MIN_MTU = 1280
#: Most bytes of the invoking packet an error message carries (1280 - 40 - 8).
MAX_QUOTE = IPV6_MIN_MTU - IPV6_HEADER_LEN - 8

_HDR = struct.Struct("!BBH")
_ECHO = struct.Struct("!BBHHH")
_WORD = struct.Struct("!BBHI")


def is_error_type(icmp_type: int) -> bool:
    """True for error messages (types 0..127), false for informational ones."""
    return icmp_type < 128


def carries_icmpv6_error(packet: Buffer) -> bool:
    """Does the IPv6 ``packet`` carry an ICMPv6 error message (RFC 4443 §2.4 (e):
    never answer one with an error)? Follows the extension headers with
    :func:`~trio_tcp6.wire.ipv6.find_upper_layer`; a chain it cannot follow counts
    as not carrying one."""
    found = find_upper_layer(packet)
    if found is None or found[0] != PROTO_ICMPV6:
        return False
    offset = found[1]
    return offset < len(packet) and is_error_type(packet[offset])


class _Known:
    """What every message type this module knows shares: ``type`` and ``is_error``
    come from the class (RFC 4443 §2.1: types below 128 are errors)."""

    __slots__ = ()
    TYPE: ClassVar[int]
    IS_ERROR: ClassVar[bool]

    @property
    def type(self) -> int:
        return self.TYPE

    @property
    def is_error(self) -> bool:
        return self.IS_ERROR


class _Informational(_Known):
    __slots__ = ()
    IS_ERROR: ClassVar[bool] = False


class _Error(_Known):
    __slots__ = ()
    IS_ERROR: ClassVar[bool] = True


@attrs.define(slots=True, eq=True)
class EchoRequest(_Informational):
    """Echo Request (type 128, RFC 4443 §4.1)."""

    TYPE: ClassVar[int] = ICMPV6_ECHO_REQUEST
    identifier: int
    sequence: int
    data: bytes = b""
    code: int = 0


@attrs.define(slots=True, eq=True)
class EchoReply(_Informational):
    """Echo Reply (type 129, RFC 4443 §4.2)."""

    TYPE: ClassVar[int] = ICMPV6_ECHO_REPLY
    identifier: int
    sequence: int
    data: bytes = b""
    code: int = 0


@attrs.define(slots=True, eq=True)
class DestinationUnreachable(_Error):
    """Destination Unreachable (type 1, RFC 4443 §3.1); ``invoking`` is the quote."""

    TYPE: ClassVar[int] = ICMPV6_DEST_UNREACHABLE
    code: int
    invoking: bytes = b""


@attrs.define(slots=True, eq=True)
class PacketTooBig(_Error):
    """Packet Too Big (type 2, RFC 4443 §3.2): the next-hop ``mtu``."""

    TYPE: ClassVar[int] = ICMPV6_PACKET_TOO_BIG
    mtu: int
    invoking: bytes = b""
    code: int = 0


@attrs.define(slots=True, eq=True)
class TimeExceeded(_Error):
    """Time Exceeded (type 3, RFC 4443 §3.3): code 0 hop limit, 1 reassembly."""

    TYPE: ClassVar[int] = ICMPV6_TIME_EXCEEDED
    code: int
    invoking: bytes = b""


@attrs.define(slots=True, eq=True)
class ParameterProblem(_Error):
    """Parameter Problem (type 4, RFC 4443 §3.4): ``pointer`` is an offset into
    the invoking packet; code 0 erroneous field, 1 unrecognized Next Header,
    2 unrecognized IPv6 option."""

    TYPE: ClassVar[int] = ICMPV6_PARAMETER_PROBLEM
    code: int
    pointer: int
    invoking: bytes = b""


@attrs.define(slots=True, eq=True)
class UnknownICMPv6:
    """Any other type (NDP, MLD, ...): ``body`` is everything after the checksum."""

    type: int
    code: int
    body: bytes = b""

    @property
    def is_error(self) -> bool:
        return is_error_type(self.type)


#: Every message class; usable in ``isinstance`` as well as in annotations.
ICMPv6Message: TypeAlias = (
    EchoRequest
    | EchoReply
    | DestinationUnreachable
    | PacketTooBig
    | TimeExceeded
    | ParameterProblem
    | UnknownICMPv6
)


def parse_icmpv6(
    data: Buffer, src: bytes | None = None, dst: bytes | None = None
) -> ICMPv6Message:
    """Parse one ICMPv6 message (the IPv6 payload).

    With ``src`` and ``dst`` (the IPv6 addresses, 16 bytes each) the checksum is
    verified over the pseudo-header first.
    """
    n = len(data)
    if n < 4:
        raise ParseError("icmpv6_truncated", f"{n} bytes, need 4")
    if (
        src is not None
        and dst is not None
        and ones_sum(data, pseudo_header_sum(src, dst, n, PROTO_ICMPV6)) != 0xFFFF
    ):
        raise ParseError("icmpv6_bad_checksum", "ICMPv6 checksum mismatch")
    icmp_type, code, _ = _HDR.unpack_from(data)
    if icmp_type in (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY):
        if n < 8:
            raise ParseError("icmpv6_truncated", f"echo message of {n} bytes")
        _, _, _, ident, seq = _ECHO.unpack_from(data)
        cls = EchoRequest if icmp_type == ICMPV6_ECHO_REQUEST else EchoReply
        return cls(ident, seq, bytes(data[8:]), code)
    if icmp_type in (
        ICMPV6_DEST_UNREACHABLE,
        ICMPV6_PACKET_TOO_BIG,
        ICMPV6_TIME_EXCEEDED,
        ICMPV6_PARAMETER_PROBLEM,
    ):
        if n < 8:
            raise ParseError("icmpv6_truncated", f"error message of {n} bytes")
        word = _WORD.unpack_from(data)[3]
        invoking = bytes(data[8:])
        if icmp_type == ICMPV6_DEST_UNREACHABLE:
            return DestinationUnreachable(code, invoking)
        if icmp_type == ICMPV6_PACKET_TOO_BIG:
            return PacketTooBig(word, invoking, code)
        if icmp_type == ICMPV6_TIME_EXCEEDED:
            return TimeExceeded(code, invoking)
        return ParameterProblem(code, word, invoking)
    return UnknownICMPv6(icmp_type, code, bytes(data[4:]))


def _body(msg: ICMPv6Message) -> bytes:
    """The message with its checksum field zero."""
    if isinstance(msg, (EchoRequest, EchoReply)):
        return _ECHO.pack(msg.TYPE, msg.code, 0, msg.identifier, msg.sequence) + msg.data
    if isinstance(msg, UnknownICMPv6):
        return _HDR.pack(msg.type, msg.code, 0) + msg.body
    if isinstance(msg, PacketTooBig):
        word = msg.mtu
    elif isinstance(msg, ParameterProblem):
        word = msg.pointer
    else:
        word = 0
    return _WORD.pack(msg.TYPE, msg.code, 0, word) + msg.invoking[:MAX_QUOTE]


def build_icmpv6(msg: ICMPv6Message, src: bytes, dst: bytes) -> bytes:
    """Serialise ``msg`` with its checksum over the pseudo-header (next header 58).

    The quote of an error message is cut to :data:`MAX_QUOTE` bytes.
    """
    body = _body(msg)
    csum = transport_checksum(src, dst, PROTO_ICMPV6, body)
    return body[:2] + csum.to_bytes(2, "big") + body[4:]


def parse_invoking(invoking: Buffer) -> IPv6Packet:
    """Parse the quoted invoking packet of an error message, which may be cut short.

    The payload length is taken as whatever was quoted; the extension headers are
    walked as usual. ``payload`` then holds the quoted start of the upper layer (for
    TCP, the ports and sequence number that identify the connection).
    """
    if len(invoking) < IPV6_HEADER_LEN:
        raise ParseError("icmpv6_truncated", f"quoted packet of {len(invoking)} bytes")
    patched = bytearray(invoking[: IPV6_HEADER_LEN + 0xFFFF])
    patched[4:6] = (len(patched) - IPV6_HEADER_LEN).to_bytes(2, "big")
    return parse_ipv6(bytes(patched))
