"""The user calls of RFC 9293 §3.10.1-5 that change a connection's data flow: SEND,
RECEIVE, CLOSE (our FIN after the queued data), and the path-MTU report.

``Connection`` keeps the public methods (which guard against a broken connection);
the procedures are here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.icmpv6 import IPV6_MIN_MTU
from ..wire.tcp import IPV6_TCP_HEADERS_LEN
from .events import (
    ST_CLOSE_WAIT,
    ST_ESTABLISHED,
    ST_FIN_WAIT_1,
    ST_LAST_ACK,
    ST_SYN_RECEIVED,
    ST_SYN_SENT,
)
from .handshake import update_mss
from .memory import send_room
from .output import max_offered_window, receive_space, transmit
from .states import CA_LOSS, RECEIVING, SENDING

if TYPE_CHECKING:
    from .connection import Connection

#: The send MSS is lowered for a Packet Too Big at most once per max(SRTT, this):
#: a forged staircase of reports one byte apart must not resend the flight on each
#: (RFC 8201 §5.4 leaves the rate to the packetization layer). A report inside the
#: interval is ignored; the router repeats it for the next packet that is too big.
PMTU_MIN_INTERVAL = 0.5

__all__ = ["path_mtu", "receive", "send", "shutdown"]


def send(
    c: Connection, data: bytes | bytearray | memoryview, now: float, nodelay: bool, urgent: bool
) -> int:
    """Queue what fits of ``data`` (see ``Connection.send``)."""
    snd = c.snd
    if snd.fin_queued or c.state not in (
        ST_SYN_SENT,
        ST_SYN_RECEIVED,
        ST_ESTABLISHED,
        ST_CLOSE_WAIT,
    ):
        return 0
    buf = snd.buf
    m = c.memory
    if m is not None and m.limited:
        n = buf.append(data, send_room(c, buf.space))
    else:
        n = buf.append(data)
    if n and (nodelay or urgent):
        snd.push_end = buf.end
        if urgent:
            snd.up = buf.end
    if n and c.state in SENDING:
        transmit(c, now)
    if buf.space == 0:
        c.writable_ev = False
    if c.want_writable:
        c.flush_events()
    if m is not None:
        # settle(), inline: once per write.
        held = c.rcv.buf.held + buf.queued
        if held != c.memory_charged:
            m.charge(held - c.memory_charged)
            c.memory_charged = held
    return n


def receive(c: Connection, max_bytes: int, now: float) -> bytes:
    """Take in-order data; a window update if the peer could be held back by the
    window we last advertised and the right edge moves enough.

    "Held back" is measured against the largest window the peer has been offered
    (:func:`.output.max_offered_window`), not the buffer: the update goes out when
    what is left of the advertised window is under half of it (Linux's
    ``tcp_cleanup_rbuf`` rule against its window clamp), or when this read lets
    the edge move by a quarter of it (and 2 MSS) and the peer's window is at least
    that much short of it -- a burst ACKed before the application read it left
    the peer a window short by the whole burst, with no ACK to come. After a
    passive open, until data is acknowledged, the peer has seen only the SYN-ACK's
    unscaled window (at most 65535): reading a small request then sends no update
    even though the buffer would offer megabytes; the byte's (delayed) ACK offers
    them. Either way the edge must move by min(half the window, 2 MSS) at least
    (receiver SWS avoidance, RFC 9293 §3.8.6.2.2)."""
    rcv = c.rcv
    rb = rcv.buf
    data = rb.read(max_bytes)
    if not rb.readable:
        c.readable_ev = False
    if data and c.state in RECEIVING:
        most = max_offered_window(c)
        half = most >> 1
        mss2 = 2 * c.opt.our_mss
        adv = rcv.adv
        left = adv - rb.nxt
        # (Conditionals rather than min/max: once per read.)
        room = receive_space(c)
        clamp = 0xFFFF << c.opt.rcv_shift
        move = rb.nxt + (room if room < clamp else clamp) - adv
        quarter = most >> 2
        big = quarter if quarter > mss2 else mss2
        if move >= (half if half < mss2 else mss2) and (
            left < half or (move >= big and most - left >= big)
        ):
            rcv.ack_now = True
            c.stats["window_updates"] += 1
            transmit(c, now)
    m = c.memory
    if m is not None:
        # settle(), inline: once per read.
        held = rb.held + c.snd.buf.queued
        if held != c.memory_charged:
            m.charge(held - c.memory_charged)
            c.memory_charged = held
    return data


def shutdown(c: Connection, now: float) -> None:
    """CLOSE: our FIN after the queued data (RFC 9293 §3.10.4)."""
    st = c.state
    snd = c.snd
    if snd.fin_queued:
        return
    if st is ST_SYN_SENT:
        c.close(None, "close in SYN-SENT", now)
        return
    if st not in (ST_SYN_RECEIVED, ST_ESTABLISHED, ST_CLOSE_WAIT):
        return
    snd.fin_queued = True
    snd.fin_off = snd.buf.end
    snd.push_end = snd.fin_off
    if st is ST_ESTABLISHED or (st is ST_SYN_RECEIVED and not len(snd.buf)):
        # RFC 9293 §3.10.4: in SYN-RECEIVED with nothing queued, send the FIN now.
        c.set_state(ST_FIN_WAIT_1, "close", now)
    elif st is ST_CLOSE_WAIT:
        c.set_state(ST_LAST_ACK, "close", now)
    transmit(c, now)
    c.flush_events()


def path_mtu(c: Connection, mtu: int, now: float) -> None:
    """A Packet Too Big lowered the path MTU (RFC 8201 §4): lower the send MSS and
    retransmit the segments that no longer fit (Linux ``tcp_simple_retransmit``);
    those that fit stay in flight, whole. Never raises it, and lowers it at most
    once per max(SRTT, :data:`PMTU_MIN_INTERVAL`) (later reports are ignored,
    counted as ``pmtu_ratelimited``)."""
    if mtu < IPV6_MIN_MTU:
        c.stats["pmtu_ignored"] += 1
        return
    new = mtu - IPV6_TCP_HEADERS_LEN
    opt = c.opt
    if new >= opt.path_mss:
        return
    srtt = c.rtt.srtt
    interval = srtt if srtt is not None and srtt > PMTU_MIN_INTERVAL else PMTU_MIN_INTERVAL
    if now - opt.pmtu_at < interval:
        c.stats["pmtu_ratelimited"] += 1
        return
    opt.pmtu_at = now
    c.stats["pmtu_reductions"] += 1
    opt.pmtu_mss = new
    opt.path_mss = new
    update_mss(c)
    sb = c.sb
    mss = opt.mss
    if c.state not in SENDING or not sb.segs:
        c.flush_events()
        return
    # Mark lost what is too big for the path now (a FIN takes no room), not as
    # congestion (RFC 8201 §4 / RFC 4821 spirit): loss state, no cwnd change.
    fin_off = c.snd.fin_off
    marked = False
    for i, r in enumerate(sb.segs):
        size = r.end - r.start
        if fin_off >= 0 and r.end > fin_off:
            size -= 1
        if size > mss:
            sb.mark_lost(i)
            marked = True
    if marked:
        rec = c.rec
        # The dupACK estimate (no SACK) cannot exceed what is not lost.
        room = sb.outstanding - sb.lost
        if rec.reno_sacked > room:
            rec.reno_sacked = room if room > 0 else 0
        if rec.ca is not CA_LOSS:
            rec.ca = CA_LOSS
            rec.recovery_point = c.snd.nxt
        c.timers.reo = None
        rec.tlp_end = None
        transmit(c, now)
    c.flush_events()
