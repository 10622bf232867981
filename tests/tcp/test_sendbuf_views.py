"""The send buffer hands out long payloads of immutable writes as views (no copy
before the packet is built) and copies everything else."""

from __future__ import annotations

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
