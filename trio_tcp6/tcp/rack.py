"""RACK: time-based loss detection (RFC 8985 §6), working on the scoreboard.

Tail Loss Probe timing and the probe itself live in the connection; this module
keeps RACK's state (RACK.xmit_ts, RACK.end_seq, RACK.rtt, the reordering window
and its D-SACK driven adaptation) and marks lost records.
"""

from __future__ import annotations

from .sack import EVER_RETRANS, LOST, RETRANS, SACKED, Scoreboard, SentSeg

__all__ = ["Rack"]


class Rack:
    __slots__ = (
        "dsack_round",
        "end_seq",
        "reo_wnd_mult",
        "reo_wnd_persist",
        "reord",
        "rtt",
        "xmit_ts",
    )

    def __init__(self) -> None:
        self.xmit_ts = -1.0
        self.end_seq = 0
        self.rtt = 0.0
        #: Reordering was observed on this connection (RACK.reord).
        self.reord = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round: int | None = None

    def update(self, r: SentSeg, now: float, min_rtt: float | None) -> None:
        """RFC 8985 §6.2 step 2: a segment was delivered (ACKed or SACKed)."""
        rtt = now - r.xmit
        if r.flags & EVER_RETRANS and min_rtt is not None and rtt < min_rtt:
            # Possibly the original was delivered: ambiguous, ignore (RFC 8985 §6.2).
            return
        self.rtt = rtt
        if r.xmit > self.xmit_ts or (r.xmit == self.xmit_ts and r.end > self.end_seq):
            self.xmit_ts = r.xmit
            self.end_seq = r.end

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
        """RFC 8985 §6.2 step 5: mark lost every record sent before RACK.xmit_ts
        whose deadline passed. Returns (anything newly marked, the time until the
        earliest pending deadline or 0.0)."""
        marked = False
        timeout = 0.0
        xts = self.xmit_ts
        if xts < 0:
            return False, 0.0
        end_seq = self.end_seq
        fack = sb.fack
        budget = self.rtt + reo_wnd - now
        segs = sb.segs
        i = 0
        n = len(segs)
        while i < n:
            r = segs[i]
            f = r.flags
            if r.start >= fack and not f & EVER_RETRANS:
                break
            i += 1
            if f & SACKED or (f & LOST and not f & RETRANS):
                continue
            x = r.xmit
            if x > xts or (x == xts and r.end >= end_seq):
                continue
            remaining = x + budget
            if remaining <= 1e-6:
                sb.mark_lost(i - 1)
                marked = True
            elif remaining > timeout:
                timeout = remaining
        return marked, timeout
