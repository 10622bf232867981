"""The stack-wide memory account (Linux ``tcp_mem``) at the engine level.

Connections are opened by a scripted peer (as in ``test_attack_reassembly``) and
share one :class:`~trio_tcp6.tcp.memory.MemoryAccount`; the tests check that the
account is the sum of what they hold, and what pressure changes: window growth,
out-of-order data, in-order data at the hard limit, send space, the stack-wide
prune, and the release on close.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import event, given, settings
from hypothesis import strategies as st

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.memory import (
    FLOOR_SEGMENTS,
    MemoryAccount,
    holding,
    relieve,
)
from trio_tcp6.tcp.recvbuf import CHUNK_OVERHEAD, RANGE_OVERHEAD
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment

PEER_ISS = 7000
ISS = 3000
MSS = 1000
STREAM = bytes(range(251)) * 800  # 200,800 bytes, no period of a power of two
#: A receive buffer that fits the unscaled window field, so edges are exact.
CONFIG = TCPConfig(receive_buffer=60_000, timestamps=False, delayed_ack=None, nagle=False)
FLOOR = FLOOR_SEGMENTS * MSS


def opened(m: MemoryAccount | None, stats: Counter[str], port: int = 1111) -> Connection:
    """An ESTABLISHED connection charging ``m`` (no window scaling)."""
    syn = TCPSegment(port, 80, PEER_ISS, 0, SYN, 65535, mss=MSS, sack_permitted=True)
    conn = Connection.accept(CONFIG, syn, iss=ISS, mss=MSS, now=0.0, stats=stats, memory=m)
    conn.take_segments()
    conn.on_segment(TCPSegment(port, 80, PEER_ISS + 1, ISS + 1, ACK, 65535), 0.0)
    conn.take_segments()
    conn.take_events()
    return conn


def data(conn: Connection, offset: int, n: int) -> TCPSegment:
    """The peer's stream bytes [offset, offset + n)."""
    return TCPSegment(
        conn.remote_port,
        80,
        PEER_ISS + 1 + offset,
        ISS + 1,
        ACK,
        65535,
        STREAM[offset : offset + n],
    )


def ack_all(conn: Connection) -> TCPSegment:
    """The peer acknowledges everything we sent."""
    return TCPSegment(conn.remote_port, 80, conn.rcv_nxt, conn.snd_nxt, ACK, 65535)


def window_edge(conn: Connection) -> int:
    """The right edge (offset from the peer's first byte) of our last segment."""
    seg = conn.take_segments()[-1]
    return (seg.ack - PEER_ISS - 1) % 2**32 + seg.window


def total(conns: list[Connection], m: MemoryAccount) -> int:
    return sum(holding(c) for c in conns if c.memory is m)


