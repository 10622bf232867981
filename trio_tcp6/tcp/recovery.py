"""Proportional Rate Reduction (RFC 6937): how much the sender may transmit on each
ACK during fast recovery, so that the flight shrinks smoothly to ``ssthresh``.

The connection owns loss detection and the recovery state (RFC 6675 SACK recovery
or RFC 6582 NewReno); this object only does PRR's bookkeeping. Sizes in bytes.
"""

from __future__ import annotations

__all__ = ["PRR"]


class PRR:
    __slots__ = ("budget", "delivered", "out", "recover_fs")

    def __init__(self) -> None:
        #: prr_delivered: bytes delivered to the receiver since recovery began.
        self.delivered = 0
        #: prr_out: bytes sent since recovery began.
        self.out = 0
        #: RecoverFS: the flight when recovery began.
        self.recover_fs = 1
        #: What may still be sent on the current ACK (sndcnt minus what was sent).
        self.budget = 0

    def start(self, flight: int) -> None:
        """Recovery begins (RFC 6937 §3 initialisation)."""
        self.delivered = 0
        self.out = 0
        self.recover_fs = max(flight, 1)
        self.budget = 0

    def on_ack(
        self, delivered: int, pipe: int, ssthresh: int, mss: int, *, first: bool = False
    ) -> int:
        """RFC 6937 §3 on every ACK in recovery: returns sndcnt (also kept as
        :attr:`budget`). ``first`` guarantees the fast retransmit itself goes out.
        Uses the Slow Start Reduction Bound (PRR-SSRB) when pipe <= ssthresh."""
        self.delivered += delivered
        if pipe > ssthresh:
            # Proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
            sndcnt = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:
            limit = max(self.delivered - self.out, delivered) + mss
            sndcnt = min(ssthresh - pipe, limit)
        if sndcnt < 0:
            sndcnt = 0
        if first and sndcnt < mss:
            sndcnt = mss
        self.budget = sndcnt
        return sndcnt

    def sent(self, n: int) -> None:
        self.out += n
        self.budget -= n
