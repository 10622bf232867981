"""Loss recovery: the sender's congestion-avoidance state and everything that moves it.

:class:`LossRecovery` owns the state (:class:`~.states.CAState`, the recovery point,
PRR, RACK, the TLP episode, the undo records); the functions here are the procedures:

* SACK processing and D-SACK (RFC 2018, RFC 2883), loss marking by RACK (RFC 8985,
  :mod:`.rack`), by RFC 6675 IsLost without RACK, by three duplicate ACKs without SACK
  (RFC 6582 NewReno);
* fast recovery with Proportional Rate Reduction (RFC 6937, :class:`PRR`);
* the tail loss probe (RFC 8985 §7) and the retransmission-timeout response
  (RFC 6298 §5.4-5.7, RFC 5681 §3.1);
* undo of spurious reductions: Eifel with timestamps (RFC 3522/4015), F-RTO without
  (RFC 5682), D-SACK for a fast recovery (RFC 3708 spirit).

The congestion controller (:mod:`.cc`) only sets ``ssthresh``/``cwnd`` on the events
these procedures report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attr
import attrs

from ..wire.tcp import FIN, SYN, TCPSegment
from .output import data_mss, flight_size, pipe, retransmit_record, send_new_segment, xmit
from .rack import Rack
from .sack import EVER_RETRANS, SACKED, SentSeg
from .seq import MASK, seq_diff, seq_lt
from .states import CA_LOSS, CA_OPEN, CA_RECOVERY, CAState
from .timers import arm_rto

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "DUPTHRESH",
    "PRR",
    "LossRecovery",
    "after_loss_marking",
    "eifel_undo",
    "enter_recovery",
    "loss_basis",
    "on_ack",
    "on_rto",
    "process_sack",
    "rack_detect",
    "record_flight",
    "tlp_fire",
]

#: RFC 6675 DupThresh.
DUPTHRESH = 3


class PRR:
    """Proportional Rate Reduction (RFC 6937): how much the sender may transmit on
    each ACK during fast recovery, so that the flight shrinks smoothly to
    ``ssthresh``. Sizes in bytes."""

    __slots__ = ("budget", "delivered", "out", "recover_fs")

    def __init__(self) -> None:
        #: prr_delivered: bytes delivered to the receiver since recovery began.
        self.delivered = 0
        #: prr_out: bytes sent since recovery began.
        self.out = 0
        #: RecoverFS: the flight when recovery began.
        self.recover_fs = 1
        #: What may still be sent on the current ACK (sndcnt minus what was sent).
        self.budget = 0

    def start(self, flight: int) -> None:
        """Recovery begins (RFC 6937 §3 initialisation)."""
        self.delivered = 0
        self.out = 0
        self.recover_fs = max(flight, 1)
        self.budget = 0

    def on_ack(
        self, delivered: int, pipe: int, ssthresh: int, mss: int, *, first: bool = False
    ) -> int:
        """RFC 6937 §3 on every ACK in recovery: returns sndcnt (also kept as
        :attr:`budget`). ``first`` guarantees the fast retransmit itself goes out.
        Uses the Slow Start Reduction Bound (PRR-SSRB) when pipe <= ssthresh."""
        self.delivered += delivered
        if pipe > ssthresh:
            # Proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
            sndcnt = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:
            limit = max(self.delivered - self.out, delivered) + mss
            sndcnt = min(ssthresh - pipe, limit)
        if sndcnt < 0:
            sndcnt = 0
        if first and sndcnt < mss:
            sndcnt = mss
        self.budget = sndcnt
        return sndcnt

    def sent(self, n: int) -> None:
        """``n`` bytes were sent in recovery."""
        self.out += n
        self.budget -= n


# attr.s rather than attrs.define: mypyc compiles this form to a native class.
@attr.s(auto_attribs=True, slots=True)
class LossRecovery:
    """The sender's loss-recovery state (offsets absolute, as in :mod:`.tcb`)."""

    #: Open, fast recovery, or loss (after a timeout).
    ca: CAState = CA_OPEN
    #: SND.NXT when recovery began: recovery ends once it is acknowledged.
    recovery_point: int = 0
    #: PRR's state, made when the connection first enters fast recovery (most
    #: connections never do; an idle one saves the object).
    prr: PRR | None = None
    rack: Rack = attrs.Factory(Rack)
    #: Without SACK: duplicate ACKs in a row, bytes they stand for as delivered, and
    #: RFC 6582's "recover".
    dupacks: int = 0
    reno_sacked: int = 0
    reno_recover: int = 0
    #: The tail loss probe's episode: SND.NXT when it was sent, and whether it was
    #: a retransmission (RFC 8985 §7.4).
    tlp_end: int | None = None
    tlp_retrans: bool = False
    #: Where the last probe that resent data ended (its D-SACK's end).
    tlp_probe_end: int = -1
    #: Congestion state saved at a timeout (Eifel / F-RTO undo) and the TSval of
    #: the retransmission (Eifel).
    undo_state: object | None = None
    undo_tsval: int | None = None
    #: F-RTO (RFC 5682) stage: 0 off, 1 awaiting the first ACK after the timeout,
    #: 2 may send new data, 3 new data sent, awaiting the second ACK.
    frto: int = 0
    #: Congestion state saved at the start of fast recovery (D-SACK undo), SND.UNA
    #: then, and the recovery's retransmissions not yet reported as duplicates.
    rec_undo: object | None = None
    undo_marker: int = 0
    undo_retrans: int = 0
    #: The ranges this recovery retransmitted (for the D-SACK undo): a list during
    #: fast recovery, None outside it.
    undo_ranges: list[tuple[int, int]] | None = None
    #: The largest flight (SND.NXT - SND.UNA) an ACK found in the current round
    #: and in the previous one, and SND.NXT when the current round began (it ends
    #: once that is acknowledged): the recent flight a loss response starts from.
    max_flight: int = 0
    max_flight_prev: int = 0
    round_end: int = 0
    #: The flight (SND.NXT - SND.UNA) the last ACK found.
    flight_found: int = 0


