"""The send and receive variables of a connection's TCB (RFC 9293 §3.3.1).

Sequence numbers here are *absolute offsets*: on the send side counted from the ISS
(our SYN is 0, the first data byte 1), on the receive side from the IRS. They never
wrap; ``Connection.snd_una`` and friends turn them into 32-bit sequence numbers.
The procedure modules (:mod:`.output`, :mod:`.acks`, :mod:`.arrival`, ...) read and
write these records through ``Connection.snd`` and ``Connection.rcv``.
"""

from __future__ import annotations

import attr

from .recvbuf import ReceiveBuffer
from .sendbuf import SendBuffer

__all__ = ["ReceiveState", "SendState"]


# attr.s rather than attrs.define: mypyc compiles this form to a native class.
@attr.s(auto_attribs=True, slots=True)
class SendState:
    """SND.* and what the sender remembers about its own transmissions."""

    #: The send buffer (bytes written and not yet acknowledged).
    buf: SendBuffer
    #: SND.UNA: oldest unacknowledged offset.
    una: int = 0
    #: SND.NXT: next offset to send.
    nxt: int = 0
    #: SND.WND: the peer's window, scaled, in bytes.
    wnd: int = 0
    #: SND.WL1 / SND.WL2: SEG.SEQ and SEG.ACK of the last window update (32-bit).
    wl1: int = 0
    wl2: int = 0
    #: The largest window the peer offered (sender SWS avoidance, RFC 5961 §5.2).
    max_wnd: int = 0
    #: SND.UP: offset of the first non-urgent byte (RFC 9293 §3.8.5).
    up: int = 0
    #: Data before this offset was written with nodelay (Nagle does not hold it).
    push_end: int = 0
    #: End of the last new segment shorter than the MSS (Minshall's Nagle).
    small_end: int = 0
    #: The user closed: our FIN follows the queued data at ``fin_off``.
    fin_queued: bool = False
    fin_off: int = -1
    #: Our FIN has been sent.
    fin_sent: bool = False
    #: SYN retransmissions so far, and whether there were any (Karn, RFC 6298 §5.7).
    syn_retries: int = 0
    syn_retransmitted: bool = False
    #: TSval of our latest SYN (or SYN,ACK): an echo of an older one is ambiguous.
    syn_tsval: int = 0
    #: When data was last sent (restart after idle, RFC 5681 §4.1), any segment was
    #: last sent, and an acceptable ACK last arrived.
    last_data_send: float = 0.0
    last_send: float = 0.0
    ack_rcvd_at: float = 0.0


# attr.s rather than attrs.define: mypyc compiles this form to a native class.
@attr.s(auto_attribs=True, slots=True)
class ReceiveState:
    """RCV.* and the receiver's acknowledgement bookkeeping."""

    #: The reassembly buffer; ``buf.nxt`` is RCV.NXT.
    buf: ReceiveBuffer
    #: Receive buffer size (what the window may offer at most).
    cap: int
    #: RCV.NXT + RCV.WND as last advertised: the right edge never moves left.
    adv: int = 1
    #: Estimate of the peer's MSS (largest segment received) for the ACK policy.
    mss: int = 536
    #: Bytes received in order since the last ACK (delayed ACKs, RFC 9293 §3.8.6.3).
    unacked: int = 0
    #: RCV.NXT as last acknowledged (TS.Recent update rule, RFC 7323 §4.3).
    last_ack_sent: int = 0
    #: The peer's FIN was processed; or its offset while it waits for earlier data.
    fin_rcvd: bool = False
    fin_off: int = -1
    #: RCV.UP: offset of the first non-urgent byte received.
    up: int = 0
    #: An ACK must go out with the next output.
    ack_now: bool = False
    #: Text (and FIN) that came on the peer's SYN, queued until ESTABLISHED
    #: (RFC 9293 §3.10.7.2 LISTEN third, §3.10.7.3 SYN-SENT fourth).
    syn_queued: bytes = b""
    syn_fin: bool = False
    #: When a segment last arrived (keepalive idleness).
    last_rcv: float = 0.0
