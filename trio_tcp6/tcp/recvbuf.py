"""The receive buffer: in-order data waiting for the reader, plus out-of-order
segments held for reassembly (RFC 9293 §3.10.7.4 "seventh", RFC 2018 §4 for the
SACK blocks that describe them).

Positions are absolute offsets counted from the IRS (the peer's SYN is offset 0),
so they never wrap. Payloads are kept as the ``bytes`` objects that arrived (no
copy) until :meth:`ReceiveBuffer.read` joins them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

__all__ = ["ADD_DUP", "ADD_FILLED", "ADD_INORDER", "ADD_OOO", "ReceiveBuffer"]

#: :meth:`ReceiveBuffer.add` results.
ADD_DUP = 0  # nothing new: every byte was already received
ADD_INORDER = 1  # data appended at rcv_nxt, no held segment involved
ADD_FILLED = 2  # data at rcv_nxt that also released held out-of-order data
ADD_OOO = 3  # held out of order (a gap precedes it)


class ReceiveBuffer:
    """In-order chunks plus sorted, non-overlapping out-of-order pieces."""

    __slots__ = ("_chunks", "_ends", "_ooo", "_recent", "dsack", "nxt", "ooo_bytes", "readable")

    def __init__(self, nxt: int) -> None:
        #: Absolute offset of the next byte expected in order (RCV.NXT).
        self.nxt = nxt
        self._chunks: deque[bytes | memoryview] = deque()
        #: Bytes in ``_chunks`` (in order, not yet read).
        self.readable = 0
        #: Out-of-order pieces as (start, end, data), sorted by start, not overlapping.
        self._ooo: list[tuple[int, int, bytes]] = []
        self._ends: list[int] = []
        self.ooo_bytes = 0
        #: Starts of the most recently received out-of-order pieces, newest first.
        self._recent: list[int] = []
        #: A duplicate range to report once as a D-SACK block (RFC 2883), or None.
        self.dsack: tuple[int, int] | None = None

    @property
    def has_ooo(self) -> bool:
        return bool(self._ooo)

    def add(self, start: int, data: bytes) -> int:
        """Store ``data`` received at absolute offset ``start``; return ADD_*."""
        n = len(data)
        end = start + n
        nxt = self.nxt
        if end <= nxt:
            self.dsack = (start, end)
            return ADD_DUP
        if start < nxt:
            data = data[nxt - start :]
            start = nxt
        if start == nxt:
            ooo = self._ooo
            if not ooo:
                self._chunks.append(data)
                self.readable += end - start
                self.nxt = end
                return ADD_INORDER
            self._chunks.append(data)
            self.readable += end - start
            self.nxt = end
            filled = False
            while ooo and ooo[0][0] <= self.nxt:
                s, e, d = ooo.pop(0)
                self._ends.pop(0)
                self.ooo_bytes -= e - s
                filled = True
                if e > self.nxt:
                    self._chunks.append(d[self.nxt - s :] if s < self.nxt else d)
                    self.readable += e - self.nxt
                    self.nxt = e
            if self._recent:
                nxt2 = self.nxt
                self._recent = [r for r in self._recent if r >= nxt2]
            return ADD_FILLED if filled else ADD_INORDER
        return self._add_ooo(start, end, data)

    def _add_ooo(self, start: int, end: int, data: bytes) -> int:
        ooo = self._ooo
        ends = self._ends
        i = bisect_right(ends, start)  # first piece whose end > start
        cur = start
        added = False
        while i < len(ooo) and ooo[i][0] < end:
            s, e, _ = ooo[i]
            if s > cur:
                ooo.insert(i, (cur, s, data[cur - start : s - start]))
                ends.insert(i, s)
                self.ooo_bytes += s - cur
                added = True
                i += 1
            if e > cur:
                cur = e
            i += 1
        if cur < end:
            piece = data if cur == start else data[cur - start :]
            ooo.insert(i, (cur, end, piece))
            ends.insert(i, end)
            self.ooo_bytes += end - cur
            added = True
        if not added:
            self.dsack = (start, end)
            return ADD_DUP
        rec = self._recent
        if start in rec:
            rec.remove(start)
        rec.insert(0, start)
        del rec[4:]
        return ADD_OOO

    def read(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` of in-order data."""
        if max_bytes <= 0 or not self.readable:
            return b""
        chunks = self._chunks
        if max_bytes >= self.readable:
            if len(chunks) == 1:
                out = bytes(chunks.popleft())
            else:
                out = b"".join(chunks)
                chunks.clear()
            self.readable = 0
            return out
        parts: list[bytes | memoryview] = []
        need = max_bytes
        while need:
            c = chunks[0]
            if len(c) <= need:
                parts.append(chunks.popleft())
                need -= len(c)
            else:
                mv = memoryview(c)
                parts.append(mv[:need])
                chunks[0] = mv[need:]
                need = 0
        self.readable -= max_bytes
        return b"".join(parts)

    def ooo_ranges(self) -> list[tuple[int, int]]:
        """The held out-of-order data as coalesced (start, end) ranges, ascending."""
        out: list[tuple[int, int]] = []
        for s, e, _ in self._ooo:
            if out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` SACK blocks (absolute offsets), RFC 2018 §4: the block
        holding the most recently received segment first, then the other recently
        reported ones, then the rest (highest first). A pending D-SACK block
        (RFC 2883) comes first and is consumed."""
        out: list[tuple[int, int]] = []
        if self.dsack is not None:
            out.append(self.dsack)
            self.dsack = None
        if not self._ooo or limit <= len(out):
            return out
        ranges = self.ooo_ranges()
        used = [False] * len(ranges)
        starts = [r[0] for r in ranges]
        for r in self._recent:
            j = bisect_right(starts, r) - 1
            if j >= 0 and ranges[j][1] > r and not used[j]:
                used[j] = True
                out.append(ranges[j])
                if len(out) >= limit:
                    return out
        for j in range(len(ranges) - 1, -1, -1):
            if not used[j]:
                out.append(ranges[j])
                if len(out) >= limit:
                    break
        return out
