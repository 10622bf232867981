"""Output: building segments, and deciding what may be sent now.

:func:`transmit` runs after every input, timer and user call: retransmissions of
data marked lost (RFC 6675 / RACK, :func:`send_lost`), new data (:func:`send_new`:
window, congestion budget, Nagle, sender SWS avoidance, TSO sizing), RFC 6675 rule 3
(:func:`send_rule3`), a pending ACK; then it re-arms the timers. :func:`emit` is the
one place a segment of a synchronized connection is built (our ACK, window and
options filled in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.ipv6 import ECN_ECT0
from ..wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    SACK_BLOCK_LEN,
    SACK_OPTION_BASE_LEN,
    URG,
    Payload,
    TCPSegment,
)
from .memory import window_room
from .sack import LOST, RETRANS, SACKED, Scoreboard
from .seq import MASK
from .states import CA_RECOVERY, SENDING
from .timers import T_RTO, arm_rto, schedule

if TYPE_CHECKING:
    from .connection import Connection
    from .recovery import LossRecovery

__all__ = [
    "SEND_BATCH",
    "ack_data",
    "ack_sent",
    "budget",
    "data_mss",
    "emit",
    "flight_size",
    "max_offered_window",
    "pipe",
    "send_ack",
    "send_rst",
    "transmit",
    "xmit",
]

#: Sender SWS override timeout (RFC 9293 §3.8.6.2.1: 0.1 to 1 second).
SWS_OVERRIDE = 0.2

#: Send-side batching: :func:`send_new` computes what every segment of one call
#: shares (our ACK, the ECE bit, the timestamps option) once and builds plain new
#: data segments (no FIN, urgent data, ECN marking, SACK blocks or flow trace) in a
#: short path. The segments are identical with it on or off (tests compare them);
#: it exists so that tests can prove that.
SEND_BATCH = True

_data_segment = TCPSegment.data


# -- segment construction ------------------------------------------------------------
def receive_space(c: Connection) -> int:
    """Free receive-buffer space a new right edge may offer: ``receive_buffer``
    less what is held, and under the stack's memory pressure no more than
    :func:`.memory.window_room` allows (the window stops growing)."""
    rcv = c.rcv
    avail = rcv.cap - rcv.buf.held
    m = c.memory
    if m is not None and m.pressure:
        avail = window_room(c, avail)
    return avail if avail > 0 else 0


def max_offered_window(c: Connection) -> int:
    """The largest receive window the peer has been offered, what a window update
    on a read (:func:`.usercalls.receive`) measures "held back" against.

    Until data is acknowledged every window we advertised was at RCV.NXT = 1, so
    it is the right edge less one: after a passive open the SYN-ACK's window,
    unscaled (RFC 7323 §2.2) and so at most 65535 whatever the buffer; after an
    active open the handshake's ACK, which offered the free buffer. From the first
    ACK of data on it is the window clamp: the buffer, at most what the window
    scale can express. That ACK offered the buffer less at most the SYN-ACK's
    window of data, so the clamp overstates it only for buffers not much larger
    than 64 KiB, and then errs towards sending updates. (Linux compares with its
    clamp too, but its offered window grows towards it gradually,
    ``rcv_ssthresh``; ours offers the free buffer from the first ACK on.)"""
    rcv = c.rcv
    if rcv.last_ack_sent <= 1:
        return rcv.adv - 1
    clamp = 0xFFFF << c.opt.rcv_shift
    return rcv.cap if rcv.cap < clamp else clamp


def window_field(c: Connection) -> int:
    """The window field to send, applying receiver SWS avoidance (RFC 9293
    §3.8.6.2.2), never offering more than the free buffer space and never
    shrinking the right edge we honour (``rcv.adv``).

    A scaled window is rounded down (RFC 7323 §2.3), up only while the rounded
    edge still fits the free space: rounding up unconditionally would let a peer
    that sends less than a scale unit per ACK ratchet the edge past the buffer.
    Rounding down may offer an edge up to one unit short of the one honoured
    (the apparent shrink RFC 7323 §2.4 describes); data up to it is accepted.
    Under the stack's memory pressure the free space is :func:`receive_space`'s:
    the edge stops moving right, it never moves left."""
    rcv = c.rcv
    rb = rcv.buf
    nxt = rb.nxt
    cap = rcv.cap
    avail = cap - rb.held
    m = c.memory
    if m is not None and m.pressure:
        avail = window_room(c, avail)
    if avail < 0:
        avail = 0
    right = nxt + avail
    adv = rcv.adv
    if right > adv:
        thresh = cap >> 1
        mss = c.opt.our_mss
        if mss < thresh:
            thresh = mss
        if right - adv >= thresh or (adv <= nxt and avail >= thresh):
            adv = right
    wnd = adv - nxt
    if wnd <= 0:
        rcv.adv = nxt if adv < nxt else adv
        return 0
    shift = c.opt.rcv_shift
    if shift:
        field = wnd >> shift
        if (field << shift) < wnd and nxt + ((field + 1) << shift) <= right:
            field += 1
    else:
        field = wnd
    if field > 0xFFFF:
        field = 0xFFFF
    edge = nxt + (field << shift)
    rcv.adv = edge if edge > adv or (field == 0xFFFF and edge < adv) else adv
    return field


def ack_data(c: Connection, now: float) -> None:
    """In-order data calls for an ACK now (a second full-sized segment, RFC 9293
    §3.8.6.3; a merged burst). Unless that ACK would advertise a zero window (the
    data fills the buffer and the application has not read it yet): then it
    waits, at most the delayed-ACK time, for the read, whose window update
    (:func:`.usercalls.receive`) acknowledges the data with the window open. Linux
    does the same (``__tcp_ack_snd_check`` ACKs at once only if the window does
    not shrink; ``tcp_cleanup_rbuf`` ACKs on the read). A zero-window ACK followed
    by the update would leave the sender, if only the update is lost, all data
    acknowledged, a zero window and the persist timer's backoff (0.2, 0.4, 0.8,
    ... s) to wait through; a single ACK's loss is repaired by the tail loss
    probe within 2 SRTT."""
    rcv = c.rcv
    delayed_ack = c.config.delayed_ack
    if delayed_ack is not None and rcv.adv <= rcv.buf.nxt and receive_space(c) == 0:
        # Not past half a round trip: the sender's tail loss probe fires 2 SRTT
        # after its last segment, and a held ACK must reach it before then.
        srtt = c.rtt.srtt
        hold = delayed_ack if srtt is None else min(delayed_ack, srtt / 2)
        if c.timers.delack is None or c.timers.delack > now + hold:
            c.timers.delack = now + hold
        c.stats["ack_held_zero_window"] += 1
        return
    rcv.ack_now = True


def ack_sent(c: Connection) -> None:
    """A segment carrying our ACK of RCV.NXT goes out: nothing is left to
    acknowledge and the delayed-ACK timer stops."""
    rcv = c.rcv
    rcv.last_ack_sent = rcv.buf.nxt
    rcv.ack_now = False
    c.timers.delack = None
    rcv.unacked = 0


def emit(
    c: Connection,
    seq: int,
    flags: int,
    payload: Payload,
    now: float,
    urgent: int = 0,
    ecn: int = 0,
) -> None:
    """Queue one segment with our current ACK, window and options (and ECE while
    the receiver echoes CE, :mod:`.ecn`), sent with the IPv6 ECN field ``ecn``."""
    rcv = c.rcv
    rb = rcv.buf
    opt = c.opt
    sack: tuple[tuple[int, int], ...] = ()
    if flags & ACK:
        ack = (c.irs + rb.nxt) & MASK
        if opt.sack_ok and (rb.dsack is not None or rb.has_ooo):
            irs = c.irs
            sack = tuple(
                ((irs + s) & MASK, (irs + e) & MASK)
                for s, e in rb.sack_blocks(3 if opt.ts_ok else 4)
            )
        ack_sent(c)
        if c.ecn.ece:
            flags |= ECE
    else:
        ack = 0
    wnd = window_field(c)
    ts = (c.tsval(now), opt.ts_recent) if opt.ts_ok else None
    seg = _data_segment(
        c.local_port, c.remote_port, seq, ack, flags, wnd, payload, urgent, sack, ts, ecn
    )
    c.outq.append(seg)
    c.snd.last_send = now
    ft = c.flow_trace
    if ft is not None:
        ft.segment_out(c, seg, now)


def send_ack(c: Connection, now: float) -> None:
    """An ACK at SND.NXT."""
    emit(c, (c.iss + c.snd.nxt) & MASK, ACK, b"", now)


def send_rst(c: Connection, seq: int, now: float, ack: int | None = None) -> None:
    """A RST at ``seq`` (RST|ACK of ``ack`` if given); with TSopt once timestamps
    are negotiated (RFC 7323 §3.2 SHOULD), no other option."""
    opt = c.opt
    ts = (c.tsval(now), opt.ts_recent) if opt.ts_ok else None
    c.outq.append(TCPSegment.reset(c.local_port, c.remote_port, seq & MASK, ack, timestamps=ts))
    c.stats["resets_sent"] += 1


def challenge_ack(c: Connection, now: float) -> None:
    """RFC 5961 §3-5 challenge ACK, rate limited per connection."""
    if now - c.chal_start >= 1.0:
        c.chal_start = now
        c.chal_count = 0
    if c.chal_count >= c.config.challenge_ack_limit:
        c.stats["challenge_acks_limited"] += 1
        return
    c.chal_count += 1
    c.stats["challenge_acks"] += 1
    send_ack(c, now)


def ack_invalid(c: Connection, now: float) -> None:
    """ACK an unacceptable segment (outside the window, failing PAWS, or acking
    unsent data), at most once per ``invalid_ack_ratelimit`` seconds (Linux
    ``tcp_oow_rate_limited``): such ACKs answered by the other end's own would
    otherwise loop forever, and spoofed segments would become duplicate ACKs."""
    if now - c.invalid_ack_at < c.config.invalid_ack_ratelimit:
        c.stats["acks_ratelimited"] += 1
        return
    c.invalid_ack_at = now
    c.rcv.ack_now = True


def xmit(c: Connection, start: int, end: int, now: float) -> None:
    """Send the sequence range ``[start, end)`` (absolute) from the send buffer,
    with FIN if the range covers it."""
    snd = c.snd
    fin = snd.fin_off >= 0 and end > snd.fin_off
    dend = end - 1 if fin else end
    buf = snd.buf
    if dend > start:
        payload = buf.get(start, dend - start)
        flags = ACK | PSH if dend == buf.end else ACK
    else:
        payload = b""
        flags = ACK
    if fin:
        flags |= FIN
    snd.last_data_send = now
    ect = 0
    e = c.ecn
    if e.ok and dend > start and start >= snd.nxt:
        # RFC 3168 §6.1.2, §6.1.5: ECT(0) on new data only (not on retransmissions),
        # and CWR on the first new data after a window reduction.
        ect = ECN_ECT0
        if e.cwr_pending:
            e.cwr_pending = False
            e.cwr_sent += 1
            c.stats["cwr_sent"] += 1
            flags |= CWR
    up = snd.up - start
    if up > 0:
        # RFC 9293 §3.8.5 (MUST-62): the pointer is the offset of the first
        # non-urgent octet from this segment's SEQ (at most 65535).
        emit(c, (c.iss + start) & MASK, flags | URG, payload, now, min(up, 0xFFFF), ect)
        return
    emit(c, (c.iss + start) & MASK, flags, payload, now, 0, ect)


#: What the new data segments of one :func:`send_new` call share: our ACK, the ECE
#: bit (or 0), the timestamps option, the window field.
BatchFields = tuple[int, int, tuple[int, int] | None, int]


def batch_fields(c: Connection, now: float) -> BatchFields | None:
    """What :func:`emit` would give every plain new-data segment sent at ``now``
    before the next input, after doing emit's once-per-ACK bookkeeping; None if a
    segment now needs more than the short path builds (SACK blocks to report,
    ECN-capable transport, a flow trace).

    The window field is computed once: :func:`window_field` returns the same value
    (and leaves ``rcv.adv`` as it was) when called again with nothing received or
    read in between, because the edge it records is one it would offer again."""
    rcv = c.rcv
    rb = rcv.buf
    opt = c.opt
    if (opt.sack_ok and (rb.dsack is not None or rb.has_ooo)) or c.flow_trace is not None:
        return None
    e = c.ecn
    if e.ok:
        return None
    ack_sent(c)
    ts = (c.tsval(now), opt.ts_recent) if opt.ts_ok else None
    return (c.irs + rb.nxt) & MASK, ECE if e.ece else 0, ts, window_field(c)


def xmit_plain(
    c: Connection,
    start: int,
    end: int,
    now: float,
    fields: BatchFields,
) -> None:
    """:func:`xmit` of new data ``[start, end)`` without FIN or urgent data, with
    :func:`batch_fields`'s ``fields``: the same segment, fewer steps."""
    snd = c.snd
    buf = snd.buf
    ack, ece, ts, wnd = fields
    flags = (ACK | PSH if end == buf.end else ACK) | ece
    snd.last_data_send = now
    seg = _data_segment(
        c.local_port,
        c.remote_port,
        (c.iss + start) & MASK,
        ack,
        flags,
        wnd,
        buf.get(start, end - start),
        0,
        (),
        ts,
        0,
    )
    c.outq.append(seg)
    snd.last_send = now


