"""What happens when a timer expires: retransmission timeout, persist and keepalive
probes, TIME-WAIT's end (the tail loss probe and RACK's reordering timer belong to
:mod:`.recovery`, the SYN timeout to :mod:`.handshake`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.tcp import ACK
from . import handshake, recovery
from .events import ST_CLOSE_WAIT, ST_CLOSED, ST_ESTABLISHED
from .output import emit, transmit
from .seq import MASK
from .timers import T_PERSIST, T_PTO, persist_deadline

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["keepalive_fire", "persist_fire", "rto_fire", "run"]


def run(c: Connection, now: float) -> None:
    """Run every timer that has expired at ``now`` (safe to call early)."""
    t = c.timers
    if t.tw is not None and now >= t.tw:
        t.tw = None
        c.close(None, "time-wait expired", now)
        return
    if c.state is ST_CLOSED:
        return
    if t.delack is not None and now >= t.delack:
        t.delack = None
        c.rcv.ack_now = True
    if t.reo is not None and now >= t.reo:
        t.reo = None
        recovery.rack_detect(c, now)
        recovery.after_loss_marking(c, now)
    if t.rtx is not None and now >= t.rtx:
        t.rtx = None
        mode = t.rtx_mode
        if c.snd.una == 0:  # our SYN is not acknowledged yet
            handshake.syn_timeout(c, now)
        elif mode is T_PTO:
            recovery.tlp_fire(c, now)
        elif mode is T_PERSIST:
            persist_fire(c, now)
        else:
            rto_fire(c, now)
        if c.is_closed():
            return
    if t.keep is not None and now >= t.keep:
        t.keep = None
        keepalive_fire(c, now)
        if c.is_closed():
            return
    transmit(c, now)
    if t.sws is not None and t.sws <= now:
        t.sws = None  # nothing left to send after the override
    c.flush_events()


def rto_fire(c: Connection, now: float) -> None:
    """The retransmission timer expired: give up (R2, user timeout) or hand the
    timeout to loss recovery."""
    snd = c.snd
    if snd.nxt <= snd.una:
        return
    t = c.timers
    cfg = c.config
    ut = cfg.user_timeout
    # The window closed with data in flight: a retransmission the peer answered
    # (with a zero window) since the previous timeout was a window probe.
    zw_answered = snd.wnd == 0 and snd.ack_rcvd_at >= t.rto_at
    t.rto_at = now
    if ut is not None:
        if now - t.ut_base >= ut:
            c.close("timeout", "user timeout", now)
            return
    elif zw_answered:
        t.zw_rtos += 1
        c.stats["rto_zero_window"] += 1
    elif t.rto_count - t.zw_rtos >= cfg.retries2:
        c.close("timeout", "retransmission timeout (R2)", now)
        return
    if t.rto_count == cfg.retries1:
        c.stats["retries1_exceeded"] += 1
    c.stats["rto"] += 1
    recovery.on_rto(c, now)


def persist_fire(c: Connection, now: float) -> None:
    """Zero-window probe (RFC 9293 §3.8.6.1): a segment with SEQ = SND.UNA - 1,
    which the peer must answer with an ACK carrying its window."""
    snd = c.snd
    if snd.nxt > snd.una or snd.wnd > 0:
        return
    t = c.timers
    ut = c.config.user_timeout
    if ut is not None:
        # RFC 5482 (Linux TCP_USER_TIMEOUT): the data has waited too long, even if
        # the peer answers every probe with a zero window.
        if now >= t.persist_start + ut:
            c.close("timeout", "user timeout while probing a zero window", now)
            return
    elif t.persist_unanswered >= c.config.retries2 + 1:
        c.close("timeout", "zero-window probes unanswered", now)
        return
    c.stats["persist_probes"] += 1
    t.persist_unanswered += 1
    emit(c, (c.iss + snd.una - 1) & MASK, ACK, b"", now)
    t.persist_backoff += 1
    t.rtx_mode = T_PERSIST
    t.rtx = persist_deadline(c, now)


def keepalive_fire(c: Connection, now: float) -> None:
    """Keepalive (RFC 9293 §3.8.4): probe with SEQ = SND.NXT - 1, or give up."""
    ka = c.config.keepalive
    if ka is None or c.state not in (ST_ESTABLISHED, ST_CLOSE_WAIT):
        return
    snd = c.snd
    if snd.nxt != snd.una:
        return
    t = c.timers
    if t.ka_probes >= ka.probes:
        c.close("timeout", "keepalive unanswered", now)
        return
    t.ka_probes += 1
    t.ka_last_probe = now
    c.stats["keepalive_probes"] += 1
    emit(c, (c.iss + snd.nxt - 1) & MASK, ACK, b"", now)
