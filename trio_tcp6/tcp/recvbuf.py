"""The receive buffer: in-order data waiting for the reader, plus out-of-order
segments held for reassembly (RFC 9293 §3.10.7.4 "seventh", RFC 2018 §4 for the
SACK blocks that describe them).

Positions are absolute offsets counted from the IRS (the peer's SYN is offset 0),
so they never wrap. Payloads are kept as the objects that arrived (``bytes``, or
views of the packets for long ones: :data:`~trio_tcp6.wire.tcp.Payload`; no copy)
until :meth:`ReceiveBuffer.read` joins them; small ones are coalesced.

Memory is bounded the way Linux bounds it (``tcp_prune_ofo_queue`` and truesize
accounting): the buffer never holds more than ``cap`` bytes, counting the
in-order data plus the out-of-order data *with the overhead of every piece*
(:data:`CHUNK_OVERHEAD`, :data:`RANGE_OVERHEAD`), so a peer sending one-byte
segments gets a handful of bytes buffered, not megabytes of Python objects. When
new data does not fit, out-of-order ranges are discarded from the far end (the
highest sequence numbers, which the peer sent last) as long as they lie beyond
the new data; in-order data is never discarded once accepted. Discarded data is
no longer SACKed, so the sender retransmits it (RFC 2018 §8 allows the receiver
to renege).

Out-of-order data is kept as coalesced ranges in three parallel lists sorted by
start (starts, ends, chunk lists), so every lookup is a bisection and the SACK
blocks are read straight off the ranges: the Python-level work per segment is
O(log n) plus the ranges the segment touches (each range is merged away at most
once). Inserting or removing a range moves list slots in C, at most
``cap / RANGE_OVERHEAD`` of them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from typing import cast

from ..wire.tcp import Payload

__all__ = [
    "ADD_DROP",
    "ADD_DUP",
    "ADD_FILLED",
    "ADD_INORDER",
    "ADD_OOO",
    "CHUNK_OVERHEAD",
    "COALESCE",
    "PIN_SLACK",
    "RANGE_OVERHEAD",
    "ReceiveBuffer",
]

#: :meth:`ReceiveBuffer.add` results.
ADD_DUP = 0  # nothing new: every byte was already received
ADD_INORDER = 1  # data appended at rcv_nxt, no held segment involved
ADD_FILLED = 2  # data at rcv_nxt that also released held out-of-order data
ADD_OOO = 3  # held out of order (a gap precedes it)
ADD_DROP = 4  # no room in the buffer: the new data was dropped

#: Bytes charged for each out-of-order chunk beyond its data: the ``bytes`` object's
#: header (``sys.getsizeof(b"")`` = 33 on 64-bit CPython), the allocator's rounding
#: to 16 bytes (up to 15) and the chunk's slot in its range's list (8), rounded up.
CHUNK_OVERHEAD = 64
#: Bytes charged for each out-of-order range: its chunk list (``sys.getsizeof`` of a
#: one-element list with its first growth, 88, plus the GC header, 16), two offsets
#: (``int`` objects above 2**30, 32 each) and three slots in the index lists (24),
#: with room for those lists' over-allocation, rounded up.
RANGE_OVERHEAD = 192
#: In-order chunks shorter than this are joined to a short predecessor (up to four
#: times this size), so one-byte segments cannot make the reader's queue hold a
#: Python object per byte.
COALESCE = 512

#: A view may pin this many bytes more than it shows (the headers in front of a
#: received payload) and still be held as it is (:func:`_kept`).
PIN_SLACK = 128

# Until a buffer holds its first out-of-order range it shares these empty lists (an
# idle connection then keeps four list objects fewer); only _add_range and
# _note_recent add to the lists, and they first give the buffer lists of its own.
_NO_OFFSETS: list[int] = []
_NO_DATA: list[list[Payload]] = []
# Likewise the in-order chunks while none is unread (from the start, and again after
# a read took everything): only add, _add_inorder and _release_first add to it, and
# they first give the buffer a list of its own (:meth:`_own_chunks`).
_NO_CHUNKS: list[Payload] = []


class ReceiveBuffer:
    """In-order chunks plus sorted, coalesced out-of-order ranges, within ``cap``."""

    __slots__ = (
        "_chunks",
        "_data",
        "_ends",
        "_recent",
        "_starts",
        "cap",
        "dsack",
        "nxt",
        "ooo_bytes",
        "ooo_chunks",
        "readable",
        "stats",
    )

    def __init__(self, nxt: int, cap: int = 1 << 62, stats: Counter[str] | None = None) -> None:
        #: Absolute offset of the next byte expected in order (RCV.NXT).
        self.nxt = nxt
        #: Most bytes held: in-order data plus out-of-order data with its overhead.
        self.cap = cap
        #: Where ``ofo_pruned`` and ``drop_rcv_buffer_full`` are counted.
        self.stats: Counter[str] = stats if stats is not None else Counter()
        # A list, not a deque: an empty deque costs 760 bytes per idle connection,
        # and a read takes its chunks from the front with one slice deletion.
        self._chunks: list[Payload] = _NO_CHUNKS
        #: Bytes in ``_chunks`` (in order, not yet read).
        self.readable = 0
        #: Out-of-order ranges [start, end), sorted, neither overlapping nor
        #: touching, and the chunks that hold each range's bytes in order.
        self._starts: list[int] = _NO_OFFSETS
        self._ends: list[int] = _NO_OFFSETS
        self._data: list[list[Payload]] = _NO_DATA
        #: Out-of-order data bytes held, and the chunks holding them.
        self.ooo_bytes = 0
        self.ooo_chunks = 0
        #: Starts of the most recently received out-of-order segments, newest first.
        self._recent: list[int] = _NO_OFFSETS
        #: A duplicate range to report once as a D-SACK block (RFC 2883), or None.
        self.dsack: tuple[int, int] | None = None

    @property
    def has_ooo(self) -> bool:
        return bool(self._starts)

    @property
    def ooo_cost(self) -> int:
        """Out-of-order bytes held, counted with each chunk's and range's overhead."""
        return (
            self.ooo_bytes + CHUNK_OVERHEAD * self.ooo_chunks + RANGE_OVERHEAD * len(self._starts)
        )

    @property
    def held(self) -> int:
        """What counts against ``cap``: in-order bytes plus :attr:`ooo_cost`."""
        return self.readable + self.ooo_cost if self._starts else self.readable

    # -- adding data ----------------------------------------------------------------
    def add(self, start: int, data: Payload) -> int:
        """Store ``data`` received at absolute offset ``start``; return ADD_*.

        Data at RCV.NXT is taken as far as ``cap`` allows once held out-of-order
        data has made way for it; out-of-order data only if it fits, possibly by
        pruning ranges beyond it, and otherwise dropped whole (``ADD_DROP``)."""
        end = start + len(data)
        nxt = self.nxt
        if end <= nxt:
            self.dsack = (start, end)
            return ADD_DUP
        if start < nxt:
            data = data[nxt - start :]
            start = nxt
        if type(data) is memoryview:
            data = _kept(data)
        starts = self._starts
        if start == nxt:
            if not starts:
                n = end - start
                if self.readable + n <= self.cap and (n >= COALESCE or not self._chunks):
                    # The common case, kept inline: in order, nothing held, room.
                    chunks = self._chunks
                    if chunks is _NO_CHUNKS:
                        chunks = self._chunks = []
                    chunks.append(data)
                    self.readable += n
                    self.nxt = end
                    return ADD_INORDER
                return self._add_inorder(data)
            if end < starts[0]:
                return self._add_inorder(data)
        elif end == start:
            return ADD_DUP  # nothing to hold
        ends = self._ends
        i = bisect_left(ends, start)  # first range ending at or after start
        j = bisect_right(starts, end, i)  # ranges i..j-1 overlap or touch the data
        if i == j:
            return self._add_range(i, start, end, data)
        # Bytes and chunks the data adds: its parts outside ranges i..j-1.
        new_bytes = 0
        new_chunks = 0
        if start < starts[i]:
            new_bytes += starts[i] - start
            new_chunks += 1
        for k in range(i + 1, j):
            new_bytes += starts[k] - ends[k - 1]
        new_chunks += j - i - 1
        if end > ends[j - 1]:
            new_bytes += end - ends[j - 1]
            new_chunks += 1
        if not new_bytes:
            self.dsack = (start, end)
            return ADD_DUP
        if start == nxt:
            # Fills the hole at RCV.NXT: ranges 0..j-1 become readable, so only
            # the new bytes count and the merged ranges' overhead is released.
            need = new_bytes - CHUNK_OVERHEAD * self._chunks_in(0, j) - RANGE_OVERHEAD * j
            if not self._room(need, j):
                self._prune(0)
                return self._add_inorder(data)
        else:
            need = new_bytes + CHUNK_OVERHEAD * new_chunks - RANGE_OVERHEAD * (j - i - 1)
            if not self._room(need, j):
                self.stats["drop_rcv_buffer_full"] += 1
                return ADD_DROP
        self._merge(i, j, start, end, data, new_bytes, new_chunks)
        if start == nxt:
            self._release_first()
            return ADD_FILLED
        self._note_recent(start)
        return ADD_OOO

    def _add_inorder(self, data: Payload) -> int:
        """Append in-order data that touches no held range, within ``cap``."""
        n = len(data)
        room = self.cap - self.readable
        if self._starts:
            room -= self.ooo_cost
        if n > room:
            if self._starts:
                self._prune(0, n - room)
                room = self.cap - self.readable - self.ooo_cost
            if n > room:
                self.stats["drop_rcv_buffer_full"] += 1
                if room <= 0:
                    return ADD_DROP
                data = _kept(data[:room])
                n = room
        chunks = self._own_chunks()
        if n < COALESCE and chunks and len(chunks[-1]) + n <= 4 * COALESCE:
            chunks[-1] = b"".join((chunks[-1], data))
        else:
            chunks.append(data)
        self.readable += n
        self.nxt += n
        return ADD_INORDER

    def _add_range(self, i: int, start: int, end: int, data: Payload) -> int:
        """Hold ``data`` as a new range at index ``i``, touching no other."""
        need = end - start + CHUNK_OVERHEAD + RANGE_OVERHEAD
        if not self._room(need, i):
            self.stats["drop_rcv_buffer_full"] += 1
            return ADD_DROP
        if self._starts is _NO_OFFSETS:
            self._starts, self._ends, self._data = [], [], []
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        self._data.insert(i, [data])
        self.ooo_bytes += end - start
        self.ooo_chunks += 1
        self._note_recent(start)
        return ADD_OOO

    def _merge(
        self, i: int, j: int, start: int, end: int, data: Payload, new_bytes: int, new_chunks: int
    ) -> None:
        """Make ranges i..j-1 and the data one range (they overlap or touch)."""
        starts, ends, dl = self._starts, self._ends, self._data
        base = dl[i]
        if start < starts[i]:
            base.insert(0, _kept(data[: starts[i] - start]))
            starts[i] = start
        for k in range(i + 1, j):
            base.append(_kept(data[ends[k - 1] - start : starts[k] - start]))
            base.extend(dl[k])
        last = ends[j - 1]
        if end > last:
            base.append(_kept(data[last - start :]))
            last = end
        ends[i] = last
        if j > i + 1:
            del starts[i + 1 : j], ends[i + 1 : j], dl[i + 1 : j]
        self.ooo_bytes += new_bytes
        self.ooo_chunks += new_chunks

    def _own_chunks(self) -> list[Payload]:
        chunks = self._chunks
        if chunks is _NO_CHUNKS:
            chunks = self._chunks = []
        return chunks

    def _release_first(self) -> None:
        """The first range now starts at RCV.NXT: move it to the in-order data."""
        start, end = self._starts.pop(0), self._ends.pop(0)
        pieces = self._data.pop(0)
        n = end - start
        self.ooo_bytes -= n
        self.ooo_chunks -= len(pieces)
        chunks = self._own_chunks()
        if len(pieces) > 1 and n < COALESCE * len(pieces):
            # Mostly small pieces: one object instead of one per piece.
            chunks.append(b"".join(pieces))
        else:
            chunks.extend(pieces)
        self.readable += n
        self.nxt = end
        if self._recent:
            self._recent = [r for r in self._recent if r >= end]

    def _chunks_in(self, i: int, j: int) -> int:
        dl = self._data
        return sum(len(dl[k]) for k in range(i, j))

    def _room(self, need: int, beyond: int) -> bool:
        """Whether ``need`` more bytes fit, pruning ranges from index ``beyond`` on
        (far end first) if that makes them fit; prune nothing if it would not."""
        excess = self.readable + self.ooo_cost + need - self.cap
        if excess <= 0:
            return True
        dl, starts, ends = self._data, self._starts, self._ends
        freeable = 0
        k = len(starts)
        while k > beyond and freeable < excess:
            k -= 1
            freeable += ends[k] - starts[k] + CHUNK_OVERHEAD * len(dl[k]) + RANGE_OVERHEAD
        if freeable < excess:
            return False
        self._prune(k)
        return True

    def _prune(self, k: int, excess: int | None = None) -> None:
        """Discard out-of-order ranges from the far end down to index ``k`` (or, given
        ``excess``, only as many as free that many bytes)."""
        starts, ends, dl = self._starts, self._ends, self._data
        pruned = 0
        while len(starts) > k:
            s, e, pieces = starts.pop(), ends.pop(), dl.pop()
            self.ooo_bytes -= e - s
            self.ooo_chunks -= len(pieces)
            pruned += 1
            if excess is not None:
                excess -= e - s + CHUNK_OVERHEAD * len(pieces) + RANGE_OVERHEAD
                if excess <= 0:
                    break
        self.stats["ofo_pruned"] += pruned
        if self._recent and pruned:
            edge = ends[-1] if ends else self.nxt
            self._recent = [r for r in self._recent if r < edge]

    def prune_ooo(self, excess: int) -> int:
        """Discard out-of-order ranges from the far end until ``excess`` bytes (as
        :attr:`held` counts them) are freed or none is left; return how many ranges
        were discarded (counted as ``ofo_pruned``)."""
        n = len(self._starts)
        if n and excess > 0:
            self._prune(0, excess)
        return n - len(self._starts)

    def _note_recent(self, start: int) -> None:
        rec = self._recent
        if rec is _NO_OFFSETS:
            rec = self._recent = []
        if start in rec:
            rec.remove(start)
        rec.insert(0, start)
        del rec[4:]

    # -- reading --------------------------------------------------------------------
    def read(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` of in-order data."""
        if max_bytes <= 0 or not self.readable:
            return b""
        chunks = self._chunks
        if max_bytes >= self.readable:
            out = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            self._chunks = _NO_CHUNKS
            self.readable = 0
            return out
        parts: list[Payload] = []
        need = max_bytes
        taken = 0
        while need:
            c = chunks[taken]
            if len(c) <= need:
                parts.append(c)
                taken += 1
                need -= len(c)
            else:
                mv = memoryview(c)
                parts.append(mv[:need])
                chunks[taken] = mv[need:]
                need = 0
        del chunks[:taken]
        self.readable -= max_bytes
        return b"".join(parts)

    # -- describing the held data ---------------------------------------------------
    def ooo_ranges(self) -> list[tuple[int, int]]:
        """The held out-of-order data as (start, end) ranges, ascending (O(n): for
        tests and diagnostics, not for the per-segment path)."""
        return list(zip(self._starts, self._ends, strict=True))

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` SACK blocks (absolute offsets), RFC 2018 §4: the block
        holding the most recently received segment first, then the blocks of the
        other recently received segments, then the rest (highest first). A pending
        D-SACK block (RFC 2883) comes first and is consumed. O(limit log n)."""
        out: list[tuple[int, int]] = []
        if self.dsack is not None:
            out.append(self.dsack)
            self.dsack = None
        starts = self._starts
        if not starts or limit <= len(out):
            return out
        ends = self._ends
        used: list[int] = []
        for r in self._recent:
            j = bisect_right(starts, r) - 1
            if j >= 0 and ends[j] > r and j not in used:
                used.append(j)
                out.append((starts[j], ends[j]))
                if len(out) >= limit:
                    return out
        for j in range(len(starts) - 1, -1, -1):
            if j not in used:
                out.append((starts[j], ends[j]))
                if len(out) >= limit:
                    break
        return out


def _kept(data: Payload) -> Payload:
    """``data`` as the buffer may hold it: a view showing less than the memory it pins
    (part of a packet, left by a trim or an overlap) is copied, so that a chunk pins
    no more than the buffer charges for it (its length and :data:`CHUNK_OVERHEAD`)."""
    if type(data) is memoryview and len(data) + PIN_SLACK < len(cast(bytes, data.obj)):
        return bytes(data)
    return data
