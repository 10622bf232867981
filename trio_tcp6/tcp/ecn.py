"""Explicit Congestion Notification in TCP: RFC 3168 §6.1, classic ECN (none of the
experiments RFC 8311 opens, such as ECT on SYNs, pure ACKs or retransmissions).

A router whose queue builds up may mark a packet Congestion Experienced (CE) in the
IPv6 Traffic Class instead of dropping it, if the packet says its transport reacts
to that (ECT). TCP carries the news back to the sender in the ECE flag and confirms
the sender's reaction with CWR:

* **negotiation** (§6.1.1): the SYN of an active open asks with ECE and CWR (an
  "ECN-setup SYN"); the SYN-ACK agrees with ECE alone. A retransmitted SYN no longer
  asks (§6.1.1.1: the first may have been dropped for its flags; Linux does the
  same), but an agreeing SYN-ACK is still taken. A passive open agrees unless its
  SYN itself arrived ECT or CE (§6.1.1: a SYN is never ECT, so the path rewrites the
  field; Linux refuses it too). A simultaneous open agrees if both SYNs asked.
  SYN cookies keep no room for it: such connections are not ECN (the cookie's
  SYN-ACK does not agree);
* **sender** (§6.1.2, §6.1.5, §6.1.6): new data segments of an ECN connection go
  out ECT(0); SYNs, pure ACKs, retransmissions, window probes and RSTs do not. An ACK
  with ECE reduces the congestion window once per window of data, as a fast
  retransmit does (the congestion controller's multiplicative decrease, cwnd =
  ssthresh at once, nothing retransmitted); ECEs on ACKs of data sent before the
  reduction are ignored until SND.UNA passes the SND.NXT of the reduction (as
  Linux's CWR state, which ends strictly above it). The next new data segment
  carries CWR. In loss recovery ECE reduces nothing more (the loss already did) but
  CWR is still sent, so the receiver stops echoing;
* **receiver** (§6.1.3): CE on an arriving data segment makes every ACK carry ECE
  until a segment with CWR arrives (CWR is taken first, so CE on that segment
  starts a new echo). The first CE and a CWR on a data segment are acknowledged at
  once, not delayed (Linux's quick ACKs: the sender's window may be tiny). CE on an
  ECN SYN-ACK is echoed on the ACK completing the handshake (RFC 5562 §3.2).

Everything here runs only on connections that negotiated ECN: the per-segment cost
elsewhere is one attribute test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.ipv6 import ECN_CE, ECN_NOT_ECT
from ..wire.tcp import CWR, ECE, TCPSegment
from .recovery import loss_basis
from .states import CA_OPEN

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["ECNState", "negotiated", "on_input", "on_synack_ce", "syn_flags"]

_SETUP = ECE | CWR


class ECNState:
    """A connection's ECN variables and counters."""

    __slots__ = (
        "ce_received",
        "cwr_pending",
        "cwr_sent",
        "ece",
        "ece_received",
        "high",
        "ok",
        "reductions",
        "requested",
    )

    def __init__(self) -> None:
        #: ECN was negotiated for this connection.
        self.ok = False
        #: We sent an ECN-setup SYN (active or simultaneous open).
        self.requested = False
        #: Receiver: CE was seen and no CWR since; every ACK carries ECE.
        self.ece = False
        #: Sender: the next new data segment carries CWR.
        self.cwr_pending = False
        #: Sender: SND.NXT (absolute) at the last response to ECE; no new response
        #: until SND.UNA is above it.
        self.high = 0
        #: Data segments that arrived CE-marked.
        self.ce_received = 0
        #: Acceptable ACKs that carried ECE.
        self.ece_received = 0
        #: Segments we sent with CWR.
        self.cwr_sent = 0
        #: Congestion-window reductions made in answer to ECE.
        self.reductions = 0


def syn_flags(c: Connection) -> int:
    """ECE/CWR for our SYN (an ECN-setup SYN when configured and not a
    retransmission) or SYN-ACK (ECE when ECN was agreed)."""
    e = c.ecn
    if c.peer_syn:
        return ECE if e.ok else 0
    if c.config.ecn and c.snd.syn_retries == 0:
        e.requested = True
        return _SETUP
    return 0


def negotiated(c: Connection, syn: TCPSegment) -> bool:
    """Whether the peer's SYN (or SYN-ACK) completes ECN negotiation with us."""
    setup = syn.flags & _SETUP
    if syn.has_ack:
        return c.ecn.requested and setup == ECE
    if c.passive:
        cfg = c.config
        return (cfg.ecn or cfg.ecn_accept) and setup == _SETUP and syn.ecn == ECN_NOT_ECT
    return c.ecn.requested and setup == _SETUP


def on_synack_ce(c: Connection) -> None:
    """Our ECN connection's SYN-ACK arrived CE-marked: echo it (RFC 5562 §3.2)."""
    e = c.ecn
    e.ce_received += 1
    c.stats["ce_received"] += 1
    e.ece = True


def on_input(c: Connection, seg: TCPSegment, now: float) -> None:
    """An acceptable segment of an ECN connection passed the ACK step: the
    receiver's CWR and CE, then the sender's ECE."""
    e = c.ecn
    flags = seg.flags
    if flags & CWR:
        e.ece = False
        if seg.payload:
            c.rcv.ack_now = True
    if seg.ecn == ECN_CE and seg.payload:
        e.ce_received += 1
        c.stats["ce_received"] += 1
        if not e.ece:
            e.ece = True
            c.rcv.ack_now = True
    if flags & ECE and seg.ack == c.snd_una:  # (an older ACK is not acted on)
        e.ece_received += 1
        c.stats["ece_received"] += 1
        snd = c.snd
        if snd.una > e.high:
            e.high = snd.nxt
            e.cwr_pending = True
            if c.rec.ca is CA_OPEN:
                cc = c.cc
                cc.on_congestion_event(now, loss_basis(c))
                cc.on_recovery_exit(now)  # cwnd = ssthresh
                e.reductions += 1
                c.stats["ecn_reductions"] += 1
