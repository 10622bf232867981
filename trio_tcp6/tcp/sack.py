"""The sender's scoreboard: one record per transmitted segment still outstanding,
with its SACKed / lost / retransmitted marks (RFC 6675 §3-4, RFC 8985 §5.2).

Positions are absolute offsets from the ISS (no wrap). The records tile
``[snd_una, snd_nxt)`` exactly, in sequence order. Counters kept incrementally make
``pipe`` (RFC 6675 §4 SetPipe, in the Linux form ``outstanding - sacked - lost +
retransmitted``) O(1).
"""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter

__all__ = ["EVER_RETRANS", "LOST", "RETRANS", "SACKED", "Scoreboard", "SentSeg"]

SACKED = 1
#: Considered lost (RFC 6675 IsLost, RACK, RTO, NewReno) and not yet repaired.
LOST = 2
#: A retransmission of it is in flight.
RETRANS = 4
#: It was retransmitted at least once (Karn).
EVER_RETRANS = 8

_start = attrgetter("start")


class SentSeg:
    """One transmitted segment: ``[start, end)`` and its last transmission time."""

    __slots__ = ("end", "flags", "start", "xmit")

    def __init__(self, start: int, end: int, xmit: float, flags: int = 0) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.flags = flags

    def __repr__(self) -> str:
        return f"SentSeg({self.start}, {self.end}, xmit={self.xmit}, flags={self.flags})"


