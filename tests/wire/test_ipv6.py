"""IPv6 header and extension-header walk: round trips, scapy, every error, garbage."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Packet, Raw

from trio_tcp6.wire.errors import ParseError
from trio_tcp6.wire.ipv6 import (
    DEFAULT_HOP_LIMIT,
    EXT_DESTINATION_OPTIONS,
    EXT_FRAGMENT,
    EXT_HOP_BY_HOP,
    EXT_ROUTING,
    IPV6_DST,
    IPV6_HEADER_LEN,
    IPV6_NEXT_HEADER_OFFSET,
    IPV6_SRC,
    MAX_EXT_BYTES,
    MAX_EXT_HEADERS,
    ExtensionHeader,
    FragmentError,
    IPv6Packet,
    ParameterProblemError,
    build_ipv6,
    build_ipv6_header,
    find_upper_layer,
    parse_ipv6,
    peek_ipv6,
)

SRC = bytes.fromhex("20010db8000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")

addresses = st.binary(min_size=16, max_size=16)
# Upper layers: anything that is not an extension header or No Next Header.
upper_protocols = st.integers(0, 255).filter(lambda n: n not in (0, 43, 44, 59, 60))
# Options a host skips when unknown (top two bits 00); 5 is Router Alert, which
# scapy dissects with a fixed layout, so it is left out of the generated ones.
skippable_types = st.integers(2, 63).filter(lambda t: t != 5)
options = st.lists(
    st.one_of(
        st.tuples(skippable_types, st.binary(max_size=20)),
        st.just((0, b"")),  # Pad1 in the middle
    ),
    max_size=3,
)


@st.composite
def ext_chains(draw: st.DrawFn) -> tuple[ExtensionHeader, ...]:
    chain: list[ExtensionHeader] = []
    if draw(st.booleans()):
        chain.append(ExtensionHeader.with_options(EXT_HOP_BY_HOP, draw(options)))
    for _ in range(draw(st.integers(0, MAX_EXT_HEADERS - len(chain)))):
        kind = draw(st.sampled_from([EXT_ROUTING, EXT_FRAGMENT, EXT_DESTINATION_OPTIONS]))
        if kind == EXT_ROUTING:
            # 4 reserved bytes + whole addresses, so that scapy (which reads every
            # routing header as type 0) dissects it the same way.
            data = draw(st.binary(min_size=4, max_size=4))
            data += draw(st.binary(min_size=16, max_size=16)) * draw(st.integers(0, 2))
            # Type 4 (segment routing) is left out: scapy dissects it with its own layout.
            rtype = draw(st.integers(0, 255).filter(lambda t: t != 4))
            chain.append(ExtensionHeader.routing(rtype, 0, data))
        elif kind == EXT_FRAGMENT:
            chain.append(ExtensionHeader.fragment(0, False, draw(st.integers(0, 2**32 - 1))))
        else:
            chain.append(ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS, draw(options)))
    return tuple(chain)


@st.composite
def packets(draw: st.DrawFn) -> IPv6Packet:
    return IPv6Packet(
        src=draw(addresses),
        dst=draw(addresses),
        next_header=draw(upper_protocols),
        payload=draw(st.binary(max_size=300)),
        hop_limit=draw(st.integers(0, 255)),
        traffic_class=draw(st.integers(0, 255)),
        flow_label=draw(st.integers(0, 0xFFFFF)),
        ext_headers=draw(ext_chains()),
    )


def ip_str(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))


# -- round trips --------------------------------------------------------------------


@settings(max_examples=300)
@given(packets(), st.binary(max_size=20))
def test_build_parse_round_trip(pkt: IPv6Packet, padding: bytes) -> None:
    data = pkt.to_bytes()
    assert len(data) == 40 + sum(h.length for h in pkt.ext_headers) + len(pkt.payload)
    parsed = parse_ipv6(data + padding)  # link padding beyond payload length is trimmed
    assert parsed == pkt
    assert bytes(parsed.payload) == pkt.payload
    assert data[parsed.payload_offset :] == pkt.payload
    assert data[parsed.next_header_pointer] == pkt.next_header
    assert parse_ipv6(bytearray(data)) == pkt
    assert parse_ipv6(memoryview(data)) == pkt


@given(packets())
def test_options_survive(pkt: IPv6Packet) -> None:
    for ext in parse_ipv6(pkt.to_bytes()).ext_headers:
        if ext.header_type in (EXT_HOP_BY_HOP, EXT_DESTINATION_OPTIONS):
            for opt_type, _ in ext.options():
                assert 2 <= opt_type <= 63


def test_options_helpers() -> None:
    ext = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS, [(7, b"abc"), (0, b""), (9, b"")])
    assert ext.length % 8 == 0
    assert ext.options() == [(7, b"abc"), (9, b"")]
    frag = ExtensionHeader.fragment(100, True, 0xDEADBEEF)
    assert frag.fragment_fields == (100, True, 0xDEADBEEF)
    assert frag.length == 8


def test_fast_path_header_matches_full_build() -> None:
    payload = b"x" * 33
    header = build_ipv6_header(SRC, DST, 6, len(payload), 17, 0x2E, 0xABCDE)
    assert len(header) == 40
    assert header + payload == build_ipv6(SRC, DST, 6, payload, 17, 0x2E, 0xABCDE)
    assert header[:4] == bytes.fromhex("62eabcde")
    assert header[4:8] == bytes((0, 33, 6, 17))


def test_parse_fixed_header_fields() -> None:
    data = bytes.fromhex("6abcdef1") + struct.pack("!HBB", 3, 6, 255) + SRC + DST + b"abc"
    pkt = parse_ipv6(data)
    assert (pkt.traffic_class, pkt.flow_label, pkt.hop_limit) == (0xAB, 0xCDEF1, 255)
    assert (pkt.src, pkt.dst, pkt.next_header, bytes(pkt.payload)) == (SRC, DST, 6, b"abc")
    assert pkt.ext_headers == ()
    assert pkt.payload_offset == 40


@pytest.mark.parametrize(
    "kwargs",
    [
        {"src": b"\x00" * 4},
        {"traffic_class": 256},
        {"flow_label": 1 << 20},
        {"payload": bytes(65536)},
        {"ext_headers": [ExtensionHeader(EXT_DESTINATION_OPTIONS, b"\x00")]},
        {"ext_headers": [ExtensionHeader(EXT_FRAGMENT, bytes(14))]},
    ],
)
def test_build_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"src": SRC, "dst": DST, "next_header": 6, "payload": b""}
    args.update(kwargs)
    with pytest.raises(ValueError):
        build_ipv6(**args)  # type: ignore[arg-type]


# -- scapy cross-checks ---------------------------------------------------------------

SCAPY_EXT = {
    EXT_HOP_BY_HOP: IPv6ExtHdrHopByHop,
    EXT_ROUTING: IPv6ExtHdrRouting,
    EXT_FRAGMENT: IPv6ExtHdrFragment,
    EXT_DESTINATION_OPTIONS: IPv6ExtHdrDestOpt,
}


@settings(max_examples=200)
@given(packets())
def test_scapy_decodes_ours(pkt: IPv6Packet) -> None:
    data = pkt.to_bytes()
    sp = IPv6(data)
    assert sp.version == 6
    assert (sp.tc, sp.fl, sp.hlim) == (pkt.traffic_class, pkt.flow_label, pkt.hop_limit)
    assert (sp.src, sp.dst) == (ip_str(pkt.src), ip_str(pkt.dst))
    assert sp.plen == len(data) - 40
    layer: Packet = sp
    for i, ext in enumerate(pkt.ext_headers):
        layer = layer.payload
        assert isinstance(layer, SCAPY_EXT[ext.header_type])
        expected_nh = (
            pkt.ext_headers[i + 1].header_type if i + 1 < len(pkt.ext_headers) else pkt.next_header
        )
        assert layer.nh == expected_nh
        if ext.header_type == EXT_FRAGMENT:
            assert (layer.offset, bool(layer.m), layer.id) == ext.fragment_fields
        else:
            assert (layer.len + 1) * 8 == ext.length
        if ext.header_type == EXT_ROUTING:
            assert (layer.type, layer.segleft) == (ext.body[0], 0)
        if ext.header_type in (EXT_HOP_BY_HOP, EXT_DESTINATION_OPTIONS):
            theirs = [(o.otype, bytes(o.optdata)) for o in layer.options if o.otype > 1]
            assert theirs == ext.options()
    if not pkt.ext_headers:
        assert sp.nh == pkt.next_header


@settings(max_examples=200)
@given(
    addresses,
    addresses,
    st.integers(0, 255),
    st.integers(0, 0xFFFFF),
    st.integers(0, 255),
    st.lists(st.sampled_from(["route", "frag", "dest"]), max_size=4),
    st.booleans(),
    st.tuples(skippable_types, st.binary(max_size=10)),
    st.binary(max_size=100),
)
def test_ours_decodes_scapy(
    src: bytes,
    dst: bytes,
    tc: int,
    fl: int,
    hlim: int,
    kinds: list[str],
    hbh: bool,
    option: tuple[int, bytes],
    payload: bytes,
) -> None:
    sp: Packet = IPv6(src=ip_str(src), dst=ip_str(dst), tc=tc, fl=fl, hlim=hlim)
    expected_types = []
    if hbh:
        sp = sp / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=option[0], optdata=option[1])])
        expected_types.append(EXT_HOP_BY_HOP)
    for kind in kinds:
        if kind == "route":
            sp = sp / IPv6ExtHdrRouting(type=0, segleft=0, addresses=[ip_str(dst)])
            expected_types.append(EXT_ROUTING)
        elif kind == "frag":
            sp = sp / IPv6ExtHdrFragment(offset=0, m=0, id=0x1234)
            expected_types.append(EXT_FRAGMENT)
        else:
            sp = sp / IPv6ExtHdrDestOpt()
            expected_types.append(EXT_DESTINATION_OPTIONS)
    tcp = TCP(sport=1234, dport=80, flags="S") / Raw(payload)
    data = bytes(sp / tcp)
    pkt = parse_ipv6(data)
    assert (pkt.src, pkt.dst) == (src, dst)
    assert (pkt.traffic_class, pkt.flow_label, pkt.hop_limit) == (tc, fl, hlim)
    assert pkt.next_header == 6
    assert [h.header_type for h in pkt.ext_headers] == expected_types
    assert bytes(pkt.payload) == bytes(IPv6(data)[TCP])
    if hbh:
        assert pkt.ext_headers[0].options() == [option]
    for ext in pkt.ext_headers:
        if ext.header_type == EXT_FRAGMENT:
            assert ext.fragment_fields == (0, False, 0x1234)


# -- errors, one by one ---------------------------------------------------------------


def reason_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(ParseError) as info:
        parse_ipv6(data, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


def test_truncated_fixed_header() -> None:
    data = build_ipv6(SRC, DST, 6, b"")
    for n in range(40):
        assert reason_of(data[:n]) == "ipv6_truncated"


def test_bad_version() -> None:
    data = bytearray(build_ipv6(SRC, DST, 6, b"abc"))
    for version in (0, 4, 7, 15):
        data[0] = version << 4
        assert reason_of(bytes(data)) == "ipv6_bad_version"


def test_payload_length_exceeds_data() -> None:
    data = build_ipv6(SRC, DST, 6, b"abcd")
    assert reason_of(data[:-1]) == "ipv6_bad_payload_length"
    assert bytes(parse_ipv6(data + b"\x00\x00").payload) == b"abcd"


def test_extension_header_truncated() -> None:
    ext = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS, [(7, bytes(20))])
    data = bytearray(build_ipv6(SRC, DST, 6, b"", ext_headers=[ext]))
    # Claim a payload that ends inside the header.
    for plen in range(ext.length):
        data[4:6] = plen.to_bytes(2, "big")
        assert reason_of(bytes(data[: 40 + plen])) == "ipv6_ext_truncated"


def test_option_overrunning_its_header() -> None:
    # An option whose length runs past the end of its 8-byte header.
    ext = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes((7, 5)) + bytes(4))
    assert reason_of(build_ipv6(SRC, DST, 6, bytes(20), ext_headers=[ext])) == (
        "ipv6_ext_truncated"
    )
    ext = ExtensionHeader(EXT_DESTINATION_OPTIONS, bytes(5) + b"\x07")  # type, no length
    assert reason_of(build_ipv6(SRC, DST, 6, bytes(20), ext_headers=[ext])) == (
        "ipv6_ext_truncated"
    )


def test_chain_length_bounds() -> None:
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    ok = build_ipv6(SRC, DST, 6, b"x", ext_headers=[dest] * MAX_EXT_HEADERS)
    assert len(parse_ipv6(ok).ext_headers) == MAX_EXT_HEADERS
    too_many = build_ipv6(SRC, DST, 6, b"x", ext_headers=[dest] * (MAX_EXT_HEADERS + 1))
    assert reason_of(too_many) == "ipv6_ext_chain_too_long"
    big = ExtensionHeader(EXT_DESTINATION_OPTIONS, _padn(MAX_EXT_BYTES // 2 - 2))
    ok = build_ipv6(SRC, DST, 6, b"x", ext_headers=[big, big])
    assert parse_ipv6(ok).payload_offset == 40 + MAX_EXT_BYTES
    bigger = ExtensionHeader(EXT_DESTINATION_OPTIONS, _padn(MAX_EXT_BYTES // 2 + 6))
    assert reason_of(build_ipv6(SRC, DST, 6, b"x", ext_headers=[big, bigger])) == (
        "ipv6_ext_chain_too_long"
    )


def _padn(length: int) -> bytes:
    """A body of PadN options filling ``length`` bytes."""
    out = b""
    while length:
        chunk = min(length, 257)
        if chunk == 1:
            out += b"\x00"
        else:
            out += bytes((1, chunk - 2)) + bytes(chunk - 2)
        length -= chunk
    return out


def test_no_next_header() -> None:
    assert reason_of(build_ipv6(SRC, DST, 59, b"")) == "ipv6_no_next_header"
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    assert reason_of(build_ipv6(SRC, DST, 59, b"", ext_headers=[dest])) == "ipv6_no_next_header"


def test_fragment_is_reported_with_its_fields() -> None:
    frag = ExtensionHeader.fragment(185, True, 0xCAFEF00D)
    data = build_ipv6(SRC, DST, 6, b"x" * 16, ext_headers=[frag])
    with pytest.raises(FragmentError) as info:
        parse_ipv6(data)
    err = info.value
    assert err.reason == "ipv6_fragment"
    assert (err.offset, err.more, err.identification, err.next_header) == (
        185,
        True,
        0xCAFEF00D,
        6,
    )
    # First fragment (offset 0, M set) and last fragment (offset>0, M clear) too.
    for offset, more in ((0, True), (1, False)):
        frag = ExtensionHeader.fragment(offset, more, 1)
        data = build_ipv6(SRC, DST, 6, b"x", ext_headers=[frag])
        assert reason_of(data) == "ipv6_fragment"


def test_atomic_fragment_is_processed() -> None:
    frag = ExtensionHeader.fragment(0, False, 7)
    pkt = parse_ipv6(build_ipv6(SRC, DST, 6, b"data", ext_headers=[frag]))
    assert (pkt.next_header, bytes(pkt.payload)) == (6, b"data")


def test_hop_by_hop_not_first() -> None:
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    hbh = ExtensionHeader.with_options(EXT_HOP_BY_HOP)
    data = build_ipv6(SRC, DST, 6, b"", ext_headers=[dest, hbh])
    with pytest.raises(ParameterProblemError) as info:
        parse_ipv6(data)
    err = info.value
    assert err.reason == "ipv6_hop_by_hop_not_first"
    assert (err.code, err.pointer, err.send_icmp) == (1, 40, True)
    assert data[err.pointer] == 0


@pytest.mark.parametrize(
    ("opt_type", "dst_first", "send_icmp"),
    [
        (0x47, 0x20, False),  # 01: discard silently
        (0x87, 0xFF, True),  # 10: discard + ICMP even to multicast
        (0xC7, 0x20, True),  # 11: discard + ICMP unless multicast
        (0xC7, 0xFF, False),
    ],
)
@pytest.mark.parametrize("header_type", [EXT_HOP_BY_HOP, EXT_DESTINATION_OPTIONS])
def test_unrecognized_option_actions(
    opt_type: int, dst_first: int, send_icmp: bool, header_type: int
) -> None:
    dst = bytes((dst_first,)) + DST[1:]
    ext = ExtensionHeader.with_options(header_type, [(7, b"ab"), (opt_type, b"xyz")])
    data = build_ipv6(SRC, dst, 6, b"", ext_headers=[ext])
    with pytest.raises(ParameterProblemError) as info:
        parse_ipv6(data)
    err = info.value
    assert err.reason == "ipv6_unrecognized_option"
    assert (err.code, err.pointer, err.send_icmp) == (2, 46, send_icmp)
    assert data[err.pointer] == opt_type


def test_routing_header_with_segments_left() -> None:
    rh = ExtensionHeader.routing(4, 2, bytes(4 + 32))
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    data = build_ipv6(SRC, DST, 6, b"", ext_headers=[dest, rh])
    with pytest.raises(ParameterProblemError) as info:
        parse_ipv6(data)
    err = info.value
    assert err.reason == "ipv6_routing_header"
    assert (err.code, err.pointer) == (0, 50)
    assert data[err.pointer] == 4  # the routing type field


def test_unknown_upper_layer_when_protocols_given() -> None:
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    for exts, pointer in (((), 6), ((dest,), 40), ((dest, dest), 48)):
        data = build_ipv6(SRC, DST, 17, b"udp!", ext_headers=exts)
        assert parse_ipv6(data).next_header == 17
        assert parse_ipv6(data).next_header_pointer == pointer
        assert parse_ipv6(data, protocols={6, 17}).next_header == 17
        with pytest.raises(ParameterProblemError) as info:
            parse_ipv6(data, protocols={6, 58})
        err = info.value
        assert err.reason == "ipv6_unknown_next_header"
        assert (err.code, err.pointer, err.send_icmp) == (1, pointer, True)
        assert data[err.pointer] == 17


# -- garbage in: only ParseError ------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_only_parse_error(data: bytes) -> None:
    try:
        pkt = parse_ipv6(data)
    except ParseError as exc:
        assert exc.reason.startswith("ipv6_"), exc.reason
        return
    # Parsed: the fixed header's fields are the input's, the payload within it.
    assert data[0] >> 4 == 6
    assert (bytes(pkt.src), bytes(pkt.dst)) == (data[8:24], data[24:40])
    assert pkt.payload_offset + len(pkt.payload) <= len(data)


@settings(max_examples=500)
@given(addresses, st.sampled_from([0, 43, 44, 59, 60, 6]), st.binary(max_size=300))
def test_random_extension_chains_only_parse_error(src: bytes, nh: int, tail: bytes) -> None:
    data = build_ipv6_header(src, DST, nh, len(tail)) + tail
    try:
        pkt = parse_ipv6(data)
    except ParseError:
        return
    assert pkt.payload_offset + len(pkt.payload) == len(data)


@settings(max_examples=100)
@given(packets())
def test_every_truncation_is_a_parse_error(pkt: IPv6Packet) -> None:
    data = pkt.to_bytes()
    for n in range(len(data)):
        with pytest.raises(ParseError):
            parse_ipv6(data[:n])
        # Also with the payload length claiming just what is there.
        if n >= 40:
            fixed = bytearray(data[:n])
            fixed[4:6] = (n - 40).to_bytes(2, "big")
            try:
                parse_ipv6(bytes(fixed))
            except ParseError:
                pass


def test_wire_package_is_sans_io() -> None:
    # The layering rule: nothing under trio_tcp6/wire imports trio.
    import ast
    from pathlib import Path

    import trio_tcp6.wire

    for path in Path(trio_tcp6.wire.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "trio" or n.startswith("trio.") for n in names), path


# -- the fixed-header peek and the lenient chain walk ---------------------------------


def test_named_offsets_match_scapy() -> None:
    data = bytes(IPv6(src=ip_str(SRC), dst=ip_str(DST), nh=17, plen=0))
    assert len(data) == IPV6_HEADER_LEN
    assert (data[IPV6_SRC], data[IPV6_DST], data[IPV6_NEXT_HEADER_OFFSET]) == (SRC, DST, 17)
    assert build_ipv6_header(SRC, DST, 6, 0)[7] == DEFAULT_HOP_LIMIT == IPv6().hlim


@settings(max_examples=300)
@given(packets(), st.binary(max_size=20))
def test_peek_is_parse_without_extension_headers(pkt: IPv6Packet, padding: bytes) -> None:
    data = pkt.to_bytes() + padding
    head = peek_ipv6(data)
    assert head is not None
    src, dst, nh, payload = head
    assert (src, dst) == (pkt.src, pkt.dst)
    assert type(src) is bytes and type(dst) is bytes  # usable as dictionary keys
    theirs = IPv6(data)
    assert (ip_str(src), ip_str(dst), nh) == (theirs.src, theirs.dst, theirs.nh)
    if not pkt.ext_headers:
        parsed = parse_ipv6(data)
        assert nh == parsed.next_header
        assert payload == parsed.payload == pkt.payload  # trimmed to the payload length
        assert isinstance(payload, memoryview) and payload.obj is data  # a view, no copy
    else:
        assert nh == pkt.ext_headers[0].header_type
        assert len(payload) == len(data) - len(padding) - IPV6_HEADER_LEN


def test_peek_refuses_at_each_boundary() -> None:
    good = build_ipv6(SRC, DST, 6, bytes(20))
    assert peek_ipv6(good) is not None
    assert peek_ipv6(good[:40]) is None  # the payload length says 20 bytes follow
    assert peek_ipv6(good[:59]) is None  # one byte short of the payload length
    assert peek_ipv6(good[:39]) is None  # shorter than the fixed header
    assert peek_ipv6(b"") is None
    for version in (0, 4, 7, 15):
        bad = bytes([(version << 4) | (good[0] & 0x0F)]) + good[1:]
        assert peek_ipv6(bad) is None
    # Traffic class and flow label do not matter.
    assert peek_ipv6(build_ipv6(SRC, DST, 6, b"", traffic_class=255, flow_label=0xFFFFF)) == (
        SRC,
        DST,
        6,
        b"",
    )


@settings(max_examples=300)
@given(packets())
def test_find_upper_layer_agrees_with_parse(pkt: IPv6Packet) -> None:
    data = pkt.to_bytes()
    found = find_upper_layer(data)
    parsed = parse_ipv6(data)
    if len(pkt.ext_headers) < MAX_EXT_HEADERS:
        assert found == (parsed.next_header, parsed.payload_offset)
    else:
        assert found is None  # one header more than it follows


def test_find_upper_layer_follows_at_most_max_minus_one_headers() -> None:
    """The bound of the ICMPv6-error check it serves (kept as it was when that check
    lived in the runtime): MAX_EXT_HEADERS - 1 headers are followed, not one more."""
    dest = ExtensionHeader.with_options(EXT_DESTINATION_OPTIONS)
    n = MAX_EXT_HEADERS - 1
    assert find_upper_layer(build_ipv6(SRC, DST, 58, b"\x01", ext_headers=[dest] * n)) == (
        58,
        40 + 8 * n,
    )
    assert (
        find_upper_layer(build_ipv6(SRC, DST, 58, b"\x01", ext_headers=[dest] * (n + 1))) is None
    )


def test_find_upper_layer_does_not_validate_but_stays_in_bounds() -> None:
    frag = ExtensionHeader.fragment(5, True, 1)  # a real fragment: parse_ipv6 refuses it
    data = build_ipv6(SRC, DST, 58, b"\x01\x00", ext_headers=[frag])
    assert find_upper_layer(data) == (58, 48)
    # An empty upper layer right at the end of the packet.
    assert find_upper_layer(build_ipv6(SRC, DST, 58, b"", ext_headers=[frag])) == (58, 48)
    # A chain that runs past the data: None, never an IndexError.
    routing = build_ipv6(SRC, DST, 6, b"", ext_headers=[ExtensionHeader.routing(0, 0)])
    assert find_upper_layer(routing[:47]) is None
    # A header length byte pointing far beyond the packet: the next read is out of
    # bounds, so the walk stops there.
    huge = bytearray(
        build_ipv6(SRC, DST, 6, bytes(8), ext_headers=[ExtensionHeader.routing(0, 0)])
    )
    huge[41] = 255
    assert find_upper_layer(bytes(huge)) is None
    assert find_upper_layer(bytes(39)) is None
    # No extension header: the fixed header's next header at offset 40.
    assert find_upper_layer(build_ipv6(SRC, DST, 17, b"abc")) == (17, 40)
