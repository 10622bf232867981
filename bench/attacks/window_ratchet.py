"""Window-ratchet attack (issue 9 item 4): a peer that never gets its data read
sends 31-byte segments, each followed by a one-byte duplicate that forces an
immediate ACK, hoping the receiver's window (rounded to the window-scale unit)
never closes. If it works, the receive buffer grows past ``receive_buffer``
without bound.

A real :class:`~trio_tcp6.tcp.connection.Connection` receives (default 1 MiB
buffer, so window scale 5: a 32-byte unit); the application reads nothing. The
attacker first fills the advertised window in order, then plays the trick,
always sending at RCV.NXT whatever window it was offered. Figures: the window of
the receiver's last ACK, bytes accepted past the buffer, and the attacker's
segments that were still taken.

Target: bytes held <= the configured receive buffer; the window closes.
"""

from __future__ import annotations

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment

PEER_ISS = 7000
ISS = 3000
PORT = 80
PEER_PORT = 1111
STREAM = bytes(range(256)) * 8


def handshake(config: TCPConfig) -> Connection:
    """A connection in ESTABLISHED, opened by the attacker's SYN."""
    syn = TCPSegment(
        PEER_PORT, PORT, PEER_ISS, 0, SYN, 65535, mss=1440, sack_permitted=True, wscale=7
    )
    conn = Connection.accept(config, syn, iss=ISS, mss=1440, now=0.0)
    (synack,) = conn.take_segments()
    conn.on_segment(TCPSegment(PEER_PORT, PORT, PEER_ISS + 1, synack.seq + 1, ACK, 65535), 0.0)
    conn.take_segments()
    conn.take_events()
    return conn


def data(offset: int, n: int) -> TCPSegment:
    """``n`` bytes at ``offset`` past the peer's first data byte."""
    seq = (PEER_ISS + 1 + offset) & 0xFFFFFFFF
    return TCPSegment(PEER_PORT, PORT, seq, ISS + 1, ACK, 65535, STREAM[:n])


class Attacker:
    """Tracks what the receiver acknowledged and offered."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.acked = 0  # offset acknowledged (RCV.NXT as the peer sees it)
        self.window = 0  # bytes offered past it by the last ACK
        self.max_overshoot = 0  # most bytes held beyond receive_buffer
        self.acks = 0
        self.acks_beyond = 0  # ACKs offering an edge past RCV.NXT + free space

    def inject(self, seg: TCPSegment) -> None:
        conn = self.conn
        conn.on_segment(seg, 0.0)
        cap = conn.config.receive_buffer
        for out in conn.take_segments():
            self.acked = (out.ack - PEER_ISS - 1) & 0xFFFFFFFF
            self.window = out.window << conn.rcv_shift
            self.acks += 1
            held = conn.info().rcv_held or 0
            assert isinstance(held, int)
            self.acks_beyond += self.window > cap - held
        over = conn.readable - cap
        self.max_overshoot = max(self.max_overshoot, over)

    def fill(self, leave: int) -> None:
        """Send in order up to the right edges offered until the window is at most
        ``leave`` bytes."""
        sent = self.acked
        while self.window > leave:
            edge = self.acked + self.window - leave
            while sent < edge:
                n = min(1440, edge - sent)
                self.inject(data(sent, n))
                sent += n
            self.inject(data(self.acked - 1, 1))  # a duplicate: ACKed at once

    def ratchet(self, rounds: int) -> int:
        """31 bytes at RCV.NXT then a one-byte duplicate, ``rounds`` times; returns
        how many of the 31-byte segments advanced RCV.NXT."""
        taken = 0
        for _ in range(rounds):
            before = self.acked
            self.inject(data(self.acked, 31))
            self.inject(data(self.acked - 1, 1))
            taken += self.acked > before
        return taken


def run(quick: bool) -> list[tuple[str, str]]:
    """The attack's figures as (label, figure) rows."""
    config = TCPConfig(timestamps=False)
    conn = handshake(config)
    atk = Attacker(conn)
    atk.inject(data(0, 1440))
    atk.inject(data(0, 1))  # a duplicate: the ACK tells the window
    atk.fill(2048)
    rounds = 2_000 if quick else 20_000
    taken = atk.ratchet(rounds)
    cap = config.receive_buffer
    return [
        (
            f"{rounds:,} rounds of 31 B + 1-byte duplicate, app reads nothing, "
            f"receive_buffer {cap >> 10} KiB",
            f"{taken:,} segments taken, last window {atk.window} B, "
            f"held {conn.readable:,} B = buffer {atk.max_overshoot:+,} B at most",
        ),
        (
            "ACKs offering more than RCV.NXT + free buffer space",
            f"{atk.acks_beyond:,} of {atk.acks:,}",
        ),
    ]
