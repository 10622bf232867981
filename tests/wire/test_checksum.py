"""The Internet checksum against a slow word-by-word reference and scapy."""

from __future__ import annotations

import ipaddress
import os
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.utils import checksum as scapy_checksum

from trio_tcp6.wire.checksum import (
    checksum,
    complete_checksum,
    ones_sum,
    pseudo_header_sum,
    transport_checksum,
    verify_transport,
)


def ref_ones_sum(data: bytes) -> int:
    """RFC 1071 by the book: add 16-bit words, fold the carries back in."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ref_pseudo(src: bytes, dst: bytes, length: int, nh: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, nh)


addresses = st.binary(min_size=16, max_size=16)
# Sizes around the chunked path (4096) are covered by the explicit tests below.
payloads = st.binary(max_size=9000)


@settings(max_examples=400)
@given(payloads)
@example(b"")
@example(b"\x00")
@example(b"\xff")
@example(b"\xff" * 2)
@example(b"\xff" * 4097)
@example(b"\x00" * 5000)
@example(b"\xff\xff\x00\x01")
def test_ones_sum_matches_reference(data: bytes) -> None:
    expected = ref_ones_sum(data)
    assert ones_sum(data) == expected
    assert ones_sum(bytearray(data)) == expected
    assert ones_sum(memoryview(data)) == expected
    assert checksum(data) == (~expected & 0xFFFF)


@pytest.mark.parametrize(
    "size", [0, 1, 2, 3, 1439, 1440, 4095, 4096, 4097, 4098, 8191, 8192, 8193, 65535, 65536]
)
@pytest.mark.parametrize("fill", ["random", "ones", "zeros"])
def test_sizes_around_chunk_boundaries(size: int, fill: str) -> None:
    data = {"random": os.urandom(size), "ones": b"\xff" * size, "zeros": bytes(size)}[fill]
    assert ones_sum(data) == ref_ones_sum(data)


def test_negative_zero() -> None:
    # A nonzero multiple of 0xFFFF is 0xFFFF in one's complement; only zeros sum to 0.
    assert ones_sum(b"\xff\xff") == 0xFFFF
    assert ones_sum(b"\x80\x00\x7f\xff") == 0xFFFF
    assert checksum(b"\x80\x00\x7f\xff") == 0
    assert ones_sum(bytes(10)) == 0
    assert checksum(bytes(10)) == 0xFFFF
    assert ones_sum(bytes(10), 0xFFFF) == 0xFFFF


def test_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert checksum(data) == 0x220D


def test_memoryview_of_wider_items() -> None:
    data = os.urandom(64)
    assert ones_sum(memoryview(data).cast("H")) == ref_ones_sum(data)
    big = os.urandom(10000)
    assert ones_sum(memoryview(big).cast("I")) == ref_ones_sum(big)


@settings(max_examples=300)
@given(st.binary(max_size=3000).map(lambda b: b[: len(b) & ~1]), payloads)
def test_partial_sums_combine(head: bytes, tail: bytes) -> None:
    assert ones_sum(tail, ones_sum(head)) == ref_ones_sum(head + tail)


@settings(max_examples=300)
@given(addresses, addresses, st.integers(0, 2**32 - 1), st.integers(0, 255))
def test_pseudo_header_sum(src: bytes, dst: bytes, length: int, nh: int) -> None:
    assert pseudo_header_sum(src, dst, length, nh) == ref_ones_sum(
        ref_pseudo(src, dst, length, nh)
    )


def test_pseudo_header_rejects_bad_addresses() -> None:
    with pytest.raises(ValueError):
        pseudo_header_sum(b"\x00" * 4, b"\x00" * 16, 0, 6)


def _with_checksum(segment: bytes, pos: int, csum: int) -> bytes:
    return segment[:pos] + csum.to_bytes(2, "big") + segment[pos + 2 :]


@settings(max_examples=300)
@given(addresses, addresses, st.sampled_from([6, 58]), st.binary(min_size=20, max_size=2000))
def test_transport_checksum_and_verify(src: bytes, dst: bytes, nh: int, seg: bytes) -> None:
    pos = 16 if nh == 6 else 2
    zeroed = _with_checksum(seg, pos, 0)
    csum = transport_checksum(src, dst, nh, zeroed)
    expected = ~ref_ones_sum(ref_pseudo(src, dst, len(seg), nh) + zeroed) & 0xFFFF
    assert csum == expected
    good = _with_checksum(seg, pos, csum)
    assert verify_transport(src, dst, nh, good)
    assert ref_ones_sum(ref_pseudo(src, dst, len(seg), nh) + good) == 0xFFFF


@settings(max_examples=300)
@given(addresses, addresses, st.binary(min_size=8, max_size=1500), st.data())
def test_any_single_bit_flip_is_detected(
    src: bytes, dst: bytes, seg: bytes, data: st.DataObject
) -> None:
    zeroed = _with_checksum(seg, 2, 0)
    good = _with_checksum(zeroed, 2, transport_checksum(src, dst, 58, zeroed))
    bit = data.draw(st.integers(0, len(good) * 8 - 1))
    bad = bytearray(good)
    bad[bit // 8] ^= 0x80 >> (bit % 8)
    assert verify_transport(src, dst, 58, good)
    assert not verify_transport(src, dst, 58, bad)
    # The pseudo-header is covered too: a different address or protocol fails.
    other = bytes([dst[0] ^ 1]) + dst[1:]
    assert not verify_transport(src, other, 58, good)
    assert not verify_transport(src, dst, 6, good)


@settings(max_examples=200)
@given(payloads)
def test_matches_scapy(data: bytes) -> None:
    assert checksum(data) == scapy_checksum(data)


@settings(max_examples=200)
@given(addresses, addresses, st.binary(min_size=4, max_size=1500))
def test_pseudo_header_matches_scapy(src: bytes, dst: bytes, body: bytes) -> None:
    zeroed = _with_checksum(body, 2, 0)
    ip = IPv6(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)))
    theirs = in6_chksum(58, ip, zeroed)  # type: ignore[no-untyped-call]
    assert transport_checksum(src, dst, 58, zeroed) == theirs


@settings(max_examples=100)
@given(addresses, addresses, st.binary(min_size=4, max_size=1500), st.integers(0, 0xFFFF))
def test_complete_checksum_fills_what_scapy_computes(
    src: bytes, dst: bytes, body: bytes, garbage: int
) -> None:
    """A partial checksum (the folded pseudo-header sum in the field) completed over
    the upper layer at (csum_start, csum_offset) is the full transport checksum."""
    header = IPv6(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)), nh=58)
    zeroed = _with_checksum(body, 2, 0)
    theirs = in6_chksum(58, header, zeroed)  # type: ignore[no-untyped-call]
    partial = _with_checksum(body, 2, pseudo_header_sum(src, dst, len(body), 58))
    fixed = bytes(40) + partial  # the checksum covers only packet[csum_start:]
    done = complete_checksum(fixed, 40, 2)
    assert done[:40] == bytes(40) and done[44:] == body[4:]
    assert int.from_bytes(done[42:44], "big") == theirs
    # Whatever was in the field counts: completing a wrong partial sum is not a fix
    # (0 and 0xFFFF are the same one's-complement value).
    if garbage % 0xFFFF != pseudo_header_sum(src, dst, len(body), 58) % 0xFFFF:
        wrong = complete_checksum(bytes(40) + _with_checksum(body, 2, garbage), 40, 2)
        assert not verify_transport(src, dst, 58, wrong[40:])


def test_complete_checksum_offsets_must_fit() -> None:
    assert len(complete_checksum(bytes(60), 40, 18)) == 60  # field in the last 2 bytes
    with pytest.raises(ValueError, match="beyond 60 bytes"):
        complete_checksum(bytes(60), 40, 19)
    with pytest.raises(ValueError):
        complete_checksum(bytes(50), 40, 16)
    with pytest.raises(ValueError):
        complete_checksum(bytes(10), 11, 0)
