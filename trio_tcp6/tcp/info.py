"""What a connection knows about itself, as one typed record.

:class:`TCPInfo` is what ``Connection.info()`` returns and what the runtime hands to
the user as ``Flow.info()`` (``trio_tcp6.FlowInfo`` is this class). The kernel stack
fills the same record from Linux ``TCP_INFO``; a field the source cannot know is
None there. In the spirit of ``TCP_INFO`` / ``ss -i``: times in seconds, sizes in
bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

from .cc import INFINITE_SSTHRESH
from .events import State

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["CAStateName", "TCPInfo", "snapshot"]

#: The sender's congestion-avoidance state as Linux names it (the engine uses
#: "open", "recovery" and "loss"; Linux also reports "disorder" and "cwr").
CAStateName = Literal["open", "disorder", "cwr", "recovery", "loss"]
#: The engine's ``CAState`` values, by value, as Linux names them.
_CA_NAMES: tuple[CAStateName, ...] = ("open", "recovery", "loss")


@attrs.frozen
class TCPInfo:
    """A snapshot of one connection."""

    #: RFC 9293 state.
    state: State
    #: Smoothed RTT (RFC 6298 SRTT); None before the first sample.
    srtt: float | None
    #: RTT variation (RFC 6298 RTTVAR); None before the first sample.
    rttvar: float | None
    #: Current retransmission timeout, backoff included.
    rto: float
    #: Smallest RTT seen (RACK's and HyStart++'s min_rtt); None before a sample.
    min_rtt: float | None
    #: Congestion window.
    cwnd: int
    #: Slow-start threshold; None while still "infinite" (no loss seen yet).
    ssthresh: int | None
    #: Effective send MSS (largest payload per segment, options paid for).
    mss: int
    #: The peer's window (SND.WND, scaled).
    snd_wnd: int
    #: The window we advertise (RCV.WND).
    rcv_wnd: int
    #: Segments retransmitted (SYNs included).
    retransmits: int
    #: Bytes of ours the peer acknowledged.
    bytes_acked: int
    #: In-order bytes received from the peer.
    bytes_received: int
    #: Sequence space sent for the first time (data, and one for the FIN).
    bytes_sent: int
    #: SACK negotiated (RFC 2018).
    sack: bool
    #: Timestamps negotiated (RFC 7323).
    timestamps: bool
    #: ``(send shift, receive shift)`` when window scaling was negotiated, else None.
    wscale: tuple[int, int] | None
    #: Bytes estimated in the network (RFC 6675 pipe). Kernel: segments x MSS.
    in_flight: int
    #: Bytes marked lost and not yet repaired. Kernel: segments x MSS.
    lost: int
    #: Bytes the peer SACKed above SND.UNA. Kernel: segments x MSS.
    sacked: int
    #: Whether reordering was seen on the path (SACK or D-SACK evidence).
    reordering: bool
    #: Congestion-avoidance state (:data:`CAStateName`).
    ca_state: CAStateName
    #: Sequence space sent and not yet acknowledged (SND.NXT - SND.UNA). Kernel:
    #: segments x MSS.
    unacked: int
    #: Records on the sender's scoreboard (bounded by the segments sent, whatever
    #: SACK blocks the peer sends). Kernel: None (not reported).
    scoreboard_records: int | None = None
    #: Out-of-order bytes held for reassembly. Kernel: None (not reported).
    rcv_ooo: int | None = None
    #: Bytes counted against the receive buffer: in-order data not yet read plus
    #: out-of-order data with its per-piece overhead. Kernel: None (not reported).
    rcv_held: int | None = None
    #: ECN negotiated (RFC 3168 §6.1.1). Kernel: ``TCPI_OPT_ECN`` when filled in.
    ecn: bool | None = None
    #: Data segments that arrived CE-marked (the receiver then echoes ECE).
    #: Kernel: None (not reported).
    ce_received: int | None = None
    #: Acceptable ACKs that carried ECE (each window of them reduced cwnd once).
    #: Kernel: None (not reported).
    ece_received: int | None = None
    #: Segments sent with CWR. Kernel: None (not reported).
    cwr_sent: int | None = None


def snapshot(c: Connection) -> TCPInfo:
    """The :class:`TCPInfo` of ``c`` now (``Connection.info()``): it only reads."""
    rtt = c.rtt
    sb = c.sb
    opt = c.opt
    ecn = c.ecn
    ssthresh = c.cc.ssthresh
    return TCPInfo(
        state=c.state,
        srtt=rtt.srtt,
        rttvar=rtt.rttvar,
        rto=rtt.rto,
        min_rtt=rtt.min_rtt,
        cwnd=c.cc.cwnd,
        ssthresh=None if ssthresh >= INFINITE_SSTHRESH else ssthresh,
        mss=opt.mss,
        snd_wnd=c.snd.wnd,
        rcv_wnd=c.rcv_wnd,
        retransmits=c.retransmits,
        bytes_acked=c.bytes_acked,
        bytes_received=c.bytes_received,
        bytes_sent=c.bytes_sent,
        sack=opt.sack_ok,
        timestamps=opt.ts_ok,
        wscale=(opt.snd_shift, opt.rcv_shift) if opt.ws_ok else None,
        in_flight=sb.pipe,
        lost=sb.lost,
        sacked=sb.sacked,
        reordering=c.rec.rack.reord,
        ca_state=_CA_NAMES[c.rec.ca],
        unacked=c.snd.nxt - c.snd.una,
        scoreboard_records=len(sb.segs),
        rcv_ooo=c.rcv.buf.ooo_bytes,
        rcv_held=c.rcv.buf.held,
        ecn=ecn.ok,
        ce_received=ecn.ce_received,
        ece_received=ecn.ece_received,
        cwr_sent=ecn.cwr_sent,
    )