# -- the account is the sum of the holdings -------------------------------------------------
DATA = st.tuples(st.just("data"), st.integers(0, 3), st.integers(0, 70_000), st.integers(1, 3000))
OPS = st.one_of(
    DATA,
    DATA,
    DATA,
    DATA,
    st.tuples(st.just("read"), st.integers(0, 3), st.integers(1, 40_000)),
    st.tuples(st.just("send"), st.integers(0, 3), st.integers(1, 50_000)),
    st.tuples(st.just("ack"), st.integers(0, 3)),
    st.tuples(st.just("relieve")),
    st.tuples(st.just("abort"), st.integers(0, 3), st.integers(0, 5)),  # 1 in 6 aborts
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, min_size=30, max_size=150), st.sampled_from([20_000, 40_000, 120_000, None]))
def test_account_is_the_sum_of_the_holdings(
    ops: list[tuple[object, ...]], limit: int | None
) -> None:
    """After any sequence of arrivals (in order, out of order, overlapping),
    reads, writes, ACKs, stack-wide prunes and aborts: the account equals the sum
    of what the open connections hold, counts exactly them, is under pressure
    whenever above 2/3 of the limit and never below 1/2, stays within the limit
    plus the per-connection floors and one segment, and every byte read is the
    peer's stream in order."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(limit, stats)
    conns = [opened(m, stats, 1111 + i) for i in range(4)]
    read = [bytearray() for _ in conns]
    for op in ops:
        kind = op[0]
        if kind == "relieve":
            assert relieve(m, [(c, c) for c in conns if c.memory is m]) == []
        else:
            i = op[1]
            assert isinstance(i, int)
            c = conns[i]
            if kind == "data":
                off, n = op[2], op[3]
                assert isinstance(off, int) and isinstance(n, int)
                c.on_segment(data(c, off, n), 1.0)
            elif kind == "read":
                n = op[2]
                assert isinstance(n, int)
                read[i] += c.receive(n, 1.0)
            elif kind == "send":
                n = op[2]
                assert isinstance(n, int)
                room = c.send_space if c.memory is m else 0
                taken = c.send(b"x" * n, 1.0)
                assert taken == min(n, room)
            elif kind == "ack":
                c.on_segment(ack_all(c), 1.0)
            elif op[2] == 0:
                c.abort(1.0)
            c.take_segments()
            c.take_events()
        open_conns = [c for c in conns if c.memory is m]
        assert m.held == total(conns, m)
        assert m.users == len(open_conns)
        if m.held > m.high:
            assert m.pressure
        if m.held < m.low:
            assert not m.pressure
        assert m.peak <= m.limit + len(conns) * 2 * FLOOR + 3000
        if m.pressure:
            event("under pressure")
    if stats["drop_memory_pressure"]:
        event("data dropped for memory")
    if stats["memory_ofo_pruned"]:
        event("out-of-order data pruned for memory")
    for i, c in enumerate(conns):
        assert bytes(read[i]) == STREAM[: len(read[i])]
        if c.memory is m:
            # Everything accepted in order is still there: read it all.
            rest = c.receive(1 << 30, 1.0)
            got = bytes(read[i]) + rest
            assert got == STREAM[: c.rcv.buf.nxt - 1]


# -- pressure: entered above 2/3, left below 1/2 -----------------------------------------------
def test_pressure_hysteresis_at_the_marks() -> None:
    """Linux's tcp_mem marks: pressure starts one byte above 2/3 of the limit,
    persists down to 1/2, ends one byte below it; each episode is counted."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(3000, stats)
    m.charge(2000)
    assert not m.pressure and not m.relief_due
    m.charge(1)
    assert m.pressure and m.relief_due
    assert stats["memory_pressure_episodes"] == 1
    m.charge(-501)  # 1500: exactly half
    assert m.pressure
    m.charge(-1)
    assert not m.pressure and not m.relief_due
    m.charge(501)  # 2000: above 1/2 again, but pressure waits for more than 2/3
    assert not m.pressure
    m.charge(2)
    assert m.pressure and stats["memory_pressure_episodes"] == 2
    assert m.gauges()["memory_held_peak"] == 2002
    assert m.gauges()["memory_pressure"] == 1
    assert MemoryAccount(None).gauges()["memory_limit"] == 0


# -- the receive side under pressure -------------------------------------------------------------
def test_window_stops_growing_under_pressure_but_never_retracts() -> None:
    """Under pressure the right edge already offered is kept while it is consumed
    (never moved left), no new edge is offered beyond the floor; once the
    pressure ends the window opens to the free buffer again."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(100_000, stats)
    c = opened(m, stats)
    c.on_segment(data(c, 0, 1000), 1.0)
    c.receive(1 << 20, 1.0)
    c.on_segment(data(c, 1000, 1000), 1.0)
    edge = window_edge(c)
    assert edge == 2000 + 60_000 - 1000  # the window follows the reader
    m.charge(70_000)  # other connections: pressure
    assert m.pressure
    for off in range(2000, 10_000, 1000):  # unread: the window is consumed
        c.on_segment(data(c, off, 1000), 1.0)
        assert window_edge(c) == edge  # kept, not retracted
    for off in range(10_000, 20_000, 1000):  # read: it would grow without pressure
        c.receive(1 << 20, 1.0)
        c.on_segment(data(c, off, 1000), 1.0)
        assert window_edge(c) == edge
    m.charge(-40_000)  # below 1/2: pressure over
    assert not m.pressure
    c.on_segment(data(c, 20_000, 1000), 1.0)
    assert window_edge(c) == 21_000 + 60_000 - 2000  # grows again


def test_window_under_pressure_offers_the_floor_to_a_reading_connection() -> None:
    """A connection whose reader keeps up still gets a window of the floor (four
    segments) under pressure, so it keeps moving; one holding the floor gets none
    beyond the edge it has."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(100_000, stats)
    c = opened(m, stats)
    m.charge(70_000)
    edges = []
    for off in range(0, 100_000, 1000):  # well beyond the first window
        c.on_segment(data(c, off, 1000), 1.0)
        edges.append(window_edge(c))
        assert c.receive(1 << 20, 1.0) == STREAM[off : off + 1000]
    # Past the first window the edge runs the floor (less the segment held when
    # the ACK went out) ahead of RCV.NXT, no further.
    assert edges[-1] == 100_000 + FLOOR - 1000
    assert all(e >= off + FLOOR for e, off in zip(edges, range(0, 100_000, 1000), strict=True))
    assert stats["drop_memory_pressure"] == 0
    unread = []
    for off in range(100_000, 100_000 + FLOOR, 1000):  # the reader stops
        c.on_segment(data(c, off, 1000), 1.0)
        unread.append(window_edge(c))
    # What is held plus the window offered never exceeds the floor: the edge stops.
    assert unread == [100_000 + FLOOR] * len(unread)
    assert c.rcv.buf.held == FLOOR


