"""ACK processing: RFC 9293 §3.10.7.4 fifth step, for ESTABLISHED and later.

:func:`process_ack` checks the ACK field (RFC 5961 §5.2 for old ACKs), updates the
send window (the SND.WL1/WL2 rule), takes a cumulative acknowledgement (RTT sample
with Karn's rule or timestamps, RFC 6298 / RFC 7323 §4; the send buffer and the
scoreboard advance; the timer restarts), hands the rest to :mod:`.recovery`
(SACK, loss detection, congestion control), and makes the state transitions our
FIN's acknowledgement causes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.tcp import TCPSegment
from .events import (
    EV_FIN_ACKED,
    ST_CLOSING,
    ST_FIN_WAIT_1,
    ST_FIN_WAIT_2,
    ST_LAST_ACK,
    ST_TIME_WAIT,
    State,
)
from .output import ack_invalid, challenge_ack, pipe
from .recovery import eifel_undo, on_ack, rack_advance, record_flight
from .sack import EVER_RETRANS
from .seq import MASK, seq_diff, seq_ge, seq_lt
from .states import CA_LOSS, CA_RECOVERY
from .timers import T_PERSIST, arm_rto

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["carries_dsack", "fin_acked", "predicted_ack", "process_ack", "update_window"]


def update_window(c: Connection, seg: TCPSegment, window: int) -> bool:
    """RFC 9293 §3.10.7.4 fifth: take SEG.WND if the segment is newer than the last
    window update (SND.WL1/WL2). Returns whether the window changed."""
    snd = c.snd
    wl1 = snd.wl1
    if not (seq_lt(wl1, seg.seq) or (wl1 == seg.seq and seq_ge(seg.ack, snd.wl2))):
        return False
    snd.wl1 = seg.seq
    snd.wl2 = seg.ack
    if window == snd.wnd:
        return False
    if window == 0:
        c.stats["zero_window_seen"] += 1
    else:
        c.timers.persist_backoff = 0
    if window > snd.wnd:
        c.want_writable = True
    snd.wnd = window
    if window > snd.max_wnd:
        snd.max_wnd = window
    return True


def carries_dsack(seg: TCPSegment) -> bool:
    """Whether the ACK's first SACK block is a D-SACK (RFC 2883 §4: below SEG.ACK, or
    inside the second block).

    Such an ACK answers a duplicate, typically a retransmission after a lost ACK.
    Its TSecr is the peer's TS.Recent, which the duplicate did not update (RFC
    7323 §5.3 rejects it before TS.Recent is taken), so it echoes an earlier
    transmission: ``now - TSecr`` spans the lost ACK and the timeout, not a round
    trip, and so does the send time of data it acknowledges whose first ACK was
    lost. Karn's ambiguity (RFC 6298 §3) is back, so no RTT sample is taken."""
    blocks = seg.sack_blocks
    if not blocks:
        return False
    left, right = blocks[0]
    if seq_lt(left, seg.ack):
        return True
    if len(blocks) > 1:
        l2, r2 = blocks[1]
        return seq_ge(left, l2) and seq_ge(r2, right)
    return False


def take_cumulative_ack(c: Connection, seg: TCPSegment, ack: int, now: float) -> float | None:
    """SND.UNA advances to ``ack``: RTT sample, Eifel, timer and buffer. Returns the
    RTT sample, if any."""
    snd = c.snd
    una = snd.una
    acked = ack - una
    last, newest = c.sb.on_ack(ack, c.opt.mss)
    snd.una = ack
    rtt: float | None = None
    ts = seg.timestamps
    rtte = c.rtt
    # RTT: Karn's algorithm; timestamps make retransmissions unambiguous, except on
    # an ACK that answers a duplicate: it may acknowledge data whose own ACK was
    # lost, and echoes an older TSval.
    ambiguous = bool(seg.sack_blocks) and carries_dsack(seg)
    if ambiguous:
        c.stats["rtt_skipped_dsack"] += 1
    elif last is not None and not last.flags & EVER_RETRANS:
        rtt = now - last.xmit
    elif c.opt.ts_ok and ts is not None and ts[1]:
        r = ((c.tsval(now) - ts[1]) & MASK) / 1000.0
        if r < 60.0:
            rtt = r
    if rtt is not None:
        rtte.sample(rtt, now)
    if newest is not None and c.opt.sack_ok and c.config.rack:
        rack_advance(c, newest, seg, now)
    rec = c.rec
    if ts is not None and rec.ca is CA_LOSS:
        eifel_undo(c, ts[1])
    t = c.timers
    t.rto_count = 0
    t.zw_rtos = 0
    t.ut_base = now
    if rtte.backoff_count:
        rtte.clear_backoff()
    t.persist_backoff = 0
    if snd.buf.drop_to(ack):
        c.want_writable = True
    c.bytes_acked += acked
    rec.dupacks = 0
    if rec.reno_sacked:
        # Cumulatively ACKed bytes include those the dupACKs stood for.
        rec.reno_sacked = max(0, rec.reno_sacked - acked)
        if rec.ca is not CA_RECOVERY:
            rec.reno_sacked = 0
    # RFC 6298 §5.3: restart the timer for the remaining data.
    if ack < snd.nxt:
        arm_rto(c, now)
    else:
        t.rtx = None
    return rtt