def retransmit_record(c: Connection, sb: Scoreboard, i: int, now: float) -> tuple[int, int]:
    """Resend scoreboard record ``i``, as one segment: a record marked lost is cut
    to a segment's worth (a TSO super-segment's) or grown over the lost records
    after it up to one (:meth:`~.sack.Scoreboard.coalesce`: fragments go out as
    whole segments); any other (RFC 6675 rule 3) is only cut."""
    r = sb.segs[i]
    mss = data_mss(c)
    if r.flags & LOST and not r.flags & (RETRANS | SACKED):
        r = sb.coalesce(i, mss)
    elif r.end - r.start > mss:
        sb.split(i, r.start + mss)
    xmit(c, r.start, r.end, now)
    c.retransmits += 1
    c.stats["retransmits"] += 1
    return r.start, r.end


# -- what may be sent now ---------------------------------------------------------------
def budget(c: Connection) -> int:
    """Congestion-window room in bytes (PRR during fast recovery)."""
    rec = c.rec
    if rec.ca is CA_RECOVERY:
        assert rec.prr is not None  # (made on entering recovery)
        return rec.prr.budget
    return c.cc.cwnd - pipe(c)


def data_mss(c: Connection) -> int:
    """Payload limit for a data segment sent now: the effective MSS minus the
    room the SACK blocks we must report take (RFC 2018 §3: 8 bytes a block plus
    the kind/length and padding), so that the packet still fits the path."""
    rb = c.rcv.buf
    opt = c.opt
    if not opt.sack_ok or (rb.dsack is None and not rb.has_ooo):
        return opt.mss
    n = len(rb.ooo_ranges()) + (rb.dsack is not None)
    limit = 3 if opt.ts_ok else 4
    return max(opt.mss - SACK_OPTION_BASE_LEN - SACK_BLOCK_LEN * min(n, limit), 32)


