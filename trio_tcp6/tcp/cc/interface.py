"""The interface the engine calls a congestion controller through.

:class:`CongestionControl` is a runtime-checkable ``Protocol``: any object with these
attributes and methods can be a connection's controller, whether or not it derives
from :class:`~.base.CongestionControlBase`. It lives in a module of its own because
the compiled build (mypyc) cannot compile a runtime-checkable protocol: this module
stays interpreted there, the algorithms in the rest of the package are compiled.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["CongestionControl"]


@runtime_checkable
class CongestionControl(Protocol):
    """What the connection state machine calls. Sizes in bytes, times in seconds."""

    #: Congestion window; the engine may write it during recovery (PRR).
    cwnd: int
    #: Slow-start threshold; :data:`INFINITE_SSTHRESH` until the first congestion.
    ssthresh: int
    #: Sender maximum segment size (SMSS).
    mss: int

    def set_mss(self, mss: int) -> None:
        """The SMSS changed (PMTU discovery): rescale so cwnd keeps its segment count."""
        ...

    def on_ack(
        self, acked: int, now: float, rtt: float | None, snd_una: int, snd_nxt: int, in_flight: int
    ) -> None:
        """``acked`` new bytes cumulatively or SACK-newly acknowledged, not in recovery.
        ``rtt`` is this ACK's RTT sample (if any), ``snd_una``/``snd_nxt`` the values
        after processing it, ``in_flight`` the bytes still outstanding after it."""
        ...

    def on_congestion_event(self, now: float, in_flight: int) -> None:
        """Loss detected, recovery starts: reduce ``ssthresh``; ``cwnd`` is the engine's."""
        ...

    def on_recovery_exit(self, now: float) -> None:
        """Recovery is over: ``cwnd = ssthresh``."""
        ...

    def on_rto(self, now: float, in_flight: int, *, repeated: bool = False) -> None:
        """Retransmission timeout: reduce ``ssthresh`` and set ``cwnd`` to 1 SMSS.
        ``repeated``: the timed-out segment had already been retransmitted by the
        timer, so ssthresh is held (RFC 5681 §3.1, after eq. 4)."""
        ...

    def save(self) -> object:
        """A snapshot of the whole state, for :meth:`restore`."""
        ...

    def restore(self, state: object) -> None:
        """Undo back to a :meth:`save` snapshot (spurious RTO / spurious recovery)."""
        ...

    def on_idle_restart(self, now: float, rto: float) -> None:
        """The engine is about to send after more than ``rto`` seconds without
        sending: ``cwnd = min(IW, cwnd)`` (RFC 5681 §4.1)."""
        ...

    def in_slow_start(self) -> bool:
        """``cwnd < ssthresh``."""
        ...
