"""The send buffer hands out long payloads of immutable writes as views (no copy
before the packet is built) and copies everything else; the receive buffer holds a
received view only whole."""

from __future__ import annotations

import sys
from collections.abc import Callable

from trio_tcp6.tcp.recvbuf import ReceiveBuffer
from trio_tcp6.tcp.sendbuf import SendBuffer
from trio_tcp6.wire.tcp import VIEW_MIN


def test_a_long_range_of_one_bytes_write_is_a_view_of_it() -> None:
    data = bytes(range(256)) * 256
    buf = SendBuffer(1 << 20)
    assert buf.append(data) == len(data)
    got = buf.get(1 + 5, VIEW_MIN)
    assert type(got) is memoryview and got.obj is data
    assert got == data[5 : 5 + VIEW_MIN]
    assert buf.get(1, len(data)) is data  # the whole write: itself


def test_a_long_range_of_a_kept_view_is_a_view() -> None:
    data = bytes(range(256)) * 256
    buf = SendBuffer(1 << 20)
    buf.append(memoryview(data)[3:])
    got = buf.get(1 + 10, VIEW_MIN)
    assert type(got) is memoryview and got.obj is data
    assert got == data[13 : 13 + VIEW_MIN]


def test_short_ranges_and_ranges_across_writes_are_copies() -> None:
    a, b = b"a" * 3 * VIEW_MIN, b"b" * 3 * VIEW_MIN
    buf = SendBuffer(1 << 20)
    buf.append(a)
    buf.append(b)
    short = buf.get(1, VIEW_MIN - 1)
    assert type(short) is bytes and short == a[: VIEW_MIN - 1]
    across = buf.get(1 + len(a) - 10, VIEW_MIN)
    assert type(across) is bytes and across == a[-10:] + b[: VIEW_MIN - 10]


def test_a_mutable_write_is_never_shown_as_a_view() -> None:
    data = bytearray(b"x" * 3 * VIEW_MIN)
    buf = SendBuffer(1 << 20)
    buf.append(data)  # (a long one: copied once, into bytes)
    got = buf.get(1, 2 * VIEW_MIN)
    data[:10] = b"y" * 10  # the user's buffer is free again after send_all
    assert got == b"x" * 2 * VIEW_MIN
    assert isinstance(got, bytes) or got.obj is not data


def test_small_writes_gather_in_a_tail_that_is_copied_and_stays_trimmable() -> None:
    buf = SendBuffer(1 << 20)
    for _ in range(2 * VIEW_MIN // 100):
        buf.append(b"z" * 100)  # coalesced into one bytearray tail
    got = buf.get(1, VIEW_MIN)
    assert type(got) is bytes and got == b"z" * VIEW_MIN
    assert buf.drop_to(1 + 10) == 10  # (the tail is trimmed in place: no view holds it)
    buf.append(b"w")
    assert buf.get(buf.end - 2, 2) == b"zw"


def _pinned(packet: bytes, add: Callable[[memoryview], object]) -> bool:
    """Whether the receive buffer still holds ``packet`` after ``add`` was given a
    view of its payload (the view itself dropped)."""
    before = sys.getrefcount(packet)
    add(memoryview(packet)[72:])
    return sys.getrefcount(packet) > before


def test_the_receive_buffer_holds_a_view_whole_and_copies_parts_of_one() -> None:
    payload = bytes(range(256)) * 64  # 16 KiB
    rb = ReceiveBuffer(1)
    assert _pinned(bytes(72) + payload, lambda v: rb.add(1, v))  # held as it came
    # A retransmission overlapping all but its last 100 bytes: the new bytes must not
    # pin the whole packet (the buffer charges them as 100 bytes).
    assert not _pinned(bytes(72) + payload[100:] + bytes(200), lambda v: rb.add(101, v))
    # Out of order, a part left by an overlap with a held range: copied too.
    rb.add(1 + 100_000, memoryview(bytes(72) + payload)[72:])
    left = bytes(72) + bytes(10) + payload
    assert not _pinned(left, lambda v: rb.add(1 + 100_000 - 10, v))
    assert rb.read(len(payload) + 100) == payload + bytes(100)


def test_a_strided_write_is_handed_out_contiguous() -> None:
    # A one-dimensional view with a step is "B"-formatted yet not contiguous: the
    # packet builders (bytes + payload, b"".join) take only contiguous buffers.
    data = bytes(range(256)) * 256
    buf = SendBuffer(1 << 20)
    strided = memoryview(data)[::2]
    assert buf.append(strided) == len(strided)
    got = buf.get(1 + 5, VIEW_MIN)
    assert b"".join((b"h", got)) == b"h" + strided[5 : 5 + VIEW_MIN].tobytes()
    across = SendBuffer(1 << 20)
    across.append(strided)
    across.append(strided)
    assert across.get(1 + len(strided) - 10, 20) == strided[-10:].tobytes() + data[0:20:2]


def test_small_strided_writes_join_the_tail() -> None:
    buf = SendBuffer(1 << 20)
    buf.append(b"a" * 10)
    assert buf.append(memoryview(b"abcdefgh")[::2]) == 4
    assert buf.get(1, 14) == b"a" * 10 + b"aceg"