def segment_limit(c: Connection, mss: int) -> int:
    """The most new data one segment may carry: ``mss``, or with TSO a multiple
    of it up to ``Connection.tso_max_bytes`` (a *super-segment*: one TCP header,
    which the link splits into ``mss``-sized wire segments, each with a copy of the
    header, ``gso_size`` = MTU - 40 - TCP header length). Only while the send MSS
    is the one our link gives (no smaller peer MSS or path MTU, whose segments
    the link would not know to cut). Scoreboard, RACK and the windows work in
    sequence ranges and bytes; retransmissions are cut back to ``mss``."""
    t = c.tso_max_bytes
    if t < 2 * mss or c.opt.path_mss != c.opt.our_mss:
        return mss
    return t - t % mss


def flight_size(c: Connection) -> int:
    """FlightSize for a loss response (RFC 5681 eq. (4), RFC 6675 §5, RFC 9438
    §4.6): SND.NXT - SND.UNA, but at most ``cwnd``. SACKed data above the first
    hole stays in SND.NXT - SND.UNA: RACK's reordering window (widened by D-SACKs)
    lets up to a window of it pile up before a loss is declared, and a recovery
    entered on the ACK that ends another also holds everything that recovery
    sent. The range is then up to 2-3x what the window allowed in flight, and
    ``beta * FlightSize`` *raised* the window on every loss (beta_cubic = 0.7).
    Bounded by cwnd (Linux uses cwnd alone; RFC 9438 §4.6 allows cwnd when it
    cannot grow beyond what is used, which the application-limited rule of
    :mod:`.cc.base` ensures), a loss always reduces the window."""
    return min(c.sb.outstanding, c.cc.cwnd)


