"""TokenBucket: the rate limit on the ICMPv6 errors a node originates.

RFC 4443 §2.4 (f) requires every IPv6 node to limit the rate of the ICMPv6 error
messages it sends, and suggests a token bucket: up to ``burst`` messages back to
back, then ``rate`` per second. The direct stack (its Parameter Problem replies),
the VirtualNetwork (its Destination Unreachable answers) and the simulator's
routers each keep one. Time is passed in (seconds, any monotonic clock).
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; full at first."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, burst: int, rate: float) -> None:
        self.burst = float(burst)
        self.rate = rate
        self._tokens = self.burst
        self._last = -math.inf

    def take(self, now: float) -> bool:
        """Whether one message may be sent at ``now`` (it then costs a token)."""
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
