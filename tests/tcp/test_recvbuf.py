"""Property tests of the reassembly buffer (against a set of the bytes it holds)."""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_tcp6.tcp.recvbuf import (
    ADD_DROP,
    ADD_DUP,
    ADD_FILLED,
    ADD_INORDER,
    ADD_OOO,
    CHUNK_OVERHEAD,
    RANGE_OVERHEAD,
    ReceiveBuffer,
)

STREAM = bytes(range(256)) * 20


def held_ranges(got: set[int], nxt: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x in sorted(i for i in got if i >= nxt):
        if out and out[-1][1] == x:
            out[-1] = (out[-1][0], x + 1)
        else:
            out.append((x, x + 1))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300)), max_size=60),
    st.integers(1, 4),
    st.integers(0, 2**40),
)
def test_reassembly(chunks: list[tuple[int, int]], limit: int, base: int) -> None:
    rb = ReceiveBuffer(base)
    out = bytearray()
    got: set[int] = set()
    recent: list[int] = []
    # Finish with the whole stream so everything ends in order.
    for start, n in [*chunks, (0, 2300)]:
        data = STREAM[start : start + n]
        before = rb.nxt
        res = rb.add(base + start, data)
        new = {base + i for i in range(start, start + len(data))} - got
        got |= new
        if not new:
            assert res == ADD_DUP
        elif res == ADD_OOO:
            assert base + start > before
            recent.insert(0, base + start)
        else:
            assert res in (ADD_INORDER, ADD_FILLED)
            assert base + start <= before
        # The held ranges are what was received beyond rcv_nxt.
        expect_nxt = base
        while expect_nxt in got:
            expect_nxt += 1
        assert rb.nxt == expect_nxt
        assert rb.ooo_ranges() == held_ranges(got, rb.nxt)
        assert rb.ooo_bytes == sum(e - s for s, e in rb.ooo_ranges())
        rb.dsack = None
        blocks = rb.sack_blocks(limit)
        held = rb.ooo_ranges()
        assert len(blocks) == min(limit, len(held))
        assert len(set(blocks)) == len(blocks)
        assert all(b in held for b in blocks)
        if res == ADD_OOO and blocks:
            # RFC 2018 §4: the first block holds the segment just received.
            s0, e0 = blocks[0]
            assert s0 <= base + start < e0
        # Interleave reads.
        if rb.readable and start % 3 == 0:
            out += rb.read(start % 500 + 1)
    out += rb.read(10**9)
    assert bytes(out) == STREAM[:2300]
    assert rb.readable == 0 and not rb.has_ooo


def test_dsack_for_duplicate() -> None:
    rb = ReceiveBuffer(100)
    assert rb.add(100, b"abc") == ADD_INORDER
    assert rb.add(100, b"ab") == ADD_DUP
    assert rb.sack_blocks(4) == [(100, 102)]
    assert rb.dsack is None
    assert rb.add(110, b"xyz") == ADD_OOO
    assert rb.add(111, b"y") == ADD_DUP
    assert rb.sack_blocks(4) == [(111, 112), (110, 113)]


def test_partial_reads_with_memoryview() -> None:
    rb = ReceiveBuffer(0)
    rb.add(0, b"hello")
    rb.add(5, b"world")
    assert rb.read(3) == b"hel"
    assert rb.read(4) == b"lowo"
    assert rb.readable == 3
    assert rb.read(100) == b"rld"