def pipe(c: Connection) -> int:
    """RFC 6675 pipe; without SACK each duplicate ACK counts one segment as
    having left the network (RFC 6937 §3 DeliveredData for non-SACK)."""
    p = c.sb.pipe - c.rec.reno_sacked
    return p if p > 0 else 0


def transmit(c: Connection, now: float) -> None:
    """Send whatever may be sent now, then re-arm the timers."""
    if c.state in SENDING:
        sb = c.sb
        snd = c.snd
        frto = c.rec.frto
        if frto >= 2:
            if frto == 2:
                frto_send_new(c, now)
        elif sb.lost > sb.retrans:
            send_lost(c, now)
        if c.rec.frto < 2 and (snd.buf.end > snd.nxt or (snd.fin_queued and not snd.fin_sent)):
            send_new(c, now)
        if c.rec.ca is CA_RECOVERY and c.opt.sack_ok and not c.config.rack:
            send_rule3(c, now)
    if c.rcv.ack_now:
        send_ack(c, now)
    schedule(c, now)


def send_lost(c: Connection, now: float) -> None:
    """Retransmit what loss detection marked lost, as the window allows."""
    sb = c.sb
    rec = c.rec
    timers = c.timers
    mss = data_mss(c)
    while sb.lost > sb.retrans:
        if pipe(c) > 0:
            room = budget(c)
            if room <= 0 or (room < mss and rec.ca is not CA_RECOVERY):
                break
        i = sb.next_lost()
        if i < 0:
            break
        start, end = retransmit_record(c, sb, i, now)
        sb.mark_retransmitted(i, now)
        if rec.ca is CA_RECOVERY:
            recovery_sent(rec, start, end)
        if timers.rtx is None or timers.rtx_mode is not T_RTO:
            arm_rto(c, now)