# -- SACK and loss marking -------------------------------------------------------------
def process_sack(c: Connection, seg: TCPSegment, ack: int, now: float) -> None:
    """Take the SACK blocks of an ACK (RFC 2018) into the scoreboard; D-SACKs
    (RFC 2883) feed RACK's reordering window and the D-SACK undo."""
    sb = c.sb
    rec = c.rec
    una = c.snd.una
    nxt = c.snd.nxt
    base = (c.iss + una) & MASK
    stats = c.stats
    rack_on = c.config.rack
    blocks: list[tuple[int, int]] = []
    for i, (ls, rs) in enumerate(seg.sack_blocks):
        s = una + seq_diff(ls, base)
        e = s + ((rs - ls) & MASK)
        if e <= s or e > nxt:
            stats["sack_blocks_invalid"] += 1
            continue
        if s < una or (i == 0 and e <= ack):
            # D-SACK (RFC 2883): a duplicate was received.
            stats["dsack_received"] += 1
            if rack_on and dsack_may_be_reordering(c, e):
                rec.rack.on_dsack(una, nxt)
            if rec.rec_undo is not None and s >= rec.undo_marker and e <= una:
                dsack_undo(rec, s, e)
            continue
        blocks.append((s, e))
    if not blocks:
        return
    newest, reordered, _ = sb.on_sack(blocks, c.opt.mss)
    if reordered and not rec.rack.reord:
        rec.rack.reord = True
        stats["reordering_seen"] += 1
    if newest is not None and rack_on:
        rack_advance(c, newest, seg, now)


def dsack_may_be_reordering(c: Connection, end: int) -> bool:
    """Whether a D-SACK ending at ``end`` may grow RACK's reordering window (RFC
    8985 §6.2 step 4: every one does). With ``rack_dsack="linux"``, as Linux's
    ``tcp_dsack_seen``, only once reordering was seen and not for the tail loss
    probe's copy: a duplicate caused by a lost ACK, which answered a probe or a
    timeout, says nothing about reordering, and on a lossy path without any it
    grew the window to SRTT, putting off every later loss detection by up to a
    round trip. A D-SACK of a fast retransmission of the current recovery is how
    reordering at the head of the window shows (its original was acknowledged
    cumulatively, with no SACK): it marks reordering as seen, for the next one."""
    if c.config.rack_dsack != "linux":
        return True
    rec = c.rec
    rack = rec.rack
    if end == rec.tlp_probe_end:
        return False
    if not rack.reord:
        if rec.ca is not CA_LOSS and rec.rec_undo is not None and end > rec.undo_marker:
            # A D-SACK of a fast retransmission (not a probe's, not a timeout's):
            # the original was reordered past the window (reordering seen).
            rack.reord = True
            c.stats["reordering_seen"] += 1
        return False
    return True


