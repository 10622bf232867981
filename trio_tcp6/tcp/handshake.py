"""The three-way handshake (RFC 9293 §3.5, §3.10.7.2-3) and option negotiation.

Our SYN / SYN-ACK (:func:`send_syn`), the peer's SYN taken into the
:class:`~.options.Options` record (:func:`take_peer_syn`, or
:func:`take_cookie` for a SYN-cookie handshake), segment arrival in SYN-SENT
(:func:`on_syn_sent`), the ACK completing a passive open (:func:`syn_received_ack`),
SYN retransmission, and text that arrived on a SYN (queued until ESTABLISHED).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.ipv6 import ECN_CE
from ..wire.tcp import ACK, FIN, RST, SYN, Payload, TCPSegment
from . import ecn
from .cc import CongestionControl, make_congestion_control
from .delivery import text_and_fin
from .events import EV_CONNECTED, ST_ESTABLISHED, ST_FIN_WAIT_1, ST_SYN_RECEIVED
from .options import DEFAULT_IPV6_MSS, MAX_WSCALE, MIN_MSS
from .output import send_rst
from .sack import Scoreboard
from .seq import MASK, seq_gt, seq_lt
from .timers import T_RTO

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "deliver_syn_text",
    "established",
    "new_cc",
    "on_syn_sent",
    "queue_syn_text",
    "send_syn",
    "set_peer_mss",
    "syn_received_ack",
    "syn_text_in_window",
    "syn_timeout",
    "take_cookie",
    "take_peer_syn",
    "update_mss",
]


# -- options -----------------------------------------------------------------------------
def new_cc(c: Connection) -> CongestionControl:
    """A fresh congestion controller for the current send MSS."""
    cfg = c.config
    return make_congestion_control(
        cfg.congestion,
        mss=c.opt.mss,
        initial_window=cfg.initial_window,
        hystart=cfg.hystart,
        validation=cfg.cwnd_validation,
        abc_limit=cfg.slow_start_limit,
    )


def update_mss(c: Connection) -> None:
    """The path MSS or the options changed: recompute the effective send MSS."""
    opt = c.opt
    mss = opt.effective_mss()
    if mss != opt.mss:
        opt.mss = mss
        c.cc.set_mss(mss)
    c.rcv.mss = min(c.rcv.mss, opt.our_mss)


def set_peer_mss(c: Connection, peer_mss: int | None) -> None:
    """The handshake fixed the send MSS: the congestion controller starts with
    the initial window for it (RFC 6928 §2), not a rescaled provisional one.

    This builds the connection's controller (a passive open has none before)."""
    opt = c.opt
    base = min(opt.our_mss, peer_mss if peer_mss else DEFAULT_IPV6_MSS)
    if opt.pmtu_mss is not None:
        base = min(base, opt.pmtu_mss)
    opt.path_mss = max(base, MIN_MSS)
    # update_mss() without telling the provisional controller: it is replaced.
    opt.mss = opt.effective_mss()
    c.rcv.mss = min(c.rcv.mss, opt.our_mss)
    c.cc = new_cc(c)


def take_peer_syn(c: Connection, syn: TCPSegment, now: float) -> None:
    """Record the peer's SYN: IRS and the options both sides must agree on."""
    c.peer_syn = True
    cfg = c.config
    opt = c.opt
    rcv = c.rcv
    snd = c.snd
    c.irs = syn.seq & MASK
    # The buffer is still empty (nothing is received before the peer's SYN): only
    # its size may have changed since it was made (SO_RCVBUF while connecting).
    rcv.buf.cap = rcv.cap
    rcv.adv = 1 + min(rcv.cap, 0xFFFF)
    opt.ws_ok = cfg.window_scale and syn.wscale is not None
    if opt.ws_ok:
        assert syn.wscale is not None
        opt.snd_shift = min(syn.wscale, MAX_WSCALE)
        if syn.wscale > MAX_WSCALE:
            # RFC 7323 §2.3: "SHOULD log the error but MUST use 14 instead".
            c.stats["wscale_clamped"] += 1
    else:
        opt.snd_shift = 0
        opt.rcv_shift = 0
    opt.sack_ok = cfg.sack and syn.sack_permitted
    opt.ts_ok = cfg.timestamps and syn.timestamps is not None
    if opt.ts_ok and syn.timestamps is not None:
        opt.ts_recent = syn.timestamps[0]
        opt.ts_recent_age = now
    set_peer_mss(c, syn.mss)
    c.ecn.ok = ecn.negotiated(c, syn)
    # SYN windows are never scaled (RFC 7323 §2.2).
    snd.wnd = syn.window
    snd.max_wnd = max(snd.max_wnd, snd.wnd)
    snd.wl1 = syn.seq & MASK


