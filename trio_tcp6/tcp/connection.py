"""The TCP connection state machine (RFC 9293 §3.10), sans-I/O.

A :class:`Connection` is driven only by method calls that carry the current time
(``now``, seconds as a float, from whatever clock the caller uses). After any call
the caller drains:

* :meth:`Connection.take_segments` — segments to transmit, in order;
* :meth:`Connection.take_events` — :class:`~trio_tcp6.tcp.events.Event` for the user;
* :attr:`Connection.next_deadline` — the earliest time at which :meth:`on_timer`
  must be called (None: no timer armed).

Nothing here raises for anything a peer sends: bad segments are dropped (with the
ACK RFC 9293 requires) and counted in the ``stats`` mapping passed in.

Internally every sequence number is kept as an *absolute offset*: on the send side
counted from the ISS (our SYN is 0, the first data byte 1), on the receive side from
the IRS. Those never wrap, so the scoreboard and the reassembly buffer compare plain
integers; the RFC 9293 variables (``snd_una``, ``rcv_nxt``, ...) are exposed as
32-bit sequence numbers computed from them.

This module keeps the public calls, construction and :meth:`Connection.info`; the
state lives in small records the connection holds (:attr:`Connection.snd` and
:attr:`Connection.rcv`, :mod:`.tcb`; :attr:`Connection.opt`, :mod:`.options`;
:attr:`Connection.timers`; :attr:`Connection.rec`, :mod:`.recovery`; the scoreboard,
the RTT estimator and the congestion controller), and the procedures in modules
named for what they do, each taking the connection as its first argument. Every
state transition goes through :meth:`Connection.set_state` (with an optional
:attr:`Connection.trace` hook).

What is implemented, and where:

* segment arrival follows RFC 9293 §3.10.7 step by step (:mod:`.arrival`,
  :mod:`.handshake`, :mod:`.acks`, :mod:`.delivery`): PAWS (RFC 7323 §5), the
  acceptability test and trimming, RST/SYN/ACK checks with RFC 5961 challenge ACKs
  (rate limited), ACK processing, URG (the pointer names the first non-urgent octet,
  RFC 6093; urgent data stays in line, an ``URGENT`` event and
  :attr:`Connection.urgent_pending` tell the user), text into :mod:`.recvbuf`, FIN;
  text and FIN on a SYN are queued until ESTABLISHED (§3.10.7.2-3);
* options: MSS (1220 when absent, RFC 9293 §3.7.1), window scale, timestamps with
  RTTM and TS.Recent (RFC 7323), SACK-permitted and SACK/D-SACK blocks (RFC 2018/2883);
* the sender keeps one :class:`~.sack.SentSeg` per transmitted segment in
  :mod:`.sack`; loss is detected by RACK (RFC 8985, :mod:`.rack`) or RFC 6675 IsLost
  with SACK, by three duplicate ACKs without (RFC 6582); recovery uses PRR (RFC 6937,
  :mod:`.recovery`); the cc module sets ssthresh/cwnd; TLP probes tails;
* timers (:mod:`.timers`, :mod:`.timeouts`) share one slot for RTO (RFC 6298, Karn),
  TLP and the persist timer, plus the RACK reordering, delayed-ACK, keepalive and
  TIME-WAIT timers;
* Nagle (Minshall's variant) and sender/receiver SWS avoidance (RFC 9293 §3.7.4,
  Appendix A.3, §3.8.6.2; :mod:`.output`), zero-window
  probes (SEQ = SND.UNA - 1), keepalive, path-MTU reduction, RFC 6191 TIME-WAIT reuse;
  a window that closes with data in flight may stay closed indefinitely too: timeouts
  the peer answers with a zero window do not count toward R2;
* TCP segmentation offload (:attr:`Connection.tso_max_bytes`, off by default): new data
  in super-segments of several MSS that the link cuts into MSS-sized wire segments;
  one scoreboard record each, split by SACKs, loss marking and retransmission, so
  retransmissions stay MSS-sized and only the holes are resent.

Choices where the RFCs leave room: segments without timestamps on a timestamp
connection are dropped (RFC 7323 §3.2 SHOULD; Linux accepts them); the sender SWS
override timeout is 0.2 s; PMTU reports below 1280 are discarded (RFC 8201 §4);
a spurious timeout is undone with timestamps (Eifel) and a spurious fast recovery
with D-SACK (RFC 3708 spirit), or without timestamps by F-RTO (RFC 5682); a pure
duplicate ACK that fails PAWS only because it was overtaken by a later ACK is
accepted (as Linux does) so its SACK blocks are not lost; a RST in TIME-WAIT closes it
as RFC 9293 says (RFC 1337's protection is not applied); RFC 6675's optional rescue
retransmission is not done (RACK-TLP, the default, repairs lost tails).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from ..config import Keepalive, TCPConfig
from ..wire.tcp import TCPSegment
from . import coalesce, handshake, setsockopt, timeouts, usercalls
from .arrival import on_closed, on_synchronized
from .cc import CongestionControl
from .ecn import ECNState
from .events import (
    EV_CLOSED,
    EV_CONNECTED,
    EV_WRITABLE,
    ST_CLOSED,
    ST_ESTABLISHED,
    ST_LISTEN,
    ST_SYN_RECEIVED,
    ST_SYN_SENT,
    ST_TIME_WAIT,
    Event,
    EventKind,
    State,
)
from .info import TCPInfo, snapshot
from .memory import MemoryAccount, detach, send_room, settle
from .options import DEFAULT_IPV6_MSS, MIN_MSS, Options, choose_shift
from .output import ack_data, send_rst, transmit
from .recovery import LossRecovery
from .recvbuf import ReceiveBuffer
from .rtt import RTTEstimator
from .sack import Scoreboard
from .sendbuf import SendBuffer
from .seq import MASK, seq_gt
from .setsockopt import shared_config
from .states import RESET_ON_ABORT, StateTrace
from .tcb import ReceiveState, SendState
from .timers import Timers

if TYPE_CHECKING:
    from .trace import FlowTrace

__all__ = ["DEFAULT_IPV6_MSS", "Connection", "EngineError", "choose_shift", "shared_config"]


class EngineError(Exception):
    """A call on a connection that an earlier unexpected exception broke.

    Like h11, the engine does not guess how far a failed call got: an exception
    escaping one of its procedures leaves :attr:`Connection.broken` set and
    propagates; every later call that would act on the (possibly half-updated)
    state raises this instead. The runtime aborts such a connection.
    """


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _contained(
    call: Callable[Concatenate[Connection, _P], _R],
) -> Callable[Concatenate[Connection, _P], _R]:
    """A public call: refused on a broken connection; an exception escaping it
    breaks the connection (see :class:`EngineError`). ``on_segment``, ``on_timer``,
    ``send`` and ``receive`` spell this out instead (the per-segment path saves the
    frame)."""

    @functools.wraps(call)
    def contained(c: Connection, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if c.broken is not None:
            raise c.broken_error()
        try:
            return call(c, *args, **kwargs)
        except BaseException as exc:
            c.broken = exc
            raise

    return contained


class Connection:
    """One TCP connection (its TCB).

    Create it with :meth:`connect` (active open) or :meth:`accept` (passive open from
    a SYN received on a listening port), or :meth:`accept_cookie` (an ACK that
    carried a valid SYN cookie).
    """

    # Slots: an idle connection is mostly this object and its records; a
    # ``__dict__`` alone would cost more than a kilobyte per connection.
    __slots__ = (
        "broken",
        "bytes_acked",
        "bytes_received",
        "bytes_sent",
        "cc",
        "chal_count",
        "chal_start",
        "config",
        "created",
        "ecn",
        "eventq",
        "flow_trace",
        "invalid_ack_at",
        "irs",
        "iss",
        "local_port",
        "memory",
        "memory_charged",
        "opt",
        "outq",
        "passive",
        "peer_syn",
        "rcv",
        "readable_ev",
        "rec",
        "remote_port",
        "retransmits",
        "rtt",
        "sb",
        "snd",
        "state",
        "stats",
        "timers",
        "trace",
        "ts_offset",
        "tso_max_bytes",
        "want_writable",
        "writable_ev",
    )

    state: State
    iss: int
    irs: int
    #: The congestion controller (:mod:`.cc`). An active open has a provisional one
    #: in SYN-SENT (``info()``, TCP_CONGESTION); the handshake builds the one the
    #: connection keeps once the peer's MSS is known (:func:`.handshake.set_peer_mss`),
    #: which for a passive open is its first.
    cc: CongestionControl

    # -- construction ----------------------------------------------------------------
    def __init__(
        self,
        config: TCPConfig,
        *,
        local_port: int,
        remote_port: int,
        iss: int,
        mss: int,
        now: float,
        stats: Counter[str] | None,
        ts_offset: int,
        passive: bool,
        memory: MemoryAccount | None = None,
    ) -> None:
        self.config = config
        #: Counters (drops by reason, retransmits, ...), shared with the runtime.
        self.stats: Counter[str] = stats if stats is not None else Counter()
        #: The unexpected exception that broke this connection (see :class:`EngineError`).
        self.broken: BaseException | None = None
        #: Called for every state transition: ``trace(old, new, reason, now)``.
        self.trace: StateTrace | None = None
        #: The flow trace recording this connection (:mod:`.trace`), None: off.
        self.flow_trace: FlowTrace | None = None
        self.local_port = local_port
        self.remote_port = remote_port
        self.state = ST_CLOSED
        #: Opened passively (from a SYN on a listening port).
        self.passive = passive
        #: The peer's SYN was received (we answer with SYN-ACK).
        self.peer_syn = False
        self.iss = iss & MASK
        self.irs = 0
        if config.mss is not None:
            mss = min(mss, config.mss)
        our_mss = max(mss, MIN_MSS)
        #: The negotiated options and the MSS (:mod:`.options`).
        self.opt = Options(
            our_mss=our_mss,
            mss=min(our_mss, DEFAULT_IPV6_MSS),
            path_mss=our_mss,
            rcv_shift=choose_shift(config.receive_buffer) if config.window_scale else 0,
            ts_recent_age=now,
        )
        #: Per-connection timestamp clock offset (RFC 7323 §5.4).
        self.ts_offset = ts_offset
        #: When the connection was created (the handshake's RTT sample).
        self.created = now
        #: Send-side variables (:mod:`.tcb`).
        self.snd = SendState(
            SendBuffer(config.send_buffer, 1), last_data_send=now, last_send=now, ack_rcvd_at=now
        )
        #: Receive-side variables (:mod:`.tcb`).
        self.rcv = ReceiveState(
            ReceiveBuffer(1, config.receive_buffer, self.stats),
            config.receive_buffer,
            last_rcv=now,
        )
        #: The retransmission scoreboard (:mod:`.sack`).
        self.sb = Scoreboard(1)
        self.rtt = RTTEstimator(config.initial_rto, config.min_rto, config.max_rto)
        if not passive:
            self.cc = handshake.new_cc(self)
        #: Loss-recovery state (:mod:`.recovery`).
        self.rec = LossRecovery()
        #: ECN state (:mod:`.ecn`).
        self.ecn = ECNState()
        #: Timer slots (:mod:`.timers`).
        self.timers = Timers(rto_at=now, ut_base=now, ka_last_probe=now)
        #: RFC 5961 challenge-ACK rate limit: window start and ACKs sent in it.
        self.chal_start = now
        self.chal_count = 0
        #: When we last answered an unacceptable segment (:func:`.output.ack_invalid`).
        self.invalid_ack_at = -1e18

        #: TCP segmentation offload (TSO): the largest payload one new-data segment
        #: may carry when the link segments packets for us (0 or less than two MSS:
        #: off). Set by the runtime from the link; see :func:`.output.segment_limit`.
        self.tso_max_bytes = 0

        #: Segments and events not yet taken by the user.
        self.outq: list[TCPSegment] = []
        self.eventq: list[Event] = []
        #: READABLE/WRITABLE already queued since the user last took events, and a
        #: WRITABLE to consider at the end of this call.
        self.readable_ev = False
        self.writable_ev = False
        self.want_writable = False

        # Counters for info().
        self.retransmits = 0
        self.bytes_acked = 0
        self.bytes_received = 0
        self.bytes_sent = 0

        #: The stack-wide memory account this connection charges (:mod:`.memory`),
        #: until it is closed; and what it has charged.
        self.memory = memory
        self.memory_charged = 0
        if memory is not None:
            memory.users += 1

    @classmethod
    def connect(
        cls,
        config: TCPConfig,
        *,
        local_port: int,
        remote_port: int,
        iss: int,
        mss: int,
        now: float,
        stats: Counter[str] | None = None,
        ts_offset: int = 0,
        memory: MemoryAccount | None = None,
    ) -> Connection:
        """Active open: returns a connection in SYN-SENT with its SYN queued.

        ``mss`` is the largest payload our side may send/receive given the link MTU
        (MTU - 60 for IPv6 without extension headers); ``ts_offset`` randomises the
        timestamp clock per connection (RFC 7323 §5.4); ``memory``: the stack-wide
        account its buffers are charged to (:mod:`.memory`), None for none.
        """
        c = cls(
            config,
            local_port=local_port,
            remote_port=remote_port,
            iss=iss,
            mss=mss,
            now=now,
            stats=stats,
            ts_offset=ts_offset,
            passive=False,
            memory=memory,
        )
        c.set_state(ST_SYN_SENT, "active open", now)
        handshake.send_syn(c, now)
        return c

    @classmethod
    def _passive(
        cls,
        config: TCPConfig,
        seg: TCPSegment,
        iss: int,
        mss: int,
        now: float,
        stats: Counter[str] | None,
        ts_offset: int,
        memory: MemoryAccount | None,
    ) -> Connection:
        """A passively opened connection for the 4-tuple ``seg`` came on."""
        return cls(
            config,
            local_port=seg.dst_port,
            remote_port=seg.src_port,
            iss=iss,
            mss=mss,
            now=now,
            stats=stats,
            ts_offset=ts_offset,
            passive=True,
            memory=memory,
        )

    @classmethod
    def accept(
        cls,
        config: TCPConfig,
        syn: TCPSegment,
        *,
        iss: int,
        mss: int,
        now: float,
        stats: Counter[str] | None = None,
        ts_offset: int = 0,
        memory: MemoryAccount | None = None,
    ) -> Connection:
        """Passive open from a valid SYN: returns a connection in SYN-RECEIVED with
        its SYN-ACK queued (``memory`` as for :meth:`connect`)."""
        c = cls._passive(config, syn, iss, mss, now, stats, ts_offset, memory)
        handshake.take_peer_syn(c, syn, now)
        handshake.queue_syn_text(c, syn)
        c.set_state(ST_SYN_RECEIVED, "passive open", now)
        handshake.send_syn(c, now)
        return c

    @classmethod
    def accept_cookie(
        cls,
        config: TCPConfig,
        ack: TCPSegment,
        *,
        iss: int,
        peer_mss: int,
        peer_wscale: int | None,
        sack_permitted: bool,
        timestamps: bool,
        mss: int,
        now: float,
        stats: Counter[str] | None = None,
        ts_offset: int = 0,
        memory: MemoryAccount | None = None,
    ) -> Connection:
        """Build an ESTABLISHED connection from the ACK completing a SYN-cookie
        handshake (``iss`` is the cookie, i.e. ``ack.ack - 1``); ``ack`` is then
        processed as the first segment (it may carry data). ``memory`` as for
        :meth:`connect`."""
        c = cls._passive(config, ack, iss, mss, now, stats, ts_offset, memory)
        handshake.take_cookie(
            c,
            ack,
            peer_mss=peer_mss,
            peer_wscale=peer_wscale,
            sack_permitted=sack_permitted,
            timestamps=timestamps,
        )
        c.set_state(ST_ESTABLISHED, "syn cookie", now)
        c.eventq.append(EV_CONNECTED)
        c.want_writable = True
        c.on_segment(ack, now)
        return c

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local_port}->{self.remote_port} {self.state.value} "
            f"una={self.snd_una} nxt={self.snd_nxt} rcv_nxt={self.rcv_nxt} "
            f"cwnd={self.cc.cwnd} in_flight={self.sb.pipe}>"
        )

    # -- RFC 9293 variables, as 32-bit sequence numbers ---------------------------------
    @property
    def snd_una(self) -> int:
        """SND.UNA."""
        return (self.iss + self.snd.una) & MASK

    @property
    def snd_nxt(self) -> int:
        """SND.NXT."""
        return (self.iss + self.snd.nxt) & MASK

    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT."""
        return (self.irs + self.rcv.buf.nxt) & MASK

    @property
    def rcv_wnd(self) -> int:
        """RCV.WND as last advertised (bytes)."""
        w = self.rcv.adv - self.rcv.buf.nxt
        return w if w > 0 else 0

    @property
    def snd_wnd(self) -> int:
        """SND.WND (bytes, scaled)."""
        return self.snd.wnd

    @property
    def max_snd_wnd(self) -> int:
        """The largest window the peer offered."""
        return self.snd.max_wnd

    @property
    def snd_wl1(self) -> int:
        """SND.WL1."""
        return self.snd.wl1

    @property
    def snd_wl2(self) -> int:
        """SND.WL2."""
        return self.snd.wl2

    # -- negotiated options (see :attr:`opt`) --------------------------------------------
    @property
    def mss(self) -> int:
        """Effective send MSS: the largest payload per segment, options paid for."""
        return self.opt.mss

    @property
    def our_mss(self) -> int:
        """The MSS we announce."""
        return self.opt.our_mss

    @property
    def ts_ok(self) -> bool:
        """Timestamps negotiated."""
        return self.opt.ts_ok

    @property
    def sack_ok(self) -> bool:
        """SACK negotiated."""
        return self.opt.sack_ok

    @property
    def ws_ok(self) -> bool:
        """Window scaling negotiated."""
        return self.opt.ws_ok

    @property
    def snd_shift(self) -> int:
        """Window-scale shift applied to the peer's window."""
        return self.opt.snd_shift

    @property
    def rcv_shift(self) -> int:
        """Window-scale shift applied to our window."""
        return self.opt.rcv_shift

    @property
    def ts_recent(self) -> int:
        """TS.Recent (RFC 7323 §4.3)."""
        return self.opt.ts_recent

    def tsval(self, now: float) -> int:
        """Our timestamp clock at ``now`` (milliseconds, per-connection offset)."""
        return (int(now * 1000) + self.ts_offset) & MASK

    # -- state transitions ---------------------------------------------------------------
    def set_state(self, new: State, reason: str, now: float) -> None:
        """Enter ``new``: the one place :attr:`state` changes (``reason`` names the
        rule, for :attr:`trace`)."""
        old = self.state
        self.state = new
        if self.trace is not None:
            self.trace(old, new, reason, now)

    def close(self, error: str | None, reason: str, now: float) -> None:
        """Enter CLOSED, reporting ``error`` (an ``ERROR`` event) first if given."""
        if self.state is ST_CLOSED:
            return
        self.set_state(ST_CLOSED, reason, now)
        if error is not None:
            self.eventq.append(Event(EventKind.ERROR, error))
        self.eventq.append(EV_CLOSED)
        self.timers.stop_all()
        self.rcv.ack_now = False
        if self.memory is not None:
            detach(self)  # what is left to read is the user's now

    def enter_time_wait(self, now: float) -> None:
        """Both FINs are acknowledged: TIME-WAIT for 2*MSL."""
        self.set_state(ST_TIME_WAIT, "both fins acknowledged", now)
        t = self.timers
        t.rtx = t.reo = t.keep = t.sws = None
        t.tw = now + self.config.time_wait_duration

    def is_closed(self) -> bool:
        """In CLOSED (a method, so that callers re-read it after a call)."""
        return self.state is ST_CLOSED

    def flush_events(self) -> None:
        """Queue WRITABLE if a call freed send-buffer space."""
        if self.want_writable:
            self.want_writable = False
            if not self.writable_ev and self.snd.buf.space > 0:
                self.writable_ev = True
                self.eventq.append(EV_WRITABLE)

    def broken_error(self) -> EngineError:
        """The error a call on this broken connection raises."""
        return EngineError(f"connection broken by an internal error: {self.broken!r}")

    # -- input ---------------------------------------------------------------------------
    def on_segment(self, seg: TCPSegment, now: float) -> None:
        """A segment for this connection arrived (checksum already verified).

        Anything a peer sends is handled (dropped and counted if bad); an exception
        from here is a bug: it marks the connection :attr:`broken` and propagates."""
        if self.broken is not None:
            raise self.broken_error()
        try:
            self.rcv.last_rcv = now
            st = self.state
            if st is ST_SYN_SENT:
                handshake.on_syn_sent(self, seg, now)
            elif st is ST_CLOSED or st is ST_LISTEN:
                on_closed(self, seg, now)
            else:
                on_synchronized(self, seg, now)
            ft = self.flow_trace
            if ft is not None:
                ft.segment_in(self, seg, now)
            if self.state is not ST_CLOSED:
                transmit(self, now)
            if self.want_writable:
                self.flush_events()
            m = self.memory
            if m is not None:
                # settle(), inline on the per-segment path.
                held = self.rcv.buf.held + self.snd.buf.queued
                if held != self.memory_charged:
                    m.charge(held - self.memory_charged)
                    self.memory_charged = held
        except BaseException as exc:
            self.broken = exc
            raise

    def on_segments(self, segs: list[TCPSegment], now: float) -> None:
        """The segments of one burst, in arrival order: as :meth:`on_segment` for
        each, except that runs of in-order data segments are merged first and
        processed as one (:mod:`.coalesce`, unless switched off there)."""
        if not coalesce.ENABLED or len(segs) < 2:
            for seg in segs:
                self.on_segment(seg, now)
            return
        n = len(segs)
        i = 0
        merged = False
        while i < n:
            k = coalesce.run_length(self, segs, i) if self.broken is None else 1
            if k == 1:
                self.on_segment(segs[i], now)
            else:
                merged = True
                self.on_merged(segs[i : i + k], now)
            i += k
        if merged and self.rcv.unacked and self.state is not ST_CLOSED:
            # No ACK is delayed past a burst that was merged (Linux after GRO),
            # unless it would close the window before the application reads.
            ack_data(self, now)
            transmit(self, now)

    def on_merged(self, run: list[TCPSegment], now: float) -> None:
        """:meth:`on_segment` for a run that :func:`.coalesce.run_length` found
        mergeable: one super-segment, acknowledged at once (it stands for
        ``len(run)`` segments in the delayed-ACK rule)."""
        if self.broken is not None:
            raise self.broken_error()
        try:
            rcv = self.rcv
            mss_before = rcv.mss
            rcv.last_rcv = now
            seg = coalesce.merge(run)
            observer = coalesce.OBSERVER
            if observer is not None:
                observer(seg)
            on_synchronized(self, seg, now)
            ft = self.flow_trace
            if ft is not None:
                ft.segment_in(self, seg, now)
            if rcv.mss != mss_before:
                # The peer's MSS estimate is its largest segment, not the merged one.
                biggest = max([len(s.payload) for s in run])
                rcv.mss = max(mss_before, min(biggest, self.opt.our_mss))
            if self.state is not ST_CLOSED:
                if rcv.unacked:
                    ack_data(self, now)
                transmit(self, now)
            self.flush_events()
            settle(self)  # (once per merged run: the call is not worth inlining here)
        except BaseException as exc:
            self.broken = exc
            raise

    def on_timer(self, now: float) -> None:
        """Run every timer that has expired at ``now`` (safe to call early)."""
        if self.broken is not None:
            raise self.broken_error()
        try:
            timeouts.run(self, now)
        except BaseException as exc:
            self.broken = exc
            raise

    @property
    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`on_timer` must be called (None: no timer)."""
        return self.timers.next_deadline()

    @_contained
    def set_path_mtu(self, mtu: int, now: float) -> None:
        """The path MTU dropped to ``mtu`` (from ICMPv6 Packet Too Big): lower the
        effective send MSS and retransmit what no longer fits. Never raises it."""
        usercalls.path_mtu(self, mtu, now)

    def time_wait_accepts_syn(self, seg: TCPSegment) -> bool:
        """RFC 6191: may a new SYN reuse this TIME-WAIT connection's 4-tuple? True if
        its timestamp shows it is newer, or, when its timestamp is missing or equal to
        TS.Recent (a millisecond clock that has not ticked since the peer's FIN), if
        its sequence number lies above RCV.NXT (RFC 1122 §4.2.2.13), as Linux's
        TIME-WAIT decides; an older timestamp is a PAWS duplicate. The runtime then
        closes this connection and accepts the SYN afresh."""
        if self.state is not ST_TIME_WAIT or not seg.syn or seg.rst or seg.has_ack:
            return False
        if self.opt.ts_ok and seg.timestamps is not None:
            tsval = seg.timestamps[0]
            if tsval != self.opt.ts_recent:
                return seq_gt(tsval, self.opt.ts_recent)
        return seq_gt(seg.seq, self.rcv_nxt)

    # -- user calls (RFC 9293 §3.10.1-5) -------------------------------------------------
    def send(
        self,
        data: bytes | bytearray | memoryview,
        now: float,
        *,
        nodelay: bool = False,
        urgent: bool = False,
    ) -> int:
        """Queue up to :attr:`send_space` bytes of ``data``; returns how many were
        taken. ``nodelay`` sends them without waiting for Nagle. ``urgent`` marks them
        as urgent data (RFC 9293 §3.8.5: segments carrying them have URG set and point
        past the last urgent byte; they are pushed)."""
        # (_contained spelled out, as in on_segment: once per write.)
        if self.broken is not None:
            raise self.broken_error()
        try:
            return usercalls.send(self, data, now, nodelay, urgent)
        except BaseException as exc:
            self.broken = exc
            raise

    @property
    def send_space(self) -> int:
        """Bytes :meth:`send` accepts now: free send-buffer space, less if the
        stack's memory limit is near (:func:`.memory.send_room`)."""
        if self.snd.fin_queued:
            return 0
        if self.memory is not None and self.memory.limited:
            return send_room(self, self.snd.buf.space)
        return self.snd.buf.space

    @property
    def send_queue_end(self) -> int:
        """Sequence number just past the last byte queued so far; once
        ``snd_una`` reaches it, everything written is acknowledged."""
        return (self.iss + self.snd.buf.end) & MASK

    @property
    def send_queued(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self.snd.buf)

    def receive(self, max_bytes: int, now: float) -> bytes:
        """Take up to ``max_bytes`` of in-order received data (b"" if none); may
        queue a window update."""
        # (_contained spelled out, as in on_segment: once per read.)
        if self.broken is not None:
            raise self.broken_error()
        try:
            return usercalls.receive(self, max_bytes, now)
        except BaseException as exc:
            self.broken = exc
            raise

    @property
    def readable(self) -> int:
        """Bytes of in-order data waiting for :meth:`receive`."""
        return self.rcv.buf.readable

    @property
    def urgent_pending(self) -> int:
        """RFC 9293 §3.8.5 (MUST-33): how many bytes of urgent data the user has yet
        to read (received or not), 0 outside urgent mode. The data is delivered in
        line by :meth:`receive`; an ``URGENT`` event says the pointer advanced."""
        rcv = self.rcv
        rb = rcv.buf
        read = rb.nxt - rb.readable - (1 if rcv.fin_rcvd else 0)
        up = rcv.up - read
        return up if up > 0 else 0

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it was taken."""
        return self.rcv.fin_rcvd and self.rcv.buf.readable == 0

    @_contained
    def prune_ooo(self, excess: int) -> int:
        """Discard held out-of-order data from the far end until ``excess`` bytes
        are freed or none is left (the stack under memory pressure); returns how
        many ranges were discarded. The peer retransmits them (no longer SACKed)."""
        n = self.rcv.buf.prune_ooo(excess)
        settle(self)
        return n

    @_contained
    def shutdown(self, now: float) -> None:
        """CLOSE: send FIN after the queued data (half-close)."""
        usercalls.shutdown(self, now)

    @_contained
    def abort(self, now: float) -> None:
        """ABORT: send RST (if synchronized) and go to CLOSED."""
        st = self.state
        if st is ST_CLOSED:
            return
        if st in RESET_ON_ABORT:
            send_rst(self, self.snd_nxt, now)
        self.close("aborted", "abort", now)

    # -- per-connection options (what setsockopt changes; :mod:`.setsockopt`) -----------
    def _check_usable(self) -> None:
        if self.broken is not None:
            raise self.broken_error()

    @property
    def nodelay(self) -> bool:
        """TCP_NODELAY: True when Nagle's algorithm is off for this connection."""
        return not self.config.nagle

    def set_nodelay(self, on: bool, now: float) -> None:
        """TCP_NODELAY for this connection: ``on`` turns Nagle off. Turning it off
        sends at once what Nagle was holding back (as Linux does)."""
        self._check_usable()
        setsockopt.set_nodelay(self, on, now)

    def set_keepalive(self, keepalive: Keepalive | None, now: float) -> None:
        """SO_KEEPALIVE and its timings: probe as ``keepalive`` says (None: off).
        The keepalive timer restarts from the last segment received."""
        self._check_usable()
        setsockopt.set_keepalive(self, keepalive, now)

    def set_user_timeout(self, seconds: float | None) -> None:
        """TCP_USER_TIMEOUT (RFC 5482): abort when sent data stays unacknowledged
        this long (None or 0: R2 applies). Taken into account from the next time the
        retransmission timer is armed."""
        self._check_usable()
        setsockopt.set_user_timeout(self, seconds)

    @property
    def send_buffer(self) -> int:
        """SO_SNDBUF: bytes the user may queue (sent and unacknowledged included)."""
        return self.snd.buf.capacity

    def set_send_buffer(self, size: int) -> None:
        """SO_SNDBUF: resize the send buffer (what is queued stays queued; a larger
        buffer lets a blocked writer go on)."""
        self._check_usable()
        setsockopt.set_send_buffer(self, size)

    @property
    def receive_buffer(self) -> int:
        """SO_RCVBUF: bytes received and not yet read that we buffer at most."""
        return self.rcv.cap

    def set_receive_buffer(self, size: int) -> None:
        """SO_RCVBUF: resize the receive buffer. The window never shrinks (its right
        edge stays where it was advertised); beyond what the negotiated window scale
        can express the extra room is not advertised."""
        self._check_usable()
        setsockopt.set_receive_buffer(self, size)

    @property
    def congestion(self) -> str:
        """The congestion control algorithm (``"cubic"`` or ``"newreno"``)."""
        return self.config.congestion

    @property
    def data_sent(self) -> bool:
        """True once any data (or our FIN) has been transmitted."""
        return self.snd.nxt > 1

    def set_congestion(self, name: str) -> None:
        """TCP_CONGESTION: use the algorithm ``name`` (``"cubic"``, ``"newreno"``).
        Only before any data has been sent: ValueError afterwards, and for an
        unknown name."""
        self._check_usable()
        setsockopt.set_congestion(self, name)

    # -- output --------------------------------------------------------------------------
    def take_segments(self) -> list[TCPSegment]:
        """The segments to transmit, in order (the queue is emptied: a non-empty
        list is handed over, the caller may keep it)."""
        out = self.outq
        if out:
            self.outq = []
        return out

    def take_events(self) -> list[Event]:
        """The events for the user, in order (the queue is emptied)."""
        ev = self.eventq
        if ev:
            self.eventq = []
        self.readable_ev = False
        self.writable_ev = False
        return ev

    def info(self) -> TCPInfo:
        """A :class:`~.info.TCPInfo` snapshot (what ``Flow.info()`` returns)."""
        return snapshot(self)
