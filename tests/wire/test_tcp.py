"""TCP header and options: parse_tcp / build_tcp (trio_tcp6.wire.tcp)."""

from __future__ import annotations

import struct
from typing import Any

import attrs
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from trio_tcp6.wire.errors import ParseError
from trio_tcp6.wire.tcp import (
    ACK,
    FIN,
    PARSE_ERROR_REASONS,
    PSH,
    RST,
    SYN,
    URG,
    TCPSegment,
    build_tcp,
    build_tcp_header,
    options_length,
    parse_tcp,
    verify_tcp_checksum,
)

SRC = bytes.fromhex("20010db8000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")
M32 = 2**32


# -- an independent reference for the checksum (a plain RFC 1071 word loop) ----------
def ref_sum(src: bytes, dst: bytes, segment: bytes) -> int:
    """The folded one's-complement sum over pseudo-header + segment (0xFFFF = valid)."""
    data = src + dst + struct.pack("!IxxxB", len(segment), 6) + segment
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def raw_segment(
    options: bytes = b"",
    payload: bytes = b"",
    *,
    data_offset: int | None = None,
    flags: int = ACK,
) -> bytes:
    """A segment with literal option bytes (padded with EOL to a word boundary)."""
    options += b"\0" * (-len(options) % 4)
    if data_offset is None:
        data_offset = 5 + len(options) // 4
    header = struct.pack("!HHIIBBHHH", 1234, 80, 1000, 2000, data_offset << 4, flags, 4096, 0, 0)
    return header + options + payload


# -- strategies -------------------------------------------------------------------------
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, M32 - 1)
any_seq = st.one_of(u32, st.integers(-(2**40), 2**40))  # built mod 2**32

segments = st.builds(
    TCPSegment,
    src_port=u16,
    dst_port=u16,
    seq=any_seq,
    ack=any_seq,
    flags=u8,
    window=u16,
    payload=st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=3000)),
    urgent=u16,
    mss=st.none() | u16,
    wscale=st.none() | u8,
    sack_permitted=st.booleans(),
    sack_blocks=st.lists(st.tuples(any_seq, any_seq), max_size=5).map(tuple),
    timestamps=st.none() | st.tuples(any_seq, any_seq),
)