def frto_send_new(c: Connection, now: float) -> None:
    """RFC 5682 §2 step 2b: after the first ACK advanced SND.UNA, send up to two
    new segments (whatever cwnd says) instead of retransmitting further."""
    snd = c.snd
    buf = snd.buf
    mss = data_mss(c)
    for _ in range(2):
        nxt = snd.nxt
        n = min(buf.end - nxt, mss, snd.una + snd.wnd - nxt)
        if n <= 0:
            break
        send_new_segment(c, n, now)
    c.rec.frto = 3


def send_new_segment(c: Connection, n: int, now: float) -> None:
    """Send ``n`` new bytes at SND.NXT whatever the congestion window says (F-RTO's
    and TLP's probes), with our FIN if they reach the end of the queued data."""
    snd = c.snd
    nxt = snd.nxt
    end = nxt + n
    if snd.fin_queued and not snd.fin_sent and end == snd.buf.end:
        end += 1
        snd.fin_sent = True
    xmit(c, nxt, end, now)
    c.sb.add(nxt, end, now)
    snd.nxt = end
    c.bytes_sent += end - nxt


def recovery_sent(rec: LossRecovery, start: int, end: int) -> None:
    """``[start, end)`` was retransmitted in fast recovery: PRR counts it, and the
    D-SACK undo records it (both are made on entering recovery)."""
    assert rec.prr is not None and rec.undo_ranges is not None
    rec.prr.sent(end - start)
    rec.undo_retrans += 1
    rec.undo_ranges.append((start, end))


def send_rule3(c: Connection, now: float) -> None:
    """RFC 6675 §4 NextSeg rule 3: with window left over and nothing lost or new
    to send, retransmit un-SACKed data below the highest SACK."""
    sb = c.sb
    snd = c.snd
    rec = c.rec
    prr = rec.prr
    assert prr is not None  # (called in recovery only)
    while prr.budget >= c.opt.mss:
        if snd.buf.end > snd.nxt and snd.una + snd.wnd > snd.nxt:
            return  # new data (rule 2) goes first; it was window/cwnd limited
        i = sb.next_unsacked_below_fack()
        if i < 0:
            return
        start, end = retransmit_record(c, sb, i, now)
        # Counted as lost-and-retransmitted: the "lost pending" arithmetic
        # (lost - retrans) relies on every retransmitted record being marked lost.
        sb.mark_lost(i)
        sb.mark_retransmitted(i, now)
        recovery_sent(rec, start, end)
        c.stats["rule3_retransmits"] += 1


def nagle_holds(c: Connection, nxt: int, fin_pending: bool) -> bool:
    """Nagle (RFC 9293 §3.7.4) in Minshall's variant (Appendix A.3, as Linux): a
    small segment starting at ``nxt`` waits while an earlier *small* one is
    unacknowledged, unless it was written with nodelay. A bulk transfer's tail
    then never waits for a delayed ACK of full segments."""
    snd = c.snd
    return not fin_pending and c.config.nagle and snd.small_end > snd.una and nxt >= snd.push_end


