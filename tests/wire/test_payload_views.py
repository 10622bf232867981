"""parse_tcp passes long payloads of immutable packets on as views, never copies of
mutable ones (trio_tcp6.wire.tcp.VIEW_MIN)."""

from __future__ import annotations

import pytest

from trio_tcp6.wire.tcp import ACK, VIEW_MIN, TCPSegment, build_tcp, parse_tcp

SRC = bytes(15) + b"\x01"
DST = bytes(15) + b"\x02"


def _segment(n: int, timestamps: tuple[int, int] | None = (7, 9)) -> tuple[bytes, bytes]:
    payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
    seg = TCPSegment(1, 2, 100, 200, ACK, 512, payload, timestamps=timestamps)
    return build_tcp(seg, SRC, DST), payload


@pytest.mark.parametrize("timestamps", [(7, 9), None])
def test_a_long_payload_of_bytes_is_a_view_of_the_packet(
    timestamps: tuple[int, int] | None,
) -> None:
    wire, payload = _segment(VIEW_MIN, timestamps)
    for data in (wire, memoryview(wire), memoryview(b"\0" * 8 + wire)[8:]):
        got = parse_tcp(data).payload
        assert type(got) is memoryview
        assert got.obj is (data if isinstance(data, bytes) else data.obj)
        assert got == payload


def test_a_short_payload_is_copied() -> None:
    wire, payload = _segment(VIEW_MIN - 1)
    got = parse_tcp(wire).payload
    assert type(got) is bytes and got == payload


@pytest.mark.parametrize("wrap", [bytearray, lambda b: memoryview(bytearray(b))])
def test_a_payload_of_a_mutable_buffer_is_copied(wrap: object) -> None:
    wire, payload = _segment(VIEW_MIN * 2)
    data = wrap(wire)  # type: ignore[operator]
    got = parse_tcp(data).payload
    assert type(got) is bytes
    data[40:60] = bytes(20)  # the link reuses its buffer
    assert got == payload


def test_repr_shows_the_bytes_of_a_view() -> None:
    wire, payload = _segment(VIEW_MIN)
    seg = parse_tcp(wire)
    copy = TCPSegment(1, 2, 100, 200, ACK, 512, payload, timestamps=(7, 9))
    assert seg == copy
    assert repr(seg) == repr(copy)