def normalised(seg: TCPSegment) -> TCPSegment:
    """What ``parse_tcp(build_tcp(seg))`` must give back.

    Numbers mod 2**32; SACK blocks cut to the room left in 40 option bytes by the
    fixed-size options (MSS 4, timestamps 12 or SACK-permitted 4, window scale 4)
    and the 4-byte NOP NOP SACK prefix.
    """
    used = 0
    used += 4 if seg.mss is not None else 0
    used += 12 if seg.timestamps is not None else 4 if seg.sack_permitted else 0
    used += 4 if seg.wscale is not None else 0
    room = max(0, (40 - used - 4) // 8)
    return attrs.evolve(
        seg,
        seq=seg.seq % M32,
        ack=seg.ack % M32,
        sack_blocks=tuple((left % M32, right % M32) for left, right in seg.sack_blocks[:room]),
        timestamps=None
        if seg.timestamps is None
        else (seg.timestamps[0] % M32, seg.timestamps[1] % M32),
    )


# =======================================================================================
# Round trips
# =======================================================================================


@settings(max_examples=500)
@given(segments)
def test_round_trip(seg: TCPSegment) -> None:
    raw = build_tcp(seg, SRC, DST)
    expected = normalised(seg)
    parsed = parse_tcp(raw)
    assert parsed == expected
    assert type(parsed.payload) is bytes
    header_len = (raw[12] >> 4) * 4
    assert header_len == len(raw) - len(seg.payload)
    assert 20 <= header_len <= 60
    assert header_len - 20 == options_length(seg)
    assert raw[12] & 0x0F == 0  # reserved bits zero
    # The checksum is right by an independent computation and by ours.
    assert ref_sum(SRC, DST, raw) == 0xFFFF
    assert verify_tcp_checksum(raw, SRC, DST)
    # The header-only form is the same bytes.
    assert build_tcp_header(seg, SRC, DST) + seg.payload == raw


@settings(max_examples=200)
@given(segments)
def test_parse_accepts_bytearray_and_memoryview(seg: TCPSegment) -> None:
    raw = build_tcp(seg, SRC, DST)
    expected = parse_tcp(raw)
    buf = bytearray(raw)
    from_bytearray = parse_tcp(buf)
    from_view = parse_tcp(memoryview(buf))
    assert from_bytearray == expected
    assert from_view == expected
    assert type(from_bytearray.payload) is bytes
    assert type(from_view.payload) is bytes
    # The payload is a copy: reusing the receive buffer does not change it.
    buf[:] = bytes(len(buf))
    assert from_view.payload == seg.payload
    assert from_bytearray.payload == seg.payload


def test_payload_parsed_from_a_reused_view_rebuilds_identically() -> None:
    # A segment parsed from a memoryview of a mutable receive buffer owns its payload
    # (a copy: only immutable memory is passed on as a view), so it rebuilds to the
    # same packet after the buffer is reused.
    payload = bytes(range(200)) * 3
    raw = build_tcp(TCPSegment(1, 2, 3, 4, ACK, 5, payload, timestamps=(6, 7)), SRC, DST)
    buf = bytearray(raw)
    parsed = parse_tcp(memoryview(buf))
    buf[:] = bytes(len(buf))
    assert type(parsed.payload) is bytes
    assert build_tcp(parsed, SRC, DST) == raw


# =======================================================================================
# Exact layouts (as Linux lays options out)
# =======================================================================================


def options_of(raw: bytes) -> str:
    return raw[20 : (raw[12] >> 4) * 4].hex(" ", 4)


def test_layout_syn_all_options() -> None:
    seg = TCPSegment(
        1, 2, 3, 0, SYN, 65535, mss=1440, wscale=7, sack_permitted=True,
        timestamps=(0x11223344, 0),
    )  # fmt: skip
    assert options_of(build_tcp(seg, SRC, DST)) == ("020405a0 0402080a 11223344 00000000 01030307")


def test_layout_syn_without_timestamps() -> None:
    seg = TCPSegment(1, 2, 3, 0, SYN, 65535, mss=1220, wscale=14, sack_permitted=True)
    assert options_of(build_tcp(seg, SRC, DST)) == "020404c4 01010402 0103030e"


def test_layout_syn_timestamps_without_sack_permitted() -> None:
    seg = TCPSegment(1, 2, 3, 0, SYN, 65535, mss=536, timestamps=(1, 2))
    assert options_of(build_tcp(seg, SRC, DST)) == "02040218 0101080a 00000001 00000002"


def test_layout_data_timestamps() -> None:
    seg = TCPSegment(1, 2, 3, 4, ACK | PSH, 100, b"x" * 1440, timestamps=(9, 10))
    raw = build_tcp(seg, SRC, DST)
    assert options_of(raw) == "0101080a 00000009 0000000a"
    assert len(raw) == 32 + 1440


def test_layout_no_options() -> None:
    raw = build_tcp(TCPSegment(1, 2, 3, 4, RST, 0), SRC, DST)
    assert len(raw) == 20
    assert raw[12] == 5 << 4


def test_layout_timestamps_and_sack_keeps_three_blocks() -> None:
    blocks = ((10, 20), (30, 40), (50, 60), (70, 80))
    seg = TCPSegment(1, 2, 3, 4, ACK, 100, timestamps=(1, 2), sack_blocks=blocks)
    raw = build_tcp(seg, SRC, DST)
    assert options_of(raw) == (
        "0101080a 00000001 00000002 0101051a 0000000a 00000014 0000001e 00000028 00000032 0000003c"
    )
    assert len(raw) == 60
    assert parse_tcp(raw).sack_blocks == blocks[:3]


def test_layout_sack_without_timestamps_keeps_four_blocks() -> None:
    blocks = ((10, 20), (30, 40), (50, 60), (70, 80), (90, 100))
    seg = TCPSegment(1, 2, 3, 4, ACK, 100, sack_blocks=blocks)
    raw = build_tcp(seg, SRC, DST)
    assert options_of(raw).startswith("01010522 0000000a")
    assert len(raw) == 20 + 4 + 32
    assert parse_tcp(raw).sack_blocks == blocks[:4]


def test_layout_sack_with_no_room_is_dropped() -> None:
    # MSS + SACK-permitted/TS + wscale = 20 bytes: 2 blocks still fit (4 + 16).
    seg = TCPSegment(
        1, 2, 3, 4, SYN | ACK, 100, mss=1440, wscale=7, sack_permitted=True,
        timestamps=(1, 2), sack_blocks=((1, 2), (3, 4), (5, 6)),
    )  # fmt: skip
    raw = build_tcp(seg, SRC, DST)
    assert len(raw) == 60
    assert parse_tcp(raw).sack_blocks == ((1, 2), (3, 4))


def test_build_wraps_sequence_numbers() -> None:
    seg = TCPSegment(1, 2, M32 + 5, -1, ACK, 0, sack_blocks=((M32, -2),), timestamps=(-1, M32))
    parsed = parse_tcp(build_tcp(seg, SRC, DST))
    assert (parsed.seq, parsed.ack) == (5, M32 - 1)
    assert parsed.sack_blocks == ((0, M32 - 2),)
    assert parsed.timestamps == (M32 - 1, 0)


# =======================================================================================
# Build: our own out-of-range values are a ValueError
# =======================================================================================

GOOD = TCPSegment(1, 2, 3, 4, ACK, 5, b"data", timestamps=(1, 2))


@pytest.mark.parametrize(
    "changes",
    [
        {"src_port": 65536},
        {"src_port": -1},
        {"dst_port": 70000},
        {"window": 65536},
        {"window": -1},
        {"urgent": 65536},
        {"flags": 256},
        {"flags": -1},
        {"mss": 65536},
        {"mss": -5},
        {"wscale": 256},
        {"wscale": -1},
        {"mss": 1440, "window": 1 << 20},  # general (non-fast) path too
    ],
)
def test_build_rejects_out_of_range(changes: dict[str, Any]) -> None:
    seg = attrs.evolve(GOOD, **changes)
    with pytest.raises(ValueError, match=next(iter(changes)) if len(changes) == 1 else None):
        build_tcp(seg, SRC, DST)
    with pytest.raises(ValueError):
        build_tcp_header(seg, SRC, DST)


@pytest.mark.parametrize("src, dst", [(SRC[:15], DST), (SRC, DST + b"\0"), (b"", b"")])
def test_build_rejects_bad_addresses(src: bytes, dst: bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        build_tcp(GOOD, src, dst)


def test_build_accepts_extremes() -> None:
    seg = TCPSegment(
        65535, 0, M32 - 1, 0, 0xFF, 65535, b"", 65535, mss=65535, wscale=255,
        sack_permitted=True, timestamps=(M32 - 1, M32 - 1),
    )  # fmt: skip
    assert parse_tcp(build_tcp(seg, SRC, DST)) == seg


# =======================================================================================
# Checksum
# =======================================================================================


@settings(max_examples=300)
@given(segments, st.data())
def test_checksum_detects_any_single_bit_flip(seg: TCPSegment, data: st.DataObject) -> None:
    raw = bytearray(build_tcp(seg, SRC, DST))
    assert verify_tcp_checksum(raw, SRC, DST)
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 0x80 >> (bit % 8)
    assert not verify_tcp_checksum(raw, SRC, DST)
    assert ref_sum(SRC, DST, bytes(raw)) != 0xFFFF


def test_checksum_covers_pseudo_header() -> None:
    raw = build_tcp(GOOD, SRC, DST)
    assert verify_tcp_checksum(raw, SRC, DST)
    assert not verify_tcp_checksum(raw, DST[:15] + b"\x03", DST)
    assert not verify_tcp_checksum(raw, SRC, SRC)
    # Same bytes, one byte longer payload (zero): the pseudo-header length differs.
    assert not verify_tcp_checksum(raw + b"\0\0", SRC, DST)


@pytest.mark.parametrize("payload", [b"", b"\0", b"\0" * 6, b"\x12\x34", b"\xff" * 5], ids=repr)
@pytest.mark.parametrize("timestamps", [None, (7, 8)])
def test_checksum_of_negative_zero_sum_is_zero(
    payload: bytes, timestamps: tuple[int, int] | None
) -> None:
    # Choose the window so that everything else sums to 0xFFFF ("negative zero"):
    # the checksum is then 0, which TCP sends as is (RFC 1071; only UDP maps 0).
    seg = TCPSegment(40000, 443, 1, 2, ACK, 0, payload, timestamps=timestamps)
    seg.window = struct.unpack_from("!H", build_tcp(seg, SRC, DST), 16)[0]
    raw = build_tcp(seg, SRC, DST)
    assert raw[16:18] == b"\0\0"
    assert ref_sum(SRC, DST, raw) == 0xFFFF
    assert verify_tcp_checksum(raw, SRC, DST)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1439, 1440, 65475])
