"""ACK loops: a desynchronised pair, and spoofed out-of-window segments.

Two sans-I/O engines back to back in virtual time (5 ms each way for the loop,
10 ms for the flood). Figures:

* segments each end sends in the 20 s after one injected data segment
  desynchronises them (b's RCV.NXT passes a's SND.NXT); without a rate limit
  they ping-pong one exchange per RTT forever;
* fast recoveries of a non-SACK sender while an off-path attacker sprays its peer
  with out-of-window segments claiming to be from it (three every 5 ms for 5.5 s,
  64 KiB windows so the transfer lasts;
  the path loses nothing, so every recovery is the attack's);
* CPU per attacking segment (process time of the victim's ``on_segment``).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import ACK, TCPSegment

MASK = 0xFFFFFFFF


class EnginePair:
    """Client ``a`` sends ``data`` to server ``b`` (which reads at once) over a path
    of ``delay`` seconds each way; ``deliver`` also serves the attacker."""

    def __init__(self, cfg: TCPConfig, data: bytes = b"", *, delay: float = 0.005) -> None:
        self.cfg, self.data, self.delay = cfg, data, delay
        self.now = 0.0
        self.heap: list[tuple[float, int, int, TCPSegment]] = []
        self.n = 0
        self.sent = [0, 0]
        self.stats: list[Counter[str]] = [Counter(), Counter()]
        self.received = bytearray()
        self.written = 0
        a = Connection.connect(
            cfg, local_port=40000, remote_port=80, iss=1000, mss=1440, now=0.0,
            stats=self.stats[0], ts_offset=7,
        )  # fmt: skip
        self.conns: list[Connection | None] = [a, None]
        self.pump()

    @property
    def a(self) -> Connection:
        assert self.conns[0] is not None
        return self.conns[0]

    @property
    def b(self) -> Connection:
        assert self.conns[1] is not None
        return self.conns[1]

    def deliver(self, dst: int, seg: TCPSegment) -> None:
        conn = self.conns[dst]
        if conn is None:
            if seg.syn and not seg.has_ack:
                self.conns[1] = Connection.accept(
                    self.cfg, seg, iss=5000, mss=1440, now=self.now, stats=self.stats[1]
                )
        else:
            conn.on_segment(seg, self.now)
        self.pump()

    def pump(self) -> None:
        for i, conn in enumerate(self.conns):
            if conn is None:
                continue
            if i == 0 and self.written < len(self.data):
                self.written += conn.send(memoryview(self.data)[self.written :], self.now)
            if i == 1:
                while chunk := conn.receive(1 << 20, self.now):
                    self.received += chunk
            for seg in conn.take_segments():
                self.sent[i] += 1
                self.n += 1
                heapq.heappush(self.heap, (self.now + self.delay, self.n, 1 - i, seg))
            conn.take_events()

    def run_until(self, t_end: float, tick: Periodic | None = None) -> None:
        while True:
            t = min([t_end] + ([self.heap[0][0]] if self.heap else []))
            for conn in self.conns:
                if conn is not None and conn.next_deadline is not None:
                    t = min(t, conn.next_deadline)
            if tick is not None:
                t = min(t, tick.next_at)
            if t >= t_end:
                self.now = t_end
                return
            self.now = t
            if tick is not None and tick.next_at == t:
                tick(t)
                self.pump()
            elif self.heap and self.heap[0][0] <= t:
                _, _, dst, seg = heapq.heappop(self.heap)
                self.deliver(dst, seg)
            else:
                for conn in self.conns:
                    deadline = None if conn is None else conn.next_deadline
                    if conn is not None and deadline is not None and deadline <= t:
                        conn.on_timer(t)
                self.pump()


class Periodic:
    """Calls ``action(now)`` every ``period`` from ``start``, ``count`` times."""

    def __init__(
        self, start: float, period: float, action: Callable[[float], None], count: int = -1
    ) -> None:
        self.next_at, self.period, self.action, self.left = start, period, action, count

    def __call__(self, now: float) -> None:
        self.action(now)
        self.left -= 1
        self.next_at = now + self.period if self.left != 0 else float("inf")


def spoofed(pair: EnginePair, seq: int, ack: int, payload: bytes = b"") -> TCPSegment:
    """A segment claiming to come from ``a``, addressed to ``b``."""
    ts = (int(pair.now * 1000) + 7, pair.b.ts_recent) if pair.b.ts_ok else None
    return TCPSegment(40000, 80, seq & MASK, ack & MASK, ACK, 65535, payload, timestamps=ts)


def desync_loop(seconds: float) -> tuple[int, int]:
    pair = EnginePair(TCPConfig())
    pair.run_until(1.0)
    before = list(pair.sent)
    pair.deliver(1, spoofed(pair, pair.a.snd_nxt, pair.b.snd_nxt, b"x" * 100))
    pair.run_until(1.0 + seconds)
    return pair.sent[0] - before[0], pair.sent[1] - before[1]


def oow_flood(seconds: float) -> tuple[int, int, float]:
    cfg = TCPConfig(sack=False, timestamps=False, send_buffer=65536, receive_buffer=65536)
    pair = EnginePair(cfg, b"d" * 20_000_000, delay=0.01)
    pair.run_until(0.5)
    cpu = [0.0, 0]

    def spray(now: float) -> None:
        for _ in range(3):
            seg = spoofed(pair, pair.b.rcv_nxt + 0x40000000, pair.b.snd_nxt)
            t0 = time.process_time()
            pair.b.on_segment(seg, now)
            cpu[0] += time.process_time() - t0
            cpu[1] += 1
        pair.pump()

    pair.run_until(0.5 + seconds, Periodic(0.5, 0.005, spray))
    return pair.stats[0]["fast_recovery"], int(cpu[1]), cpu[0] / max(cpu[1], 1)


def run(quick: bool) -> list[tuple[str, str]]:
    """Figures for the ACK-loop attacks (``quick``: shorter runs, same rates)."""
    secs = 5.0 if quick else 20.0
    a_sent, b_sent = desync_loop(secs)
    recoveries, spoofs, cpu = oow_flood(2.0 if quick else 5.5)
    return [
        (f"ACK loop: segments a->b / b->a in {secs:g} s after desync", f"{a_sent} / {b_sent}"),
        (f"OOW flood: fast recoveries, non-SACK sender ({spoofs} spoofs)", str(recoveries)),
        ("OOW flood: CPU per spoofed segment", f"{cpu * 1e6:.1f} us"),
    ]
