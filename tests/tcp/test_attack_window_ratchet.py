"""The window-ratchet attack (issue 9 item 4) against a real Connection.

The application reads nothing. A peer fills the receive buffer in order but for
2 KiB, then sends 31-byte segments (less than the 32-byte scale unit of the 1 MiB
default buffer), each followed by a one-byte duplicate that forces an ACK. With
windows rounded *up* to the unit from RCV.NXT, every ACK put the right edge back
a unit ahead and the buffer grew past ``receive_buffer`` without bound. Expected
(RFC 7323 §2.3, RFC 9293 §3.8.6.2.2): no ACK offers an edge beyond RCV.NXT plus
the free buffer space, the edge once offered is still honoured (data up to it is
taken), and ``receive_buffer`` caps the bytes held.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment

PEER_ISS = 7000
ISS = 3000
STREAM = bytes(range(256)) * 8


def handshake(config: TCPConfig, stats: Counter[str] | None = None) -> Connection:
    """A connection in ESTABLISHED, opened by the attacker's SYN."""
    syn = TCPSegment(1111, 80, PEER_ISS, 0, SYN, 65535, mss=1440, sack_permitted=True, wscale=7)
    conn = Connection.accept(config, syn, iss=ISS, mss=1440, now=0.0, stats=stats)
    (synack,) = conn.take_segments()
    conn.on_segment(TCPSegment(1111, 80, PEER_ISS + 1, synack.seq + 1, ACK, 65535), 0.0)
    conn.take_segments()
    conn.take_events()
    return conn


def data(offset: int, n: int) -> TCPSegment:
    seq = (PEER_ISS + 1 + offset) & 0xFFFFFFFF
    return TCPSegment(1111, 80, seq, ISS + 1, ACK, 65535, STREAM[:n])


class Peer:
    """The attacker: sends at what it was acknowledged, watches every ACK."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.unit = 1 << conn.rcv_shift
        self.acked = 0
        self.edge = 0  # right edge offered by the last ACK (offset)
        self.max_edge = 0  # the furthest right edge ever offered

    def inject(self, seg: TCPSegment) -> None:
        conn = self.conn
        cap = conn.config.receive_buffer
        conn.on_segment(seg, 0.0)
        for ack in conn.take_segments():
            self.acked = (ack.ack - PEER_ISS - 1) & 0xFFFFFFFF
            self.edge = self.acked + (ack.window << conn.rcv_shift)
            # Never more than RCV.NXT + free space (nothing is held out of order here).
            assert self.edge <= self.acked + cap - conn.readable, (self.edge, conn.readable)
            # An edge rounded down falls short of the last by less than a unit ...
            assert self.edge > self.max_edge - self.unit
            self.max_edge = max(self.max_edge, self.edge)
            # ... and the furthest one offered is still honoured.
            assert self.acked + conn.rcv_wnd >= self.max_edge
        assert conn.readable <= cap

    def fill(self, leave: int) -> None:
        """In order up to the edges offered, until at most ``leave`` bytes are offered."""
        sent = self.acked
        self.inject(data(0, 1))  # a duplicate: the ACK tells the window
        while self.edge - self.acked > leave:
            while sent < self.edge - leave:
                n = min(1440, self.edge - leave - sent)
                self.inject(data(sent, n))
                sent += n
            self.inject(data(self.acked - 1, 1))

    def ratchet(self, rounds: int) -> None:
        for _ in range(rounds):
            self.inject(data(self.acked, 31))
            self.inject(data(self.acked - 1, 1))


def test_window_ratchet_bounded() -> None:
    stats: Counter[str] = Counter()
    conn = handshake(TCPConfig(timestamps=False), stats)
    peer = Peer(conn)
    assert peer.unit == 32
    peer.inject(data(0, 1440))
    peer.fill(2048)
    # Today every one of these rounds is taken: +620 kB past the buffer after 20,000.
    peer.ratchet(3000)
    assert conn.readable == conn.config.receive_buffer  # filled exactly, no further
    assert peer.edge == peer.acked  # the window is shut
    assert stats["trimmed_beyond_window"] > 2900


def test_window_ratchet_memory_within_buffer() -> None:
    """The Python memory the attack makes the connection hold stays within the
    window that was left (2 KiB) plus a fixed overhead, though it arrives as
    31-byte segments (each its own object, were they not coalesced)."""
    conn = handshake(TCPConfig(timestamps=False))
    peer = Peer(conn)
    peer.inject(data(0, 1440))
    peer.fill(2048)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        peer.ratchet(3000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown <= 2048 + 4096, grown


def test_small_segments_in_order_memory_bounded() -> None:
    """A peer that keeps to the window but sends it 31 bytes at a time: the
    buffer holds little more than the bytes (in-order chunks are coalesced)."""
    cap = 65536
    conn = handshake(TCPConfig(timestamps=False, receive_buffer=cap, delayed_ack=None))
    peer = Peer(conn)
    peer.inject(data(0, 1))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        while peer.edge - peer.acked >= 31:
            peer.inject(data(peer.acked, 31))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert conn.readable > cap - 31
    # Uncoalesced, each 31-byte segment would hold a 64-byte object and a slot (2.3x).
    assert grown <= cap * 1.05 + 4096, grown