def test_out_of_order_beyond_the_floor_dropped_under_pressure() -> None:
    """Under pressure a connection's out-of-order data may grow only to the floor
    (four segments): the next piece is dropped and counted as drop_memory_pressure,
    one nearer RCV.NXT replaces the farthest; without pressure it is held."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(80_000, stats)
    c = opened(m, stats)
    m.charge(60_000)  # pressure
    cost = 500 + CHUNK_OVERHEAD + RANGE_OVERHEAD
    n = FLOOR // cost  # 5 pieces of 500 fit in 4,000
    for k in range(n):
        c.on_segment(data(c, 2000 + 1000 * k, 500), 1.0)  # separate ranges
    assert c.rcv.buf.held == n * cost
    assert stats["drop_memory_pressure"] == 0
    c.on_segment(data(c, 2000 + 1000 * n, 500), 1.0)  # beyond the floor: dropped
    assert c.rcv.buf.held == n * cost
    assert stats["drop_memory_pressure"] == 1
    c.on_segment(data(c, 1000, 500), 1.0)  # nearer: takes the far end's place
    ranges = c.rcv.buf.ooo_ranges()
    assert ranges[0] == (1 + 1000, 1 + 1500) and ranges[-1][0] == 1 + 2000 + 1000 * (n - 2)
    assert stats["memory_ofo_pruned"] == 1 and stats["drop_memory_pressure"] == 1
    m.charge(-60_000)
    assert not m.pressure
    c.on_segment(data(c, 2000 + 1000 * n, 500), 1.0)
    assert c.rcv.buf.held == (n + 1) * cost


def test_in_order_at_the_hard_limit_prunes_out_of_order_never_in_order() -> None:
    """At the hard limit a connection's holding may not grow: arriving in-order data
    takes the room of held out-of-order data (pruned from the far end); once none
    is left it is dropped (the peer retransmits it). What was accepted in order
    is all readable."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(50_000, stats)
    c = opened(m, stats)
    rb = c.rcv.buf
    cost = 1000 + CHUNK_OVERHEAD + RANGE_OVERHEAD
    c.on_segment(data(c, 0, 3000), 1.0)  # in order, unread
    for k in range(4):  # out of order: [5000, 6000), [7000, 8000), ..., [11000, 12000)
        c.on_segment(data(c, 5000 + 2000 * k, 1000), 1.0)
    assert rb.held == 3000 + 4 * cost
    m.charge(60_000 - m.held)  # the rest of the stack: over the limit
    assert m.hard

    def ranges() -> list[int]:
        return [s - 1 for s, _ in rb.ooo_ranges()]

    c.on_segment(data(c, 3000, 1000), 1.0)  # in order: the far end makes room
    assert (rb.readable, ranges(), stats["memory_ofo_pruned"]) == (4000, [5000, 7000, 9000], 1)
    c.on_segment(data(c, 4000, 1000), 1.0)  # fills up to 6000, [9000, 10000) goes
    assert (rb.readable, ranges(), stats["memory_ofo_pruned"]) == (6000, [7000], 2)
    c.on_segment(data(c, 6000, 1000), 1.0)  # only by dropping [7000, 8000) it fits
    assert (rb.readable, ranges(), stats["memory_ofo_pruned"]) == (7000, [], 3)
    assert stats["drop_memory_pressure"] == 0
    c.on_segment(data(c, 7000, 1000), 1.0)  # nothing left to prune: dropped
    assert (rb.readable, stats["drop_memory_pressure"]) == (7000, 1)
    assert rb.held == 7000 < 3000 + 4 * cost  # it never grew
    assert m.hard
    assert c.receive(1 << 20, 1.0) == STREAM[:7000]  # nothing accepted was lost


