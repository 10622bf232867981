"""DropTail: the limit in packets or in bytes, counted drops, sojourn times; and a
cable's queue in front of its serializer (times fed by hand, no trio)."""

from __future__ import annotations

import pytest

from trio_tcp6.sim import DropTail, Queue


def test_exactly_one_limit() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DropTail()
    with pytest.raises(ValueError, match="exactly one"):
        DropTail(packets=3, bytes=3000)
    with pytest.raises(ValueError):
        DropTail(packets=0)
    assert isinstance(DropTail(packets=1), Queue)


def test_packet_limit_drops_the_arrival_at_the_boundary() -> None:
    q = DropTail(packets=3)
    assert [q.enqueue(bytes([i]) * 100, 0.0) for i in range(5)] == [True] * 3 + [False] * 2
    assert len(q) == 3 and q.bytes == 300
    assert q.dequeue(0.5) == bytes([0]) * 100  # FIFO; the drops were the newest
    assert q.enqueue(b"y" * 100, 0.5)  # room for exactly one again
    assert not q.enqueue(b"z", 0.5)
    s = q.stats()
    assert s["drops"] == 3 and s["enqueued"] == 4 and s["dequeued"] == 1 and s["marks"] == 0


def test_byte_limit_counts_bytes_not_packets() -> None:
    q = DropTail(bytes=1000)
    assert q.enqueue(b"a" * 600, 0.0)
    assert q.enqueue(b"b" * 400, 0.0)  # exactly full: 1000 bytes
    assert not q.enqueue(b"c", 0.0)
    assert q.dequeue(0.0) == b"a" * 600
    assert q.enqueue(b"d" * 600, 0.0)
    assert not q.enqueue(b"e", 0.0)
    assert q.bytes == 1000 and len(q) == 2
    assert not DropTail(bytes=100).enqueue(b"x" * 101, 0.0)  # larger than the limit


def test_sojourn_is_dequeue_minus_enqueue_time() -> None:
    q = DropTail(packets=10)
    q.enqueue(b"1", 1.0)
    q.enqueue(b"2", 1.5)
    assert q.dequeue(2.0) == b"1"
    assert q.stats()["sojourn_last"] == 1.0
    assert q.dequeue(2.25) == b"2"
    s = q.stats()
    assert s["sojourn_last"] == 0.75 and s["sojourn_max"] == 1.0
    assert s["sojourn_mean"] == 0.875
    assert q.dequeue(3.0) is None and len(q) == 0 and q.bytes == 0
