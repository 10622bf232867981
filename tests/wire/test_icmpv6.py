"""ICMPv6 messages: round trips, checksum, quote limits, scapy both ways, garbage."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.packet import Packet, Raw

from trio_tcp6.wire.checksum import ones_sum, pseudo_header_sum
from trio_tcp6.wire.errors import ParseError
from trio_tcp6.wire.icmpv6 import (
    IPV6_MIN_MTU,
    MAX_QUOTE,
    DestinationUnreachable,
    EchoReply,
    EchoRequest,
    ICMPv6Message,
    PacketTooBig,
    ParameterProblem,
    TimeExceeded,
    UnknownICMPv6,
    build_icmpv6,
    carries_icmpv6_error,
    is_error_type,
    parse_icmpv6,
    parse_invoking,
)
from trio_tcp6.wire.ipv6 import (
    EXT_DESTINATION_OPTIONS,
    MAX_EXT_HEADERS,
    ExtensionHeader,
    build_ipv6,
    parse_ipv6,
)

SRC = bytes.fromhex("fe800000000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000042")

addresses = st.binary(min_size=16, max_size=16)
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
quotes = st.binary(max_size=300)
KNOWN_TYPES = {1, 2, 3, 4, 128, 129}

messages: st.SearchStrategy[ICMPv6Message] = st.one_of(
    st.builds(EchoRequest, u16, u16, st.binary(max_size=200), u8),
    st.builds(EchoReply, u16, u16, st.binary(max_size=200), u8),
    st.builds(DestinationUnreachable, u8, quotes),
    st.builds(PacketTooBig, u32, quotes, u8),
    st.builds(TimeExceeded, u8, quotes),
    st.builds(ParameterProblem, u8, u32, quotes),
    st.builds(UnknownICMPv6, u8.filter(lambda t: t not in KNOWN_TYPES), u8, quotes),
)


def ip_str(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))


@settings(max_examples=400)
@given(messages, addresses, addresses)
def test_build_parse_round_trip(msg: ICMPv6Message, src: bytes, dst: bytes) -> None:
    data = build_icmpv6(msg, src, dst)
    assert parse_icmpv6(data, src, dst) == msg
    assert parse_icmpv6(data) == msg
    assert parse_icmpv6(memoryview(data), src, dst) == msg
    assert data[0] == msg.type
    assert msg.is_error == (msg.type < 128)
    # The checksum covers the pseudo-header with next header 58.
    assert ones_sum(data, pseudo_header_sum(src, dst, len(data), 58)) == 0xFFFF


def test_known_layouts() -> None:
    data = build_icmpv6(EchoRequest(0x1234, 0x5678, b"ping"), SRC, DST)
    assert data[:2] == b"\x80\x00" and data[4:] == bytes.fromhex("12345678") + b"ping"
    data = build_icmpv6(PacketTooBig(1280, b"q"), SRC, DST)
    assert data[:2] == b"\x02\x00" and data[4:] == bytes.fromhex("00000500") + b"q"
    data = build_icmpv6(ParameterProblem(1, 40, b"q"), SRC, DST)
    assert data[:2] == b"\x04\x01" and data[4:] == bytes.fromhex("00000028") + b"q"
    data = build_icmpv6(DestinationUnreachable(4, b"q"), SRC, DST)
    assert data[:2] == b"\x01\x04" and data[4:] == bytes(4) + b"q"
    data = build_icmpv6(TimeExceeded(0, b"q"), SRC, DST)
    assert data[:2] == b"\x03\x00" and data[4:] == bytes(4) + b"q"


@pytest.mark.parametrize(
    "make",
    [
        lambda q: DestinationUnreachable(1, q),
        lambda q: PacketTooBig(1400, q),
        lambda q: TimeExceeded(0, q),
        lambda q: ParameterProblem(0, 7, q),
    ],
)
def test_error_quote_fits_minimum_mtu(make: object) -> None:
    invoking = build_ipv6(SRC, DST, 6, bytes(range(256)) * 8)
    assert len(invoking) > IPV6_MIN_MTU
    msg = make(invoking)  # type: ignore[operator]
    data = build_icmpv6(msg, DST, SRC)
    assert len(data) == IPV6_MIN_MTU - 40
    assert len(build_ipv6(DST, SRC, 58, data)) == IPV6_MIN_MTU
    parsed = parse_icmpv6(data, DST, SRC)
    assert parsed == make(invoking[:MAX_QUOTE])  # type: ignore[operator]
    assert MAX_QUOTE == 1232
    # Exactly MAX_QUOTE bytes are kept whole.
    assert len(build_icmpv6(make(invoking[:MAX_QUOTE]), DST, SRC)) == 1240  # type: ignore[operator]


def test_echo_data_is_not_cut() -> None:
    msg = EchoReply(1, 2, bytes(3000))
    assert parse_icmpv6(build_icmpv6(msg, SRC, DST), SRC, DST) == msg


def test_type_classes() -> None:
    for t in range(128):
        assert is_error_type(t)
    for t in range(128, 256):
        assert not is_error_type(t)
    assert not EchoRequest(1, 1).is_error
    assert PacketTooBig(1280).is_error
    assert UnknownICMPv6(135, 0).is_error is False
    assert UnknownICMPv6(100, 0).is_error is True
    assert isinstance(TimeExceeded(0), ICMPv6Message)  # a runtime union, not a string
    assert not isinstance(b"", ICMPv6Message)


@settings(max_examples=300)
@given(messages, st.data())
def test_corruption_fails_the_checksum(msg: ICMPv6Message, data: st.DataObject) -> None:
    good = build_icmpv6(msg, SRC, DST)
    bit = data.draw(st.integers(0, len(good) * 8 - 1))
    bad = bytearray(good)
    bad[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(ParseError) as info:
        parse_icmpv6(bytes(bad), SRC, DST)
    assert info.value.reason == "icmpv6_bad_checksum"
    with pytest.raises(ParseError):
        parse_icmpv6(good, SRC, DST[:-1] + bytes((DST[-1] ^ 1,)))


def test_truncated() -> None:
    for n in range(4):
        with pytest.raises(ParseError) as info:
            parse_icmpv6(bytes([128, 0, 0, 0])[:n])
        assert info.value.reason == "icmpv6_truncated"
    for t in KNOWN_TYPES:
        for n in range(4, 8):
            with pytest.raises(ParseError) as info:
                parse_icmpv6(bytes([t]) + bytes(n - 1))
            assert info.value.reason == "icmpv6_truncated"
    assert parse_icmpv6(bytes([135, 0, 0, 0])) == UnknownICMPv6(135, 0, b"")


# -- scapy cross-checks ---------------------------------------------------------------

SCAPY_CLASS = {
    EchoRequest: ICMPv6EchoRequest,
    EchoReply: ICMPv6EchoReply,
    DestinationUnreachable: ICMPv6DestUnreach,
    PacketTooBig: ICMPv6PacketTooBig,
    TimeExceeded: ICMPv6TimeExceeded,
    ParameterProblem: ICMPv6ParamProblem,
}


@st.composite
def realistic_messages(draw: st.DrawFn) -> ICMPv6Message:
    """Messages whose quote is a real (possibly cut) IPv6/TCP packet, as scapy expects."""
    invoking = bytes(
        IPv6(src=ip_str(draw(addresses)), dst=ip_str(draw(addresses)))
        / TCP(sport=draw(u16), dport=draw(u16), seq=draw(u32), flags="S")
        / Raw(draw(st.binary(max_size=100)))
    )
    invoking = invoking[: draw(st.integers(48, len(invoking)))]
    kind = draw(st.sampled_from(list(SCAPY_CLASS)))
    if kind is EchoRequest or kind is EchoReply:
        return kind(draw(u16), draw(u16), draw(st.binary(max_size=100)))
    if kind is DestinationUnreachable:
        return DestinationUnreachable(draw(st.integers(0, 6)), invoking)
    if kind is PacketTooBig:
        return PacketTooBig(draw(u32), invoking)
    if kind is TimeExceeded:
        return TimeExceeded(draw(st.integers(0, 1)), invoking)
    return ParameterProblem(draw(st.integers(0, 2)), draw(u32), invoking)


@settings(max_examples=200)
@given(realistic_messages(), addresses, addresses)
def test_scapy_decodes_ours(msg: ICMPv6Message, src: bytes, dst: bytes) -> None:
    packet = build_ipv6(src, dst, 58, build_icmpv6(msg, src, dst))
    sp = IPv6(packet)
    layer = sp[SCAPY_CLASS[type(msg)]]
    assert (layer.type, layer.code) == (msg.type, msg.code)
    if isinstance(msg, (EchoRequest, EchoReply)):
        assert (layer.id, layer.seq, bytes(layer.data)) == (msg.identifier, msg.sequence, msg.data)
    else:
        assert isinstance(
            msg, (DestinationUnreachable, PacketTooBig, TimeExceeded, ParameterProblem)
        )
        assert bytes(layer.payload) == msg.invoking
        if isinstance(msg, PacketTooBig):
            assert layer.mtu == msg.mtu
        if isinstance(msg, ParameterProblem):
            assert layer.ptr == msg.pointer
    # scapy recomputes the checksum from scratch and gets ours.
    ours = layer.cksum
    del layer.cksum
    assert IPv6(bytes(sp))[SCAPY_CLASS[type(msg)]].cksum == ours


@st.composite
def scapy_messages(draw: st.DrawFn) -> tuple[Packet, ICMPv6Message]:
    ident, seq, data = draw(u16), draw(u16), draw(st.binary(max_size=100))
    quote = bytes(IPv6(dst="2001:db8::9") / TCP(dport=draw(u16)) / Raw(data))
    choice = draw(st.integers(0, 6))
    if choice == 0:
        return ICMPv6EchoRequest(id=ident, seq=seq, data=data), EchoRequest(ident, seq, data)
    if choice == 1:
        return ICMPv6EchoReply(id=ident, seq=seq, data=data), EchoReply(ident, seq, data)
    if choice == 2:
        return ICMPv6DestUnreach(code=4) / Raw(quote), DestinationUnreachable(4, quote)
    if choice == 3:
        return ICMPv6PacketTooBig(mtu=ident) / Raw(quote), PacketTooBig(ident, quote)
    if choice == 4:
        return ICMPv6TimeExceeded(code=1) / Raw(quote), TimeExceeded(1, quote)
    if choice == 5:
        return ICMPv6ParamProblem(code=2, ptr=seq) / Raw(quote), ParameterProblem(2, seq, quote)
    ns = ICMPv6ND_NS(tgt="2001:db8::9")
    return ns, UnknownICMPv6(135, 0, bytes(ns)[4:])


@settings(max_examples=200)
@given(addresses, addresses, scapy_messages())
def test_ours_decodes_scapy(src: bytes, dst: bytes, pair: tuple[Packet, ICMPv6Message]) -> None:
    layer, expected = pair
    packet = bytes(IPv6(src=ip_str(src), dst=ip_str(dst)) / layer)
    ip = parse_ipv6(packet)
    assert ip.next_header == 58
    assert parse_icmpv6(ip.payload, ip.src, ip.dst) == expected


# -- the quoted packet ----------------------------------------------------------------


def test_parse_invoking_identifies_the_connection() -> None:
    tcp = bytes(TCP(sport=40000, dport=443, seq=0xDEADBEEF, flags="A") / Raw(b"z" * 1400))
    invoking = build_ipv6(SRC, DST, 6, tcp)
    msg = parse_icmpv6(build_icmpv6(PacketTooBig(1280, invoking), DST, SRC), DST, SRC)
    assert isinstance(msg, PacketTooBig)
    quoted = parse_invoking(msg.invoking)
    assert (quoted.src, quoted.dst, quoted.next_header) == (SRC, DST, 6)
    assert bytes(quoted.payload[:8]) == bytes.fromhex("9c4001bbdeadbeef")
    assert len(quoted.payload) == MAX_QUOTE - 40
    with pytest.raises(ParseError):
        parse_invoking(invoking[:39])


# -- garbage in: only ParseError ------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=100), st.booleans())
def test_random_bytes_only_parse_error(data: bytes, check: bool) -> None:
    try:
        parse_icmpv6(data, SRC if check else None, DST if check else None)
    except ParseError as exc:
        assert exc.reason.startswith("icmpv6_"), exc.reason
    else:
        assert len(data) >= 4  # a type, a code and a checksum at least
    try:
        pkt = parse_invoking(data)
    except ParseError as exc:
        assert exc.reason.startswith(("icmpv6_", "ipv6_")), exc.reason
    else:
        assert (bytes(pkt.src), bytes(pkt.dst)) == (data[8:24], data[24:40])


@settings(max_examples=200)
@given(messages)
def test_every_truncation(msg: ICMPv6Message) -> None:
    data = build_icmpv6(msg, SRC, DST)
    fixed_part = 8 if msg.type in KNOWN_TYPES else 4
    for n in range(len(data)):
        try:
            parse_icmpv6(data[:n], SRC, DST)
        except ParseError:
            pass
        if n < fixed_part:
            with pytest.raises(ParseError) as info:
                parse_icmpv6(data[:n])
            assert info.value.reason == "icmpv6_truncated"
        else:
            assert type(parse_icmpv6(data[:n])) is type(msg)


# -- does a packet carry an ICMPv6 error? (RFC 4443 §2.4 (e)) -------------------------


@settings(max_examples=200)
@given(messages, st.integers(0, MAX_EXT_HEADERS - 1))
def test_carries_icmpv6_error_behind_extension_headers(msg: ICMPv6Message, n: int) -> None:
    body = build_icmpv6(msg, SRC, DST)
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    packet = build_ipv6(SRC, DST, 58, body, ext_headers=[dest] * n)
    assert carries_icmpv6_error(packet) is msg.is_error
    # scapy finds the ICMPv6 message at the same place.
    layer = IPv6(packet).payload
    for _ in range(n):
        assert type(layer).__name__ == "IPv6ExtHdrDestOpt"
        layer = layer.payload
    assert bytes(layer) == body


def test_carries_icmpv6_error_edges() -> None:
    error = build_icmpv6(DestinationUnreachable(4, b"q"), SRC, DST)
    assert carries_icmpv6_error(build_ipv6(SRC, DST, 58, error))
    # Type 127 is the last error type, 128 the first informational one.
    assert carries_icmpv6_error(build_ipv6(SRC, DST, 58, bytes([127]) + bytes(7)))
    assert not carries_icmpv6_error(build_ipv6(SRC, DST, 58, bytes([128]) + bytes(7)))
    # No ICMPv6 byte at all, another upper layer, a chain too long to follow.
    assert not carries_icmpv6_error(build_ipv6(SRC, DST, 58, b""))
    assert not carries_icmpv6_error(build_ipv6(SRC, DST, 6, error))
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    too_long = build_ipv6(SRC, DST, 58, error, ext_headers=[dest] * MAX_EXT_HEADERS)
    assert not carries_icmpv6_error(too_long)
    # A chain cut short.
    behind = build_ipv6(SRC, DST, 58, error, ext_headers=[dest])
    assert carries_icmpv6_error(behind)
    assert not carries_icmpv6_error(behind[:47])
