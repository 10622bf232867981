"""The SACK fragmentation attack (CVE-2019-11478 class) against one Connection.

A hostile receiver announces the smallest MSS (52-byte segments), lets the sender
fill its window, then freezes the cumulative ACK and sends ACKs carrying three SACK
blocks each: 1-byte blocks inside different segments (the scoreboard used to split a
record at every edge: +6 records per ACK, and resent the pieces as 1-2 byte
segments), or whole segments in a scattered order (RACK used to walk the whole
scoreboard on every ACK). Work is counted, not timed: the lines the TCP engine
executes per attacking ACK, traced.
"""

from __future__ import annotations

import sys
from collections import Counter
from types import FrameType
from typing import Any

import pytest

import trio_tcp6.tcp as tcp_pkg
from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment

M = 0xFFFFFFFF
PEER_ISS = 7000
MSS = 52  # the announced 64 minus the timestamps option
SEGMENTS = 1500
TCP_DIR = tcp_pkg.__path__[0]


class Attack:
    """A sender with ``SEGMENTS`` 52-byte segments in flight and the attacker."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.now = 0.0
        self.conn = c = Connection.connect(
            TCPConfig(delayed_ack=None), local_port=1111, remote_port=80, iss=1000,
            mss=1440, now=0.0, stats=self.stats,
        )  # fmt: skip
        (syn,) = c.take_segments()
        self.ts = 100
        self.tsecr = syn.timestamps[0] if syn.timestamps else 0
        self.window = -(-SEGMENTS * MSS // 128)
        self.now = 0.01
        synack = TCPSegment(
            80, 1111, PEER_ISS, (syn.seq + 1) & M, SYN | ACK, 65535, mss=64, wscale=7,
            sack_permitted=True, timestamps=(self.ts, self.tsecr),
        )  # fmt: skip
        c.on_segment(synack, self.now)
        c.take_segments()
        assert c.mss == MSS
        self.data = c.send(bytes(1 << 20), self.now)
        self.end = 1 + self.data  # offset just past the data
        self.highest = 1
        while True:  # slow start, one 10 ms round trip at a time
            segs = c.take_segments()
            ends = [self.saw(s) for s in segs]
            if not segs or self.highest - self.una > (SEGMENTS - 1) * MSS:
                break
            self.now += 0.01
            for e in ends[1::2] + ends[-1:]:
                c.on_segment(self.ack(e), self.now)
        self.frozen = self.una
        self.retransmissions: list[tuple[int, int]] = []  # (offset, length)

    @property
    def una(self) -> int:
        return (self.conn.snd_una - 1000) & M

    def saw(self, seg: TCPSegment) -> int:
        if seg.timestamps is not None:
            self.tsecr = seg.timestamps[0]
        off = (seg.seq - 1000) & M
        if seg.payload and off < self.highest:
            self.retransmissions.append((off, len(seg.payload)))
        end = off + len(seg.payload)
        self.highest = max(self.highest, end)
        return end

    def ack(self, una: int, blocks: tuple[tuple[int, int], ...] = ()) -> TCPSegment:
        self.ts += 1
        return TCPSegment(
            80, 1111, PEER_ISS + 1, (1000 + una) & M, ACK, self.window,
            sack_blocks=tuple(((1000 + s) & M, (1000 + e) & M) for s, e in blocks),
            timestamps=(self.ts, self.tsecr),
        )  # fmt: skip

    def blocks(self, k: int, whole: bool) -> tuple[tuple[int, int], ...]:
        out = []
        for j in range(3 * k, 3 * k + 3):
            if whole:  # odd segments, scattered: a hole between any two
                s = self.frozen + (2 * (j * 2654435761 % (SEGMENTS // 2)) + 1) * MSS
                out.append((s, s + MSS))
            else:  # 1 byte inside a segment, a different piece every time
                s = self.frozen + (j % SEGMENTS) * MSS + 1 + 2 * (j // SEGMENTS) % MSS
                out.append((s, s + 1))
        return tuple(out)

    def attack_ack(self, k: int, whole: bool) -> None:
        self.now += 10e-6
        c = self.conn
        c.on_segment(self.ack(self.frozen, self.blocks(k, whole)), self.now)
        for s in c.take_segments():
            self.saw(s)
        d = c.next_deadline
        if d is not None and d <= self.now:
            c.on_timer(self.now)
            for s in c.take_segments():
                self.saw(s)

    def records(self) -> int:
        n = self.conn.info().scoreboard_records
        assert isinstance(n, int)
        return n


def traced_lines(fn: Any) -> int:
    """Lines executed in trio_tcp6/tcp/ while ``fn()`` runs (a measure of work)."""
    if not str(sys.modules[Connection.__module__].__file__).endswith(".py"):
        pytest.skip("counts lines the interpreter runs; this build compiled the engine")
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(TCP_DIR) else None

    sys.settrace(global_)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


@pytest.fixture(scope="module")
def byte_attack() -> Attack:
    a = Attack()
    a.before = a.records()  # type: ignore[attr-defined]
    for k in range(SEGMENTS):
        a.attack_ack(k, whole=False)
    return a


def test_one_byte_sacks_do_not_grow_the_scoreboard(byte_attack: Attack) -> None:
    before = byte_attack.before  # type: ignore[attr-defined]
    assert before >= SEGMENTS - 1
    # Every record is still one transmitted segment (the old code: +6 per ACK).
    assert byte_attack.records() <= before + 2
    assert byte_attack.conn.info().sacked == 0  # a part of a segment SACKs nothing


def test_one_byte_sacks_cause_no_small_retransmissions(byte_attack: Attack) -> None:
    for off, n in byte_attack.retransmissions:
        assert n == MSS or off + n == byte_attack.end, (off, n)


@pytest.fixture(scope="module")
def segment_attack() -> Attack:
    a = Attack()
    for k in range(SEGMENTS // 2):
        a.attack_ack(k, whole=True)
    return a


def test_scattered_sacks_retransmit_whole_segments(segment_attack: Attack) -> None:
    a = segment_attack
    assert a.stats["fast_recovery"] == 1 and len(a.retransmissions) > SEGMENTS // 4
    for off, n in a.retransmissions:
        assert n == MSS or off + n == a.end, (off, n)
    assert a.records() <= SEGMENTS + 2


@pytest.mark.parametrize("whole", [True, False])
def test_work_per_attacking_ack_does_not_grow_with_the_scoreboard(whole: bool) -> None:
    """The lines the engine executes per attacking ACK (each ACK SACKing something
    new) stay far below one per record: the old RACK walked every record below the
    highest SACK (~8 lines each) and SACK processing split without limit."""
    a = Attack()
    for k in range(200):
        a.attack_ack(k, whole)
    work = [traced_lines(lambda k=k: a.attack_ack(k, whole)) for k in range(200, 230)]
    assert max(work) < 3000, work  # about 300-400 now; 13,000-21,000 before
