"""Tunable parameters of a stack and of each of its connections."""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = ["Keepalive", "TCPConfig"]


@attrs.frozen
class Keepalive:
    """TCP keepalive (RFC 9293 §3.8.4): probe after ``idle`` seconds of silence,
    every ``interval`` seconds, and give up after ``probes`` unanswered probes."""

    idle: float = 7200.0
    interval: float = 75.0
    probes: int = 9


def _positive(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attr.name} must be positive, got {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must not be negative, got {value!r}")


def _positive_or_none(_inst: object, attr: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attr.name} must be None or positive, got {value!r}")


def _delayed_ack(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    # RFC 9293 §3.8.6.3 (MUST-40): an ACK must not be delayed 0.5 s or more.
    if value is not None and not 0 < value < 0.5:
        raise ValueError(f"{attr.name} must be None or in (0, 0.5) seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class TCPConfig:
    """Configuration shared by every connection of a stack.

    Times are in seconds, sizes in bytes. The defaults follow Linux where the RFCs
    leave a choice, so the stack behaves like the kernel it is measured against,
    except where the conservative RFC choice is kept; :meth:`linux` makes those
    choices as Linux does too.
    """

    #: Bytes the user may queue before ``send_all``/``write`` blocks.
    send_buffer: int = attrs.field(default=1 << 20, validator=_positive)
    #: Bytes received but not yet read that we buffer; bounds the advertised window.
    receive_buffer: int = attrs.field(default=1 << 20, validator=_positive)
    #: Congestion control algorithm: ``"cubic"`` (RFC 9438) or ``"newreno"`` (RFC 5681).
    congestion: Literal["cubic", "newreno"] = "cubic"
    #: HyStart++ (RFC 9406) slow-start exit for either algorithm.
    hystart: bool = True
    #: Nagle's algorithm (RFC 9293 §3.7.4); ``write_nodelay`` bypasses it per write.
    nagle: bool = True
    #: Delayed-ACK timer (RFC 9293 §3.8.6.3, MUST-40: less than 0.5 s), or None to ACK
    #: every segment.
    delayed_ack: float | None = attrs.field(default=0.04, validator=_delayed_ack)
    #: Timestamps option with RTTM and PAWS (RFC 7323).
    timestamps: bool = True
    #: SACK (RFC 2018) and SACK-based loss recovery (RFC 6675).
    sack: bool = True
    #: Window scale option (RFC 7323).
    window_scale: bool = True
    #: RACK-TLP loss detection (RFC 8985) when SACK is negotiated.
    rack: bool = True
    #: Which D-SACKs grow RACK's reordering window. ``"rfc8985"``: every one (RFC
    #: 8985 §6.2 step 4). ``"linux"``: only once reordering was seen, and not the
    #: D-SACK of a tail loss probe (``tcp_dsack_seen``): on a lossy path without
    #: reordering the duplicates come from lost ACKs, and the grown window delays
    #: every later loss detection.
    rack_dsack: Literal["rfc8985", "linux"] = "linux"
    #: Explicit Congestion Notification (RFC 3168): ask for it on active opens (an
    #: ECN-setup SYN) and agree to it on passive opens (Linux ``tcp_ecn=1``). An
    #: ECN connection sends new data ECT(0), echoes CE marks with ECE and reduces
    #: its window once per window of data on ECE.
    ecn: bool = False
    #: Agree to ECN when a peer's SYN asks for it, even with ``ecn`` off: the
    #: default is Linux's ``tcp_ecn=2`` (passive only). False with ``ecn`` off is
    #: Linux's ``tcp_ecn=0``.
    ecn_accept: bool = True
    #: What the multiplicative decrease on a loss is computed from, when fast
    #: recovery starts, on a retransmission timeout and when a tail loss probe
    #: repairs a loss. ``"flight_size"`` (the default): the data in flight, at most
    #: cwnd (RFC 5681 §3.1 eq. 4, RFC 9438 §4.6: ``ssthresh = FlightSize * beta``).
    #: ``"cwnd"``: the congestion window alone, as Linux does (``tcp_cubic.c``
    #: ``bictcp_recalc_ssthresh``: ``max(cwnd * 0.7, 2)``, reached from fast
    #: recovery and from ``tcp_enter_loss``). The two differ when the flow is
    #: receive-window or application limited with cwnd above what it sends; RFC 5681
    #: §3.1 calls the cwnd rule a mistake and RFC 9438 §4.6 allows it only with a
    #: rule that keeps cwnd from growing while it is not used (here: the
    #: application-limited rule of the congestion controllers, ``cwnd_validation``).
    #: Not fair to other flows on a shared path in the first loss after a limited
    #: period.
    loss_response: Literal["flight_size", "cwnd"] = "flight_size"
    #: When an ACK may grow cwnd (cwnd validation, RFC 7661 / RFC 9438 §4.6).
    #: ``"rfc7661"``: while the flight the ACK found is at least cwnd / 2, in slow
    #: start and congestion avoidance (RFC 7661's validated condition).
    #: ``"linux"``: in slow start while cwnd is below twice the largest flight of
    #: the last two rounds, in congestion avoidance only after a round in which
    #: the flight filled cwnd (``tcp_is_cwnd_limited``).
    cwnd_validation: Literal["rfc7661", "linux"] = "rfc7661"
    #: Slow start's largest increase per ACK, in SMSS (Appropriate Byte Counting's
    #: L). The default is RFC 9406 §4.3's RECOMMENDED L for a HyStart++ sender that
    #: does not pace (this one does not): 8, where RFC 3465 §2.2 had 2. ``None``:
    #: every newly acknowledged byte counts, as Linux's ``tcp_slow_start`` does (and
    #: RFC 9406 for a paced sender). It matters for stretch ACKs (one ACK for many
    #: segments, as a receiver that coalesces a burst -- Linux's GRO, or ours --
    #: sends): with L = 2 they would hold slow start to 2 SMSS per burst.
    slow_start_limit: int | None = attrs.field(default=8, validator=_positive_or_none)
    #: Initial retransmission timeout (RFC 6298: 1 s).
    initial_rto: float = attrs.field(default=1.0, validator=_positive)
    #: Lower bound of the RTO (RFC 6298 says 1 s; Linux and most stacks use 0.2 s).
    min_rto: float = attrs.field(default=0.2, validator=_positive)
    #: Upper bound of the RTO (RFC 6298: at least 60 s).
    max_rto: float = attrs.field(default=120.0, validator=_positive)
    #: SYN retransmissions before an active open fails with Timeout. RFC 9293
    #: §3.8.3 (MUST-23) wants R2 for a SYN to last at least 3 minutes: with the 1 s
    #: initial RTO doubling, 7 retransmissions go out at 1, 3, 7, ..., 127 s and the
    #: open gives up after the last one times out (1 + 2 + ... + 128 = 255 s, or 247 s
    #: with the default 120 s ``max_rto``). Linux's 6 gives up after 127 s.
    syn_retries: int = 7
    #: SYN-ACK retransmissions before a half-open (SYN-RECEIVED) connection is
    #: dropped (Linux ``tcp_synack_retries``): with the 1 s initial RTO, 5 go out at
    #: 1, 3, 7, 15 and 31 s and the connection is dropped at 63 s, so half-open
    #: connections from SYNs nobody completes do not hold the backlog for minutes.
    synack_retries: int = 5
    #: R1 of RFC 9293 §3.8.3: retransmissions before advising the user (counted in stats).
    retries1: int = 3
    #: R2 of RFC 9293 §3.8.3: retransmissions of one segment before the connection is
    #: aborted with Timeout (Linux ``tcp_retries2``).
    retries2: int = 15
    #: If set, abort with Timeout when sent data stays unacknowledged this long
    #: (RFC 5482 / Linux ``TCP_USER_TIMEOUT``); overrides ``retries2``. Queued data
    #: waiting for a zero window counts too, even while the peer answers the probes.
    user_timeout: float | None = None
    #: Maximum segment lifetime; TIME-WAIT lasts 2*MSL unless ``time_wait`` is set.
    msl: float = 30.0
    #: TIME-WAIT duration; None means 2*msl.
    time_wait: float | None = None
    #: Keepalive probing, off by default (RFC 9293 §3.8.4).
    keepalive: Keepalive | None = None
    #: Half-open (SYN-RECEIVED) connections per listener before SYN cookies are used.
    syn_backlog: int = 256
    #: Answer SYNs with stateless SYN cookies when the SYN backlog is full.
    syn_cookies: bool = True
    #: Connections the stack holds at most (all states but LISTEN and TIME-WAIT).
    max_connections: int = 4096
    #: Connections the stack keeps in TIME-WAIT at most, in a table of their own
    #: outside ``max_connections`` (Linux ``tcp_max_tw_buckets``). When it is full,
    #: the entry closest to its 2*MSL expiry (the oldest) is closed to make room,
    #: counted as ``time_wait_recycled``; 0 keeps no TIME-WAIT at all. The default,
    #: twice ``max_connections``, lets this side close about 136 connections a second
    #: for ever at the default 60 s TIME-WAIT, for about 45 MiB when full (an entry
    #: holds about 5.7 KB); Linux scales its limit with memory too (half its
    #: connection hash table, which it sizes from RAM).
    max_time_wait: int = attrs.field(default=8192, validator=_non_negative)
    #: Our MSS ceiling; None derives it from the link MTU (MTU - 60).
    mss: int | None = None
    #: Initial congestion window in segments (RFC 6928).
    initial_window: int = 10
    #: Most challenge ACKs (RFC 5961) one connection sends per second.
    challenge_ack_limit: int = 10
    #: Per connection, at most one ACK every this many seconds in answer to an
    #: unacceptable segment: one outside the receive window (RFC 9293 §3.10.7.4
    #: first), one failing PAWS (RFC 7323 §5.3) or one acknowledging data never sent
    #: (SEG.ACK > SND.NXT). Without it two desynchronised ends ping-pong ACKs
    #: forever, and spoofed out-of-window segments become duplicate ACKs that force
    #: fast retransmits on the real peer (Linux ``tcp_invalid_ratelimit``, 0.5 s).
    #: Exempt: data that ends less than a receive buffer below RCV.NXT (a peer's
    #: spurious retransmission, answered with its D-SACK) and a retransmitted FIN in
    #: TIME-WAIT. Skipped ACKs are counted as ``acks_ratelimited``; 0 disables.
    invalid_ack_ratelimit: float = attrs.field(default=0.5, validator=_non_negative)
    #: Most RSTs the stack sends per second to one destination address for segments
    #: nobody owns (per destination: a stack-wide budget lets an off-path attacker
    #: learn which 4-tuples are in use, CVE-2016-5696).
    rst_rate_limit: int = 1000
    #: Most bytes the whole stack buffers for all its connections together (Linux
    #: ``tcp_mem``), or None for no stack-wide limit: send-buffer bytes plus
    #: receive-buffer bytes, in order and out of order (each out-of-order piece
    #: counted with its overhead). Above 2/3 of it the stack is under memory
    #: pressure until it falls below 1/2: receive windows stop growing (an edge
    #: once offered is honoured), out-of-order data beyond a connection's fair share
    #: is dropped and the largest holders' is pruned, send buffers stop growing
    #: (``send_all`` blocks); at the limit no connection's holding grows past four
    #: segments. Data accepted in order is never discarded. ``stack.stats()`` shows
    #: ``memory_held``, ``memory_held_peak``, ``memory_limit``, ``memory_pressure``
    #: (0/1), ``memory_pressure_episodes``, ``memory_relief_walks``,
    #: ``memory_ofo_pruned`` and ``drop_memory_pressure``. The default, 64 MiB,
    #: lets some 20 connections run with full default buffers before pressure (a
    #: fixed figure, not a fraction of RAM as Linux takes, so that a stack behaves
    #: the same on every machine); it bounds what ``max_connections`` peers can make
    #: the stack hold to that, instead of ``max_connections`` times the buffers.
    memory_limit: int | None = attrs.field(default=64 << 20, validator=_positive_or_none)

    @classmethod
    def linux(cls, **overrides: Any) -> TCPConfig:
        """A configuration that makes the choices Linux 6.x makes where the RFCs
        allow both, as far as the engine has a switch for them; ``overrides`` set
        any other field (for example the buffer sizes).

        Differs from the defaults in:

        * ``loss_response="cwnd"``: ssthresh = 0.7 x cwnd (CUBIC) or cwnd / 2
          (NewReno) on a loss, not from FlightSize (``bictcp_recalc_ssthresh``,
          ``tcp_reno_ssthresh``);
        * ``cwnd_validation="linux"``: cwnd grows in slow start while below twice
          the largest flight of the last two rounds, in congestion avoidance only
          after a round that filled it (``tcp_is_cwnd_limited``);
        * ``slow_start_limit=None``: slow start adds every newly ACKed segment
          (``tcp_slow_start``), not at most 8 SMSS per ACK;
        * ``syn_retries=6`` (``net.ipv4.tcp_syn_retries``: an active open gives up
          after 127 s, short of RFC 9293's 3 minutes).

        Already as Linux in the defaults: CUBIC with slow-start exit detection,
        SACK, timestamps, window scaling, RACK-TLP (``rack_dsack="linux"``), Nagle,
        ``initial_rto=1.0``,
        ``min_rto=0.2``, ``max_rto=120.0``, ``delayed_ack=0.04`` (Linux's minimum
        delayed-ACK timeout), ``synack_retries=5``, ECN agreed to on passive
        opens only (``ecn=False``, ``ecn_accept=True``: ``tcp_ecn=2``), ``retries1=3``,
        ``retries2=15``, a 60 s TIME-WAIT, keepalive off (with Linux's 7200/75/9
        when enabled), ``initial_window=10``, SYN cookies, ``invalid_ack_ratelimit``
        0.5 s. Linux choices the engine has no switch for (quick-ACKs at
        connection start, RTO = SRTT + max(4 RTTVAR, min_rto), PRR's extra MSS
        only on ACKs that advance SND.UNA, HyStart rather than HyStart++) are
        listed in the documentation's page on where the engine and Linux differ.
        """
        fields: dict[str, Any] = {
            "loss_response": "cwnd",
            "cwnd_validation": "linux",
            "slow_start_limit": None,
            "syn_retries": 6,
            # Already the default; set so that the preset stays Linux's if it changes.
            "rack_dsack": "linux",
        }
        fields.update(overrides)
        return cls(**fields)

    @property
    def time_wait_duration(self) -> float:
        """How long a connection stays in TIME-WAIT."""
        return self.time_wait if self.time_wait is not None else 2 * self.msl
