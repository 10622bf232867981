"""The send buffer: empty buffers share their (never added to) lists; data stays
each buffer's own, also after it was drained and refilled."""

from __future__ import annotations

from trio_tcp6.tcp.sendbuf import SendBuffer


def test_empty_buffers_do_not_share_data() -> None:
    a = SendBuffer(1 << 16)
    b = SendBuffer(1 << 16)
    assert a.append(b"hello") == 5
    assert (len(a), len(b)) == (5, 0)
    assert b.append(bytes(range(100)) * 30) == 3000  # a chunk of its own (>= 2048)
    assert a.get(1, 5) == b"hello"
    assert b.get(1, 3000) == bytes(range(100)) * 30


def test_drained_buffer_takes_data_again() -> None:
    buf = SendBuffer(1 << 16)
    other = SendBuffer(1 << 16)
    buf.append(b"x" * 3000)
    buf.append(b"abc")
    assert buf.drop_to(1 + 3003) == 3003  # everything acknowledged
    assert (len(buf), buf.end) == (0, 3004)
    buf.append(b"def")
    other.append(b"ghi")
    assert buf.get(3004, 3) == b"def"
    assert other.get(1, 3) == b"ghi"
    assert buf.drop_to(3005) == 1
    assert buf.get(3005, 2) == b"ef"