def process_ack(c: Connection, seg: TCPSegment, now: float) -> bool:
    """RFC 9293 §3.10.7.4 fifth, ESTABLISHED and later. Returns False if the
    segment is to be dropped (or the connection closed)."""
    snd = c.snd
    una = snd.una
    nxt = snd.nxt
    ack = una + seq_diff(seg.ack, (c.iss + una) & MASK)
    if ack > nxt:
        c.stats["drop_ack_unsent"] += 1
        ack_invalid(c, now)
        return False
    if ack < una - snd.max_wnd:
        # RFC 5961 §5.2: far below SND.UNA: drop with a (challenge) ACK.
        c.stats["drop_old_ack"] += 1
        challenge_ack(c, now)
        return False
    st = c.state
    window_changed = ack >= una and update_window(c, seg, seg.window << c.opt.snd_shift)
    snd.ack_rcvd_at = now
    t = c.timers
    if t.rtx_mode is T_PERSIST:
        t.persist_unanswered = 0
    if st is ST_TIME_WAIT:
        return True
    acked = ack - una
    sacked_before = c.sb.sacked
    rtt = take_cumulative_ack(c, seg, ack, now) if acked > 0 else None
    on_ack(c, seg, ack, una, acked, sacked_before, window_changed, rtt, now)
    if snd.fin_sent and ack > snd.fin_off:
        return fin_acked(c, st, now)
    return True


def fin_acked(c: Connection, st: State, now: float) -> bool:
    """The state transitions our FIN's acknowledgement causes in ``st`` (the state
    the ACK found). Returns False if the connection closed."""
    if st is ST_FIN_WAIT_1:
        c.set_state(ST_FIN_WAIT_2, "fin acked", now)
        c.eventq.append(EV_FIN_ACKED)
        c.timers.rtx = None
    elif st is ST_CLOSING:
        c.eventq.append(EV_FIN_ACKED)
        c.enter_time_wait(now)
    elif st is ST_LAST_ACK:
        c.eventq.append(EV_FIN_ACKED)
        c.close(None, "fin acked", now)
        return False
    return True


def predicted_ack(c: Connection, seg: TCPSegment, ack: int, now: float) -> bool:
    """:func:`process_ack` for a segment header prediction took
    (:func:`.arrival.predicted`): ``ack`` (absolute) between SND.UNA and SND.NXT,
    the window unchanged, no SACK blocks, loss recovery open with nothing SACKed,
    lost or retransmitted, no TLP episode, F-RTO, reordering or persist timer, not
    in TIME-WAIT. Those conditions decide every test process_ack and
    :func:`.recovery.on_ack` make; what is left is done here: the SND.WL1/WL2
    record, the ACK's time and, for new data, the cumulative ACK, the flight
    record and the congestion controller's growth. Returns False if the
    connection closed."""
    snd = c.snd
    sseq = seg.seq
    wl1 = snd.wl1
    if seq_lt(wl1, sseq) or (wl1 == sseq and seq_ge(seg.ack, snd.wl2)):
        snd.wl1 = sseq
        snd.wl2 = seg.ack
    snd.ack_rcvd_at = now
    una = snd.una
    if ack == una:
        return True  # (data acknowledging nothing new)
    st = c.state
    acked = ack - una
    rtt = take_cumulative_ack(c, seg, ack, now)
    nxt = snd.nxt
    record_flight(c, ack, una, acked, nxt)
    c.cc.on_ack(acked, now, rtt, ack, nxt, pipe(c))
    if snd.fin_sent and ack > snd.fin_off:
        return fin_acked(c, st, now)
    return True
