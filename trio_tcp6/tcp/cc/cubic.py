"""CUBIC congestion control (RFC 9438).

Windows are kept in bytes; the cubic function is evaluated in segments (RFC 9438
defines C in segments per second cubed) and converted with the SMSS:

* ``W_cubic(t) = C*(t - K)**3 + W_max`` (§4.2, eq. 1), ``t`` seconds since the start
  of the current congestion-avoidance epoch, ``K = cbrt((W_max - cwnd_epoch) / C)``
  (eq. 2), C = 0.4;
* each ACK in congestion avoidance moves ``cwnd`` towards
  ``target = clamp(W_cubic(t + RTT), cwnd, 1.5*cwnd)`` by
  ``(target - cwnd) / cwnd`` per acknowledged segment (§4.2);
* the Reno-friendly estimate ``W_est`` grows by ``alpha_cubic`` segments per window
  acknowledged, ``alpha_cubic = 3*(1-beta)/(1+beta)`` until ``W_est`` reaches
  ``cwnd_prev``, then 1 (§4.3); when ``W_cubic(t) < W_est`` cwnd follows ``W_est``;
* on congestion: ``ssthresh = max(FlightSize * beta_cubic, 2*SMSS)`` with
  beta_cubic = 0.7 (§4.6) and fast convergence (§4.7) for ``W_max``;
* after a timeout, or when HyStart++ ended slow start without loss, the next epoch
  uses ``W_max = cwnd`` at its start and ``K = 0`` (§4.8, §4.10);
* ``t`` excludes application-limited periods (§5.8).

The epoch starts lazily with the first congestion-avoidance ACK after a reduction.
"""

from __future__ import annotations

import math
from typing import ClassVar

from .base import ABC_L, CongestionControlBase
from .native import mypyc_attr

__all__ = ["ALPHA_CUBIC", "BETA_CUBIC", "C", "Cubic"]

#: RFC 9438 §4.1 constants.
C = 0.4
BETA_CUBIC = 0.7
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)


def _cbrt(x: float) -> float:
    """Real cube root (``math.cbrt`` needs Python 3.11)."""
    return math.copysign(abs(x) ** (1 / 3), x)