def spans(ranges: list[tuple[int, int]]) -> set[int]:
    return {x for s, e in ranges for x in range(s, e)}


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 300)), max_size=80),
    st.integers(300, 6000),
    st.integers(1, 4),
    st.integers(0, 2**40),
)
def test_reassembly_bounded(
    chunks: list[tuple[int, int]], cap: int, limit: int, base: int
) -> None:
    """The bounded buffer against a set of the bytes it should hold: never more than
    ``cap`` counted with overhead, pruning only from the far end and only beyond the
    new data, never SACKing what it pruned, never losing in-order data it took."""
    stats: Counter[str] = Counter()
    rb = ReceiveBuffer(base, cap, stats)
    out = bytearray()
    for start, n in chunks:
        data = STREAM[start : start + n]
        nxt0 = rb.nxt
        held0 = spans(rb.ooo_ranges())
        room0 = cap - rb.held
        had_ooo = rb.has_ooo
        pruned0 = stats["ofo_pruned"]
        res = rb.add(base + start, data)
        held = spans(rb.ooo_ranges())
        assert rb.nxt >= nxt0
        assert rb.held <= cap
        assert rb.ooo_bytes == len(held)
        assert rb.ooo_cost >= rb.ooo_bytes + RANGE_OVERHEAD * len(rb.ooo_ranges())
        assert min(held, default=rb.nxt) >= rb.nxt
        new = {x for x in range(base + start, base + start + len(data)) if x >= nxt0} - held0
        if res == ADD_DROP:
            assert rb.nxt == nxt0 and held == held0  # dropped: nothing else touched
        lost = {x for x in held0 - held if x >= rb.nxt}
        if lost:
            # Pruned from the far end, and only beyond the segment that needed room.
            assert min(lost) > max(held, default=rb.nxt - 1)
            assert min(lost) >= base + start
            assert stats["ofo_pruned"] > pruned0
        if not new:
            assert res == ADD_DUP
        elif base + start <= nxt0 and not had_ooo and len(new) <= room0:
            assert res == ADD_INORDER and rb.nxt == nxt0 + len(new)  # fits: all taken
        elif base + start > nxt0 and not had_ooo and len(data) + 256 <= room0:
            assert res == ADD_OOO and held == new
        rb.dsack = None
        blocks = rb.sack_blocks(limit)
        ranges = rb.ooo_ranges()
        assert len(blocks) == min(limit, len(ranges))
        assert all(b in ranges for b in blocks)  # pruned data is never SACKed
        if res == ADD_OOO:
            s0, e0 = blocks[0]
            assert s0 <= base + start < e0
        if rb.readable and start % 3 == 0:
            out += rb.read(start % 500 + 1)
    # In-order data taken is never lost: what was read plus what is readable is
    # the stream up to RCV.NXT.
    out += rb.read(10**9)
    assert bytes(out) == STREAM[: rb.nxt - base]
    # The rest of the stream, in pieces that fit, completes it.
    while rb.nxt - base < 3300:
        off = rb.nxt - base
        res = rb.add(rb.nxt, STREAM[off : off + cap // 2])
        assert res in (ADD_INORDER, ADD_FILLED)
        out += rb.read(10**9)
    assert bytes(out) == STREAM[: rb.nxt - base]
    assert not rb.has_ooo or min(spans(rb.ooo_ranges())) > rb.nxt


def test_prune_far_end_first() -> None:
    stats: Counter[str] = Counter()
    piece = 10 + CHUNK_OVERHEAD + RANGE_OVERHEAD  # what one isolated 10-byte piece costs
    rb = ReceiveBuffer(0, 3 * piece, stats)
    assert rb.add(100, STREAM[100:110]) == ADD_OOO
    assert rb.add(300, STREAM[300:310]) == ADD_OOO
    assert rb.add(500, STREAM[500:510]) == ADD_OOO
    assert rb.held == 3 * piece
    # A fourth piece beyond them all does not fit: dropped, nothing pruned.
    assert rb.add(700, STREAM[700:710]) == ADD_DROP
    assert stats["drop_rcv_buffer_full"] == 1 and stats["ofo_pruned"] == 0
    # One nearer than the far end takes the far end's place.
    assert rb.add(200, STREAM[200:210]) == ADD_OOO
    assert rb.ooo_ranges() == [(100, 110), (200, 210), (300, 310)]
    assert stats["ofo_pruned"] == 1
    assert rb.sack_blocks(4) == [(200, 210), (300, 310), (100, 110)]
    # Extending a range costs only its bytes (and a chunk), pruning beyond it.
    assert rb.add(110, STREAM[110:120]) == ADD_OOO
    assert rb.ooo_ranges() == [(100, 120), (200, 210)]
    assert stats["ofo_pruned"] == 2


def test_inorder_data_prunes_out_of_order_data() -> None:
    """Data at RCV.NXT that fits ``cap`` less the unread bytes is taken whole, at
    the cost of held out-of-order data (its overhead made the buffer look full)."""
    stats: Counter[str] = Counter()
    rb = ReceiveBuffer(0, 4096, stats)
    for off in range(2000, 4000, 2):
        rb.add(off, STREAM[off : off + 1])
    assert 4096 - CHUNK_OVERHEAD - RANGE_OVERHEAD < rb.held <= 4096
    assert stats["ofo_pruned"] == 0
    drops = stats["drop_rcv_buffer_full"]  # the pieces that did not fit
    assert rb.add(0, STREAM[:1500]) == ADD_INORDER
    assert rb.nxt == 1500 and rb.held <= 4096
    assert rb.add(1500, STREAM[1500:3500]) in (ADD_INORDER, ADD_FILLED)
    assert rb.nxt >= 3500 and rb.held <= 4096
    assert rb.read(3500) == STREAM[:3500]
    assert stats["ofo_pruned"] > 0 and stats["drop_rcv_buffer_full"] == drops


def test_inorder_beyond_cap_trimmed() -> None:
    stats: Counter[str] = Counter()
    rb = ReceiveBuffer(0, 1000, stats)
    assert rb.add(0, STREAM[:900]) == ADD_INORDER
    assert rb.add(900, STREAM[900:1200]) == ADD_INORDER
    assert rb.nxt == 1000 and rb.readable == 1000
    assert rb.add(1000, STREAM[1000:1100]) == ADD_DROP
    assert stats["drop_rcv_buffer_full"] == 2
    assert rb.read(2000) == STREAM[:1000]


def test_overhead_constants_cover_memory() -> None:
    """CHUNK_OVERHEAD and RANGE_OVERHEAD are at least what the pieces really cost
    (tracemalloc): isolated pieces at large offsets, and ranges of many chunks."""
    for gap, size in ((2, 2), (1, 2), (1, 100)):
        base = 2**40
        pieces = [bytes(STREAM[i % 256 : i % 256 + size]) for i in range(3000)]
        rb = ReceiveBuffer(base, 1 << 40)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i, p in enumerate(pieces):
            # gap 2: isolated ranges; gap 1: every third piece bridges two ranges
            off = base + 1 + i * (size + gap) if gap == 2 or i % 3 else base + 1 + i * size
            rb.add(off, p)
        del pieces
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert real <= rb.ooo_cost, (gap, size, real, rb.ooo_cost)
