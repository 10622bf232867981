"""The sender's scoreboard: one record per transmitted segment still outstanding,
with its SACKed / lost / retransmitted marks (RFC 6675 §3-4, RFC 8985 §5.2).

Positions are absolute offsets from the ISS (no wrap). The records tile
``[snd_una, snd_nxt)`` exactly, in sequence order. Counters kept incrementally make
``pipe`` (RFC 6675 §4 SetPipe, in the Linux form ``outstanding - sacked - lost +
retransmitted``) O(1).

A peer controls the SACK blocks, so nothing here may cost more than what an ACK
changes (the CVE-2019-11478 class of attacks: a receiver SACKing single bytes to
fragment the scoreboard and make every ACK walk it):

* a SACK block is found by bisection over the records' start offsets, and marks a
  record SACKed only in whole segments (multiples of the MSS from the record's
  start, or up to its end): a block covering part of a segment is ignored, as Linux's
  ``tcp_match_skb_to_sack`` does. Records are therefore only ever cut where the wire
  segments were, and their number stays bounded by what was sent;
* a retransmission is assembled from adjacent whole lost records up to one MSS
  (:meth:`Scoreboard.coalesce`, Linux ``tcp_retrans_try_collapse``), so small lost
  pieces are not resent one by one;
* the records in flight (neither SACKed nor lost-and-not-resent) are also kept in a
  doubly linked list in transmission order (Linux's ``tsorted_sent_queue``), which
  RACK walks from the oldest end only as far as it has to (:mod:`.rack`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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
_time_order = attrgetter("order", "end")


class SentSeg:
    """One transmitted segment: ``[start, end)``, its last transmission time and
    that transmission's serial number (``order``: the transmission order, which
    breaks ties between equal times), and the same two of its first transmission
    (``first_xmit``, ``first_order``: an ACK that may be for any of its
    transmissions is for one sent no earlier than that). ``newer``/``older`` link
    it into the scoreboard's in-flight list while it is in flight (None otherwise)."""

    __slots__ = (
        "end",
        "first_order",
        "first_xmit",
        "flags",
        "newer",
        "older",
        "order",
        "start",
        "xmit",
    )

    def __init__(
        self,
        start: int,
        end: int,
        xmit: float,
        flags: int = 0,
        order: int = 0,
        first_xmit: float | None = None,
        first_order: int | None = None,
    ) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.flags = flags
        self.order = order
        self.first_xmit = xmit if first_xmit is None else first_xmit
        self.first_order = order if first_order is None else first_order
        self.newer: SentSeg | None = None
        self.older: SentSeg | None = None

    def __repr__(self) -> str:
        return f"SentSeg({self.start}, {self.end}, xmit={self.xmit}, flags={self.flags})"