def rack_advance(c: Connection, r: SentSeg, seg: TCPSegment, now: float) -> None:
    """RFC 8985 §6.2 step 2 for ``r``, the most recently sent record ``seg`` newly
    delivered. A SACK echoes TS.Recent, which an out-of-order segment does not
    update (RFC 7323 §4.3), so one echoing less than a retransmission's TSval may
    well be for the original: RACK then ignores it, as the RFC asks."""
    ts = seg.timestamps
    older = (
        r.flags & EVER_RETRANS != 0
        and ts is not None
        and c.opt.ts_ok
        and seq_lt(ts[1], c.tsval(r.xmit))
    )
    c.rec.rack.update(r, now, c.rtt.min_rtt, older)


def dsack_undo(rec: LossRecovery, s: int, e: int) -> None:
    """The peer D-SACKed ``[s, e)`` (below SND.UNA): it received it twice. Only the
    retransmissions of this recovery it covers prove unnecessary, each once
    (Linux decrements undo_retrans only for D-SACKed retransmitted segments): a
    duplicate the network made of an original, or a repeated D-SACK, says nothing
    about whether a retransmission repaired a real loss."""
    seen: set[tuple[int, int]] = set()
    keep: list[tuple[int, int]] = []
    for rng in rec.undo_ranges or ():
        if s <= rng[0] and rng[1] <= e and rng not in seen:
            # This retransmission turned out unnecessary.
            seen.add(rng)
            rec.undo_retrans -= 1
        else:
            keep.append(rng)
    if seen:
        rec.undo_ranges = keep


def mark_head_lost(c: Connection) -> None:
    """Without SACK (RFC 6582): the first MSS at SND.UNA is lost (a TSO
    super-segment's record is cut there, so only that much is resent)."""
    sb = c.sb
    r = sb.segs[0]
    mss = data_mss(c)
    if r.end - r.start > mss:
        sb.split(0, r.start + mss)
    sb.mark_lost(0)


def rack_detect(c: Connection, now: float) -> None:
    """RFC 8985 §6.2: mark what RACK deems lost; arm its reordering timer."""
    sb = c.sb
    rtt = c.rtt
    rack = c.rec.rack
    reo = rack.reo_wnd(
        rtt.min_rtt, rtt.srtt, c.rec.ca is not CA_OPEN, sb.sacked >= DUPTHRESH * c.opt.mss
    )
    marked, timeout = rack.detect_loss(sb, now, reo)
    if marked:
        c.stats["rack_marked_lost"] += 1
    c.timers.reo = now + timeout if timeout > 0 else None


def after_loss_marking(c: Connection, now: float) -> None:
    """Something was marked lost outside recovery: recovery begins."""
    if c.rec.ca is CA_OPEN and c.sb.lost > 0:
        enter_recovery(c, now, 0)


# -- fast recovery ---------------------------------------------------------------------
def loss_basis(c: Connection) -> int:
    """What a loss's multiplicative decrease is computed from (``loss_response``),
    called once per reduction: cwnd alone as Linux does, or FlightSize (RFC 5681
    eq. (4), RFC 6675 §5, RFC 9438 §4.6) bounded by cwnd (see
    :func:`.output.flight_size`).

    FlightSize is the larger of SND.NXT - SND.UNA now and the largest flight an
    earlier ACK of this round or the last one found (still at most cwnd): a
    stretch ACK -- one for half a window, as a receiver that coalesces a burst
    sends -- arriving before the SACKs that reveal a hole, with a window the
    receiver's unread data has shrunk so that nothing new goes out, leaves only
    the rest of the round outstanding, and ``beta * FlightSize`` would then cut the
    window by far more than beta. The record starts again after each reduction,
    as the largest FlightSize of draft-ietf-ccwg-ratelimited-increase (maxFS).
    Only flights found while the application kept the sender supplied count (see
    :func:`on_ack`): a sender whose application gave it less has simply sent
    less, and FlightSize now is what the path carries (RFC 5681 eq. (4) as
    written)."""
    if c.config.loss_response == "cwnd":
        return c.cc.cwnd
    rec = c.rec
    fs = flight_size(c)
    recent = max(rec.max_flight, rec.max_flight_prev)
    rec.max_flight = rec.max_flight_prev = rec.flight_found = 0
    if recent > fs:
        return min(recent, c.cc.cwnd)
    return fs


