"""Round-trip time estimation and the retransmission timeout (RFC 6298).

:class:`RTTEstimator` keeps SRTT and RTTVAR (RFC 6298 §2), the RTO with its
exponential backoff (§5.5) and two extras other parts of the engine use:

* ``min_rtt`` — a windowed minimum of the samples (RACK, RFC 8985 §6.1, and
  HyStart++ want the path's base RTT; a window lets it follow route changes);
* ``latest_rtt`` — the most recent sample (RACK's ``RACK.rtt``).

Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

import math

__all__ = ["RTTEstimator"]

#: RFC 6298 §2.3 gains and the variance multiplier.
ALPHA = 1 / 8
BETA = 1 / 4
K = 4

#: Most doublings we ever apply; beyond that the RTO is pinned at ``max_rto`` anyway
#: and 2**n would only overflow.
_MAX_BACKOFF_EXPONENT = 64


class RTTEstimator:
    """SRTT / RTTVAR / RTO per RFC 6298.

    ``initial_rto`` is the RTO before any sample (§2.1), ``min_rto`` and ``max_rto``
    the clamp of §2.4 and §2.5, ``granularity`` the clock granularity G of §2.2.
    ``min_rtt_window`` is how long (seconds) a sample stays a candidate for
    ``min_rtt`` when :meth:`sample` is given ``now``; without ``now`` the minimum is
    over all samples.
    """

    __slots__ = (
        "_base_rto",
        "_bucket_min",
        "_bucket_start",
        "_prev_bucket_min",
        "backoff_count",
        "granularity",
        "initial_rto",
        "latest_rtt",
        "max_rto",
        "min_rto",
        "min_rtt",
        "min_rtt_window",
        "rto",
        "rttvar",
        "samples",
        "srtt",
    )

    srtt: float | None
    rttvar: float
    #: The RTO to arm the retransmission timer with: the computed RTO doubled once
    #: per :meth:`backoff` (§5.5), clamped to ``[min_rto, max_rto]`` (§2.4, §2.5).
    #: Kept up to date by every method that changes what it depends on (the timer
    #: is armed on every segment sent and most ACKs; it changes far less often).
    rto: float
    min_rtt: float | None
    latest_rtt: float | None
    backoff_count: int
    #: Number of samples taken since creation (or :meth:`reset`).
    samples: int

    def __init__(
        self,
        initial_rto: float,
        min_rto: float,
        max_rto: float,
        granularity: float = 0.001,
        *,
        min_rtt_window: float = 300.0,
    ) -> None:
        if not 0 < min_rto <= max_rto:
            raise ValueError(f"need 0 < min_rto <= max_rto, got {min_rto!r}, {max_rto!r}")
        if initial_rto <= 0 or granularity <= 0 or min_rtt_window <= 0:
            raise ValueError("initial_rto, granularity and min_rtt_window must be positive")
        self.initial_rto = initial_rto
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.granularity = granularity
        self.min_rtt_window = min_rtt_window
        self.backoff_count = 0
        self.reset()

    def reset(self) -> None:
        """Forget every estimate: back to the initial RTO and no samples (RFC 6298 §5
        allows clearing SRTT and RTTVAR after repeated backoffs).  The backoff count is
        kept; use :meth:`clear_backoff` for that."""
        self.srtt = None
        self.rttvar = 0.0
        self.min_rtt = None
        self.latest_rtt = None
        self.samples = 0
        self._base_rto = self.initial_rto
        # Windowed minimum as two consecutive half-window buckets: the minimum of the
        # current and of the previous bucket covers between W/2 and W of history.
        self._bucket_start: float | None = None
        self._bucket_min = math.inf
        self._prev_bucket_min = math.inf
        self._update_rto()

    # -- the RTO ------------------------------------------------------------------

    @property
    def computed_rto(self) -> float:
        """The RTO of RFC 6298 §2 without backoff, clamped to ``[min_rto, max_rto]``."""
        return min(max(self._base_rto, self.min_rto), self.max_rto)

    def _update_rto(self) -> None:
        """Recompute :attr:`rto` from the computed RTO and the backoff count."""
        exponent = min(self.backoff_count, _MAX_BACKOFF_EXPONENT)
        self.rto = min(math.ldexp(self.computed_rto, exponent), self.max_rto)

    def backoff(self) -> None:
        """The retransmission timer expired: double the RTO (RFC 6298 §5.5)."""
        self.backoff_count += 1
        self._update_rto()

    def clear_backoff(self) -> None:
        """New data was acknowledged after a timeout: use the computed RTO again.

        Samples do not clear the backoff by themselves (Karn's algorithm, RFC 6298
        §5 note, keeps the backed-off RTO until an acknowledgement for new data);
        the engine calls this when that acknowledgement arrives."""
        if self.backoff_count:
            self.backoff_count = 0
            self._update_rto()

    def use_syn_fallback(self, fallback: float = 3.0) -> None:
        """RFC 6298 §5.7: if a SYN (or SYN-ACK) was retransmitted and no sample was
        taken, the RTO must be re-initialised to 3 s when data transmission begins."""
        if self.srtt is None:
            self._base_rto = max(self._base_rto, fallback)
            self._update_rto()

    # -- samples ------------------------------------------------------------------

    def sample(self, rtt: float, now: float | None = None) -> None:
        """Take one RTT measurement R (seconds), RFC 6298 §2.2 and §2.3.

        First sample: ``SRTT = R``, ``RTTVAR = R/2``. Later samples:
        ``RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|`` then ``SRTT = 7/8 SRTT + 1/8 R``
        (RTTVAR first, with the old SRTT). Each time
        ``RTO = SRTT + max(G, K*RTTVAR)`` with K = 4.

        ``now`` (optional) dates the sample for the windowed ``min_rtt``.
        """
        if not 0 <= rtt < math.inf:  # (NaN fails too)
            raise ValueError(f"RTT sample must be a finite non-negative number, got {rtt!r}")
        srtt = self.srtt
        if srtt is None:
            srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(srtt - rtt)
            srtt = (1 - ALPHA) * srtt + ALPHA * rtt
        self.srtt = srtt
        var = K * self.rttvar
        g = self.granularity
        base = self._base_rto = srtt + (var if var > g else g)
        if self.backoff_count:
            self._update_rto()
        else:
            # computed_rto, inline: every ACK of new data takes a sample.
            lo = self.min_rto
            rto = lo if lo > base else base
            hi = self.max_rto
            self.rto = hi if hi < rto else rto
        self.latest_rtt = rtt
        self.samples += 1
        # The windowed minimum.
        if now is not None:
            start = self._bucket_start
            if start is None:
                self._bucket_start = now
            else:
                half = self.min_rtt_window / 2
                if now - start >= half:
                    # Roll over; if a whole window passed, the old bucket is stale too.
                    expired_both = now - start >= 2 * half
                    self._prev_bucket_min = math.inf if expired_both else self._bucket_min
                    self._bucket_min = math.inf
                    self._bucket_start = now
        m = self._bucket_min
        if rtt < m:
            m = self._bucket_min = rtt
        prev = self._prev_bucket_min
        self.min_rtt = prev if prev < m else m

    def __repr__(self) -> str:
        return (
            f"RTTEstimator(srtt={self.srtt!r}, rttvar={self.rttvar!r}, rto={self.rto!r}, "
            f"min_rtt={self.min_rtt!r}, backoff_count={self.backoff_count})"
        )
