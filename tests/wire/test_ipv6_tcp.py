"""Whole IPv6 packets carrying TCP (trio_tcp6.wire.tcp): the stack's fast builder
for data segments and ACKs, the partial-checksum helpers, the fields of an ICMPv6
quote. Checked against the general builders and against scapy."""

from __future__ import annotations

import struct

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_tcp6.wire.errors import ParseError
from trio_tcp6.wire.ipv6 import PROTO_TCP, build_ipv6_header, peek_ipv6
from trio_tcp6.wire.tcp import (
    ACK,
    CWR,
    FIN,
    PSH,
    TCP_CHECKSUM_OFFSET,
    TCP_HEADER_LEN,
    TCP_MAX_HEADER_LEN,
    TCP_PROTOCOL,
    TCP_TS_HEADER_LEN,
    TCPSegment,
    build_ipv6_tcp_ts_partial,
    build_ipv6_tcp_ts_partial_cut,
    build_tcp,
    build_tcp_header_partial,
    complete_tcp_checksum,
    cut_segment,
    parse_tcp,
    partial_tcp_checksum,
    quoted_tcp_fields,
    tcp_pseudo_base,
    verify_tcp_checksum,
)

scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
scapy_inet = pytest.importorskip("scapy.layers.inet")
IPv6 = scapy_inet6.IPv6
TCP = scapy_inet.TCP

addresses = st.binary(min_size=16, max_size=16)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
#: Segments of the fast builder's layout: timestamps and no other option.
ts_segments = st.builds(
    TCPSegment,
    src_port=u16,
    dst_port=u16,
    seq=u32,
    ack=u32,
    flags=st.integers(0, 0xFF),
    window=u16,
    payload=st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=3000)),
    urgent=u16,
    timestamps=st.tuples(u32, u32),
)


def general_partial(seg: TCPSegment, src: bytes, dst: bytes) -> bytes:
    """The same packet from the general builders."""
    header = build_tcp_header_partial(seg, src, dst)
    return build_ipv6_header(src, dst, PROTO_TCP, len(header) + len(seg.payload)) + (
        header + seg.payload
    )


def test_header_lengths() -> None:
    assert TCP_PROTOCOL == PROTO_TCP == 6
    assert len(build_tcp(TCPSegment(1, 2, 3, 4, ACK, 5), bytes(16), bytes(16))) == TCP_HEADER_LEN
    ts = TCPSegment(1, 2, 3, 4, ACK, 5, timestamps=(6, 7))
    assert len(build_tcp(ts, bytes(16), bytes(16))) == TCP_TS_HEADER_LEN
    assert TCP_MAX_HEADER_LEN == 15 * 4
    assert bytes(TCP(chksum=0xABCD))[TCP_CHECKSUM_OFFSET : TCP_CHECKSUM_OFFSET + 2] == b"\xab\xcd"


@settings(max_examples=300)
@given(ts_segments, addresses, addresses)
def test_fast_builder_is_the_general_builder(seg: TCPSegment, src: bytes, dst: bytes) -> None:
    fast = build_ipv6_tcp_ts_partial(seg, src, dst, tcp_pseudo_base(src, dst))
    assert fast is not None
    assert fast == general_partial(seg, src, dst)
    # The field holds the partial sum; completed, it is the checksum scapy computes.
    assert int.from_bytes(fast[56:58], "big") == partial_tcp_checksum(fast)
    full = complete_tcp_checksum(fast)
    assert verify_tcp_checksum(full[40:], src, dst)
    packet = IPv6(full)
    tcp = packet[TCP]
    assert (packet.plen, packet.nh, packet.hlim) == (len(full) - 40, 6, 64)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags)) == (
        seg.src_port,
        seg.dst_port,
        seg.seq,
        seg.ack,
        seg.flags,
    )
    assert (tcp.window, tcp.urgptr, bytes(tcp.payload)) == (seg.window, seg.urgent, seg.payload)
    assert tcp.options == [("NOP", None), ("NOP", None), ("Timestamp", seg.timestamps)]
    ours = tcp.chksum
    del tcp.chksum
    assert IPv6(bytes(packet))[TCP].chksum == ours
    # And the stack's own decoders read it back.
    head = peek_ipv6(full)
    assert head is not None and head[:3] == (src, dst, PROTO_TCP)
    assert parse_tcp(head[3]) == seg


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamps": None},
        {"mss": 1440},
        {"wscale": 7},
        {"sack_permitted": True},
        {"sack_blocks": ((1, 2),)},
    ],
)
def test_fast_builder_takes_only_the_timestamps_layout(changes: dict[str, object]) -> None:
    seg = attrs.evolve(TCPSegment(1, 2, 3, 4, ACK, 5, timestamps=(6, 7)), **changes)
    src, dst = bytes(range(16)), bytes(range(16, 32))
    assert build_ipv6_tcp_ts_partial(seg, src, dst, tcp_pseudo_base(src, dst)) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 2**32},
        {"ack": -1},
        {"timestamps": (2**32, 0)},
        {"src_port": 0x10000},
        {"window": -1},
        {"payload": bytes(0xFFFF - 32 + 1)},
    ],
)
def test_fast_builder_leaves_out_of_range_fields_to_the_general_path(
    changes: dict[str, object],
) -> None:
    seg = attrs.evolve(TCPSegment(1, 2, 3, 4, ACK | PSH, 5, timestamps=(6, 7)), **changes)
    src, dst = bytes(range(16)), bytes(range(16, 32))
    assert build_ipv6_tcp_ts_partial(seg, src, dst, tcp_pseudo_base(src, dst)) is None
    # At the edge of each range it builds.
    edge = TCPSegment(0xFFFF, 0, 2**32 - 1, 0, 0xFF, 0xFFFF, bytes(0xFFFF - 32), 0xFFFF)
    edge = attrs.evolve(edge, timestamps=(2**32 - 1, 0))
    built = build_ipv6_tcp_ts_partial(edge, src, dst, tcp_pseudo_base(src, dst))
    assert built == general_partial(edge, src, dst)


