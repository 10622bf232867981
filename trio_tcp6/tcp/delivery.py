"""Received text and FIN (RFC 9293 §3.10.7.4 seventh and eighth steps).

In-order text goes into the reassembly buffer (:mod:`.recvbuf`) and is acknowledged
by the delayed-ACK policy (every second full segment at once, RFC 9293 §3.8.6.3);
out-of-order and duplicate text is acknowledged at once (RFC 5681 §4.2). The FIN is
processed once everything before it has arrived; in ESTABLISHED its ACK may wait
for the application's own FIN (:func:`process_fin`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.tcp import Payload
from .events import (
    EV_EOF,
    EV_READABLE,
    ST_CLOSE_WAIT,
    ST_CLOSING,
    ST_ESTABLISHED,
    ST_FIN_WAIT_1,
    ST_FIN_WAIT_2,
    ST_LAST_ACK,
    ST_SYN_RECEIVED,
    ST_TIME_WAIT,
)
from .memory import add_under_pressure
from .output import ack_data
from .recvbuf import ADD_DROP, ADD_DUP, ADD_INORDER, ADD_OOO
from .states import RECEIVING

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["process_fin", "text_and_fin"]


def text_and_fin(c: Connection, start: int, payload: Payload, fin: bool, now: float) -> None:
    """Text at offset ``start`` (already trimmed to the window) and maybe a FIN."""
    st = c.state
    rcv = c.rcv
    rb = rcv.buf
    plen = len(payload)
    if plen:
        if st in RECEIVING:
            before = rb.nxt
            m = c.memory
            if m is not None and m.pressure:
                res = add_under_pressure(c, start, payload)
            else:
                res = rb.add(start, payload)
            if res == ADD_INORDER:
                got = rb.nxt - before
                c.bytes_received += got
                if plen > rcv.mss:
                    rcv.mss = min(plen, c.opt.our_mss)
                rcv.unacked += got
                delayed_ack = c.config.delayed_ack
                if rcv.unacked >= 2 * rcv.mss or delayed_ack is None:
                    ack_data(c, now)
                elif c.timers.delack is None:
                    c.timers.delack = now + delayed_ack
            elif res in (ADD_OOO, ADD_DUP, ADD_DROP):
                rcv.ack_now = True
                if res == ADD_DUP:
                    c.stats["dup_data"] += 1
            else:  # ADD_FILLED
                c.bytes_received += rb.nxt - before
                # RFC 5681 §4.2: at once, unless it would close the window (then
                # on the read that opens it again).
                ack_data(c, now)
            if rb.nxt > before and not c.readable_ev:
                c.readable_ev = True
                c.eventq.append(EV_READABLE)
        else:
            c.stats["drop_data_after_fin"] += 1
            rcv.ack_now = True
    in_order = False
    if fin:
        if st in (ST_CLOSE_WAIT, ST_CLOSING, ST_LAST_ACK):
            rcv.ack_now = True  # retransmitted FIN
            return
        if st is ST_TIME_WAIT:
            rcv.ack_now = True
            c.timers.tw = now + c.config.time_wait_duration
            return
        # A FIN seen before waited for earlier data: this segment fills that gap.
        in_order = rcv.fin_off < 0
        rcv.fin_off = start + plen
        if rb.nxt != rcv.fin_off:
            rcv.ack_now = True  # out of order: a duplicate ACK at once (RFC 5681 §4.2)
    if rcv.fin_off >= 0 and not rcv.fin_rcvd and rb.nxt == rcv.fin_off:
        process_fin(c, now, in_order)


def process_fin(c: Connection, now: float, in_order: bool = False) -> None:
    """RFC 9293 §3.10.7.4 eighth: the FIN is next in sequence; ``in_order``: it
    arrived so, on the segment just processed, not after a gap that segment filled.

    Its ACK goes out at once, except for an in-order FIN in ESTABLISHED (or
    SYN-RECEIVED) with delayed ACKs on and at most one segment's worth of sequence
    space, FIN included, unacknowledged: then it waits on the delayed-ACK timer
    (never past ``delayed_ack``), so that an application that closes once it sees
    the end of the stream sends its FIN with the ACK in one segment. Linux does the
    same (``tcp_fin`` enters pingpong mode, which stops quick ACKs;
    ``__tcp_ack_snd_check`` then sends at once only when more than one receive MSS
    is unacknowledged). A FIN after a gap (the segment filling it, RFC 5681 §4.2),
    one in FIN-WAIT-1 or FIN-WAIT-2 (the peer waits for its ACK to finish closing)
    and a retransmitted FIN are acknowledged at once. With at most one segment
    outstanding the peer's loss probe allows for a delayed ACK (RFC 8985 §7.2
    WCDelAckT), so the wait costs it no retransmission."""
    rcv = c.rcv
    rcv.fin_rcvd = True
    rcv.buf.nxt += 1
    c.eventq.append(EV_EOF)
    st = c.state
    if st is ST_ESTABLISHED or st is ST_SYN_RECEIVED:
        c.set_state(ST_CLOSE_WAIT, "fin received", now)
        delayed_ack = c.config.delayed_ack
        if in_order and delayed_ack is not None and rcv.unacked < rcv.mss:
            t = c.timers
            if t.delack is None:
                t.delack = now + delayed_ack
        else:
            rcv.ack_now = True
        return
    rcv.ack_now = True
    if st is ST_FIN_WAIT_1:
        snd = c.snd
        if snd.fin_sent and snd.una > snd.fin_off:
            c.enter_time_wait(now)
        else:
            c.set_state(ST_CLOSING, "fin received (simultaneous close)", now)
    elif st is ST_FIN_WAIT_2:
        c.enter_time_wait(now)