def enter_recovery(c: Connection, now: float, delivered: int) -> None:
    """Start fast recovery (RFC 6675 §5 / RFC 6582 §3.2) with PRR (RFC 6937)."""
    rec = c.rec
    snd = c.snd
    c.stats["fast_recovery"] += 1
    rec.undo_state = None
    rec.rec_undo = c.cc.save()
    rec.undo_marker = snd.una
    rec.undo_retrans = 0
    rec.undo_ranges = []
    c.cc.on_congestion_event(now, loss_basis(c))
    rec.ca = CA_RECOVERY
    rec.recovery_point = snd.nxt
    rec.reno_recover = snd.nxt
    prr = rec.prr
    if prr is None:
        prr = rec.prr = PRR()
    prr.start(snd.nxt - snd.una)
    rec.tlp_end = None
    prr_update(c, delivered, entering=True)
    ft = c.flow_trace
    if ft is not None:
        ft.event(c, "recovery_enter", now)


def prr_update(c: Connection, delivered: int, entering: bool = False) -> None:
    """RFC 6937: the window for this ACK is what is in flight plus sndcnt."""
    p = pipe(c)
    cc = c.cc
    prr = c.rec.prr
    assert prr is not None  # (made on entering recovery)
    sndcnt = prr.on_ack(delivered, p, cc.ssthresh, c.opt.mss, first=entering)
    cc.cwnd = p + sndcnt


def eifel_undo(c: Connection, tsecr: int) -> None:
    """Spurious RTO detection (Eifel, RFC 3522): the first ACK after a timeout
    echoes a timestamp older than the retransmission: undo the reduction."""
    rec = c.rec
    if (
        rec.ca is CA_LOSS
        and c.timers.rto_count == 1
        and rec.undo_tsval is not None
        and seq_lt(tsecr, rec.undo_tsval)
        and rec.undo_state is not None
    ):
        c.cc.restore(rec.undo_state)
        rec.undo_state = None
        rec.ca = CA_OPEN
        c.sb.clear_marks()
        c.stats["spurious_rto_undo"] += 1


def on_ack(
    c: Connection,
    seg: TCPSegment,
    ack: int,
    una: int,
    acked: int,
    sacked_before: int,
    window_changed: bool,
    rtt: float | None,
    now: float,
) -> None:
    """The loss-recovery part of processing an acceptable ACK (``una`` is SND.UNA
    before it, ``acked`` the bytes it newly acknowledged cumulatively): the TLP
    episode, SACK, loss detection, F-RTO, the recovery state machine and the
    congestion controller's growth."""
    rec = c.rec
    sb = c.sb
    cc = c.cc
    stats = c.stats
    nxt = c.snd.nxt
    sack_ok = c.opt.sack_ok
    if rec.tlp_end is not None and ack >= rec.tlp_end:
        if rec.tlp_retrans and rec.ca is CA_OPEN and not seg.sack_blocks:
            # RFC 8985 §7.4: the probe repaired a loss: reduce the window once.
            cc.on_congestion_event(now, loss_basis(c))
            cc.on_recovery_exit(now)
            stats["tlp_recovery"] += 1
        rec.tlp_end = None
    # -- SACK information --------------------------------------------------------------
    if sack_ok and seg.sack_blocks:
        process_sack(c, seg, ack, now)
    # RFC 6937 §3 DeliveredData: the change in SND.UNA (none for an old ACK, whose
    # SEG.ACK - SND.UNA is negative) plus the change in SACKed bytes.
    delivered = (acked if acked > 0 else 0) + (sb.sacked - sacked_before)
    if acked > 0 or seg.sack_blocks:
        # (An ACK that reports nothing new, such as data with an unchanged SEG.ACK,
        # tells nothing about the flight.)
        record_flight(c, ack, una, acked, nxt)
    # -- loss detection ----------------------------------------------------------------
    if sack_ok:
        if c.config.rack:
            if sb.sacked or sb.retrans:
                rack_detect(c, now)
            else:
                c.timers.reo = None
        elif sb.sacked:
            sb.mark_lost_dupthresh(c.opt.mss, DUPTHRESH)
    elif (
        acked == 0
        and nxt > una
        and not seg.payload
        and not seg.flags & (SYN | FIN)
        and not window_changed
    ):
        delivered += duplicate_ack(c, ack)
    # -- F-RTO (RFC 5682 §2) ----------------------------------------------------------
    frto = rec.frto
    if frto and rec.ca is CA_LOSS:
        frto_on_ack(c, frto, ack, una, acked)
    elif frto:
        rec.frto = 0
    # -- recovery state machine --------------------------------------------------------
    ca = rec.ca
    if ca is CA_RECOVERY:
        if ack >= rec.recovery_point:
            exit_recovery(c, now)
            acked = 0  # no window growth on the ACK that ends recovery
        else:
            if not sack_ok and acked > 0 and sb.segs:
                # RFC 6582 §3.2 step 5: partial ACK: retransmit the next hole.
                mark_head_lost(c)
            prr_update(c, delivered)
    elif ca is CA_LOSS:
        if ack >= rec.recovery_point:
            rec.ca = CA_OPEN
        elif acked > 0:
            cc.on_ack(acked, now, rtt, ack, nxt, pipe(c))
    if rec.ca is CA_OPEN:
        if sb.lost > 0:
            enter_recovery(c, now, delivered)
        elif acked > 0:
            cc.on_ack(delivered, now, rtt, ack, nxt, pipe(c))


