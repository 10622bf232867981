"""The connection's timers (RFC 9293 §3.8, RFC 6298, RFC 8985 §7, RFC 9293 §3.8.4).

:class:`Timers` owns the timer slots (absolute times or None) and the counters that
go with them (backoffs, probes, consecutive timeouts). The retransmission slot is
shared by the retransmission timeout, RACK-TLP's probe timeout and the persist
timer; :class:`RtxMode` says which one is armed. The functions here arm the slots
after any change (:func:`schedule`); :mod:`.timeouts` runs the ones that expired.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attr

from .events import ST_CLOSE_WAIT, ST_ESTABLISHED, ST_FIN_WAIT_2
from .states import CA_OPEN, SENDING

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["RtxMode", "Timers", "arm_rto", "persist_deadline", "schedule"]

#: RFC 8985 §7.2 WCDelAckT: worst-case delayed-ACK time for the TLP timer.
WC_DELACK = 0.2
#: Added to the PTO (2*SRTT) of a flight of more than one segment: the time a peer
#: may take to get round to ACKing, which an RTT of microseconds (a loopback, a
#: virtual network's zero delay) does not contain. Without it a probe fires whenever
#: an ACK is merely late, not lost (Linux adds TCP_TIMEOUT_MIN, 2 ms, alike).
PTO_MIN_EXTRA = 0.002


class RtxMode(enum.IntEnum):
    """What the retransmission slot is armed for."""

    #: Retransmission timeout (RFC 6298).
    RTO = 0
    #: Tail loss probe (RFC 8985 §7).
    PTO = 1
    #: Zero-window probe (RFC 9293 §3.8.6.1).
    PERSIST = 2


T_RTO = RtxMode.RTO
T_PTO = RtxMode.PTO
T_PERSIST = RtxMode.PERSIST


# attr.s rather than attrs.define: mypyc compiles this form to a native class.
@attr.s(auto_attribs=True, slots=True)
class Timers:
    """Timer slots (absolute times, None when not armed) and their counters."""

    #: The retransmission slot (mode in :attr:`rtx_mode`).
    rtx: float | None = None
    rtx_mode: RtxMode = T_RTO
    #: RACK reordering timer (RFC 8985 §6.2).
    reo: float | None = None
    #: Delayed ACK (RFC 9293 §3.8.6.3).
    delack: float | None = None
    #: Keepalive (RFC 9293 §3.8.4).
    keep: float | None = None
    #: TIME-WAIT's 2*MSL.
    tw: float | None = None
    #: Sender SWS avoidance override (RFC 9293 §3.8.6.2.1).
    sws: float | None = None
    #: Consecutive timeouts of the head segment; of those, timeouts the peer answered
    #: with a zero window (window probes: they do not count toward R2, MUST-37).
    rto_count: int = 0
    zw_rtos: int = 0
    #: When the retransmission timer last fired.
    rto_at: float = 0.0
    #: Since when unacknowledged data has been waiting (user timeout, RFC 5482).
    ut_base: float = 0.0
    #: Persist timer backoff, and zero-window probes the peer did not answer.
    persist_backoff: int = 0
    persist_unanswered: int = 0
    #: Since when queued data has waited for the peer's window to open.
    persist_start: float = 0.0
    #: Keepalive probes sent without an answer, and when the last one went.
    ka_probes: int = 0
    ka_last_probe: float = 0.0

    def next_deadline(self) -> float | None:
        """The earliest armed slot."""
        # Unrolled: the runtime asks after every call on the connection.
        t = self.rtx
        x = self.reo
        if x is not None and (t is None or x < t):
            t = x
        x = self.delack
        if x is not None and (t is None or x < t):
            t = x
        x = self.keep
        if x is not None and (t is None or x < t):
            t = x
        x = self.tw
        if x is not None and (t is None or x < t):
            t = x
        x = self.sws
        if x is not None and (t is None or x < t):
            t = x
        return t

    def stop_all(self) -> None:
        """CLOSED: nothing is armed any more."""
        self.rtx = self.reo = self.delack = self.keep = self.tw = self.sws = None


def arm_rto(c: Connection, now: float) -> None:
    """(Re)start the retransmission timer, never beyond the user timeout."""
    t = c.timers
    t.rtx_mode = T_RTO
    deadline = now + c.rtt.rto
    ut = c.config.user_timeout
    if ut is not None:
        deadline = min(deadline, max(t.ut_base + ut, now + 0.001))
    t.rtx = deadline


def persist_deadline(c: Connection, now: float) -> float:
    """When the next zero-window probe is due (exponential backoff, capped), never
    beyond the user timeout (RFC 5482)."""
    t = c.timers
    rto = c.rtt.computed_rto * (1 << min(t.persist_backoff, 16))
    deadline = now + min(rto, c.config.max_rto)
    ut = c.config.user_timeout
    if ut is not None and t.persist_start + ut < deadline:
        deadline = max(t.persist_start + ut, now)
    return deadline


def schedule(c: Connection, now: float) -> None:
    """Re-arm the retransmission/persist/keepalive timers after any change."""
    st = c.state
    snd = c.snd
    una = snd.una
    if (st not in SENDING and st is not ST_FIN_WAIT_2) or una == 0:
        return
    t = c.timers
    if snd.nxt > una:
        mode = t.rtx_mode
        if t.rtx is None or mode is T_PERSIST:
            arm_rto(c, now)
            mode = T_RTO
        rec = c.rec
        opt = c.opt
        srtt = c.rtt.srtt
        if (
            mode is T_RTO
            and t.rto_count == 0
            and rec.tlp_end is None
            and rec.ca is CA_OPEN
            and opt.sack_ok
            and c.config.rack
            and srtt is not None
        ):
            pto = 2 * srtt
            if c.sb.outstanding <= opt.mss:
                pto += WC_DELACK
            else:
                pto += PTO_MIN_EXTRA
            t_pto = now + pto
            # RFC 8985 §7.2: never later than the RTO would fire.
            if t.rtx is not None and t_pto > t.rtx:
                t_pto = t.rtx
            t.rtx = t_pto
            t.rtx_mode = T_PTO
    else:
        # Nothing outstanding.
        if t.rtx is not None and t.rtx_mode is not T_PERSIST:
            t.rtx = None
        if snd.buf.end > snd.nxt and snd.wnd <= 0:
            if t.rtx is None:
                if t.persist_backoff == 0:
                    t.persist_start = now  # the data starts waiting for a window
                t.rtx_mode = T_PERSIST
                t.rtx = persist_deadline(c, now)
        elif t.rtx_mode is T_PERSIST:
            t.rtx = None
            t.persist_backoff = 0
    ka = c.config.keepalive
    if ka is not None:
        if st in (ST_ESTABLISHED, ST_CLOSE_WAIT) and snd.nxt == una:
            if t.ka_probes == 0:
                t.keep = c.rcv.last_rcv + ka.idle
            else:
                t.keep = t.ka_last_probe + ka.interval
        else:
            t.keep = None
