"""Attacks on the engine by a hostile peer or an off-path spoofer (issue: hardening).

Two engines back to back in virtual time through a fixed-delay path; the attacker
injects segments (or Packet Too Big reports) into one of them. Every test drives the
engine only through its public calls (``on_segment``, ``on_timer``, ``send``,
``receive``, ``set_path_mtu``) and looks only at what it emits, its events and its
``stats`` counters, so it survives any reorganisation of the engine's code.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable

import attrs
import pytest

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import EventKind, State
from trio_tcp6.wire.tcp import ACK, TCPSegment

MASK = 0xFFFFFFFF


class Pair:
    """Client ``a`` (active open) and server ``b`` joined by a path of ``delay``
    seconds each way; ``a`` sends ``data`` to ``b``, which reads at once.
    ``mtu`` (if set) drops larger packets on the way from ``a`` to ``b`` (the
    runtime would then call ``set_path_mtu``; the attack tests do that themselves)."""

    def __init__(
        self, cfg: TCPConfig, data: bytes = b"", *, delay: float = 0.005, mss: int = 1440
    ) -> None:
        self.cfg = cfg
        self.delay = delay
        self.mss = mss
        self.now = 0.0
        self.heap: list[tuple[float, int, int, TCPSegment]] = []
        self.n = 0
        self.sent = [0, 0]  # segments emitted by a, by b
        self.stats: list[Counter[str]] = [Counter(), Counter()]
        self.events: list[list[EventKind]] = [[], []]
        self.received = bytearray()
        self.data = data
        self.written = 0
        self.mtu: int | None = None
        self.conns: list[Connection | None] = [
            Connection.connect(
                cfg,
                local_port=40000,
                remote_port=80,
                iss=1000,
                mss=mss,
                now=0.0,
                stats=self.stats[0],
                ts_offset=7,
            ),
            None,
        ]
        self.pump()

    @property
    def a(self) -> Connection:
        c = self.conns[0]
        assert c is not None
        return c

    @property
    def b(self) -> Connection:
        c = self.conns[1]
        assert c is not None
        return c

    def deliver(self, dst: int, seg: TCPSegment) -> None:
        """``seg`` arrives at endpoint ``dst`` now (also used by the attacker)."""
        conn = self.conns[dst]
        if conn is None:
            if seg.syn and not seg.has_ack:
                self.conns[1] = Connection.accept(
                    self.cfg, seg, iss=5000, mss=self.mss, now=self.now, stats=self.stats[1]
                )
        else:
            conn.on_segment(seg, self.now)
        self.pump()

    def pump(self) -> None:
        """Drain both ends: move data, queue emitted segments on the path."""
        for i, conn in enumerate(self.conns):
            if conn is None:
                continue
            if i == 0 and self.written < len(self.data) and conn.state is State.ESTABLISHED:
                self.written += conn.send(memoryview(self.data)[self.written :], self.now)
            if i == 1:
                while chunk := conn.receive(1 << 20, self.now):
                    self.received += chunk
            for seg in conn.take_segments():
                self.sent[i] += 1
                if i == 0 and self.mtu is not None and len(seg.payload) + 60 > self.mtu:
                    continue  # dropped by the router that reports the smaller MTU
                self.n += 1
                heapq.heappush(self.heap, (self.now + self.delay, self.n, 1 - i, seg))
            self.events[i] += [e.kind for e in conn.take_events()]

    def run_until(self, t_end: float, tick: Callable[[float], None] | None = None) -> None:
        """Advance virtual time to ``t_end``; ``tick(now)`` is called at every step
        (the attacker's hook)."""
        while True:
            t = t_end
            if self.heap:
                t = min(t, self.heap[0][0])
            for conn in self.conns:
                if conn is not None and conn.next_deadline is not None:
                    t = min(t, conn.next_deadline)
            if tick is not None:
                t = min(t, getattr(tick, "next_at", t))
            if t >= t_end:
                self.now = t_end
                return
            self.now = t
            if tick is not None and getattr(tick, "next_at", None) == t:
                tick(t)
                self.pump()
                continue
            if self.heap and self.heap[0][0] <= t:
                _, _, dst, seg = heapq.heappop(self.heap)
                self.deliver(dst, seg)
                continue
            for conn in self.conns:
                deadline = None if conn is None else conn.next_deadline
                if conn is not None and deadline is not None and deadline <= t:
                    conn.on_timer(t)
            self.pump()


class Periodic:
    """An attacker's clock: calls ``action(now)`` every ``period`` from ``start``."""

    def __init__(
        self, start: float, period: float, action: Callable[[float], None], count: int = -1
    ) -> None:
        self.next_at = start
        self.period = period
        self.action = action
        self.left = count

    def __call__(self, now: float) -> None:
        self.action(now)
        self.left -= 1
        self.next_at = now + self.period if self.left != 0 else float("inf")


def from_a(pair: Pair, seq: int, ack: int, payload: bytes = b"") -> TCPSegment:
    """A segment claiming to come from ``a`` (spoofed), addressed to ``b``."""
    ts = (int(pair.now * 1000) + 7, pair.b.ts_recent) if pair.b.ts_ok else None
    return TCPSegment(40000, 80, seq & MASK, ack & MASK, ACK, 65535, payload, timestamps=ts)


# -- ACK loops (Linux tcp_invalid_ratelimit / tcp_oow_rate_limited) ----------------------
@pytest.mark.parametrize("options", [{}, {"timestamps": False, "sack": False}])
def test_ack_loop_after_desynchronisation_is_bounded(options: dict[str, object]) -> None:
    """One injected data segment desynchronises the pair (b's RCV.NXT passes a's
    SND.NXT): a answers b's ACKs as ACKs of unsent data, b answers a's as out of
    window. Without a rate limit the two ping-pong forever (one exchange per RTT,
    2000 each way in 20 s here); with one such ACK per 0.5 s per connection the
    exchange stays bounded (here it stops at once)."""
    pair = Pair(TCPConfig(**options))  # type: ignore[arg-type]
    pair.run_until(1.0)
    assert pair.a.state is State.ESTABLISHED and pair.b.state is State.ESTABLISHED
    before = list(pair.sent)
    pair.deliver(1, from_a(pair, pair.a.snd_nxt, pair.b.snd_nxt, b"x" * 100))
    pair.run_until(21.0)
    a_sent, b_sent = pair.sent[0] - before[0], pair.sent[1] - before[1]
    # 20 s / 0.5 s = 40 answers each at most, plus the first exchange.
    assert a_sent <= 42 and b_sent <= 42, (a_sent, b_sent)
    # In fact the loop dies: the answer that falls inside the period is skipped.
    assert pair.stats[0]["acks_ratelimited"] + pair.stats[1]["acks_ratelimited"] > 0


@pytest.mark.parametrize("payload", [b"", b"z" * 100], ids=["pure-ack", "data"])
def test_spoofed_out_of_window_flood_causes_no_fast_retransmit(payload: bytes) -> None:
    """An off-path attacker sprays b with segments that claim to be from a, with a
    sequence number far outside b's window. Each one made b send a duplicate ACK to
    a; three in a row made the non-SACK sender a enter fast recovery and halve its
    window (no segment was lost). Rate-limited, they cause none."""
    cfg = TCPConfig(sack=False, timestamps=False)
    pair = Pair(cfg, b"d" * 3_000_000, delay=0.01)
    pair.run_until(0.5)

    def spray(now: float) -> None:
        for _ in range(3):
            pair.deliver(1, from_a(pair, pair.b.rcv_nxt + 0x40000000, pair.b.snd_nxt, payload))

    pair.run_until(6.0, Periodic(0.5, 0.005, spray))
    assert bytes(pair.received) == pair.data
    assert pair.stats[0]["fast_recovery"] == 0
    assert pair.stats[0]["retransmits"] == 0
    assert pair.stats[1]["drop_unacceptable"] >= 1000
    assert pair.stats[1]["acks_ratelimited"] >= 1000


def test_connection_keeps_working_under_the_rate_limit() -> None:
    """The limit only touches ACKs that answer unacceptable segments: a clean bulk
    transfer is unaffected (no ACK skipped)."""
    pair = Pair(TCPConfig(), b"q" * 500_000)
    pair.run_until(5.0)
    assert bytes(pair.received) == pair.data
    assert pair.stats[0]["acks_ratelimited"] == 0 and pair.stats[1]["acks_ratelimited"] == 0


def test_invalid_ack_ratelimit_can_be_disabled() -> None:
    cfg = TCPConfig(invalid_ack_ratelimit=0.0, timestamps=False)
    pair = Pair(cfg)
    pair.run_until(1.0)
    for _ in range(5):
        pair.deliver(1, from_a(pair, pair.b.rcv_nxt + 0x40000000, pair.b.snd_nxt))
    assert pair.stats[1]["drop_unacceptable"] == 5
    assert pair.stats[1]["acks_ratelimited"] == 0
    pair.run_until(1.0 + 2 * pair.delay)
    assert pair.stats[0]["drop_unacceptable"] == 0  # the 5 dupACKs reached a, acceptable


def test_config_rejects_negative_invalid_ack_ratelimit() -> None:
    with pytest.raises(ValueError):
        attrs.evolve(TCPConfig(), invalid_ack_ratelimit=-1.0)


# -- Packet Too Big amplification (Linux tcp_simple_retransmit, RFC 8201 §5.4) ----------
def test_ptb_staircase_does_not_amplify_retransmissions() -> None:
    """An attacker forges valid Packet Too Big reports stepping the path MTU down one
    byte at a time, from 1499 to 1400, one every 10 ms, against a bulk sender (64 KiB
    window, 100 ms RTT). Each used to mark the whole flight lost and split every
    record into MSS + 1 byte, so the retransmissions grew quadratically (28,000
    here). Now only records that no longer fit are resent and the MSS changes at
    most once per max(SRTT, 0.5 s)."""
    cfg = TCPConfig(send_buffer=65536, receive_buffer=65536)
    pair = Pair(cfg, b"p" * 3_000_000, delay=0.05)
    pair.run_until(1.0)
    mtus = iter(range(1499, 1399, -1))

    def ptb(now: float) -> None:
        pair.a.set_path_mtu(next(mtus), now)

    pair.run_until(2.0, Periodic(1.0, 0.01, ptb, count=100))
    stats = pair.stats[0]
    reductions = stats["pmtu_reductions"]
    assert 1 <= reductions <= 1 + int(1.0 / 0.5), reductions
    assert stats["pmtu_ratelimited"] == 100 - reductions
    assert pair.a.info().mss < 1428  # the reports that were honoured took effect
    # Each reduction resends at most the records in flight, cut in two pieces each.
    flight = cfg.send_buffer // 1340 + 1
    assert stats["retransmits"] <= reductions * 2 * flight, stats["retransmits"]
    assert stats["fast_recovery"] == 0 and stats["rto"] == 0
    pair.run_until(20.0)
    assert bytes(pair.received) == pair.data
