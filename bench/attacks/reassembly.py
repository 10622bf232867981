"""Reassembly attack (issue 9 item 2): a hostile peer fills the receiver's
out-of-order queue with one-byte segments, every other byte, so that nothing ever
coalesces and every ACK has to describe the pieces in SACK blocks.

A real :class:`~trio_tcp6.tcp.connection.Connection` receives; the attacker is a
fake peer that completes the handshake (SACK and window scaling on, no timestamps)
and then crafts the segments itself. Figures: bytes of Python memory held per
byte of data buffered (tracemalloc), and CPU per attacking segment (each segment
plus the ACK it provokes) early in the attack and late in it, for three orders:
ascending (each piece the new far end), descending (each piece nearer than all
held ones, which is what makes a bounded queue prune), and random.

Targets: <= 100 µs per attacking segment whatever the history; memory held <= the
configured receive buffer plus a fixed per-connection overhead.
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment

PEER_ISS = 7000
ISS = 3000
PORT = 80
PEER_PORT = 1111


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


def one_byte(offset: int) -> TCPSegment:
    """One byte at ``offset`` past the peer's first data byte."""
    return TCPSegment(PEER_PORT, PORT, PEER_ISS + 1 + offset, ISS + 1, ACK, 65535, b"x")


def offsets(count: int, order: str) -> list[int]:
    """Every other byte after a hole at offset 0, in the given order."""
    offs = [2 * i + 1 for i in range(count)]
    if order == "descending":
        offs.reverse()
    elif order == "random":
        random.Random(9).shuffle(offs)
    return offs


def held_memory(receive_buffer: int, count: int) -> tuple[int, int]:
    """(Python bytes allocated and still held, data bytes buffered out of order)."""
    config = TCPConfig(receive_buffer=receive_buffer, timestamps=False, delayed_ack=None)
    segs = [one_byte(off) for off in offsets(count, "ascending")]
    # A first run warms the interpreter's caches, so that only what the second
    # connection holds is measured; a full collection empties the free lists.
    for conn in (handshake(config), handshake(config)):
        for seg in segs[:100]:
            conn.on_segment(seg, 0.0)
            conn.take_segments()
    conn = handshake(config)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for seg in segs:
        conn.on_segment(seg, 0.0)
        conn.take_segments()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # (An engine without the counter buffered every piece.)
    buffered = conn.info().rcv_ooo or 0
    del segs
    return held, buffered


def cpu_per_segment(count: int, order: str, window: int) -> tuple[float, float]:
    """µs per attacking segment over the first and the last ``window`` segments."""
    config = TCPConfig(timestamps=False, delayed_ack=None)
    conn = handshake(config)
    segs = [one_byte(off) for off in offsets(count, order)]
    marks: list[float] = []
    t0 = time.perf_counter()
    for i, seg in enumerate(segs):
        if i == window or i == count - window:
            marks.append(time.perf_counter())
        conn.on_segment(seg, 0.0)
        conn.take_segments()
    t1 = time.perf_counter()
    first = (marks[0] - t0) / window
    last = (t1 - marks[1]) / window
    return first * 1e6, last * 1e6


def run(quick: bool) -> list[tuple[str, str]]:
    """The attack's figures as (label, figure) rows."""
    rows: list[tuple[str, str]] = []
    held, buffered = held_memory(8192, 4095)
    rows.append(
        (
            "every other byte of an 8 KiB window (4,095 one-byte pieces), receive_buffer 8 KiB",
            f"{held / 1024:.0f} KiB held for {buffered} B buffered "
            f"({held / max(buffered, 1):.0f} B per byte; cap 8 KiB)",
        )
    )
    count = 2000 if quick else 8000
    held, buffered = held_memory(1 << 20, count)
    rows.append(
        (
            f"{count:,} one-byte pieces, receive_buffer 1 MiB",
            f"{held / 1024:.0f} KiB held for {buffered} B buffered (cap 1024 KiB)",
        )
    )
    window = 250 if quick else 1000
    for order in ("ascending", "descending", "random"):
        first, last = cpu_per_segment(count, order, window)
        rows.append(
            (
                f"{count:,} one-byte out-of-order segments, {order}",
                f"{first:.0f} µs/segment (first {window:,}) -> {last:.0f} µs (last {window:,})",
            )
        )
    return rows