class Scoreboard:
    __slots__ = ("_hint", "fack", "lost", "nxt", "retrans", "sacked", "segs", "una")

    def __init__(self, una: int) -> None:
        self.segs: list[SentSeg] = []
        self.una = una
        self.nxt = una
        self.sacked = 0
        #: Bytes marked LOST (not SACKed), retransmitted or not.
        self.lost = 0
        #: Bytes with a retransmission in flight (not SACKed).
        self.retrans = 0
        #: Highest SACKed end (forward-most acknowledged), >= una.
        self.fack = una
        self._hint = 0  # no pending (lost, not retransmitted) record before this index

    # -- accounting ---------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return self.nxt - self.una

    @property
    def pipe(self) -> int:
        return self.nxt - self.una - self.sacked - self.lost + self.retrans

    @property
    def lost_pending(self) -> int:
        """Bytes marked lost whose retransmission is not (or no longer) in flight."""
        return self.lost - self.retrans

    def _set(self, r: SentSeg, flags: int) -> None:
        """Change ``r.flags`` to ``flags`` keeping the counters right."""
        old = r.flags
        n = r.end - r.start
        if old & SACKED:
            self.sacked -= n
        else:
            if old & LOST:
                self.lost -= n
            if old & RETRANS:
                self.retrans -= n
        if flags & SACKED:
            flags &= ~(LOST | RETRANS)
            self.sacked += n
        else:
            if flags & LOST:
                self.lost += n
            if flags & RETRANS:
                self.retrans += n
        r.flags = flags

    # -- transmission -------------------------------------------------------------
    def add(self, start: int, end: int, now: float) -> None:
        """New data ``[start, end)`` (== ``[nxt, end)``) was sent."""
        self.segs.append(SentSeg(start, end, now))
        self.nxt = end

    def split(self, i: int, at: int) -> None:
        """Split record ``i`` at absolute offset ``at`` (strictly inside it)."""
        r = self.segs[i]
        tail = SentSeg(at, r.end, r.xmit, r.flags)
        r.end = at
        self.segs.insert(i + 1, tail)

    def next_lost(self) -> int:
        """Index of the first record marked lost without a retransmission in flight
        (RFC 6675 NextSeg rule 1), or -1."""
        segs = self.segs
        i = self._hint
        n = len(segs)
        while i < n:
            f = segs[i].flags
            if f & LOST and not f & (RETRANS | SACKED):
                self._hint = i
                return i
            i += 1
        self._hint = n
        return -1

    def next_unsacked_below_fack(self) -> int:
        """RFC 6675 NextSeg rule 3: the first record neither SACKed, lost nor
        retransmitted that lies below the highest SACKed sequence number, or -1."""
        fack = self.fack
        for i, r in enumerate(self.segs):
            if r.end > fack:
                break
            if not r.flags & (SACKED | LOST | RETRANS):
                return i
        return -1

    def mark_retransmitted(self, i: int, now: float) -> None:
        """A retransmission of record ``i`` (marked lost) went out at ``now``."""
        r = self.segs[i]
        self._set(r, r.flags | RETRANS | EVER_RETRANS)
        r.xmit = now

    def mark_lost(self, i: int) -> None:
        r = self.segs[i]
        f = r.flags
        if f & SACKED:
            return
        if f & LOST and not f & RETRANS:
            return
        self._set(r, (f | LOST) & ~RETRANS)
        if i < self._hint:
            self._hint = i

    def mark_all_lost(self) -> None:
        """RTO or path-MTU drop: every un-SACKed record is lost, no retransmission
        is considered in flight any more."""
        for r in self.segs:
            if not r.flags & SACKED:
                r.flags = (r.flags | LOST) & ~RETRANS
        self.retrans = 0
        self.lost = self.outstanding - self.sacked
        self._hint = 0

    def clear_marks(self) -> None:
        """Forget SACK and loss marks (used on a spurious-timeout undo)."""
        for r in self.segs:
            r.flags &= EVER_RETRANS
        self.sacked = self.lost = self.retrans = 0
        self.fack = self.una
        self._hint = 0

    # -- acknowledgements ----------------------------------------------------------
    def on_ack(self, una: int) -> tuple[SentSeg | None, SentSeg | None]:
        """Cumulative ACK up to ``una``. Returns (the highest fully acknowledged
        record that was not SACKed before — the one to take an RTT sample from, None
        if a retransmitted record was among them (Karn) — and the most recently
        transmitted record newly delivered by this ACK)."""
        segs = self.segs
        last: SentSeg | None = None
        newest: SentSeg | None = None
        k = 0
        n = len(segs)
        ambiguous = False
        while k < n:
            r = segs[k]
            if r.end > una:
                break
            f = r.flags
            if not f & SACKED:
                last = r
                if f & EVER_RETRANS:
                    ambiguous = True
                if newest is None or r.xmit >= newest.xmit:
                    newest = r
            if f & (SACKED | LOST | RETRANS):
                self._set(r, f & EVER_RETRANS)
            k += 1
        if k:
            del segs[:k]
            self._hint = self._hint - k if self._hint > k else 0
        if segs and segs[0].start < una:
            r = segs[0]
            f = r.flags
            if not f & SACKED and (newest is None or r.xmit >= newest.xmit):
                newest = r
            if f & (SACKED | LOST | RETRANS):
                self._set(r, f & EVER_RETRANS)
                r.start = una
                self._set(r, f)
            else:
                r.start = una
        self.una = una
        if self.fack < una:
            self.fack = una
        return (None if ambiguous else last), newest

    def on_sack(self, blocks: list[tuple[int, int]]) -> tuple[SentSeg | None, bool, int]:
        """Apply SACK blocks (absolute offsets, already clipped to (una, nxt]).
        Returns (the most recently transmitted newly SACKed record, whether any newly
        SACKed never-retransmitted record lies below the previous highest SACK —
        i.e. reordering — and the number of newly SACKed bytes)."""
        segs = self.segs
        newest: SentSeg | None = None
        reordered = False
        newly = 0
        old_fack = self.fack
        for s, e in blocks:
            i = bisect_right(segs, s, key=_start) - 1
            if i < 0:
                i = 0
            n = len(segs)
            while i < n:
                r = segs[i]
                if r.start >= e:
                    break
                if r.end <= s or r.flags & SACKED:
                    i += 1
                    continue
                if r.start < s:
                    self.split(i, s)
                    n += 1
                    i += 1
                    continue
                if r.end > e:
                    self.split(i, e)
                    n += 1
                self._set(r, r.flags | SACKED)
                newly += r.end - r.start
                if not r.flags & EVER_RETRANS and r.end <= old_fack:
                    reordered = True
                if newest is None or r.xmit >= newest.xmit:
                    newest = r
                i += 1
            if e > self.fack:
                self.fack = e
        return newest, reordered, newly

    # -- RFC 6675 IsLost ----------------------------------------------------------
    def mark_lost_dupthresh(self, mss: int, dupthresh: int = 3) -> bool:
        """Mark lost every un-SACKed record with at least ``dupthresh`` SACKed
        records or more than ``(dupthresh - 1) * mss`` SACKed bytes above it
        (RFC 6675 §4 IsLost). Returns whether anything was newly marked."""
        if not self.sacked:
            return False
        segs = self.segs
        count = 0
        nbytes = 0
        limit = (dupthresh - 1) * mss
        marked = False
        i = len(segs) - 1
        # Skip the un-SACKed tail above the highest SACK.
        while i >= 0 and not segs[i].flags & SACKED:
            i -= 1
        while i >= 0:
            r = segs[i]
            f = r.flags
            if f & SACKED:
                count += 1
                nbytes += r.end - r.start
            elif count >= dupthresh or nbytes > limit:
                if f & LOST:
                    break  # everything below was handled by an earlier pass
                self._set(r, f | LOST)
                if i < self._hint:
                    self._hint = i
                marked = True
            i -= 1
        return marked

    def check(self) -> None:
        """Verify the invariants (for tests)."""
        sacked = lost = retrans = 0
        pos = self.una
        for r in self.segs:
            assert r.start == pos and r.end > r.start, (r, pos)
            pos = r.end
            n = r.end - r.start
            if r.flags & SACKED:
                sacked += n
                assert not r.flags & (LOST | RETRANS)
            else:
                if r.flags & LOST:
                    lost += n
                if r.flags & RETRANS:
                    assert r.flags & LOST, r  # lost_pending == lost - retrans relies on it
                    retrans += n
        assert pos == self.nxt, (pos, self.nxt)
        assert (sacked, lost, retrans) == (self.sacked, self.lost, self.retrans), (
            sacked,
            lost,
            retrans,
            self.sacked,
            self.lost,
            self.retrans,
        )