class Scoreboard:
    """The records of ``[una, nxt)`` (:attr:`segs`, in sequence order) and the
    in-flight list (:attr:`inflight`, in transmission order)."""

    __slots__ = (
        "_hint",
        "_orders",
        "fack",
        "inflight",
        "lost",
        "nxt",
        "rack_mark",
        "retrans",
        "sacked",
        "segs",
        "una",
    )

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
        self._orders = 0  # transmissions so far (the next SentSeg.order)
        #: Sentinel of the circular in-flight list: ``inflight.newer`` is the oldest
        #: record in flight, ``inflight.older`` the newest. A record is on it exactly
        #: while it is neither SACKed nor lost without a retransmission in flight.
        self.inflight = SentSeg(una, una, -1.0, order=-1)
        self.inflight.newer = self.inflight.older = self.inflight
        #: RACK's place in the in-flight list: this record and every older one were
        #: sent before the most recently sent delivered record (the sentinel if none
        #: is known to be); kept by :mod:`.rack`, moved back here when it leaves.
        self.rack_mark = self.inflight

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

    # -- the in-flight list ---------------------------------------------------------
    def _link_newest(self, r: SentSeg, now: float) -> None:
        """``r`` was (re)transmitted at ``now``: it becomes the newest in flight."""
        r.xmit = now
        r.order = self._orders
        self._orders += 1
        head = self.inflight
        last = head.older
        assert last is not None
        r.older = last
        r.newer = head
        last.newer = head.older = r

    def _unlink(self, r: SentSeg) -> None:
        """``r`` is no longer in flight (SACKed, lost, acknowledged)."""
        newer = r.newer
        if newer is None:
            return
        older = r.older
        assert older is not None
        older.newer = newer
        newer.older = older
        if r is self.rack_mark:
            self.rack_mark = older
        r.newer = r.older = None

    def _relink_all(self) -> None:
        """Rebuild the in-flight list from the flags (after a bulk change)."""
        head = self.inflight
        head.newer = head.older = head
        self.rack_mark = head
        live = []
        for r in self.segs:
            r.newer = r.older = None
            f = r.flags
            if not f & SACKED and (not f & LOST or f & RETRANS):
                live.append(r)
        live.sort(key=_time_order)
        prev = head
        for r in live:
            r.older = prev
            prev.newer = r
            prev = r
        prev.newer = head
        head.older = prev

    def index(self, r: SentSeg) -> int:
        """Position of record ``r`` in :attr:`segs` (O(log n))."""
        return bisect_left(self.segs, r.start, key=_start)

    # -- transmission -------------------------------------------------------------
    def add(self, start: int, end: int, now: float) -> None:
        """New data ``[start, end)`` (== ``[nxt, end)``) was sent."""
        r = SentSeg(start, end, now, 0, self._orders)
        self._orders += 1
        self.segs.append(r)
        # The newest in flight (_link_newest, inlined: once per segment sent).
        head = self.inflight
        last = head.older
        r.older = last
        r.newer = head
        last.newer = head.older = r  # type: ignore[union-attr]
        self.nxt = end

    def split(self, i: int, at: int) -> None:
        """Split record ``i`` at absolute offset ``at`` (strictly inside it)."""
        r = self.segs[i]
        tail = SentSeg(at, r.end, r.xmit, r.flags, r.order, r.first_xmit, r.first_order)
        r.end = at
        self.segs.insert(i + 1, tail)
        newer = r.newer
        if newer is not None:
            # Both halves went out in the same transmission: the tail right after.
            tail.older = r
            tail.newer = newer
            newer.older = r.newer = tail

    def coalesce(self, i: int, mss: int) -> SentSeg:
        """Make record ``i`` (lost, no retransmission in flight) the next segment to
        retransmit: at most ``mss`` bytes, cut down to it or merged with the whole
        lost records that follow (without a retransmission in flight, not SACKed)
        while they fit in it (Linux ``tcp_retrans_try_collapse``), so that small
        lost pieces are resent together. Returns the record."""
        segs = self.segs
        r = segs[i]
        if r.end - r.start > mss:
            self.split(i, r.start + mss)
            return r
        want = r.start + mss
        j = i + 1
        n = len(segs)
        flags = r.flags
        while r.end < want and j < n:
            q = segs[j]
            f = q.flags
            if f & (SACKED | RETRANS) or not f & LOST or q.end > want:
                break
            r.end = q.end
            flags |= f & EVER_RETRANS
            if q.first_order < r.first_order:
                r.first_order = q.first_order
                r.first_xmit = q.first_xmit
            j += 1
        if j > i + 1:
            # The merged records were all lost, none in flight: the counters hold.
            del segs[i + 1 : j]
            r.flags = flags
        return r

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
        self._unlink(r)
        self._link_newest(r, now)

    def mark_resent(self, i: int, now: float) -> None:
        """A copy of record ``i`` went out again at ``now`` without it having been
        marked lost (a tail loss probe)."""
        r = self.segs[i]
        r.flags |= EVER_RETRANS
        if r.newer is not None:
            self._unlink(r)
            self._link_newest(r, now)
        else:
            r.xmit = now

    def mark_lost(self, i: int) -> None:
        r = self.segs[i]
        f = r.flags
        if f & SACKED:
            return
        if f & LOST and not f & RETRANS:
            return
        self._set(r, (f | LOST) & ~RETRANS)
        self._unlink(r)
        if i < self._hint:
            self._hint = i

    def mark_all_lost(self) -> None:
        """RTO or path-MTU drop: every un-SACKed record is lost, no retransmission
        is considered in flight any more."""
        for r in self.segs:
            r.newer = r.older = None
            if not r.flags & SACKED:
                r.flags = (r.flags | LOST) & ~RETRANS
        head = self.inflight
        head.newer = head.older = self.rack_mark = head
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
        self._relink_all()

    # -- acknowledgements ----------------------------------------------------------
    def on_ack(self, una: int, mss: int = 0) -> tuple[SentSeg | None, SentSeg | None]:
        """Cumulative ACK up to ``una``. Returns (the highest fully acknowledged
        record that was not SACKed before — the one to take an RTT sample from, None
        if a retransmitted record was among them (Karn) — and the most recently
        transmitted record newly delivered by this ACK).

        A record longer than ``mss`` (a TSO super-segment) of which the ACK covers
        at least ``mss`` bytes counts as acknowledged for the RTT sample, as
        Linux's ``tcp_clean_rtx_queue`` takes one from a TSO packet that is only
        partly acknowledged: whole segments of it were, and they were sent when it
        was. (A record of one segment, partly acknowledged, gives none.)"""
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
                if newest is None or r.order >= newest.order:
                    newest = r
            if f & (SACKED | LOST | RETRANS):
                self._set(r, f & EVER_RETRANS)
            newer = r.newer
            if newer is not None:
                # Off the in-flight list (_unlink, inlined: once per record ACKed).
                older = r.older
                older.newer = newer  # type: ignore[union-attr]
                newer.older = older
                if r is self.rack_mark:
                    self.rack_mark = older  # type: ignore[assignment]
            k += 1
        if k:
            del segs[:k]
            self._hint = self._hint - k if self._hint > k else 0
        if segs and segs[0].start < una:
            r = segs[0]
            f = r.flags
            if not f & SACKED:
                if newest is None or r.order >= newest.order:
                    newest = r
                if 0 < mss <= una - r.start and r.end - r.start > mss:
                    last = r
                    if f & EVER_RETRANS:
                        ambiguous = True
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

    def on_sack(
        self, blocks: list[tuple[int, int]], mss: int = 1
    ) -> tuple[SentSeg | None, bool, int]:
        """Apply SACK blocks (absolute offsets, already clipped to (una, nxt]), in
        whole segments of ``mss`` bytes (see the module docstring). Returns (the most
        recently transmitted newly SACKed record, whether any newly SACKed
        never-retransmitted record lies below the previous highest SACK — i.e.
        reordering — and the number of newly SACKed bytes)."""
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
                a = r.start
                if a >= e:
                    break
                b = r.end
                if b <= s or r.flags & SACKED:
                    i += 1
                    continue
                if a < s or b > e:
                    # Partly covered: only the whole segments inside the block.
                    lo = a if s <= a else a + -(-(s - a) // mss) * mss
                    hi = b if e >= b else a + (e - a) // mss * mss
                    if hi <= lo:
                        i += 1
                        continue
                    if lo > a:
                        self.split(i, lo)
                        n += 1
                        i += 1
                        r = segs[i]
                    if hi < b:
                        self.split(i, hi)
                        n += 1
                self._set(r, r.flags | SACKED)
                self._unlink(r)
                newly += r.end - r.start
                if not r.flags & EVER_RETRANS and r.end <= old_fack:
                    reordered = True
                if newest is None or (r.order, r.end) > (newest.order, newest.end):
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
                self._unlink(r)
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
        # The in-flight list: exactly the records in flight, oldest transmission first.
        head = self.inflight
        listed = []
        q = head.newer
        while q is not head:
            assert q is not None and q.newer is not None and q.newer.older is q
            listed.append(q)
            q = q.newer
        live = [
            r
            for r in self.segs
            if not r.flags & SACKED and (not r.flags & LOST or r.flags & RETRANS)
        ]
        assert {id(r) for r in listed} == {id(r) for r in live}, (listed, live)
        assert [_time_order(r) for r in listed] == sorted(_time_order(r) for r in listed)
        assert all(r.newer is None for r in self.segs if r not in live)
        m = self.rack_mark
        assert m is head or any(r is m for r in listed), m
        assert (sacked, lost, retrans) == (self.sacked, self.lost, self.retrans), (
            sacked,
            lost,
            retrans,
            self.sacked,
            self.lost,
            self.retrans,
        )