def sws_holds(c: Connection, usable: int, nxt: int, now: float) -> bool:
    """Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a usable window smaller than a
    segment is used only if it is at least half the largest window seen, or, with
    nothing in flight, once the override timeout expired (armed here)."""
    snd = c.snd
    if usable * 2 >= snd.max_wnd:
        return False
    if nxt != snd.una:
        return True
    t = c.timers.sws
    if t is None:
        c.timers.sws = now + SWS_OVERRIDE
        return True
    return now < t


def tso_size(
    c: Connection, nxt: int, avail: int, big: int, room: int, fin_pending: bool, mss: int
) -> int:
    """TSO: as many whole segments as ``room`` (window and budget) allows, up to
    ``big``, plus a short tail if Nagle would send it now. ``room`` > ``mss``."""
    n = avail if avail < big else big
    if room < n:
        n = room
    if n > mss:
        tail = n % mss
        if tail and (n < avail or nagle_holds(c, nxt + n - tail, fin_pending)):
            n -= tail
        return n
    return mss


def send_new(c: Connection, now: float) -> None:
    """Send new data (and our FIN) as window, budget, Nagle and SWS allow."""
    sb = c.sb
    snd = c.snd
    buf = snd.buf
    rec = c.rec
    timers = c.timers
    mss = data_mss(c)
    big = segment_limit(c, mss) if c.tso_max_bytes else mss
    # Send-side batching (SEND_BATCH): what the segments of this call share,
    # computed with the first plain one.
    plain = SEND_BATCH
    fields: BatchFields | None = None
    if snd.nxt == snd.una:
        timers.ut_base = now
        rto = c.rtt.rto
        if now - snd.last_data_send > rto and snd.una > 1:
            # RFC 5681 §4.1: restart after idle.
            c.cc.on_idle_restart(now, rto)
    while True:
        nxt = snd.nxt
        avail = buf.end - nxt
        fin_pending = snd.fin_queued and not snd.fin_sent
        if avail <= 0 and not fin_pending:
            break
        if avail > 0:
            wnd_room = snd.una + snd.wnd - nxt
            # budget() and pipe(), inline: once per segment sent.
            in_pipe = sb.pipe - rec.reno_sacked
            if rec.ca is CA_RECOVERY:
                assert rec.prr is not None  # (made on entering recovery)
                room = rec.prr.budget
            else:
                room = c.cc.cwnd - (in_pipe if in_pipe > 0 else 0)
            n = avail if avail < mss else mss
            if room < n and in_pipe <= 0:
                room = n  # always allow one segment into an empty network
            lim = n
            if wnd_room < lim:
                lim = wnd_room
            if room < lim:
                lim = room
            if lim < n:
                if lim <= 0:
                    break
                if wnd_room >= n or wnd_room != lim:
                    break  # congestion-window limited: wait for ACKs
                if sws_holds(c, lim, nxt, now):
                    break
                n = lim
            elif n < mss:
                if nagle_holds(c, nxt, fin_pending):
                    break
            elif avail > mss and big > mss and snd.up <= nxt:
                # (No urgent data in a super-segment.)
                n = tso_size(c, nxt, avail, big, min(wnd_room, room), fin_pending, mss)
            end = nxt + n
            if fin_pending and end == buf.end:
                end += 1
                snd.fin_sent = True
        else:
            end = nxt + 1
            snd.fin_sent = True
        if plain and snd.up <= nxt and not (snd.fin_off >= 0 and end > snd.fin_off):
            if fields is None:
                fields = batch_fields(c, now)
            if fields is not None:
                xmit_plain(c, nxt, end, now, fields)
            else:
                plain = False  # (the rest of this call takes the general path too)
                xmit(c, nxt, end, now)
        else:
            xmit(c, nxt, end, now)
        sb.add(nxt, end, now)
        snd.nxt = end
        k = end - nxt
        if k < mss or (k > mss and k % mss):
            snd.small_end = end
        timers.sws = None
        c.bytes_sent += k
        if rec.ca is CA_RECOVERY:
            assert rec.prr is not None
            rec.prr.sent(k)
        if timers.rtx is None or timers.rtx_mode is not T_RTO:
            # (From T_PTO: RFC 8985 §7.2 SHOULD restart the probe timer after new
            # data; schedule() arms it again from now.)
            arm_rto(c, now)