def test_checksum_odd_and_large_payloads(size: int) -> None:
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    raw = build_tcp(TCPSegment(1, 2, 3, 4, ACK, 5, payload, timestamps=(1, 2)), SRC, DST)
    assert ref_sum(SRC, DST, raw) == 0xFFFF


# =======================================================================================
# Parsing hand-made option lists (the general option walk)
# =======================================================================================

UNKNOWN_KINDS = st.integers(6, 255).filter(lambda k: k != 8)


@st.composite
def option_lists(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A list of (name, value) options whose encoding fits in 40 bytes."""
    choices = st.one_of(
        st.tuples(st.just("NOP"), st.none()),
        st.tuples(st.just("MSS"), u16),
        st.tuples(st.just("WS"), u8),
        st.tuples(st.just("SACKOK"), st.none()),
        st.tuples(st.just("SACK"), st.lists(st.tuples(u32, u32), min_size=1, max_size=4)),
        st.tuples(st.just("TS"), st.tuples(u32, u32)),
        st.tuples(st.just("UNKNOWN"), st.tuples(UNKNOWN_KINDS, st.binary(max_size=8))),
    )
    options = draw(st.lists(choices, max_size=8))
    while len(encode_options(options)) > 40:  # keep the longest prefix that fits
        options.pop()
    return options


def encode_options(options: list[tuple[str, Any]]) -> bytes:
    out = b""
    for name, value in options:
        if name == "NOP":
            out += b"\x01"
        elif name == "MSS":
            out += struct.pack("!BBH", 2, 4, value)
        elif name == "WS":
            out += bytes((3, 3, value))
        elif name == "SACKOK":
            out += b"\x04\x02"
        elif name == "SACK":
            out += bytes((5, 2 + 8 * len(value)))
            out += b"".join(struct.pack("!II", *block) for block in value)
        elif name == "TS":
            out += struct.pack("!BBII", 8, 10, *value)
        else:
            kind, body = value
            out += bytes((kind, 2 + len(body))) + body
    return out


def expected_fields(options: list[tuple[str, Any]]) -> dict[str, Any]:
    """Fields parse_tcp must report: the last occurrence of each option wins."""
    fields: dict[str, Any] = {
        "mss": None, "wscale": None, "sack_permitted": False, "sack_blocks": (),
        "timestamps": None,
    }  # fmt: skip
    for name, value in options:
        if name == "MSS":
            fields["mss"] = value
        elif name == "WS":
            fields["wscale"] = value
        elif name == "SACKOK":
            fields["sack_permitted"] = True
        elif name == "SACK":
            fields["sack_blocks"] = tuple(value)
        elif name == "TS":
            fields["timestamps"] = value
    return fields


@settings(max_examples=500)
@given(option_lists(), st.binary(max_size=40), st.booleans(), st.binary(max_size=8))
def test_parse_any_option_list(
    options: list[tuple[str, Any]], payload: bytes, end_with_eol: bool, junk: bytes
) -> None:
    encoded = encode_options(options)
    if end_with_eol and len(encoded) < 40:
        # After End of Option List anything may follow; it must be ignored.
        encoded += b"\x00" + junk[: 39 - len(encoded)]
    raw = raw_segment(encoded, payload)
    seg = parse_tcp(raw)
    assert attrs.asdict(seg, recurse=False) == {
        "src_port": 1234, "dst_port": 80, "seq": 1000, "ack": 2000, "flags": ACK,
        "window": 4096, "payload": payload, "urgent": 0, "ecn": 0, **expected_fields(options),
    }  # fmt: skip


def test_fast_and_general_timestamp_paths_agree() -> None:
    fast = raw_segment(b"\x01\x01\x08\x0a" + struct.pack("!II", 5, 6), b"abc")
    general = raw_segment(struct.pack("!BBII", 8, 10, 5, 6) + b"\x01\x01", b"abc")
    assert len(fast) == len(general)
    assert parse_tcp(fast) == parse_tcp(general)
    assert parse_tcp(fast).timestamps == (5, 6)


def test_fast_timestamp_sack_path_rejects_bad_sack_length() -> None:
    # NOP NOP TS NOP NOP SACK(len 14): header 48 bytes, a length no SACK can have.
    opts = b"\x01\x01\x08\x0a" + bytes(8) + b"\x01\x01\x05\x0e" + bytes(12)
    with pytest.raises(ParseError) as info:
        parse_tcp(raw_segment(opts))
    assert info.value.reason == "tcp_bad_option_length"


def test_fast_timestamp_sack_path_with_trailing_option() -> None:
    # NOP NOP TS NOP NOP SACK(1) then MSS: the SACK does not fill the header.
    opts = (
        b"\x01\x01\x08\x0a" + struct.pack("!II", 1, 2) + b"\x01\x01\x05\x0a"
        + struct.pack("!II", 3, 4) + b"\x02\x04\x05\xb4"
    )  # fmt: skip
    seg = parse_tcp(raw_segment(opts))
    assert (seg.timestamps, seg.sack_blocks, seg.mss) == ((1, 2), ((3, 4),), 1460)


def test_fields_of_a_known_header() -> None:
    raw = bytes.fromhex(
        "d431 0050 01020304 a0b0c0d0 50 3f ffee abcd 0102"
    ) + b"payload"  # fmt: skip
    seg = parse_tcp(raw)
    assert seg == TCPSegment(
        0xD431, 80, 0x01020304, 0xA0B0C0D0, URG | ACK | PSH | RST | SYN | FIN, 0xFFEE,
        b"payload", 0x0102,
    )  # fmt: skip


def test_reserved_bits_are_ignored() -> None:
    raw = bytearray(raw_segment())
    raw[12] |= 0x0F
    assert parse_tcp(raw) == parse_tcp(raw_segment())


# =======================================================================================
# Malformed input: one reason each
# =======================================================================================


@pytest.mark.parametrize(
    "raw, reason",
    [
        pytest.param(b"", "tcp_truncated", id="empty"),
        pytest.param(raw_segment()[:19], "tcp_truncated", id="19-bytes"),
        pytest.param(raw_segment(data_offset=4), "tcp_bad_data_offset", id="doff-4"),
        pytest.param(raw_segment(data_offset=0), "tcp_bad_data_offset", id="doff-0"),
        pytest.param(raw_segment(data_offset=6), "tcp_truncated", id="doff-past-packet"),
        pytest.param(
            raw_segment(b"\x01\x01\x08\x0a" + bytes(8))[:31], "tcp_truncated", id="ts-cut-short"
        ),
        pytest.param(
            raw_segment(data_offset=15, payload=bytes(39)), "tcp_truncated", id="doff-15"
        ),
        pytest.param(raw_segment(b"\x99\x00"), "tcp_bad_option_length", id="length-0"),
        pytest.param(raw_segment(b"\x99\x01"), "tcp_bad_option_length", id="length-1"),
        pytest.param(raw_segment(b"\x02\x00\x05\xb4"), "tcp_bad_option_length", id="mss-len-0"),
        pytest.param(raw_segment(b"\x01\x01\x01\x02"), "tcp_option_overrun", id="no-length"),
        pytest.param(raw_segment(b"\x01\x01\x01\x99"), "tcp_option_overrun", id="no-len-unk"),
        pytest.param(raw_segment(b"\x08\x0a\x00\x00"), "tcp_option_overrun", id="ts-overrun"),
        pytest.param(
            raw_segment(b"\x99\x05\x00\x00", payload=b"\x00" * 8),
            "tcp_option_overrun",
            id="overrun-into-payload",
        ),
        pytest.param(raw_segment(b"\x02\x03\x05"), "tcp_bad_option_length", id="mss-len-3"),
        pytest.param(raw_segment(b"\x02\x05\x05\xb4\x00"), "tcp_bad_option_length", id="mss-5"),
        pytest.param(raw_segment(b"\x03\x04\x07\x00"), "tcp_bad_option_length", id="ws-len-4"),
        pytest.param(raw_segment(b"\x03\x02"), "tcp_bad_option_length", id="ws-len-2"),
        pytest.param(raw_segment(b"\x04\x03\x00"), "tcp_bad_option_length", id="sackok-len-3"),
        pytest.param(raw_segment(b"\x08\x08" + bytes(6)), "tcp_bad_option_length", id="ts-len-8"),
        pytest.param(
            raw_segment(b"\x08\x0c" + bytes(10)), "tcp_bad_option_length", id="ts-len-12"
        ),
        pytest.param(raw_segment(b"\x05\x02"), "tcp_bad_option_length", id="sack-no-blocks"),
        pytest.param(raw_segment(b"\x05\x09" + bytes(7)), "tcp_bad_option_length", id="sack-9"),
        pytest.param(raw_segment(b"\x05\x0c" + bytes(10)), "tcp_bad_option_length", id="sack-12"),
        pytest.param(
            raw_segment(b"\x05\x26" + bytes(36)), "tcp_bad_option_length", id="sack-len-38"
        ),
        pytest.param(
            raw_segment(b"\x02\x04\x05\xb4\x99\x01"), "tcp_bad_option_length", id="after-mss"
        ),
    ],
)
def test_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_tcp(raw)
    assert info.value.reason == reason
    assert reason in PARSE_ERROR_REASONS


def test_eol_ends_the_walk() -> None:
    # After EOL even an invalid option is ignored.
    seg = parse_tcp(raw_segment(b"\x02\x04\x05\xb4\x00\x99\x00"))
    assert seg.mss == 1460


def test_unknown_options_are_skipped() -> None:
    seg = parse_tcp(raw_segment(b"\x99\x06abcd\x1e\x02\x03\x03\x07"))
    assert seg.wscale == 7
    assert seg.mss is None


# =======================================================================================
# Garbage: only ParseError, ever
# =======================================================================================


def check_garbage(raw: bytes) -> None:
    try:
        seg = parse_tcp(raw)
    except ParseError as exc:
        assert exc.reason in PARSE_ERROR_REASONS
        return
    header_len = (raw[12] >> 4) * 4
    assert seg.payload == raw[header_len:]
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == struct.unpack_from("!HHII", raw)
    assert seg.flags == raw[13]


@settings(max_examples=500)
@given(st.binary(max_size=80))
@example(b"")
def test_random_bytes(raw: bytes) -> None:
    check_garbage(raw)


@settings(max_examples=500)
@given(st.integers(0, 15), st.binary(max_size=40), st.binary(max_size=8))
def test_random_options(data_offset: int, options: bytes, payload: bytes) -> None:
    raw = raw_segment(options, payload, data_offset=data_offset)
    check_garbage(raw)
    check_garbage(raw_segment(options, payload))  # with a consistent data offset


@settings(max_examples=300)
@given(segments, st.lists(st.tuples(st.integers(0, 40), u8), min_size=1, max_size=4))
def test_mutated_options(seg: TCPSegment, mutations: list[tuple[int, int]]) -> None:
    raw = bytearray(build_tcp(seg, SRC, DST))
    header_len = (raw[12] >> 4) * 4
    for offset, value in mutations:
        raw[min(20 + offset, header_len - 1) if header_len > 20 else 12] = value
    check_garbage(bytes(raw))


TRUNCATION_CASES = [
    TCPSegment(1, 2, 3, 4, SYN, 5, mss=1440, wscale=7, sack_permitted=True, timestamps=(1, 2)),
    TCPSegment(1, 2, 3, 4, ACK, 5, b"0123456789", timestamps=(1, 2), sack_blocks=((5, 6),)),
    TCPSegment(1, 2, 3, 4, ACK | FIN, 5, b"abc", sack_blocks=((5, 6), (7, 8))),
    TCPSegment(1, 2, 3, 4, ACK, 5, b"xyz"),
]


@pytest.mark.parametrize("seg", TRUNCATION_CASES)
def test_every_truncation(seg: TCPSegment) -> None:
    raw = build_tcp(seg, SRC, DST)
    header_len = len(raw) - len(seg.payload)
    for size in range(len(raw) + 1):
        if size < header_len:
            with pytest.raises(ParseError) as info:
                parse_tcp(raw[:size])
            assert info.value.reason == "tcp_truncated"
        else:
            assert parse_tcp(raw[:size]) == attrs.evolve(
                seg, payload=seg.payload[: size - header_len]
            )


def test_segment_properties() -> None:
    seg = TCPSegment(1, 2, 3, 4, SYN | FIN | ACK | RST, 5, b"abc")
    assert (seg.syn, seg.fin, seg.has_ack, seg.rst, seg.seg_len) == (True, True, True, True, 5)
    seg = TCPSegment(1, 2, 3, 4, ACK, 5, b"abc")
    assert (seg.syn, seg.fin, seg.rst, seg.seg_len) == (False, False, False, 3)


# =======================================================================================
# Cross-check against scapy
# =======================================================================================

scapy_inet6 = pytest.importorskip("scapy.layers.inet6", reason="scapy is not installed")
scapy_inet = pytest.importorskip("scapy.layers.inet")
from scapy.packet import Raw  # noqa: E402

from trio_tcp6.wire.ipv6 import build_ipv6  # noqa: E402

IPv6 = scapy_inet6.IPv6
TCP = scapy_inet.TCP
SRC_TEXT = "2001:db8::1"
DST_TEXT = "2001:db8::2"


def scapy_options(seg: TCPSegment) -> list[tuple[str, Any]]:
    """The option list scapy must decode from what build_tcp sends for ``seg``
    (already normalised): Linux's layout spelled in scapy's names."""
    out: list[tuple[str, Any]] = []
    if seg.mss is not None:
        out.append(("MSS", seg.mss))
    if seg.timestamps is not None:
        if seg.sack_permitted:
            out.append(("SAckOK", b""))
        else:
            out += [("NOP", None), ("NOP", None)]
        out.append(("Timestamp", seg.timestamps))
    elif seg.sack_permitted:
        out += [("NOP", None), ("NOP", None), ("SAckOK", b"")]
    if seg.wscale is not None:
        out += [("NOP", None), ("WScale", seg.wscale)]
    if seg.sack_blocks:
        edges = tuple(edge for block in seg.sack_blocks for edge in block)
        out += [("NOP", None), ("NOP", None), ("SAck", edges)]
    return out


@settings(max_examples=250)
@given(segments)
def test_scapy_decodes_what_we_build(seg: TCPSegment) -> None:
    raw = build_tcp(seg, SRC, DST)
    expected = normalised(seg)
    packet = IPv6(build_ipv6(SRC, DST, 6, raw))
    tcp = packet[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (
        expected.src_port, expected.dst_port, expected.seq, expected.ack,
    )  # fmt: skip
    assert int(tcp.flags) == expected.flags
    assert (tcp.window, tcp.urgptr, tcp.reserved) == (expected.window, expected.urgent, 0)
    assert tcp.dataofs * 4 == len(raw) - len(seg.payload)
    assert tcp.options == scapy_options(expected)
    assert bytes(tcp.payload) == seg.payload
    ours = struct.unpack_from("!H", raw, 16)[0]
    assert tcp.chksum == ours
    # scapy recomputes the checksum (and re-encodes everything) to the same bytes.
    del tcp.chksum
    rebuilt = bytes(packet)
    assert IPv6(rebuilt)[TCP].chksum == ours
    assert rebuilt[40:] == raw


@st.composite
def scapy_segments(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[Any, Any]], bytes]:
    fields = {
        "sport": draw(u16), "dport": draw(u16), "seq": draw(u32), "ack": draw(u32),
        "flags": draw(u8), "window": draw(u16), "urgptr": draw(u16),
    }  # fmt: skip
    choices = st.one_of(
        st.just(("NOP", None)),
        u16.map(lambda v: ("MSS", v)),
        u8.map(lambda v: ("WScale", v)),
        st.just(("SAckOK", b"")),
        st.lists(u32, min_size=2, max_size=8)
        .filter(lambda edges: len(edges) % 2 == 0)
        .map(lambda edges: ("SAck", tuple(edges))),
        st.tuples(u32, u32).map(lambda ts: ("Timestamp", ts)),
        # Unassigned kinds that scapy passes through as raw bytes.
        st.tuples(st.integers(100, 200), st.binary(max_size=6)),
    )
    options = draw(st.lists(choices, max_size=8))
    size = sum(option_size(option) for option in options)
    assume(size <= 40)
    return fields, options, draw(st.binary(max_size=200))


def option_size(option: tuple[Any, Any]) -> int:
    name, value = option
    sizes = {"NOP": 1, "MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10}
    if name == "SAck":
        return 2 + 4 * len(value)
    if isinstance(name, int):
        return 2 + len(value)
    return sizes[name]


@settings(max_examples=250)
@given(scapy_segments())
def test_we_parse_what_scapy_builds(
    case: tuple[dict[str, Any], list[tuple[Any, Any]], bytes],
) -> None:
    fields, options, payload = case
    packet = IPv6(src=SRC_TEXT, dst=DST_TEXT) / TCP(options=options, **fields) / Raw(payload)
    raw = bytes(packet)[40:]
    seg = parse_tcp(raw)
    assert verify_tcp_checksum(raw, SRC, DST)
    expected_options: dict[str, Any] = {
        "mss": None, "wscale": None, "sack_permitted": False, "sack_blocks": (),
        "timestamps": None,
    }  # fmt: skip
    for name, value in options:  # the last occurrence wins
        if name == "MSS":
            expected_options["mss"] = value
        elif name == "WScale":
            expected_options["wscale"] = value
        elif name == "SAckOK":
            expected_options["sack_permitted"] = True
        elif name == "SAck":
            expected_options["sack_blocks"] = tuple(zip(value[0::2], value[1::2], strict=True))
        elif name == "Timestamp":
            expected_options["timestamps"] = value
    assert seg == TCPSegment(
        fields["sport"], fields["dport"], fields["seq"], fields["ack"], fields["flags"],
        fields["window"], payload, fields["urgptr"], **expected_options,
    )  # fmt: skip


def test_parse_memoryview_of_other_formats() -> None:
    raw = build_tcp(TCPSegment(1, 2, 3, 4, ACK, 5, b"abcd", timestamps=(6, 7)), SRC, DST)
    expected = parse_tcp(raw)
    assert parse_tcp(memoryview(raw).cast("H")) == expected
    assert parse_tcp(memoryview(raw).cast("b")) == expected
    assert parse_tcp(memoryview(raw).cast("B", (2, len(raw) // 2))) == expected
    assert parse_tcp(memoryview(raw)[::1]) == expected


def test_segment_value_semantics() -> None:
    """A segment is a record compared by value, built and changed through attrs'
    field list; the compiled build's native class keeps all of this."""
    seg = TCPSegment.data(1, 2, 100, 200, ACK | PSH, 512, b"hi", 0, ((5, 9),), (7, 8))
    names = [f.name for f in attrs.fields(TCPSegment)]
    assert names[:6] == ["src_port", "dst_port", "seq", "ack", "flags", "window"]
    assert len(names) == 14
    twin = TCPSegment(**{n: getattr(seg, n) for n in names})
    assert twin == seg
    assert (twin != seg) is False
    # A different value for each field, of the field's type (the compiled build checks).
    changed: dict[str, object] = {"payload": b"x", "sack_permitted": True}
    changed |= {"sack_blocks": (), "timestamps": (7, 9)}
    for name in names:
        other = attrs.evolve(seg, **{name: changed.get(name, 3)})
        assert getattr(other, name) != getattr(seg, name), name
        assert other != seg, name
    assert seg != (1, 2, 100)
    assert repr(seg) == (
        "TCPSegment(src_port=1, dst_port=2, seq=100, ack=200, flags=24, window=512, "
        "payload=b'hi', urgent=0, mss=None, wscale=None, sack_permitted=False, "
        "sack_blocks=((5, 9),), timestamps=(7, 8), ecn=0)"
    )
    with pytest.raises(TypeError):
        hash(seg)