def record_flight(c: Connection, ack: int, una: int, acked: int, nxt: int) -> None:
    """An ACK that reports something new (``acked`` bytes cumulatively from ``una``
    to ``ack``, or SACK blocks) with SND.NXT at ``nxt``: the flight the previous
    ACK found joins the round's record now. This ACK's own loss response (in
    :func:`on_ack`, or for an ECE after the ACK step) starts from what it leaves
    outstanding (RFC 5681 eq. (4)), earlier ACKs of the round from the flight
    they found."""
    rec = c.rec
    if rec.flight_found > rec.max_flight:
        rec.max_flight = rec.flight_found
    if ack >= rec.round_end:
        rec.max_flight_prev = rec.max_flight
        rec.max_flight = 0
        rec.round_end = nxt
    # Recorded only if the flight was the window's, not the application's: data
    # was waiting to be sent, or the send buffer was full before this ACK freed
    # what it acknowledged.
    buf = c.snd.buf
    supplied = buf.end > nxt or buf.space - acked < c.opt.mss
    rec.flight_found = nxt - una if supplied else 0


def duplicate_ack(c: Connection, ack: int) -> int:
    """Without SACK, a duplicate ACK (RFC 5681 §2): one segment left the network;
    the third starts fast retransmit (RFC 6582 §3.2). Returns the bytes it stands
    for as delivered."""
    rec = c.rec
    sb = c.sb
    mss = c.opt.mss
    rec.dupacks += 1
    c.stats["dupacks"] += 1
    room = sb.outstanding - sb.lost - rec.reno_sacked
    d = mss if room >= mss else max(room, 0)
    rec.reno_sacked += d
    if rec.ca is CA_OPEN and rec.dupacks == DUPTHRESH:
        # RFC 6582 §3.2 step 2: only if the ACK covers more than "recover".
        if ack >= rec.reno_recover:
            if sb.segs:
                mark_head_lost(c)
        else:
            c.stats["dupacks_ignored_recover"] += 1
    return d


def frto_on_ack(c: Connection, frto: int, ack: int, una: int, acked: int) -> None:
    """RFC 5682 §2: the first two ACKs after a timeout decide whether it was
    spurious."""
    rec = c.rec
    snd = c.snd
    if frto == 1:
        nxt = snd.nxt
        can_send = snd.buf.end > nxt and una + snd.wnd > nxt
        if acked > 0 and ack < rec.recovery_point and can_send:
            rec.frto = 2  # step 2b: probe with new data
        else:
            rec.frto = 0  # step 2a: conventional recovery
    elif frto == 3:
        rec.frto = 0
        if acked > 0 and rec.undo_state is not None:
            # Step 3b: the original transmissions were acknowledged: the timeout
            # was spurious; undo the window reduction.
            c.cc.restore(rec.undo_state)
            rec.undo_state = None
            rec.ca = CA_OPEN
            c.sb.clear_marks()
            c.stats["frto_spurious_rto"] += 1


def exit_recovery(c: Connection, now: float) -> None:
    """The recovery point was acknowledged: back to open (RFC 6675 §5, RFC 6937)."""
    rec = c.rec
    rec.ca = CA_OPEN
    rec.reno_sacked = 0
    if rec.rec_undo is not None and rec.undo_retrans <= 0:
        # Every retransmission was D-SACKed: the originals all arrived, nothing
        # was lost; undo the window reduction (RFC 3708 §3).
        c.cc.restore(rec.rec_undo)
        c.stats["spurious_recovery_undo"] += 1
    else:
        c.cc.on_recovery_exit(now)
    rec.rec_undo = None
    rec.undo_ranges = None
    rec.rack.on_recovery_exit()
    c.stats["recovery_exits"] += 1
    ft = c.flow_trace
    if ft is not None:
        ft.event(c, "recovery_exit", now)