@mypyc_attr(allow_interpreted_subclasses=True)
class Cubic(CongestionControlBase):
    """RFC 9438 CUBIC with fast convergence."""

    name: ClassVar[str] = "cubic"

    __slots__ = (
        "_cwnd_f",
        "_last_ack_time",
        "alpha_cubic",
        "cwnd_epoch",
        "cwnd_prev",
        "epoch_start",
        "fast_convergence",
        "k",
        "srtt",
        "w_est",
        "w_max",
    )

    def __init__(
        self,
        *,
        mss: int,
        initial_window: int = 10,
        hystart: bool = True,
        fast_convergence: bool = True,
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
        self.fast_convergence = fast_convergence
        #: Window just before the last reduction (bytes); None before any.
        self.w_max: float | None = None
        #: Seconds for W_cubic to climb back to W_max in the current epoch.
        self.k = 0.0
        #: Start of the current congestion-avoidance epoch; None when none runs.
        self.epoch_start: float | None = None
        self.cwnd_epoch = 0.0
        #: Reno-friendly window estimate (bytes), RFC 9438 §4.3.
        self.w_est = 0.0
        #: cwnd before the last reduction (bytes).
        self.cwnd_prev = 0.0
        self.alpha_cubic = ALPHA_CUBIC
        #: Smoothed RTT of the samples handed to on_ack (the RTT of §4.2's target).
        self.srtt: float | None = None
        self._cwnd_f = float(self.cwnd)
        self._last_ack_time: float | None = None

    # -- the curve ----------------------------------------------------------------

    def w_cubic(self, t: float) -> float:
        """RFC 9438 eq. (1) in bytes for ``t`` seconds into the epoch."""
        w_max = self.w_max if self.w_max is not None else float(self.cwnd)
        return C * (t - self.k) ** 3 * self.mss + w_max

    def _start_epoch(self, now: float) -> None:
        self.epoch_start = now
        self._last_ack_time = now
        self.cwnd_epoch = self._cwnd_f
        if self.w_max is None or self.w_max <= self.cwnd_epoch:
            # §4.8 / §4.10: no usable W_max (after an RTO, after a loss-free
            # HyStart++ exit, or cwnd already above it): plateau at the current cwnd.
            self.w_max = self.cwnd_epoch
            self.k = 0.0
        else:
            self.k = _cbrt((self.w_max - self.cwnd_epoch) / self.mss / C)
        self.w_est = self.cwnd_epoch
        if self.w_est >= self.cwnd_prev:
            self.alpha_cubic = 1.0

    # -- events -------------------------------------------------------------------

    def on_ack(
        self, acked: int, now: float, rtt: float | None, snd_una: int, snd_nxt: int, in_flight: int
    ) -> None:
        if rtt is not None:
            self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt
        super().on_ack(acked, now, rtt, snd_una, snd_nxt, in_flight)

    def _congestion_avoidance(
        self, acked: int, now: float, rtt: float | None, limited: bool
    ) -> None:
        if int(self._cwnd_f) != self.cwnd:
            self._cwnd_f = float(self.cwnd)  # someone (recovery, undo) set cwnd
        if self.epoch_start is None:
            if not limited:
                return
            self._start_epoch(now)
        assert self.epoch_start is not None
        if not limited:
            # §5.8: application-limited time does not count towards t.
            if self._last_ack_time is not None:
                self.epoch_start += now - self._last_ack_time
            self._last_ack_time = now
            return
        self._last_ack_time = now
        cwnd = self._cwnd_f
        t = now - self.epoch_start
        rtt_est = self.srtt if self.srtt is not None else 0.0
        target = min(max(self.w_cubic(t + rtt_est), cwnd), 1.5 * cwnd)
        self.w_est += self.alpha_cubic * acked * self.mss / cwnd
        if self.alpha_cubic < 1.0 and self.w_est >= self.cwnd_prev:
            self.alpha_cubic = 1.0
        if self.w_cubic(t) < self.w_est:
            new = max(cwnd, self.w_est)  # Reno-friendly region, §4.3
        else:
            new = cwnd + (target - cwnd) * acked / cwnd  # concave / convex, §4.4-4.5
        self._cwnd_f = new
        self.cwnd = int(new)

    def _reduce(self, in_flight: int) -> None:
        """§4.6 / §4.7: remember the window, fast convergence, new ssthresh.

        The window remembered (W_max, cwnd_prev) is the one the flow used: cwnd, but
        at most the flight the loss response starts from. A cwnd that grew beyond
        what a receive window or the application let the flow send (slow start may
        reach twice the flight) was never tested on the path, and the curve would
        otherwise climb back towards it (§4.2 and §5.8: cwnd does not grow while it
        is not used). With ``loss_response="cwnd"`` the two are the same."""
        cwnd = float(min(self.cwnd, max(in_flight, 2 * self.mss)))
        self.cwnd_prev = cwnd
        if self.fast_convergence and self.w_max is not None and cwnd < self.w_max:
            self.w_max = cwnd * (1 + BETA_CUBIC) / 2
        else:
            self.w_max = cwnd
        self.ssthresh = max(int(in_flight * BETA_CUBIC), 2 * self.mss)
        self.alpha_cubic = ALPHA_CUBIC
        self.epoch_start = None

    def on_congestion_event(self, now: float, in_flight: int) -> None:
        self.congestion_events += 1
        self._reduce(in_flight)

    def _ssthresh_after_rto(self, now: float, in_flight: int) -> int:
        """§4.8: ssthresh as for a loss (beta_cubic); the next epoch has K = 0 and
        W_max = cwnd at its start."""
        self._reduce(in_flight)
        self.w_max = None
        return self.ssthresh

    def on_rto(self, now: float, in_flight: int, *, repeated: bool = False) -> None:
        super().on_rto(now, in_flight, repeated=repeated)
        self.epoch_start = None
        self._cwnd_f = float(self.cwnd)

    def _on_slow_start_exit(self, now: float) -> None:
        # §4.10: HyStart++ left slow start without a loss, W_max is undefined.
        self.cwnd_prev = float(self.cwnd)
        self.w_max = None
        self.epoch_start = None

    def on_idle_restart(self, now: float, rto: float) -> None:
        super().on_idle_restart(now, rto)
        self._cwnd_f = float(self.cwnd)
        if self.epoch_start is not None and self._last_ack_time is not None:
            self.epoch_start += now - self._last_ack_time  # §5.8: idle time excluded
            self._last_ack_time = now

    def _rescale(self, factor: float) -> None:
        if self.w_max is not None:
            self.w_max *= factor
        self.w_est *= factor
        self.cwnd_epoch *= factor
        self.cwnd_prev *= factor
        self._cwnd_f = float(self.cwnd)
