"""A loose guard on the engine's per-segment cost (both ends, 64 KiB segments)."""

from __future__ import annotations

import time

import pytest

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection


def engine_cost_per_segment(mss: int, total: int) -> float:
    cfg = TCPConfig(send_buffer=4 << 20, receive_buffer=4 << 20)
    now = 0.0
    a = Connection.connect(cfg, local_port=1, remote_port=2, iss=0xFFFFF000, mss=mss, now=now)
    b = Connection.accept(cfg, a.take_segments()[0], iss=99, mss=mss, now=now)
    for s in b.take_segments():
        a.on_segment(s, now)
    for s in a.take_segments():
        b.on_segment(s, now)
    chunk = memoryview(bytes(1 << 20))
    sent = received = segments = 0
    t0 = time.perf_counter()
    while received < total:
        now += 0.0001
        while sent < total and a.send_space:
            sent += a.send(chunk[: min(a.send_space, total - sent)], now)
        segs = a.take_segments()
        a.take_events()
        for s in segs:
            b.on_segment(s, now)
        segments += len(segs)
        received += len(b.receive(1 << 30, now))
        deadline = b.next_deadline
        if deadline is not None and deadline <= now:
            b.on_timer(now)
        b.take_events()
        for s in b.take_segments():
            a.on_segment(s, now)
    return (time.perf_counter() - t0) / segments


@pytest.mark.slow
def test_bulk_cost_per_64k_segment() -> None:
    cost = min(engine_cost_per_segment(65000, 64 << 20) for _ in range(3))
    # Typically ~35 µs on a laptop-class CPU; a generous bound against regressions.
    assert cost < 300e-6, f"{cost * 1e6:.0f} µs per segment"