def take_cookie(
    c: Connection,
    ack: TCPSegment,
    *,
    peer_mss: int,
    peer_wscale: int | None,
    sack_permitted: bool,
    timestamps: bool,
) -> None:
    """The ACK completing a SYN-cookie handshake: the options the cookie kept, and
    the variables the SYN-ACK we did not remember would have set."""
    cfg = c.config
    opt = c.opt
    snd = c.snd
    rcv = c.rcv
    c.irs = (ack.seq - 1) & MASK
    opt.ws_ok = peer_wscale is not None and cfg.window_scale
    if opt.ws_ok:
        assert peer_wscale is not None
        opt.snd_shift = min(peer_wscale, MAX_WSCALE)
    else:
        opt.rcv_shift = 0
    opt.sack_ok = sack_permitted and cfg.sack
    opt.ts_ok = timestamps and cfg.timestamps and ack.timestamps is not None
    if opt.ts_ok and ack.timestamps is not None:
        opt.ts_recent = ack.timestamps[0]
    set_peer_mss(c, peer_mss)
    rcv.last_ack_sent = 1
    snd.una = snd.nxt = 1
    c.sb = Scoreboard(1)
    # The cookie's SYN-ACK carried an unscaled window of at most 65535.
    rcv.adv = 1 + min(rcv.cap, 0xFFFF)
    snd.wl1 = (ack.seq - 1) & MASK
    snd.wl2 = c.iss


# -- our SYN --------------------------------------------------------------------------------
def send_syn(c: Connection, now: float) -> None:
    """Queue our SYN (active open) or SYN-ACK (the peer's SYN was taken) and arm the
    retransmission timer."""
    cfg = c.config
    opt = c.opt
    snd = c.snd
    if c.peer_syn:
        c.rcv.last_ack_sent = 1
        ws = opt.rcv_shift if opt.ws_ok else None
        sackp = opt.sack_ok
        ts = (c.tsval(now), opt.ts_recent) if opt.ts_ok else None
        ack: int | None = (c.irs + 1) & MASK
    else:
        ws = opt.rcv_shift if cfg.window_scale else None
        sackp = cfg.sack
        ts = (c.tsval(now), 0) if cfg.timestamps else None
        ack = None
    if ts is not None:
        snd.syn_tsval = ts[0]
    syn = TCPSegment.handshake(
        c.local_port,
        c.remote_port,
        c.iss,
        min(c.rcv.cap, 0xFFFF),
        ack=ack,
        mss=opt.our_mss,
        wscale=ws,
        sack_permitted=sackp,
        timestamps=ts,
    )
    syn.flags |= ecn.syn_flags(c)
    c.outq.append(syn)
    if snd.nxt == 0:
        snd.nxt = 1
    snd.last_send = now
    t = c.timers
    t.rtx_mode = T_RTO
    t.rtx = now + c.rtt.rto


def syn_timeout(c: Connection, now: float) -> None:
    """Our SYN was not answered in time: retransmit it, or give up."""
    snd = c.snd
    cfg = c.config
    limit = cfg.synack_retries if c.state is ST_SYN_RECEIVED else cfg.syn_retries
    if snd.syn_retries >= limit:
        c.close("timeout", "syn timeout", now)
        return
    snd.syn_retries += 1
    snd.syn_retransmitted = True
    c.rtt.backoff()
    c.retransmits += 1
    c.stats["syn_retransmits"] += 1
    send_syn(c, now)


def established(c: Connection, now: float) -> None:
    """The handshake completed (SYN-SENT or SYN-RECEIVED -> ESTABLISHED)."""
    c.set_state(ST_ESTABLISHED, "handshake completed", now)
    c.eventq.append(EV_CONNECTED)
    t = c.timers
    t.rtx = None
    t.rtx_mode = T_RTO
    if c.snd.syn_retransmitted:
        c.rtt.use_syn_fallback()
        # RFC 6928 §2 / RFC 5681: a lost SYN means an initial window of 1 segment.
        c.cc.cwnd = min(c.cc.cwnd, c.opt.mss)
    c.rtt.clear_backoff()
    c.want_writable = True
    if c.ecn.ok:
        c.stats["ecn_negotiated"] += 1
    if c.snd.fin_queued:
        c.set_state(ST_FIN_WAIT_1, "close queued during the handshake", now)


# -- text on a SYN -----------------------------------------------------------------------
def syn_text_in_window(c: Connection, syn: TCPSegment) -> tuple[Payload, bool]:
    """The text and FIN of a SYN, trimmed to our initial receive window (a FIN
    beyond it is dropped too), as RFC 9293 §3.10.7.4 first does for any segment."""
    text = syn.payload
    fin = syn.fin
    room = c.rcv.adv - 1
    if len(text) > room:
        text = text[:room]
        fin = False
        c.stats["trimmed_beyond_window"] += 1
    return text, fin


