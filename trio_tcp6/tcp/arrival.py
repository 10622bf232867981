"""Segment arrival: RFC 9293 §3.10.7, step by step.

:func:`on_closed` answers segments for a closed connection; SYN-SENT is in
:func:`.handshake.on_syn_sent`; :func:`on_synchronized` handles SYN-RECEIVED through
TIME-WAIT in the RFC's order: timestamps and PAWS (RFC 7323 §3.2, §5), the
sequence-number check and trimming (first), RST (second, RFC 5961 §3), SYN (fourth,
RFC 5961 §4), ACK (fifth, :mod:`.acks`), URG (sixth, RFC 6093 pointer), text and
FIN (seventh and eighth, :mod:`.delivery`).

Header prediction (Van Jacobson's fast path, Linux's ``tcp_rcv_established``):
:func:`predicted` takes the segments a steady transfer consists of -- the next
in-order data segment, or a pure ACK of new data -- on an ESTABLISHED (or closing,
:data:`PREDICTED_STATES`) connection with no loss-recovery state, no SACK
scoreboard, the send window unchanged and timestamps in order. Under those
conditions every check before the ACK step passes, and for data acknowledging
nothing new the ACK step reduces to recording SND.WL1/WL2 and the ACK's time; the
short path performs exactly the remaining effects, so the result is identical (a
test runs the scripts and the back-to-back scenarios with :data:`FAST_PATH` off and
on and compares every emitted segment and the final TCB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..wire.tcp import ACK, ECE, FIN, PSH, RST, SYN, URG, TCPSegment
from .acks import predicted_ack, process_ack
from .coalesce import EXTRA_FIELDS
from .delivery import text_and_fin
from .ecn import on_input as on_ecn_input
from .events import (
    EV_URGENT,
    ST_CLOSE_WAIT,
    ST_CLOSED,
    ST_CLOSING,
    ST_ESTABLISHED,
    ST_FIN_WAIT_1,
    ST_FIN_WAIT_2,
    ST_LAST_ACK,
    ST_SYN_RECEIVED,
    ST_TIME_WAIT,
)
from .handshake import send_syn, syn_received_ack
from .options import PAWS_IDLE
from .output import ack_invalid, challenge_ack, send_rst
from .seq import MASK, seq_diff, seq_ge, seq_lt
from .states import CA_OPEN, RECEIVING
from .timers import T_PERSIST

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["FAST_PATH", "PREDICTED_STATES", "on_closed", "on_synchronized", "predicted"]

#: Header prediction on (the default); tests switch it off to compare.
FAST_PATH = True
#: Where it applies: ESTABLISHED, and the closing states in which the same
#: segments (the peer's data, ACKs of ours) arrive and take the same steps.
PREDICTED_STATES = frozenset(
    {
        ST_ESTABLISHED,
        ST_FIN_WAIT_1,
        ST_FIN_WAIT_2,
        ST_CLOSE_WAIT,
        ST_CLOSING,
        ST_LAST_ACK,
    }
)


def on_closed(c: Connection, seg: TCPSegment, now: float) -> None:
    """RFC 9293 §3.10.7.1: answer anything but a RST with a RST."""
    c.stats["drop_closed"] += 1
    if seg.rst:
        return
    if seg.has_ack:
        send_rst(c, seg.ack, now)
    else:
        send_rst(c, 0, now, (seg.seq + seg.seg_len) & MASK)


def disordered_ack(c: Connection, seg: TCPSegment, tsval: int) -> bool:
    """A pure duplicate ACK (no data, same SEQ/ACK/window as now) whose TSval is
    only slightly older than TS.Recent: reordered, not a wrapped old segment."""
    opt = c.opt
    return (
        seg.flags == ACK
        and not seg.payload
        and seg.seq == c.rcv_nxt
        and seg.ack == c.snd_una
        and (seg.window << opt.snd_shift) == c.snd.wnd
        and ((opt.ts_recent - tsval) & MASK) <= c.rtt.rto * 1000
    )


def paws_rejects(c: Connection, seg: TCPSegment, tsval: int, now: float) -> bool:
    """PAWS (RFC 7323 §5.3) for a segment whose TSval is older than TS.Recent:
    True if it is dropped (with an ACK)."""
    opt = c.opt
    if now - opt.ts_recent_age > PAWS_IDLE:
        # RFC 7323 §5.5: after 24 days of idleness TS.Recent is invalid.
        opt.ts_recent = tsval
        opt.ts_recent_age = now
        return False
    if disordered_ack(c, seg, tsval):
        # A duplicate ACK overtaken by a later one (Linux's "disordered ACK"):
        # harmless, and its SACK blocks are worth keeping.
        c.stats["paws_disordered_ack"] += 1
        return False
    c.stats["drop_paws"] += 1
    ack_invalid(c, now)
    return True


def syn_in_synchronized(c: Connection, seg: TCPSegment, now: float) -> None:
    """A SYN in SYN-RECEIVED or a synchronized state (RFC 9293 §3.10.7.4 fourth,
    RFC 5961 §4)."""
    flags = seg.flags
    stats = c.stats
    if c.snd.una == 0 and seg.seq == c.irs:
        if not flags & ACK:
            stats["syn_retransmit_received"] += 1
            opt = c.opt
            ts = seg.timestamps
            if opt.ts_ok and ts is not None and seq_ge(ts[0], opt.ts_recent):
                # RFC 7323 §4.3: SEG.SEQ = IRS <= Last.ACK.sent and a newer TSval:
                # TS.Recent is this SYN's, so the SYN,ACK answering it echoes it
                # and the peer's first RTT sample spans one round trip, not the
                # time since its first (lost) SYN.
                opt.ts_recent = ts[0]
                opt.ts_recent_age = now
            if c.state is ST_SYN_RECEIVED:
                # A second SYN means our SYN,ACK (or the first SYN's answer) did not
                # arrive: this SYN,ACK is a retransmission (Karn, RFC 6298 §3; and
                # RFC 5681 §3.1's one-segment initial window).
                c.snd.syn_retransmitted = True
            send_syn(c, now)
            return
        if seg.ack == c.snd_nxt and not c.passive:
            # Simultaneous open: the peer's SYN-ACK acknowledges our SYN; its SYN was
            # already taken, so process the rest as a plain ACK.
            # (Its ECE agreed to ECN, RFC 3168 §6.1.1: it echoes no CE.)
            rest = attrs.evolve(seg, seq=(seg.seq + 1) & MASK, flags=flags & ~(SYN | ECE))
            on_synchronized(c, rest, now)
            c.rcv.ack_now = True  # confirm, as for a duplicate SYN (Linux does too)
            return
    if c.snd.una == 0 and c.passive:
        # RFC 9293 §3.10.7.4 fourth, SYN-RECEIVED: a passively opened connection
        # returns to LISTEN (the TCB goes, silently) on a new SYN in the window; the
        # peer's next SYN then opens afresh. Outside the window it is treated as in
        # the synchronized states (challenge ACK).
        off = seq_diff(seg.seq, c.rcv_nxt)
        if 0 <= off < c.rcv.adv - c.rcv.buf.nxt:
            stats["syn_received_new_syn"] += 1
            c.close(None, "new syn in SYN-RECEIVED", now)
            return
    stats["drop_syn_in_window"] += 1
    challenge_ack(c, now)


def unacceptable(
    c: Connection, seg: TCPSegment, start: int, plen: int, fin: bool, now: float
) -> None:
    """RFC 9293 §3.10.7.4 first: a segment outside the window is acknowledged (a
    RST dropped), a duplicate reported with D-SACK (RFC 2883)."""
    stats = c.stats
    if seg.flags & RST:
        stats["drop_rst_out_of_window"] += 1
        return
    stats["drop_unacceptable"] += 1
    rb = c.rcv.buf
    nxt = rb.nxt
    if plen and start + plen <= nxt and c.opt.sack_ok:
        rb.dsack = (start, start + plen)
    if c.state is ST_TIME_WAIT and fin and start + plen + 1 == nxt:
        # A retransmission of the peer's FIN: ACK it, restart 2*MSL.
        c.timers.tw = now + c.config.time_wait_duration
        c.rcv.ack_now = True
    elif plen and nxt - c.rcv.cap < start + plen <= nxt:
        # Data we already have (a spurious retransmission): its ACK carries the
        # D-SACK and is never rate limited (it cannot loop: it has data).
        c.rcv.ack_now = True
    elif not plen and not fin and start == nxt - 1:
        # A window probe or keepalive (RFC 9293 §3.8.6.1, §3.8.4): its answer is
        # the only way the prober learns a reopened window, and its probes may
        # come less than the rate limit apart. Not rate limited: it needs
        # SEQ = RCV.NXT - 1 exactly, and our answer is acceptable to the prober.
        c.rcv.ack_now = True
    else:
        ack_invalid(c, now)


def on_rst(c: Connection, now: float) -> None:
    """RFC 9293 §3.10.7.4 second, a RST exactly at RCV.NXT (RFC 5961 §3)."""
    c.stats["resets_received"] += 1
    st = c.state
    if c.snd.una == 0:  # SYN-RECEIVED (or FIN-WAIT-1 reached from it)
        c.close(None if c.passive else "refused", "rst", now)
    elif st in (ST_CLOSING, ST_LAST_ACK, ST_TIME_WAIT):
        c.close(None, "rst", now)
    else:
        c.close("reset", "rst", now)


def predicted(c: Connection, seg: TCPSegment, ts: tuple[int, int] | None, now: float) -> bool:
    """Header prediction for an ACK (maybe PSH) segment in one of
    :data:`PREDICTED_STATES` with ``ts``
    its timestamps (None: not negotiated). Returns False, having changed nothing,
    unless the segment is predicted; then processes it as :func:`on_synchronized`
    would and returns True."""
    if seg.sack_blocks or seg.urgent or seg.ecn:
        return False  # (ECT or CE: ecn.on_input on the full path sees it)
    if EXTRA_FIELDS and any(getattr(seg, name) != d for name, d in EXTRA_FIELDS):
        return False  # a field added to TCPSegment later: the full path handles it
    opt = c.opt
    if ts is not None and not seq_ge(ts[0], opt.ts_recent):
        return False  # PAWS has a say
    rcv = c.rcv
    nxt = rcv.buf.nxt
    sseq = seg.seq
    if sseq != (c.irs + nxt) & MASK:
        return False
    snd = c.snd
    if (seg.window << opt.snd_shift) != snd.wnd:
        return False
    rec = c.rec
    sb = c.sb
    t = c.timers
    if (
        rec.ca is not CA_OPEN
        or rec.frto
        or rec.tlp_end is not None
        or sb.sacked
        or sb.retrans
        or sb.lost
        or t.reo is not None
        or t.rtx_mode is T_PERSIST
    ):
        return False
    una = snd.una
    if una == 0:
        return False  # our SYN is unacknowledged (FIN-WAIT-1 from SYN-RECEIVED)
    ack = una + seq_diff(seg.ack, (c.iss + una) & MASK)
    payload = seg.payload
    if payload:
        # In-order data, all inside the window, acknowledging at most what we sent.
        if len(payload) > rcv.adv - nxt or ack < una or ack > snd.nxt:
            return False
    elif ack <= una or ack > snd.nxt:
        return False  # a pure ACK must acknowledge new data
    c.stats["rcv_header_predicted"] += 1
    rcv.last_rcv = now
    t.ka_probes = 0
    if not predicted_ack(c, seg, ack, now):
        return True
    if ts is not None and nxt <= rcv.last_ack_sent:
        opt.ts_recent = ts[0]
        opt.ts_recent_age = now
    if payload and c.state is not ST_CLOSED:
        text_and_fin(c, nxt, payload, False, now)
    return True


def on_synchronized(c: Connection, seg: TCPSegment, now: float) -> None:
    """RFC 9293 §3.10.7.4, states SYN-RECEIVED through TIME-WAIT."""
    flags = seg.flags
    rcv = c.rcv
    rb = rcv.buf
    opt = c.opt
    stats = c.stats
    ts_ok = opt.ts_ok
    ts = seg.timestamps if ts_ok else None
    if ts is None and ts_ok and not flags & RST:
        # RFC 7323 §3.2: once negotiated, a segment without TSopt is dropped.
        stats["drop_no_timestamp"] += 1
        return
    if (
        FAST_PATH
        and (flags | PSH) == ACK | PSH
        and c.state in PREDICTED_STATES
        and predicted(c, seg, ts, now)
    ):
        return
    # -- PAWS (RFC 7323 §5.3) ----------------------------------------------------------
    if (
        ts is not None
        and not flags & RST
        and seq_lt(ts[0], opt.ts_recent)
        and paws_rejects(c, seg, ts[0], now)
    ):
        return
    # -- SYN in a synchronized state (RFC 5961 §4; RFC 9293 fourth) ---------------------
    if flags & SYN and not flags & RST:
        syn_in_synchronized(c, seg, now)
        return
    # -- first: sequence number check ------------------------------------------------
    nxt = rb.nxt
    start = nxt + seq_diff(seg.seq, (c.irs + nxt) & MASK)
    payload = seg.payload
    plen = len(payload)
    fin = bool(flags & FIN)
    seg_len = plen + fin
    wnd = rcv.adv - nxt
    if wnd < 0:
        wnd = 0
    if seg_len == 0:
        ok = start == nxt if wnd == 0 else nxt <= start < nxt + wnd
    elif wnd == 0:
        ok = start == nxt  # zero window: still process its ACK/RST, drop the text
    else:
        end1 = start + seg_len - 1
        ok = nxt <= start < nxt + wnd or nxt <= end1 < nxt + wnd
        if not ok and start < nxt <= end1:
            ok = True  # covers the window's left edge
    if not ok:
        unacceptable(c, seg, start, plen, fin, now)
        return
    seg_start = start
    # Trim to the window.
    if start < nxt:
        cut = nxt - start
        if cut >= plen:
            payload = b""
            # the FIN (if any) is at start+plen >= nxt: keep it
        else:
            if opt.sack_ok:
                rb.dsack = (start, nxt)
            payload = payload[cut:]
        start = nxt
        plen = len(payload)
    right = nxt + wnd
    if start + plen > right:
        payload = payload[: max(0, right - start)]
        plen = len(payload)
        fin = False
        stats["trimmed_beyond_window"] += 1
        rcv.ack_now = True  # RFC 9293 §3.10.7.4: unacceptable data gets an ACK
    rcv.last_rcv = now
    c.timers.ka_probes = 0
    # -- second: RST (RFC 9293 + RFC 5961 §3) ---------------------------------------
    if flags & RST:
        if seg_start != nxt:
            challenge_ack(c, now)
        else:
            on_rst(c, now)
        return
    # -- fifth: ACK ------------------------------------------------------------------
    if not flags & ACK:
        stats["drop_no_ack"] += 1
        return
    if c.snd.una == 0 and not syn_received_ack(c, seg, now):
        return
    if not process_ack(c, seg, now):
        return
    # TS.Recent update (RFC 7323 §4.3), only now that the segment passed the
    # sequence, RST and ACK checks (RFC 5961: a forged segment dropped for its ACK
    # must not move TS.Recent, or every genuine segment would then fail PAWS).
    if ts is not None and seq_ge(ts[0], opt.ts_recent) and seg_start <= rcv.last_ack_sent:
        opt.ts_recent = ts[0]
        opt.ts_recent_age = now
    st = c.state
    if st is ST_CLOSED:
        return
    if c.ecn.ok:
        on_ecn_input(c, seg, now)  # CWR, CE and ECE (RFC 3168 §6.1.2-3)
    # -- sixth: URG (RFC 9293 §3.10.7.4; RFC 6093 pointer) ---------------------------
    if flags & URG and seg.urgent and st in RECEIVING:
        # (A zero pointer marks no octet as urgent: ignored.)
        up = seg_start + seg.urgent
        if up > rcv.up:
            # MUST-32: tell the user each time the urgent pointer advances; the
            # urgent data itself stays in line (MUST-30/31).
            rcv.up = up
            stats["urgent_received"] += 1
            c.eventq.append(EV_URGENT)
    # -- seventh: text; eighth: FIN ------------------------------------------------
    if plen or fin:
        text_and_fin(c, start, payload, fin, now)