# -- timeouts ----------------------------------------------------------------------------
def on_rto(c: Connection, now: float) -> None:
    """The retransmission timeout's loss response (RFC 6298 §5.4-5.7, RFC 5681
    §3.1): everything outstanding is lost, the loss window, the head resent at once
    whatever the window; saved first for a spurious-timeout undo (Eifel with
    timestamps, RFC 3522/4015; F-RTO without, RFC 5682)."""
    sb = c.sb
    rec = c.rec
    t = c.timers
    opt = c.opt
    if t.rto_count == 0 and rec.ca is not CA_LOSS:
        rec.undo_state = c.cc.save()
        rec.undo_tsval = c.tsval(now) if opt.ts_ok else None
    rec.rec_undo = None
    rec.undo_ranges = None
    repeated = rec.ca is CA_LOSS
    basis = c.cc.cwnd if c.config.loss_response == "cwnd" else sb.outstanding
    rec.max_flight = rec.max_flight_prev = rec.flight_found = 0
    c.cc.on_rto(now, basis, repeated=repeated)
    t.rto_count += 1
    c.rtt.backoff()
    if sb.segs and sb.segs[0].flags & SACKED:
        # The timeout came with SACKed data at SND.UNA: the ACKs stopped at data
        # the peer had SACKed, so it discarded it (reneging). RFC 2018 §8: after
        # a timeout, turn off the SACKed bits and resend from SND.UNA (as Linux's
        # tcp_timeout_mark_lost does); otherwise nothing is left to retransmit and
        # the timer fires empty until R2.
        c.stats["sack_reneging"] += 1
        sb.clear_marks()
    sb.mark_all_lost()
    rec.reno_sacked = 0
    rec.ca = CA_LOSS
    nxt = c.snd.nxt
    rec.recovery_point = nxt
    rec.reno_recover = nxt
    rec.tlp_end = None
    rec.dupacks = 0
    t.reo = None
    arm_rto(c, now)
    ft = c.flow_trace
    if ft is not None:
        ft.event(c, "rto", now)
    i = sb.next_lost()
    if i >= 0:
        retransmit_record(c, sb, i, now)
        sb.mark_retransmitted(i, now)
    rec.frto = 1 if not repeated and not opt.ts_ok and rec.undo_state else 0


def tlp_fire(c: Connection, now: float) -> None:
    """RFC 8985 §7.3: send a probe: new data if possible, else the last segment."""
    snd = c.snd
    sb = c.sb
    rec = c.rec
    if snd.nxt <= snd.una:
        return
    c.stats["tlp"] += 1
    ft = c.flow_trace
    if ft is not None:
        ft.event(c, "tlp", now)
    buf = snd.buf
    nxt = snd.nxt
    wnd_room = snd.una + snd.wnd - nxt
    avail = buf.end - nxt
    if avail > 0 and wnd_room > 0:
        send_new_segment(c, min(avail, data_mss(c), wnd_room), now)
        rec.tlp_retrans = False
    else:
        i = len(sb.segs) - 1
        r = sb.segs[i]
        if r.flags & SACKED:
            # Nothing sensible to probe with. RFC 8985 §7.3: the RTO must stay
            # armed; a probe episode without a probe keeps schedule() from turning
            # it back into a probe timer (and the TLP cwnd response off), so the
            # hole below the tail is resent by the RTO and R2 stays reachable.
            rec.tlp_end = snd.nxt
            rec.tlp_retrans = False
            arm_rto(c, now)
            return
        mss = data_mss(c)
        if r.end - r.start > mss:
            # A TSO super-segment: probe with its last wire segment, the part after
            # its last whole MSS (Linux's tcp_send_loss_probe fragments the skb at
            # (pcount - 1) * mss), which segment by segment is the last record.
            sb.split(i, r.start + (r.end - r.start - 1) // mss * mss)
            i += 1
            r = sb.segs[i]
        xmit(c, r.start, r.end, now)
        rec.tlp_probe_end = r.end
        sb.mark_resent(i, now)
        c.retransmits += 1
        c.stats["retransmits"] += 1
        rec.tlp_retrans = True
    rec.tlp_end = snd.nxt
    arm_rto(c, now)