def queue_syn_text(c: Connection, syn: TCPSegment) -> None:
    """RFC 9293 §3.10.7.2 (LISTEN, third) and §3.10.7.3 (SYN-SENT, fourth, a SYN
    without ACK): text and FIN on a SYN are queued for processing once ESTABLISHED
    (:func:`deliver_syn_text`)."""
    text, fin = syn_text_in_window(c, syn)
    if text or fin:
        c.rcv.syn_queued = bytes(text)
        c.rcv.syn_fin = fin
        c.stats["syn_text_queued"] += 1


def deliver_syn_text(c: Connection, now: float) -> None:
    """The handshake completed: process the SYN's queued text and FIN as if they
    had just arrived at sequence offset 1, and acknowledge them at once (the peer's
    retransmission timer for them is running)."""
    rcv = c.rcv
    text, fin = rcv.syn_queued, rcv.syn_fin
    rcv.syn_queued = b""
    rcv.syn_fin = False
    text_and_fin(c, 1, text, fin, now)
    rcv.ack_now = True


# -- segment arrival during the handshake ---------------------------------------------------
def on_syn_sent(c: Connection, seg: TCPSegment, now: float) -> None:
    """RFC 9293 §3.10.7.3."""
    flags = seg.flags
    ack_ok = False
    if flags & ACK:
        # first: SEG.ACK =< ISS or > SND.NXT is unacceptable
        if not (seq_gt(seg.ack, c.iss) and not seq_gt(seg.ack, c.snd_nxt)):
            c.stats["drop_bad_ack"] += 1
            if not flags & RST:
                send_rst(c, seg.ack, now)
            return
        ack_ok = True
    if flags & RST:
        if ack_ok:
            c.close("refused", "rst", now)
        else:
            c.stats["drop_rst_no_ack"] += 1
        return
    if not flags & SYN:
        c.stats["drop_syn_sent_no_syn"] += 1
        return
    take_peer_syn(c, seg, now)
    c.rcv.buf.nxt = 1
    if ack_ok:
        c.snd.una = 1
        c.sb = Scoreboard(1)
        if not c.snd.syn_retransmitted:
            c.rtt.sample(now - c.created, now)
        else:
            syn_ts_sample(c, seg, now)
        c.snd.wl2 = seg.ack
        if c.ecn.ok and seg.ecn == ECN_CE:
            ecn.on_synack_ce(c)
        established(c, now)
        c.rcv.ack_now = True
        # Data or FIN on the SYN-ACK: continue at the sixth step, the text
        # trimmed to our receive window (RFC 9293 §3.10.7.4 first).
        if seg.payload or flags & FIN:
            text, fin = syn_text_in_window(c, seg)
            text_and_fin(c, 1, text, fin, now)
    else:
        # Simultaneous open (RFC 9293 §3.10.7.3 fourth): send SYN,ACK.
        queue_syn_text(c, seg)
        c.set_state(ST_SYN_RECEIVED, "simultaneous open", now)
        send_syn(c, now)


def syn_ts_sample(c: Connection, seg: TCPSegment, now: float) -> None:
    """Karn's rule for a retransmitted SYN or SYN,ACK (RFC 6298 §3, §5.7): an RTT
    sample only if the answer's TSecr is the TSval of our latest one (RFC 7323 §4).
    An older echo is ambiguous: the earlier SYN may have waited, or the answer to
    it been lost and retransmitted by the peer's timer; without a sample the RTO
    falls back to 3 s until data gives one."""
    ts = seg.timestamps
    if not c.opt.ts_ok or ts is None or not ts[1]:
        return
    if seq_lt(ts[1], c.snd.syn_tsval):
        c.stats["rtt_skipped_old_syn_echo"] += 1
        return
    rtt = ((c.tsval(now) - ts[1]) & MASK) / 1000.0
    if rtt < 60:
        c.rtt.sample(rtt, now)


def syn_received_ack(c: Connection, seg: TCPSegment, now: float) -> bool:
    """SYN-RECEIVED (RFC 9293 §3.10.7.4 fifth): does this ACK of our SYN complete the
    handshake? If not, it is answered with a RST and False returned."""
    if not (seq_gt(seg.ack, c.iss) and not seq_gt(seg.ack, c.snd_nxt)):
        c.stats["drop_bad_ack"] += 1
        send_rst(c, seg.ack, now)
        return False
    snd = c.snd
    snd.wnd = seg.window << c.opt.snd_shift
    snd.max_wnd = max(snd.max_wnd, snd.wnd)
    snd.wl1 = seg.seq
    snd.wl2 = seg.ack
    snd.una = 1
    if not snd.syn_retransmitted:
        c.rtt.sample(now - c.created, now)
    else:
        syn_ts_sample(c, seg, now)
    established(c, now)
    if c.rcv.syn_queued or c.rcv.syn_fin:
        deliver_syn_text(c, now)
    return True
