"""Property tests of the reassembly buffer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_tcp6.tcp.recvbuf import ADD_DUP, ADD_FILLED, ADD_INORDER, ADD_OOO, ReceiveBuffer

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
