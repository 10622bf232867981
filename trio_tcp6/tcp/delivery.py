"""Received text and FIN (RFC 9293 §3.10.7.4 seventh and eighth steps).

In-order text goes into the reassembly buffer (:mod:`.recvbuf`) and is acknowledged
by the delayed-ACK policy (every second full segment at once, RFC 9293 §3.8.6.3);
out-of-order and duplicate text is acknowledged at once (RFC 5681 §4.2). The FIN is
processed once everything before it has arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .events import EV_EOF, EV_READABLE, State
from .memory import add_under_pressure
from .output import ack_data
from .recvbuf import ADD_DROP, ADD_DUP, ADD_INORDER, ADD_OOO
from .states import RECEIVING

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["process_fin", "text_and_fin"]


def text_and_fin(c: Connection, start: int, payload: bytes, fin: bool, now: float) -> None:
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
    if fin:
        if st in (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK):
            rcv.ack_now = True  # retransmitted FIN
            return
        if st is State.TIME_WAIT:
            rcv.ack_now = True
            c.timers.tw = now + c.config.time_wait_duration
            return
        rcv.fin_off = start + plen
        rcv.ack_now = True
    if rcv.fin_off >= 0 and not rcv.fin_rcvd and rb.nxt == rcv.fin_off:
        process_fin(c, now)


def process_fin(c: Connection, now: float) -> None:
    """RFC 9293 §3.10.7.4 eighth: the FIN is next in sequence."""
    rcv = c.rcv
    rcv.fin_rcvd = True
    rcv.buf.nxt += 1
    rcv.ack_now = True
    c.eventq.append(EV_EOF)
    st = c.state
    if st is State.ESTABLISHED or st is State.SYN_RECEIVED:
        c.set_state(State.CLOSE_WAIT, "fin received", now)
    elif st is State.FIN_WAIT_1:
        snd = c.snd
        if snd.fin_sent and snd.una > snd.fin_off:
            c.enter_time_wait(now)
        else:
            c.set_state(State.CLOSING, "fin received (simultaneous close)", now)
    elif st is State.FIN_WAIT_2:
        c.enter_time_wait(now)