def test_floor_guaranteed_at_the_hard_limit() -> None:
    """A connection holding less than the floor still takes in-order data up to it
    at the hard limit, and no more."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(50_000, stats)
    c = opened(m, stats)
    m.charge(60_000)
    for off in range(0, 2 * FLOOR, 1000):
        c.on_segment(data(c, off, 1000), 1.0)
    assert c.rcv.buf.readable == FLOOR
    assert stats["drop_memory_pressure"] == FLOOR // 1000
    assert c.receive(1 << 20, 1.0) == STREAM[:FLOOR]


# -- the send side -----------------------------------------------------------------------------
def test_send_space_within_the_limit_and_under_pressure() -> None:
    """Without pressure a write takes only what keeps the stack within its limit;
    under pressure up to the fair share; at the hard limit, four segments."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(100_000, stats)
    a, b = opened(m, stats, 1111), opened(m, stats, 2222)
    m.charge(30_000)  # other buffers
    assert a.send_space == 70_000
    assert a.send(b"x" * 100_000, 1.0) == 70_000
    assert m.hard and m.pressure
    assert b.send_space == FLOOR
    assert b.send(b"y" * 100_000, 1.0) == FLOOR
    assert b.send_space == 0
    a.on_segment(ack_all(a), 1.0)  # the peer took what was sent: buffers shrink
    m.charge(-(m.held - 60_000))  # pressure, below the limit
    assert m.pressure and not m.hard
    share = 100_000 // 2
    assert b.send_space == share - FLOOR
    assert MemoryAccount(None).limited is False


# -- the stack-wide prune and the release on close ---------------------------------------------
def test_relieve_prunes_the_largest_holders_first_down_to_half() -> None:
    """The walk prunes out-of-order data, the connections holding most first, far
    end first, until the account is below 1/2 of the limit, and no further;
    in-order data is untouched."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(60_000, stats)
    sizes = [3, 12, 7]  # out-of-order segments each holds
    conns = [opened(m, stats, 1111 + i) for i in range(3)]
    for c, k in zip(conns, sizes, strict=True):
        c.on_segment(data(c, 0, 500), 1.0)
        for j in range(k):
            c.on_segment(data(c, 1000 + 2000 * j, 1000), 1.0)
    cost = 1000 + CHUNK_OVERHEAD + RANGE_OVERHEAD
    assert m.held == 3 * 500 + sum(sizes) * cost
    m.charge(20_000)  # pressure: 46,536 held
    assert m.pressure
    assert relieve(m, [(c, c) for c in conns]) == []
    assert m.held < m.low
    held = [len(c.rcv.buf.ooo_ranges()) for c in conns]
    # The largest (12) went first and alone freed enough for 1/2 of the limit?
    need = 1500 + sum(sizes) * cost + 20_000 - m.low
    pruned_from_largest = -(-need // cost)
    # 49,132 held, 30,000 the mark: 16 ranges of 1,256 go, the largest holder's
    # twelve, then the far end of the next largest (seven: four of them).
    assert pruned_from_largest == 16
    assert held == [3, 0, 3]
    assert conns[2].rcv.buf.ooo_ranges() == [
        (1 + 1000 + 2000 * j, 1 + 2000 + 2000 * j) for j in range(3)
    ]
    assert all(c.rcv.buf.readable == 500 for c in conns)
    assert stats["memory_ofo_pruned"] == pruned_from_largest
    assert stats["memory_relief_walks"] == 1
    assert not m.pressure


def test_close_releases_the_charge() -> None:
    """A connection that is closed (abort, RST, timeout) releases its charge and
    no longer counts for the fair share; reading what is left does not charge."""
    stats: Counter[str] = Counter()
    m = MemoryAccount(1 << 20, stats)
    c = opened(m, stats)
    c.on_segment(data(c, 0, 3000), 1.0)
    c.send(b"z" * 5000, 1.0)
    assert m.held == 8000 and m.users == 1
    c.abort(1.0)
    assert m.held == 0 and m.users == 0 and c.memory is None
    c.receive(1000, 1.0)
    assert m.held == 0


def test_no_account_changes_nothing() -> None:
    """Without an account the engine buffers as before (the default for engine
    users): the receive buffer and send buffer alone bound it."""
    stats: Counter[str] = Counter()
    c = opened(None, stats)
    c.on_segment(data(c, 0, 3000), 1.0)
    assert c.send(b"z" * (2 << 20), 1.0) == CONFIG.send_buffer
    assert c.memory is None and c.memory_charged == 0
