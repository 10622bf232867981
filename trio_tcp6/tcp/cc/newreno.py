"""NewReno congestion control: RFC 5681 with the cwnd side of RFC 6582.

Slow start and the initial window live in :mod:`.base`. Congestion avoidance
counts bytes (RFC 5681 §3.1, the byte-counting variant of eq. (3), as in RFC 3465
§2.1): once a full ``cwnd`` worth of bytes has been acknowledged, ``cwnd`` grows by
one SMSS — one segment per round trip.

Loss recovery itself (fast retransmit, partial ACKs, PRR) belongs to the engine; on
entering it, ``ssthresh = max(FlightSize / 2, 2*SMSS)`` (RFC 5681 eq. (4)) and on
leaving it ``cwnd = ssthresh`` (RFC 6582 §3.2 step 3).
"""

from __future__ import annotations

from typing import ClassVar

from .base import ABC_L, CongestionControlBase
from .native import mypyc_attr

__all__ = ["NewReno"]


@mypyc_attr(allow_interpreted_subclasses=True)
class NewReno(CongestionControlBase):
    """RFC 5681 / RFC 6582 congestion control."""

    name: ClassVar[str] = "newreno"

    __slots__ = ("bytes_acked",)

    def __init__(
        self,
        *,
        mss: int,
        initial_window: int = 10,
        hystart: bool = True,
        validation: str = "rfc7661",
        abc_limit: int | None = ABC_L,
    ) -> None:
        super().__init__(
            mss=mss,
            initial_window=initial_window,
            hystart=hystart,
            validation=validation,
            abc_limit=abc_limit,
        )
        #: Bytes acknowledged in congestion avoidance not yet turned into growth.
        self.bytes_acked = 0

    def _congestion_avoidance(
        self, acked: int, now: float, rtt: float | None, limited: bool
    ) -> None:
        if not limited:
            return
        self.bytes_acked += acked
        if self.bytes_acked >= self.cwnd:
            self.bytes_acked -= self.cwnd
            self.cwnd += self.mss

    def on_congestion_event(self, now: float, in_flight: int) -> None:
        self.congestion_events += 1
        self.ssthresh = self.reno_ssthresh(in_flight)
        self.bytes_acked = 0

    def on_rto(self, now: float, in_flight: int, *, repeated: bool = False) -> None:
        super().on_rto(now, in_flight, repeated=repeated)
        self.bytes_acked = 0

    def _rescale(self, factor: float) -> None:
        self.bytes_acked = int(self.bytes_acked * factor)