def test_partial_sum_is_never_zero() -> None:
    """A pseudo-header sum that is a multiple of 0xFFFF is 0xFFFF (negative zero), as
    pseudo_header_sum folds it."""
    src = bytes(16)
    # base + tcp_len == 0xFFFF: dst holds 0xFFFF - 6 - 32 in its last word.
    dst = bytes(14) + (0xFFFF - PROTO_TCP - TCP_TS_HEADER_LEN).to_bytes(2, "big")
    seg = TCPSegment(0, 0, 0, 0, 0, 0, timestamps=(0, 0))
    fast = build_ipv6_tcp_ts_partial(seg, src, dst, tcp_pseudo_base(src, dst))
    assert fast is not None and fast[56:58] == b"\xff\xff"
    assert fast == general_partial(seg, src, dst)


@given(u16, u16, u32, st.binary(max_size=40))
def test_quoted_tcp_fields(sport: int, dport: int, seq: int, rest: bytes) -> None:
    quote = struct.pack("!HHI", sport, dport, seq) + rest
    assert quoted_tcp_fields(quote) == (sport, dport, seq)
    assert quoted_tcp_fields(memoryview(quote)) == (sport, dport, seq)
    header = TCP(sport=sport, dport=dport, seq=seq)
    assert quoted_tcp_fields(bytes(header)[:8]) == (sport, dport, seq)


def test_quoted_tcp_fields_needs_eight_bytes() -> None:
    with pytest.raises(ParseError) as info:
        quoted_tcp_fields(bytes(7))
    assert info.value.reason == "tcp_truncated"


# -- cutting a super-segment (software GSO) ---------------------------------------------


@settings(max_examples=200)
@given(ts_segments, addresses, addresses, st.integers(1, 1500))
def test_cut_builder_is_the_fast_builder_per_segment(
    seg: TCPSegment, src: bytes, dst: bytes, size: int
) -> None:
    """Each packet of the cut is the packet of its segment, as the fast builder
    builds it; the segments tile the payload."""
    seg = attrs.evolve(seg, urgent=0)
    base = tcp_pseudo_base(src, dst)
    pieces = cut_segment(seg, size)
    packets = build_ipv6_tcp_ts_partial_cut(seg, src, dst, base, size)
    assert packets == [build_ipv6_tcp_ts_partial(p, src, dst, base) for p in pieces]
    assert b"".join(p.payload for p in pieces) == seg.payload
    assert all(len(p.payload) == size for p in pieces[:-1])
    assert 0 < len(pieces[-1].payload) <= size or pieces == [seg]


def test_cut_flags_and_sequence_numbers() -> None:
    """FIN and PSH only on the last segment, CWR only on the first (Linux's
    tcp_gso_segment); SEQ advances by the offset and wraps at 2**32."""
    seg = TCPSegment(1, 2, 2**32 - 150, 9, ACK | PSH | FIN | CWR, 5, bytes(250), timestamps=(6, 7))
    pieces = cut_segment(seg, 100)
    assert [len(p.payload) for p in pieces] == [100, 100, 50]
    assert [p.seq for p in pieces] == [2**32 - 150, 2**32 - 50, 50]
    assert [p.flags for p in pieces] == [ACK | CWR, ACK, ACK | PSH | FIN]
    assert all(p.ack == 9 and p.timestamps == (6, 7) and p.window == 5 for p in pieces)
    src, dst = bytes(range(16)), bytes(range(16, 32))
    base = tcp_pseudo_base(src, dst)
    packets = build_ipv6_tcp_ts_partial_cut(seg, src, dst, base, 100)
    assert packets is not None
    assert [parse_tcp(memoryview(p)[40:]) for p in packets] == pieces
    # A segment that fits is not cut.
    assert cut_segment(seg, 250) == [seg]
    assert build_ipv6_tcp_ts_partial_cut(seg, src, dst, base, 250) == [
        build_ipv6_tcp_ts_partial(seg, src, dst, base)
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamps": None},
        {"sack_blocks": ((1, 2),)},
        {"urgent": 1},
        {"seq": 2**32},
        {"timestamps": (2**32, 0)},
    ],
)
def test_cut_builder_leaves_other_layouts_to_the_general_path(
    changes: dict[str, object],
) -> None:
    seg = attrs.evolve(TCPSegment(1, 2, 3, 4, ACK, 5, bytes(300), timestamps=(6, 7)), **changes)
    src, dst = bytes(range(16)), bytes(range(16, 32))
    assert build_ipv6_tcp_ts_partial_cut(seg, src, dst, tcp_pseudo_base(src, dst), 100) is None
