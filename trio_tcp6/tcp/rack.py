"""RACK: time-based loss detection (RFC 8985 §6), working on the scoreboard.

Tail Loss Probe timing and the probe itself live in the connection; this module
keeps RACK's state (RACK.xmit_ts, RACK.end_seq, RACK.rtt, the reordering window
and its D-SACK driven adaptation) and marks lost records.

"Sent before" compares transmissions by their order (the scoreboard numbers them),
with the end sequence number breaking ties within one transmission cut into
pieces: RFC 8985 compares times first and falls back to sequence numbers only
because clocks are coarse, and a serial number is exact.

Loss detection never walks the whole scoreboard (Linux keeps a time-ordered list for
the same reason): the records in flight are listed oldest transmission first, so
those whose deadline passed are a prefix of that list, and those sent before
RACK's newest delivered record another, longer, prefix whose end (the scoreboard's
``rack_mark``) only moves forward. Each ACK costs the records it newly marks lost
plus those it newly finds sent before, amortised O(1) each.
"""

from __future__ import annotations

from .sack import EVER_RETRANS, Scoreboard, SentSeg

__all__ = ["Rack"]


class Rack:
    __slots__ = (
        "dsack_round",
        "end_seq",
        "order",
        "reo_wnd_mult",
        "reo_wnd_persist",
        "reord",
        "rtt",
        "xmit_ts",
    )

    def __init__(self) -> None:
        self.xmit_ts = -1.0
        #: The transmission order of the record RACK.xmit_ts is from (-1: none).
        self.order = -1
        self.end_seq = 0
        self.rtt = 0.0
        #: Reordering was observed on this connection (RACK.reord).
        self.reord = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round: int | None = None

    def update(
        self, r: SentSeg, now: float, min_rtt: float | None, echoes_older: bool = False
    ) -> None:
        """RFC 8985 §6.2 step 2: a segment was delivered (ACKed or SACKed).
        ``echoes_older``: the ACK's TSecr is older than the TSval of the record's
        last transmission."""
        rtt = now - r.xmit
        if r.flags & EVER_RETRANS and (echoes_older or (min_rtt is not None and rtt < min_rtt)):
            # The ACK may be for an earlier transmission: RFC 8985 §6.2 step 2
            # ignores it. Taking the retransmission's time would declare lost
            # everything sent just before it, still in flight; but whichever
            # transmission arrived was sent no earlier than the first one, so
            # what was sent before that is "sent before" the delivered segment
            # all the same (RACK's own inference, without its RTT). Without this,
            # a SACKed tail loss probe cannot reveal the loss of the segments
            # below it, and at a window of 2-3 segments the RTO has to.
            if self.rtt > 0.0:
                self.advance(r.first_xmit, r.first_order, r.end)
            return
        self.rtt = rtt
        # advance(), inline: once per ACK of new data.
        order = r.order
        if order > self.order or (order == self.order and r.end > self.end_seq):
            self.xmit_ts = r.xmit
            self.order = order
            self.end_seq = r.end

    def advance(self, xmit: float, order: int, end: int) -> None:
        """RACK.xmit_ts / RACK.end_seq move to a delivered transmission sent after
        the one they are from (RFC 8985 §6.2 step 2, RACK_sent_after)."""
        if order > self.order or (order == self.order and end > self.end_seq):
            self.xmit_ts = xmit
            self.order = order
            self.end_seq = end

    def on_dsack(self, snd_una: int, snd_nxt: int) -> None:
        """RFC 8985 §6.2 step 4: a D-SACK grows the reordering window once per round."""
        if self.dsack_round is not None and snd_una < self.dsack_round:
            return
        self.dsack_round = snd_nxt
        self.reo_wnd_mult += 1
        self.reo_wnd_persist = 16
        self.reord = True

    def on_recovery_exit(self) -> None:
        if self.reo_wnd_persist > 0:
            self.reo_wnd_persist -= 1
            if self.reo_wnd_persist == 0:
                self.reo_wnd_mult = 1

    def reo_wnd(
        self, min_rtt: float | None, srtt: float | None, in_recovery: bool, sacked_many: bool
    ) -> float:
        """RFC 8985 §6.2 step 4 (RACK.reo_wnd)."""
        if not self.reord and (in_recovery or sacked_many):
            return 0.0
        if min_rtt is None:
            return 0.0
        w = self.reo_wnd_mult * min_rtt / 4
        if srtt is not None and w > srtt:
            w = srtt
        return w

    def detect_loss(self, sb: Scoreboard, now: float, reo_wnd: float) -> tuple[bool, float]:
        """RFC 8985 §6.2 step 5: mark lost every record in flight sent before the one
        RACK.xmit_ts is from whose deadline passed. Returns (anything newly marked,
        the time until the latest pending deadline of those sent before, or 0.0)."""
        if self.order < 0:
            return False, 0.0
        head = sb.inflight
        order = self.order
        end_seq = self.end_seq
        # Extend the "sent before" prefix over what this ACK's news put behind.
        mark = sb.rack_mark
        r = mark.newer
        while r is not head:
            assert r is not None
            o = r.order
            if o > order or (o == order and r.end >= end_seq):
                break
            mark = r
            r = r.newer
        sb.rack_mark = mark
        if mark is head:
            return False, 0.0
        # Deadlines grow along the list: the expired records are its oldest ones.
        budget = self.rtt + reo_wnd - now
        marked = False
        r = head.newer
        while True:
            assert r is not None
            if r.xmit + budget > 1e-6:
                return marked, mark.xmit + budget
            last = r is mark
            newer = r.newer
            sb.mark_lost(sb.index(r))
            marked = True
            if last:
                return True, 0.0
            r = newer
