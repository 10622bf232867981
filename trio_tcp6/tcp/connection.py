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

What is implemented, and where:

* segment arrival follows RFC 9293 §3.10.7 step by step (:meth:`Connection._on_syn_sent`,
  :meth:`Connection._on_other`): PAWS (RFC 7323 §5), the acceptability test and
  trimming, RST/SYN/ACK checks with RFC 5961 challenge ACKs (rate limited), ACK
  processing, URG (the pointer names the first non-urgent octet, RFC 6093; urgent
  data stays in line, an ``URGENT`` event and :attr:`Connection.urgent_pending` tell
  the user), text into :mod:`.recvbuf`, FIN; text and FIN on a SYN are queued until
  ESTABLISHED (§3.10.7.2-3);
* options: MSS (1220 when absent, RFC 9293 §3.7.1), window scale, timestamps with
  RTTM and TS.Recent (RFC 7323), SACK-permitted and SACK/D-SACK blocks (RFC 2018/2883);
* the sender keeps one :class:`~.sack.SentSeg` per transmitted segment in
  :mod:`.sack`; loss is detected by RACK (RFC 8985, :mod:`.rack`) or RFC 6675 IsLost
  with SACK, by three duplicate ACKs without (RFC 6582); recovery uses PRR (RFC 6937,
  :mod:`.recovery`); the cc module sets ssthresh/cwnd; TLP probes tails;
* timers share one slot for RTO (RFC 6298, Karn), TLP and the persist timer, plus
  the RACK reordering, delayed-ACK, keepalive and TIME-WAIT timers;
* Nagle (Minshall's variant) and sender/receiver SWS avoidance (RFC 9293 §3.7.4,
  Appendix A.3, §3.8.6.2), zero-window
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

from collections import Counter

import attrs

from ..config import TCPConfig
from ..wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TCPSegment
from .cc import CongestionControl, make_congestion_control
from .events import Event, EventKind, State
from .rack import Rack
from .recovery import PRR
from .recvbuf import ADD_DROP, ADD_DUP, ADD_INORDER, ADD_OOO, ReceiveBuffer
from .rtt import RTTEstimator
from .sack import EVER_RETRANS, Scoreboard
from .sendbuf import SendBuffer
from .seq import MASK, seq_diff, seq_ge, seq_gt, seq_lt

__all__ = ["Connection"]

#: RFC 9293 §3.7.1 / RFC 8200: default send MSS for IPv6 when the peer sends none.
DEFAULT_IPV6_MSS = 1220
#: Bytes the timestamps option takes in every segment (10 + 2 NOPs).
TS_OPTION_BYTES = 12
#: RFC 7323 §5.5: PAWS gives up on TS.Recent after 24 days of idleness.
PAWS_IDLE = 24 * 24 * 3600.0
#: RFC 8985 §7.2 WCDelAckT: worst-case delayed-ACK time for the TLP timer.
WC_DELACK = 0.2
#: RFC 6675 DupThresh.
DUPTHRESH = 3
#: Sender SWS override timeout (RFC 9293 §3.8.6.2.1: 0.1 to 1 second).
SWS_OVERRIDE = 0.2

# Congestion-avoidance states of the sender.
CA_OPEN = 0
CA_RECOVERY = 1  # fast recovery (SACK/RFC 6675 or NewReno/RFC 6582) with PRR
CA_LOSS = 2  # after a retransmission timeout

# Modes of the retransmission-timer slot.
T_RTO = 0
T_PTO = 1
T_PERSIST = 2

_SYNCHRONIZED = frozenset(
    {
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.CLOSE_WAIT,
        State.CLOSING,
        State.LAST_ACK,
        State.TIME_WAIT,
    }
)
#: States in which we may transmit data/FIN.
_SENDING = frozenset(
    {State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK}
)
#: States in which received text is accepted (RFC 9293 §3.10.7.4 seventh).
_RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})

_EV_READABLE = Event(EventKind.READABLE)
_EV_WRITABLE = Event(EventKind.WRITABLE)
_EV_CONNECTED = Event(EventKind.CONNECTED)
_EV_EOF = Event(EventKind.EOF)
_EV_FIN_ACKED = Event(EventKind.FIN_ACKED)
_EV_CLOSED = Event(EventKind.CLOSED)
_EV_URGENT = Event(EventKind.URGENT)


def _choose_shift(buffer: int) -> int:
    """Smallest window-scale shift that lets ``buffer`` be advertised (<= 14)."""
    shift = 0
    while shift < 14 and (buffer >> shift) > 0xFFFF:
        shift += 1
    return shift


class Connection:
    """One TCP connection (its TCB).

    Create it with :meth:`connect` (active open) or :meth:`accept` (passive open from
    a SYN received on a listening port), or :meth:`accept_cookie` (an ACK that
    carried a valid SYN cookie).
    """

    state: State
    iss: int
    irs: int

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
    ) -> None:
        self.config = config
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.local_port = local_port
        self.remote_port = remote_port
        self.state = State.CLOSED
        self.passive = passive
        self._peer_syn = False  # the peer's SYN was received (we answer with SYN-ACK)
        self.iss = iss & MASK
        self.irs = 0
        if config.mss is not None:
            mss = min(mss, config.mss)
        #: Our MSS (what we announce): largest payload our link lets us receive.
        self.our_mss = max(mss, 64)
        #: MSS from the path (peer option, our link, PMTU), without option overhead.
        self._path_mss = self.our_mss
        #: The path MTU (minus headers) learnt from Packet Too Big, if any.
        self._pmtu_mss: int | None = None
        #: Effective send MSS: max payload per segment (options subtracted).
        self.mss = min(self.our_mss, DEFAULT_IPV6_MSS)
        self._ts_offset = ts_offset
        self._created = now

        # Negotiated options.
        self.ts_ok = False
        self.sack_ok = False
        self.ws_ok = False
        self.snd_shift = 0
        self.rcv_shift = _choose_shift(config.receive_buffer) if config.window_scale else 0
        self.ts_recent = 0
        self._ts_recent_age = now

        # Send side (absolute offsets from iss).
        self._una = 0
        self._nxt = 0
        self._sndbuf = SendBuffer(config.send_buffer, 1)
        self._push_end = 0  # data before this offset was written with nodelay
        self._snd_up = 0  # SND.UP: offset of the first non-urgent byte (RFC 9293 §3.8.5)
        self._small_end = 0  # end of the last new segment shorter than the MSS (Minshall)
        self._fin_queued = False
        self._fin_off = -1  # absolute offset of our FIN once queued
        self._fin_sent = False
        self.snd_wnd = 0
        self._wl1 = 0
        self._wl2 = 0
        self.max_snd_wnd = 0
        self._sb = Scoreboard(1)
        self._rtt = RTTEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self._syn_retries = 0
        self._syn_retransmitted = False
        self.cc: CongestionControl = self._new_cc()
        self._ca = CA_OPEN
        self._recovery_point = 0
        self._prr = PRR()
        self._dupacks = 0
        self._reno_sacked = 0  # bytes estimated delivered by duplicate ACKs (no SACK)
        self._reno_recover = 0  # RFC 6582 "recover"
        self._rack = Rack()
        self._tlp_end: int | None = None
        self._tlp_retrans = False
        self._undo_state: object | None = None
        self._undo_tsval: int | None = None
        # F-RTO (RFC 5682) stage: 0 off, 1 awaiting the first ACK after the timeout,
        # 2 may send new data, 3 new data sent, awaiting the second ACK.
        self._frto = 0
        # D-SACK based undo of a spurious fast recovery (RFC 3708 spirit).
        self._rec_undo: object | None = None
        self._undo_marker = 0
        self._undo_retrans = 0
        # The retransmissions of the current recovery not yet reported as duplicates.
        self._undo_ranges: list[tuple[int, int]] = []
        self._rto_count = 0  # consecutive timeouts of the head segment
        # Of those, timeouts while the peer kept answering with a zero window (they
        # are window probes and do not count toward R2, RFC 9293 §3.8.6.1 MUST-37).
        self._zw_rtos = 0
        self._rto_at = now  # when the retransmission timer last fired
        self._ack_rcvd_at = now  # when an acceptable ACK last arrived
        self._ut_base = now  # since when unacknowledged data has been waiting
        self._last_data_send = now
        self._persist_backoff = 0
        self._persist_unanswered = 0
        self._last_send = now

        # Receive side (absolute offsets from irs).
        self._rb = ReceiveBuffer(1, config.receive_buffer, self.stats)
        self._rcv_cap = config.receive_buffer
        self._rcv_adv = 1
        self._rcv_mss = 536
        self._rcv_unacked = 0
        self._last_ack_sent = 0
        self._fin_rcvd = False
        self._fin_rcvd_off = -1  # pending FIN (received out of order)
        self._rcv_up = 0  # RCV.UP: offset of the first non-urgent byte received
        self._ack_now = False
        # Text (and FIN) that came on the peer's SYN, queued until ESTABLISHED
        # (RFC 9293 §3.10.7.2 LISTEN third, §3.10.7.3 SYN-SENT fourth).
        self._syn_queued = b""
        self._syn_fin = False

        # Timers (absolute times or None).
        self._t_rtx: float | None = None
        self._rtx_mode = T_RTO
        self._t_reo: float | None = None
        self._t_delack: float | None = None
        self._t_keep: float | None = None
        self._t_tw: float | None = None
        self._t_sws: float | None = None
        self._last_rcv = now
        self._ka_probes = 0
        self._ka_last_probe = now

        self._chal_start = now
        self._chal_count = 0

        #: TCP segmentation offload (TSO): the largest payload one new-data segment
        #: may carry when the link segments packets for us (0 or less than two MSS:
        #: off). Set by the runtime from the link; see :meth:`_seg_limit`.
        self.tso_max_bytes = 0

        self._out: list[TCPSegment] = []
        self._events: list[Event] = []
        self._readable_ev = False
        self._writable_ev = False
        self._want_writable = False

        # Counters for info().
        self.retransmits = 0
        self.bytes_acked = 0
        self.bytes_received = 0
        self.bytes_sent = 0

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
    ) -> Connection:
        """Active open: returns a connection in SYN-SENT with its SYN queued.

        ``mss`` is the largest payload our side may send/receive given the link MTU
        (MTU - 60 for IPv6 without extension headers); ``ts_offset`` randomises the
        timestamp clock per connection (RFC 7323 §5.4).
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
        )
        c.state = State.SYN_SENT
        c._send_syn(now)
        return c

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
    ) -> Connection:
        """Passive open from a valid SYN: returns a connection in SYN-RECEIVED with
        its SYN-ACK queued."""
        c = cls(
            config,
            local_port=syn.dst_port,
            remote_port=syn.src_port,
            iss=iss,
            mss=mss,
            now=now,
            stats=stats,
            ts_offset=ts_offset,
            passive=True,
        )
        c._take_peer_syn(syn, now)
        c._queue_syn_text(syn)
        c.state = State.SYN_RECEIVED
        c._send_syn(now)
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
    ) -> Connection:
        """Build an ESTABLISHED connection from the ACK completing a SYN-cookie
        handshake (``iss`` is the cookie, i.e. ``ack.ack - 1``); ``ack`` is then
        processed as the first segment (it may carry data)."""
        c = cls(
            config,
            local_port=ack.dst_port,
            remote_port=ack.src_port,
            iss=iss,
            mss=mss,
            now=now,
            stats=stats,
            ts_offset=ts_offset,
            passive=True,
        )
        c.irs = (ack.seq - 1) & MASK
        c.ws_ok = peer_wscale is not None and config.window_scale
        if c.ws_ok:
            assert peer_wscale is not None
            c.snd_shift = min(peer_wscale, 14)
        else:
            c.rcv_shift = 0
        c.sack_ok = sack_permitted and config.sack
        c.ts_ok = timestamps and config.timestamps and ack.timestamps is not None
        if c.ts_ok and ack.timestamps is not None:
            c.ts_recent = ack.timestamps[0]
        c._set_peer_mss(peer_mss)
        c._last_ack_sent = 1
        c._una = c._nxt = 1
        c._sb = Scoreboard(1)
        # The cookie's SYN-ACK carried an unscaled window of at most 65535.
        c._rcv_adv = 1 + min(c._rcv_cap, 0xFFFF)
        c._wl1 = (ack.seq - 1) & MASK
        c._wl2 = c.iss
        c.state = State.ESTABLISHED
        c._events.append(_EV_CONNECTED)
        c._want_writable = True
        c.on_segment(ack, now)
        return c

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local_port}->{self.remote_port} {self.state.value} "
            f"una={self.snd_una} nxt={self.snd_nxt} rcv_nxt={self.rcv_nxt} "
            f"cwnd={self.cc.cwnd} in_flight={self._sb.pipe}>"
        )

    # -- RFC 9293 variables --------------------------------------------------------
    @property
    def snd_una(self) -> int:
        return (self.iss + self._una) & MASK

    @property
    def snd_nxt(self) -> int:
        return (self.iss + self._nxt) & MASK

    @property
    def rcv_nxt(self) -> int:
        return (self.irs + self._rb.nxt) & MASK

    @property
    def rcv_wnd(self) -> int:
        w = self._rcv_adv - self._rb.nxt
        return w if w > 0 else 0

    @property
    def snd_wl1(self) -> int:
        return self._wl1

    @property
    def snd_wl2(self) -> int:
        return self._wl2

    # -- helpers: options, clocks ----------------------------------------------------
    def _tsval(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & MASK

    def _new_cc(self) -> CongestionControl:
        cfg = self.config
        return make_congestion_control(
            cfg.congestion, mss=self.mss, initial_window=cfg.initial_window, hystart=cfg.hystart
        )

    def _set_peer_mss(self, peer_mss: int | None) -> None:
        """The handshake fixed the send MSS: the congestion controller starts with
        the initial window for it (RFC 6928 §2), not a rescaled provisional one."""
        base = min(self.our_mss, peer_mss if peer_mss else DEFAULT_IPV6_MSS)
        if self._pmtu_mss is not None:
            base = min(base, self._pmtu_mss)
        self._path_mss = max(base, 64)
        self._update_mss()
        self.cc = self._new_cc()

    def _update_mss(self) -> None:
        mss = self._path_mss - (TS_OPTION_BYTES if self.ts_ok else 0)
        mss = max(mss, 32)
        if mss != self.mss:
            self.mss = mss
            self.cc.set_mss(mss)
        self._rcv_mss = min(self._rcv_mss, self.our_mss)

    def _take_peer_syn(self, syn: TCPSegment, now: float) -> None:
        """Record the peer's SYN: IRS and the options both sides must agree on."""
        self._peer_syn = True
        cfg = self.config
        self.irs = syn.seq & MASK
        self._rb = ReceiveBuffer(1, self._rcv_cap, self.stats)
        self._rcv_adv = 1 + min(self._rcv_cap, 0xFFFF)
        self.ws_ok = cfg.window_scale and syn.wscale is not None
        if self.ws_ok:
            assert syn.wscale is not None
            self.snd_shift = min(syn.wscale, 14)
            if syn.wscale > 14:
                # RFC 7323 §2.3: "SHOULD log the error but MUST use 14 instead".
                self.stats["wscale_clamped"] += 1
        else:
            self.snd_shift = 0
            self.rcv_shift = 0
        self.sack_ok = cfg.sack and syn.sack_permitted
        self.ts_ok = cfg.timestamps and syn.timestamps is not None
        if self.ts_ok and syn.timestamps is not None:
            self.ts_recent = syn.timestamps[0]
            self._ts_recent_age = now
        self._set_peer_mss(syn.mss)
        # SYN windows are never scaled (RFC 7323 §2.2).
        self.snd_wnd = syn.window
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        self._wl1 = syn.seq & MASK

    def _syn_text_in_window(self, syn: TCPSegment) -> tuple[bytes, bool]:
        """The text and FIN of a SYN, trimmed to our initial receive window (a FIN
        beyond it is dropped too), as RFC 9293 §3.10.7.4 first does for any segment."""
        text = syn.payload
        fin = syn.fin
        room = self._rcv_adv - 1
        if len(text) > room:
            text = text[:room]
            fin = False
            self.stats["trimmed_beyond_window"] += 1
        return text, fin

    def _queue_syn_text(self, syn: TCPSegment) -> None:
        """RFC 9293 §3.10.7.2 (LISTEN, third) and §3.10.7.3 (SYN-SENT, fourth, a SYN
        without ACK): text and FIN on a SYN are queued for processing once ESTABLISHED
        (:meth:`_deliver_syn_text`)."""
        text, fin = self._syn_text_in_window(syn)
        if text or fin:
            self._syn_queued = bytes(text)
            self._syn_fin = fin
            self.stats["syn_text_queued"] += 1

    def _deliver_syn_text(self, now: float) -> None:
        """The handshake completed: process the SYN's queued text and FIN as if they
        had just arrived at sequence offset 1, and acknowledge them at once (the peer's
        retransmission timer for them is running)."""
        text, fin = self._syn_queued, self._syn_fin
        self._syn_queued = b""
        self._syn_fin = False
        self._text_and_fin(1, text, fin, now)
        self._ack_now = True

    # -- output: segment construction ------------------------------------------------
    def _wnd_field(self) -> int:
        """The window field to send, applying receiver SWS avoidance (RFC 9293
        §3.8.6.2.2), never offering more than the free buffer space and never
        shrinking the right edge we honour (``_rcv_adv``).

        A scaled window is rounded down (RFC 7323 §2.3), up only while the rounded
        edge still fits the free space: rounding up unconditionally would let a peer
        that sends less than a scale unit per ACK ratchet the edge past the buffer.
        Rounding down may offer an edge up to one unit short of the one honoured
        (the apparent shrink RFC 7323 §2.4 describes); data up to it is accepted."""
        rb = self._rb
        nxt = rb.nxt
        avail = self._rcv_cap - rb.held
        if avail < 0:
            avail = 0
        right = nxt + avail
        adv = self._rcv_adv
        if right > adv:
            thresh = min(self._rcv_cap >> 1, self.our_mss)
            if right - adv >= thresh or (adv <= nxt and avail >= thresh):
                adv = right
        wnd = adv - nxt
        if wnd <= 0:
            self._rcv_adv = nxt if adv < nxt else adv
            return 0
        shift = self.rcv_shift
        if shift:
            field = wnd >> shift
            if (field << shift) < wnd and nxt + ((field + 1) << shift) <= right:
                field += 1
        else:
            field = wnd
        if field > 0xFFFF:
            field = 0xFFFF
        edge = nxt + (field << shift)
        self._rcv_adv = edge if edge > adv or (field == 0xFFFF and edge < adv) else adv
        return field

    def _emit(self, seq: int, flags: int, payload: bytes, now: float, urgent: int = 0) -> None:
        """Queue one segment with our current ACK, window and options."""
        rb = self._rb
        sack: tuple[tuple[int, int], ...] = ()
        if flags & ACK:
            ack = (self.irs + rb.nxt) & MASK
            if self.sack_ok and (rb.dsack is not None or rb.has_ooo):
                irs = self.irs
                sack = tuple(
                    ((irs + s) & MASK, (irs + e) & MASK)
                    for s, e in rb.sack_blocks(3 if self.ts_ok else 4)
                )
            self._last_ack_sent = rb.nxt
            self._ack_now = False
            self._t_delack = None
            self._rcv_unacked = 0
        else:
            ack = 0
        wnd = self._wnd_field()
        ts = (self._tsval(now), self.ts_recent) if self.ts_ok else None
        self._out.append(
            TCPSegment(
                self.local_port,
                self.remote_port,
                seq,
                ack,
                flags,
                wnd,
                payload,
                urgent,
                None,
                None,
                False,
                sack,
                ts,
            )
        )
        self._last_send = now

    def _send_syn(self, now: float) -> None:
        cfg = self.config
        passive = self._peer_syn
        flags = SYN | ACK if passive else SYN
        if passive:
            self._last_ack_sent = 1
            ws = self.rcv_shift if self.ws_ok else None
            sackp = self.sack_ok
            ts = (self._tsval(now), self.ts_recent) if self.ts_ok else None
            ack = (self.irs + 1) & MASK
        else:
            ws = self.rcv_shift if cfg.window_scale else None
            sackp = cfg.sack
            ts = (self._tsval(now), 0) if cfg.timestamps else None
            ack = 0
        self._out.append(
            TCPSegment(
                self.local_port,
                self.remote_port,
                self.iss,
                ack,
                flags,
                min(self._rcv_cap, 0xFFFF),
                b"",
                0,
                self.our_mss,
                ws,
                sackp,
                (),
                ts,
            )
        )
        if self._nxt == 0:
            self._nxt = 1
        self._last_send = now
        self._rtx_mode = T_RTO
        self._t_rtx = now + self._rtt.rto

    def _send_ack(self, now: float) -> None:
        self._emit((self.iss + self._nxt) & MASK, ACK, b"", now)

    def _send_rst(self, seq: int, now: float, ack: int | None = None) -> None:
        flags = RST if ack is None else RST | ACK
        self._out.append(
            TCPSegment(self.local_port, self.remote_port, seq & MASK, ack or 0, flags, 0)
        )
        self.stats["resets_sent"] += 1

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3-5 challenge ACK, rate limited per connection."""
        if now - self._chal_start >= 1.0:
            self._chal_start = now
            self._chal_count = 0
        if self._chal_count >= self.config.challenge_ack_limit:
            self.stats["challenge_acks_limited"] += 1
            return
        self._chal_count += 1
        self.stats["challenge_acks"] += 1
        self._send_ack(now)

    def _xmit(self, start: int, end: int, now: float) -> None:
        """Send the sequence range ``[start, end)`` (absolute) from the send buffer,
        with FIN if the range covers it."""
        fin = self._fin_off >= 0 and end > self._fin_off
        dend = end - 1 if fin else end
        buf = self._sndbuf
        if dend > start:
            payload = buf.get(start, dend - start)
            flags = ACK | PSH if dend == buf.end else ACK
        else:
            payload = b""
            flags = ACK
        if fin:
            flags |= FIN
        self._last_data_send = now
        up = self._snd_up - start
        if up > 0:
            # RFC 9293 §3.8.5 (MUST-62): the pointer is the offset of the first
            # non-urgent octet from this segment's SEQ (at most 65535).
            self._emit((self.iss + start) & MASK, flags | URG, payload, now, min(up, 0xFFFF))
            return
        self._emit((self.iss + start) & MASK, flags, payload, now)

    # -- output: what may be sent now --------------------------------------------------
    def _budget(self) -> int:
        """Congestion-window room in bytes (PRR during fast recovery)."""
        if self._ca == CA_RECOVERY:
            return self._prr.budget
        return self.cc.cwnd - self._pipe()

    def _data_mss(self) -> int:
        """Payload limit for a data segment sent now: the effective MSS minus the
        room the SACK blocks we must report take (RFC 2018 §3: 8 bytes a block plus
        the kind/length and padding), so that the packet still fits the path."""
        rb = self._rb
        if not self.sack_ok or (rb.dsack is None and not rb.has_ooo):
            return self.mss
        n = len(rb.ooo_ranges()) + (rb.dsack is not None)
        limit = 3 if self.ts_ok else 4
        return max(self.mss - 4 - 8 * min(n, limit), 32)

    def _seg_limit(self, mss: int) -> int:
        """The most new data one segment may carry: ``mss``, or with TSO a multiple
        of it up to :attr:`tso_max_bytes` (a *super-segment*: one TCP header, which
        the link splits into ``mss``-sized wire segments, each with a copy of the
        header, ``gso_size`` = MTU - 40 - TCP header length). Only while the send MSS
        is the one our link gives (no smaller peer MSS or path MTU, whose segments
        the link would not know to cut). Scoreboard, RACK and the windows work in
        sequence ranges and bytes; retransmissions are cut back to ``mss``."""
        t = self.tso_max_bytes
        if t < 2 * mss or self._path_mss != self.our_mss:
            return mss
        return t - t % mss

    def _flight_size(self) -> int:
        """FlightSize for a loss response (RFC 5681 eq. (4), RFC 6675 §5, RFC 9438
        §4.6): SND.NXT - SND.UNA, but at most ``cwnd``. SACKed data above the first
        hole stays in SND.NXT - SND.UNA: RACK's reordering window (widened by D-SACKs)
        lets up to a window of it pile up before a loss is declared, and a recovery
        entered on the ACK that ends another also holds everything that recovery
        sent. The range is then up to 2-3x what the window allowed in flight, and
        ``beta * FlightSize`` *raised* the window on every loss (beta_cubic = 0.7).
        Bounded by cwnd (Linux uses cwnd alone; RFC 9438 §4.6 allows cwnd when it
        cannot grow beyond what is used, which the application-limited rule of
        :mod:`.cc.base` ensures), a loss always reduces the window."""
        return min(self._sb.outstanding, self.cc.cwnd)

    def _pipe(self) -> int:
        """RFC 6675 pipe; without SACK each duplicate ACK counts one segment as
        having left the network (RFC 6937 §3 DeliveredData for non-SACK)."""
        p = self._sb.pipe - self._reno_sacked
        return p if p > 0 else 0

    def _output(self, now: float) -> None:
        if self.state in _SENDING:
            sb = self._sb
            if self._frto >= 2:
                if self._frto == 2:
                    self._frto_send_new(now)
            elif sb.lost > sb.retrans:
                self._send_lost(now)
            if self._frto < 2 and (
                self._sndbuf.end > self._nxt or (self._fin_queued and not self._fin_sent)
            ):
                self._send_new(now)
            if self._ca == CA_RECOVERY and self.sack_ok and not self.config.rack:
                self._send_rule3(now)
        if self._ack_now:
            self._send_ack(now)
        self._schedule(now)

    def _send_lost(self, now: float) -> None:
        sb = self._sb
        mss = self._data_mss()
        while sb.lost > sb.retrans:
            if self._pipe() > 0:
                budget = self._budget()
                if budget <= 0 or (budget < mss and self._ca != CA_RECOVERY):
                    break
            i = sb.next_lost()
            if i < 0:
                break
            r = sb.segs[i]
            if r.end - r.start > mss:
                sb.split(i, r.start + mss)
            self._xmit(r.start, r.end, now)
            sb.mark_retransmitted(i, now)
            n = r.end - r.start
            if self._ca == CA_RECOVERY:
                self._prr.sent(n)
                self._undo_retrans += 1
                self._undo_ranges.append((r.start, r.end))
            self.retransmits += 1
            self.stats["retransmits"] += 1
            if self._t_rtx is None or self._rtx_mode != T_RTO:
                self._arm_rto(now)

    def _frto_send_new(self, now: float) -> None:
        """RFC 5682 §2 step 2b: after the first ACK advanced SND.UNA, send up to two
        new segments (whatever cwnd says) instead of retransmitting further."""
        sb = self._sb
        buf = self._sndbuf
        mss = self._data_mss()
        for _ in range(2):
            nxt = self._nxt
            n = min(buf.end - nxt, mss, self._una + self.snd_wnd - nxt)
            if n <= 0:
                break
            end = nxt + n
            if self._fin_queued and not self._fin_sent and end == buf.end:
                end += 1
                self._fin_sent = True
            self._xmit(nxt, end, now)
            sb.add(nxt, end, now)
            self._nxt = end
            self.bytes_sent += end - nxt
        self._frto = 3

    def _send_rule3(self, now: float) -> None:
        """RFC 6675 §4 NextSeg rule 3: with window left over and nothing lost or new
        to send, retransmit un-SACKed data below the highest SACK."""
        sb = self._sb
        while self._prr.budget >= self.mss:
            if self._sndbuf.end > self._nxt and self._una + self.snd_wnd > self._nxt:
                return  # new data (rule 2) goes first; it was window/cwnd limited
            i = sb.next_unsacked_below_fack()
            if i < 0:
                return
            r = sb.segs[i]
            mss = self._data_mss()
            if r.end - r.start > mss:
                sb.split(i, r.start + mss)
            self._xmit(r.start, r.end, now)
            # Counted as lost-and-retransmitted: the "lost pending" arithmetic
            # (lost - retrans) relies on every retransmitted record being marked lost.
            sb.mark_lost(i)
            sb.mark_retransmitted(i, now)
            self._prr.sent(r.end - r.start)
            self._undo_retrans += 1
            self._undo_ranges.append((r.start, r.end))
            self.retransmits += 1
            self.stats["retransmits"] += 1
            self.stats["rule3_retransmits"] += 1

    def _send_new(self, now: float) -> None:
        sb = self._sb
        buf = self._sndbuf
        mss = self._data_mss()
        big = self._seg_limit(mss)
        cfg_nagle = self.config.nagle
        if self._nxt == self._una:
            self._ut_base = now
            if now - self._last_data_send > self._rtt.rto and self._una > 1:
                # RFC 5681 §4.1: restart after idle.
                self.cc.on_idle_restart(now, self._rtt.rto)
        while True:
            nxt = self._nxt
            avail = buf.end - nxt
            fin_pending = self._fin_queued and not self._fin_sent
            if avail <= 0 and not fin_pending:
                break
            if avail > 0:
                wnd_room = self._una + self.snd_wnd - nxt
                budget = self._budget()
                pipe = self._pipe()
                n = avail if avail < mss else mss
                if pipe <= 0 and budget < n:
                    budget = n  # always allow one segment into an empty network
                lim = n
                if wnd_room < lim:
                    lim = wnd_room
                if budget < lim:
                    lim = budget
                if lim < n:
                    if lim <= 0:
                        break
                    if wnd_room < n and wnd_room == lim:
                        # Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a small usable
                        # window is used if it is at least half the largest window
                        # seen, or, with nothing in flight, when the override
                        # timeout expires.
                        if lim * 2 < self.max_snd_wnd:
                            if nxt != self._una:
                                break
                            t = self._t_sws
                            if t is None:
                                self._t_sws = now + SWS_OVERRIDE
                                break
                            if now < t:
                                break
                    else:
                        break  # congestion-window limited: wait for ACKs
                    n = lim
                elif (
                    n < mss
                    and not fin_pending
                    and cfg_nagle
                    and self._small_end > self._una
                    and nxt >= self._push_end
                ):
                    # Nagle (RFC 9293 §3.7.4) in Minshall's variant (Appendix A.3, as
                    # Linux): hold a small segment while an earlier *small* one is
                    # unacknowledged, unless written with nodelay. A bulk transfer's
                    # tail then never waits for a delayed ACK of full segments.
                    break
                elif avail > mss and big > mss and self._snd_up <= nxt:
                    # TSO: as many whole segments as window and budget allow (no
                    # urgent data in it) and a short tail if Nagle would send it now.
                    room = avail if avail < big else big
                    if wnd_room < room:
                        room = wnd_room
                    if budget < room:
                        room = budget
                    if room > mss:
                        tail = room % mss
                        if tail and (
                            room < avail
                            or (
                                not fin_pending
                                and cfg_nagle
                                and self._small_end > self._una
                                and nxt + room - tail >= self._push_end
                            )
                        ):
                            room -= tail
                        n = room
                end = nxt + n
                if fin_pending and end == buf.end:
                    end += 1
                    self._fin_sent = True
            else:
                end = nxt + 1
                self._fin_sent = True
            self._xmit(nxt, end, now)
            sb.add(nxt, end, now)
            self._nxt = end
            k = end - nxt
            if k < mss or (k > mss and k % mss):
                self._small_end = end
            self._t_sws = None
            self.bytes_sent += end - nxt
            if self._ca == CA_RECOVERY:
                self._prr.sent(end - nxt)
            if self._t_rtx is None or self._rtx_mode == T_PERSIST:
                self._arm_rto(now)

    # -- timers ------------------------------------------------------------------------
    def _arm_rto(self, now: float) -> None:
        self._rtx_mode = T_RTO
        t = now + self._rtt.rto
        ut = self.config.user_timeout
        if ut is not None:
            t = min(t, max(self._ut_base + ut, now + 0.001))
        self._t_rtx = t

    def _schedule(self, now: float) -> None:
        """Re-arm the retransmission/persist/keepalive timers after any change."""
        st = self.state
        if (st not in _SENDING and st is not State.FIN_WAIT_2) or self._una == 0:
            return
        sb = self._sb
        if self._nxt > self._una:
            mode = self._rtx_mode
            if self._t_rtx is None or mode == T_PERSIST:
                self._arm_rto(now)
                mode = T_RTO
            if (
                mode == T_RTO
                and self._rto_count == 0
                and self._tlp_end is None
                and self._ca == CA_OPEN
                and self.sack_ok
                and self.config.rack
                and self._rtt.srtt is not None
            ):
                srtt = self._rtt.srtt
                pto = 2 * srtt
                if sb.outstanding <= self.mss:
                    pto += WC_DELACK
                t_pto = now + pto
                # RFC 8985 §7.2: never later than the RTO would fire.
                if self._t_rtx is not None and t_pto > self._t_rtx:
                    t_pto = self._t_rtx
                self._t_rtx = t_pto
                self._rtx_mode = T_PTO
        else:
            # Nothing outstanding.
            if self._t_rtx is not None and self._rtx_mode != T_PERSIST:
                self._t_rtx = None
            pending = self._sndbuf.end > self._nxt
            if pending and self.snd_wnd <= 0:
                if self._t_rtx is None:
                    self._rtx_mode = T_PERSIST
                    rto = self._rtt.computed_rto * (1 << min(self._persist_backoff, 16))
                    self._t_rtx = now + min(rto, self.config.max_rto)
            elif self._rtx_mode == T_PERSIST:
                self._t_rtx = None
                self._persist_backoff = 0
        ka = self.config.keepalive
        if ka is not None:
            if st in (State.ESTABLISHED, State.CLOSE_WAIT) and self._nxt == self._una:
                if self._ka_probes == 0:
                    self._t_keep = self._last_rcv + ka.idle
                else:
                    self._t_keep = self._ka_last_probe + ka.interval
            else:
                self._t_keep = None

    @property
    def next_deadline(self) -> float | None:
        t = self._t_rtx
        for x in (self._t_reo, self._t_delack, self._t_keep, self._t_tw, self._t_sws):
            if x is not None and (t is None or x < t):
                t = x
        return t

    def on_timer(self, now: float) -> None:
        """Run every timer that has expired at ``now`` (safe to call early)."""
        if self._t_tw is not None and now >= self._t_tw:
            self._t_tw = None
            self._close(None)
            return
        if self.state is State.CLOSED:
            return
        if self._t_delack is not None and now >= self._t_delack:
            self._t_delack = None
            self._ack_now = True
        if self._t_reo is not None and now >= self._t_reo:
            self._t_reo = None
            self._rack_detect(now)
            self._after_loss_marking(now)
        if self._t_rtx is not None and now >= self._t_rtx:
            self._t_rtx = None
            mode = self._rtx_mode
            if self._una == 0:  # our SYN is not acknowledged yet
                self._syn_timeout(now)
            elif mode == T_PTO:
                self._tlp_fire(now)
            elif mode == T_PERSIST:
                self._persist_fire(now)
            else:
                self._rto_fire(now)
            if self._is_closed():
                return
        if self._t_keep is not None and now >= self._t_keep:
            self._t_keep = None
            self._keepalive_fire(now)
            if self._is_closed():
                return
        self._output(now)
        if self._t_sws is not None and self._t_sws <= now:
            self._t_sws = None  # nothing left to send after the override
        self._flush_events()

    def _is_closed(self) -> bool:
        return self.state is State.CLOSED

    def _syn_timeout(self, now: float) -> None:
        if self._syn_retries >= self.config.syn_retries:
            self._close("timeout")
            return
        self._syn_retries += 1
        self._syn_retransmitted = True
        self._rtt.backoff()
        self.retransmits += 1
        self.stats["syn_retransmits"] += 1
        self._send_syn(now)

    def _rto_fire(self, now: float) -> None:
        sb = self._sb
        if self._nxt <= self._una:
            return
        cfg = self.config
        ut = cfg.user_timeout
        # The window closed with data in flight: a retransmission the peer answered
        # (with a zero window) since the previous timeout was a window probe.
        zw_answered = self.snd_wnd == 0 and self._ack_rcvd_at >= self._rto_at
        self._rto_at = now
        if ut is not None:
            if now - self._ut_base >= ut:
                self._close("timeout")
                return
        elif zw_answered:
            self._zw_rtos += 1
            self.stats["rto_zero_window"] += 1
        elif self._rto_count - self._zw_rtos >= cfg.retries2:
            self._close("timeout")
            return
        if self._rto_count == cfg.retries1:
            self.stats["retries1_exceeded"] += 1
        self.stats["rto"] += 1
        # Save for a spurious-timeout undo (Eifel, RFC 3522/4015, with timestamps).
        if self._rto_count == 0 and self._ca != CA_LOSS:
            self._undo_state = self.cc.save()
            self._undo_tsval = self._tsval(now) if self.ts_ok else None
        self._rec_undo = None
        self._undo_ranges = []
        repeated = self._ca == CA_LOSS
        ss = self.cc.ssthresh
        self.cc.on_rto(now, sb.outstanding)
        if repeated:
            self.cc.ssthresh = ss
        self._rto_count += 1
        self._rtt.backoff()
        sb.mark_all_lost()
        self._reno_sacked = 0
        self._ca = CA_LOSS
        self._recovery_point = self._nxt
        self._reno_recover = self._nxt
        self._tlp_end = None
        self._dupacks = 0
        self._t_reo = None
        self._arm_rto(now)
        # Retransmit the head at once, whatever the window (RFC 6298 §5.4).
        i = sb.next_lost()
        if i >= 0:
            r = sb.segs[i]
            mss = self._data_mss()
            if r.end - r.start > mss:
                sb.split(i, r.start + mss)
            self._xmit(r.start, r.end, now)
            sb.mark_retransmitted(i, now)
            self.retransmits += 1
            self.stats["retransmits"] += 1
        # F-RTO (RFC 5682) where timestamps cannot tell a spurious timeout apart.
        self._frto = 1 if not repeated and not self.ts_ok and self._undo_state else 0

    def _tlp_fire(self, now: float) -> None:
        """RFC 8985 §7.3: send a probe: new data if possible, else the last segment."""
        sb = self._sb
        if self._nxt <= self._una:
            return
        self.stats["tlp"] += 1
        buf = self._sndbuf
        nxt = self._nxt
        wnd_room = self._una + self.snd_wnd - nxt
        avail = buf.end - nxt
        if avail > 0 and wnd_room > 0:
            n = min(avail, self._data_mss(), wnd_room)
            end = nxt + n
            if self._fin_queued and not self._fin_sent and end == buf.end:
                end += 1
                self._fin_sent = True
            self._xmit(nxt, end, now)
            sb.add(nxt, end, now)
            self._nxt = end
            self._tlp_retrans = False
        else:
            i = len(sb.segs) - 1
            r = sb.segs[i]
            if r.flags & 1:  # SACKED: nothing sensible to probe with
                self._arm_rto(now)
                return
            mss = self._data_mss()
            if r.end - r.start > mss:
                sb.split(i, r.end - mss)
                i += 1
                r = sb.segs[i]
            self._xmit(r.start, r.end, now)
            r.xmit = now
            r.flags |= EVER_RETRANS
            self.retransmits += 1
            self.stats["retransmits"] += 1
            self._tlp_retrans = True
        self._tlp_end = self._nxt
        self._arm_rto(now)

    def _persist_fire(self, now: float) -> None:
        """Zero-window probe (RFC 9293 §3.8.6.1): a segment with SEQ = SND.UNA - 1,
        which the peer must answer with an ACK carrying its window."""
        if self._nxt > self._una or self.snd_wnd > 0:
            return
        self.stats["persist_probes"] += 1
        self._persist_unanswered += 1
        if self._persist_unanswered > self.config.retries2 + 1:
            self._close("timeout")
            return
        self._emit((self.iss + self._una - 1) & MASK, ACK, b"", now)
        self._persist_backoff += 1
        self._rtx_mode = T_PERSIST
        rto = self._rtt.computed_rto * (1 << min(self._persist_backoff, 16))
        self._t_rtx = now + min(rto, self.config.max_rto)

    def _keepalive_fire(self, now: float) -> None:
        ka = self.config.keepalive
        if ka is None or self.state not in (State.ESTABLISHED, State.CLOSE_WAIT):
            return
        if self._nxt != self._una:
            return
        if self._ka_probes >= ka.probes:
            self._close("timeout")
            return
        self._ka_probes += 1
        self._ka_last_probe = now
        self.stats["keepalive_probes"] += 1
        self._emit((self.iss + self._nxt - 1) & MASK, ACK, b"", now)

    # -- state changes -------------------------------------------------------------------
    def _close(self, error: str | None) -> None:
        """Enter CLOSED, reporting ``error`` first if given."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        if error is not None:
            self._events.append(Event(EventKind.ERROR, error))
        self._events.append(_EV_CLOSED)
        self._t_rtx = self._t_reo = self._t_delack = self._t_keep = self._t_tw = None
        self._t_sws = None
        self._ack_now = False

    def _enter_time_wait(self, now: float) -> None:
        self.state = State.TIME_WAIT
        self._t_rtx = self._t_reo = self._t_keep = self._t_sws = None
        self._t_tw = now + self.config.time_wait_duration

    def _established(self, now: float) -> None:
        """The handshake completed (SYN-SENT or SYN-RECEIVED -> ESTABLISHED)."""
        self.state = State.ESTABLISHED
        self._events.append(_EV_CONNECTED)
        self._t_rtx = None
        self._rtx_mode = T_RTO
        if self._syn_retransmitted:
            self._rtt.use_syn_fallback()
            # RFC 6928 §2 / RFC 5681: a lost SYN means an initial window of 1 segment.
            self.cc.cwnd = min(self.cc.cwnd, self.mss)
        self._rtt.clear_backoff()
        self._want_writable = True
        if self._fin_queued:
            self.state = State.FIN_WAIT_1

    # -- input ---------------------------------------------------------------------------
    def on_segment(self, seg: TCPSegment, now: float) -> None:
        """A segment for this connection arrived (checksum already verified)."""
        self._last_rcv = now
        try:
            st = self.state
            if st is State.SYN_SENT:
                self._on_syn_sent(seg, now)
            elif st is State.CLOSED or st is State.LISTEN:
                self._on_closed(seg, now)
            else:
                self._on_other(seg, now)
        except Exception:  # pragma: no cover - last line of defence, never reached in tests
            # A bug must not take the stack down: drop the segment and count it.
            self.stats["drop_internal_error"] += 1
        if self.state is not State.CLOSED:
            self._output(now)
        self._flush_events()

    def _flush_events(self) -> None:
        if self._want_writable:
            self._want_writable = False
            if not self._writable_ev and self._sndbuf.space > 0:
                self._writable_ev = True
                self._events.append(_EV_WRITABLE)

    def _on_closed(self, seg: TCPSegment, now: float) -> None:
        """RFC 9293 §3.10.7.1: answer anything but a RST with a RST."""
        self.stats["drop_closed"] += 1
        if seg.rst:
            return
        if seg.has_ack:
            self._send_rst(seg.ack, now)
        else:
            self._send_rst(0, now, (seg.seq + seg.seg_len) & MASK)

    def _on_syn_sent(self, seg: TCPSegment, now: float) -> None:
        """RFC 9293 §3.10.7.3."""
        flags = seg.flags
        ack_ok = False
        if flags & ACK:
            # first: SEG.ACK =< ISS or > SND.NXT is unacceptable
            if not (seq_gt(seg.ack, self.iss) and not seq_gt(seg.ack, self.snd_nxt)):
                self.stats["drop_bad_ack"] += 1
                if not flags & RST:
                    self._send_rst(seg.ack, now)
                return
            ack_ok = True
        if flags & RST:
            if ack_ok:
                self._close("refused")
            else:
                self.stats["drop_rst_no_ack"] += 1
            return
        if not flags & SYN:
            self.stats["drop_syn_sent_no_syn"] += 1
            return
        self._take_peer_syn(seg, now)
        self._rb.nxt = 1
        if ack_ok:
            self._una = 1
            self._sb = Scoreboard(1)
            if not self._syn_retransmitted:
                self._rtt.sample(now - self._created, now)
            elif self.ts_ok and seg.timestamps is not None and seg.timestamps[1]:
                # The echoed timestamp tells which SYN is answered (RFC 7323 §4).
                rtt = ((self._tsval(now) - seg.timestamps[1]) & MASK) / 1000.0
                if rtt < 60:
                    self._rtt.sample(rtt, now)
            self._wl2 = seg.ack
            self._established(now)
            self._ack_now = True
            # Data or FIN on the SYN-ACK: continue at the sixth step, the text
            # trimmed to our receive window (RFC 9293 §3.10.7.4 first).
            if seg.payload or flags & FIN:
                text, fin = self._syn_text_in_window(seg)
                self._text_and_fin(1, text, fin, now)
        else:
            # Simultaneous open (RFC 9293 §3.10.7.3 fourth): send SYN,ACK.
            self._queue_syn_text(seg)
            self.state = State.SYN_RECEIVED
            self._send_syn(now)

    def _on_other(self, seg: TCPSegment, now: float) -> None:
        """RFC 9293 §3.10.7.4, states SYN-RECEIVED through TIME-WAIT."""
        st = self.state
        flags = seg.flags
        rb = self._rb
        stats = self.stats
        ts = seg.timestamps if self.ts_ok else None
        if ts is None and self.ts_ok and not flags & RST:
            # RFC 7323 §3.2: once negotiated, a segment without TSopt is dropped.
            stats["drop_no_timestamp"] += 1
            return
        # -- PAWS (RFC 7323 §5.3) ------------------------------------------------------
        if ts is not None and not flags & RST and seq_lt(ts[0], self.ts_recent):
            if now - self._ts_recent_age <= PAWS_IDLE:
                if self._disordered_ack(seg, ts[0]):
                    # A duplicate ACK overtaken by a later one (Linux's "disordered
                    # ACK"): harmless, and its SACK blocks are worth keeping.
                    stats["paws_disordered_ack"] += 1
                else:
                    stats["drop_paws"] += 1
                    self._ack_now = True
                    return
            else:
                # RFC 7323 §5.5: after 24 days of idleness TS.Recent is invalid.
                self.ts_recent = ts[0]
                self._ts_recent_age = now
        # -- SYN in a synchronized state (RFC 5961 §4; RFC 9293 fourth) -----------------
        if flags & SYN and not flags & RST:
            if self._una == 0 and seg.seq == self.irs:
                if not flags & ACK:
                    stats["syn_retransmit_received"] += 1
                    self._send_syn(now)
                    return
                if seg.ack == self.snd_nxt and not self.passive:
                    # Simultaneous open: the peer's SYN-ACK acknowledges our SYN; its
                    # SYN was already taken, so process the rest as a plain ACK.
                    self._on_other(
                        attrs.evolve(seg, seq=(seg.seq + 1) & MASK, flags=flags & ~SYN), now
                    )
                    self._ack_now = True  # confirm, as for a duplicate SYN (Linux does too)
                    return
            if self._una == 0 and self.passive:
                # RFC 9293 §3.10.7.4 fourth, SYN-RECEIVED: a passively opened connection
                # returns to LISTEN (the TCB goes, silently) on a new SYN in the window;
                # the peer's next SYN then opens afresh. Outside the window it is
                # treated as in the synchronized states (challenge ACK).
                off = seq_diff(seg.seq, self.rcv_nxt)
                if 0 <= off < self._rcv_adv - rb.nxt:
                    stats["syn_received_new_syn"] += 1
                    self._close(None)
                    return
            stats["drop_syn_in_window"] += 1
            self._challenge_ack(now)
            return
        # -- first: sequence number check --------------------------------------------
        nxt = rb.nxt
        start = nxt + seq_diff(seg.seq, (self.irs + nxt) & MASK)
        payload = seg.payload
        plen = len(payload)
        fin = bool(flags & FIN)
        seg_len = plen + fin
        wnd = self._rcv_adv - nxt
        if wnd < 0:
            wnd = 0
        if seg_len == 0:
            ok = start == nxt if wnd == 0 else nxt <= start < nxt + wnd
        elif wnd == 0:
            ok = start == nxt  # zero window: still process its ACK/RST, drop the text
        else:
            end1 = start + seg_len - 1
            ok = nxt <= start < nxt + wnd or nxt <= end1 < nxt + wnd
            if not ok and start < nxt <= end1:
                ok = True  # covers the window's left edge
        if not ok:
            if flags & RST:
                stats["drop_rst_out_of_window"] += 1
                return
            stats["drop_unacceptable"] += 1
            if plen and start + plen <= nxt and self.sack_ok:
                rb.dsack = (start, start + plen)
            if st is State.TIME_WAIT and fin and start + seg_len == nxt:
                # A retransmission of the peer's FIN: ACK it, restart 2*MSL.
                self._t_tw = now + self.config.time_wait_duration
            self._ack_now = True
            return
        seg_start = start
        # Trim to the window.
        if start < nxt:
            cut = nxt - start
            if cut >= plen:
                payload = b""
                # the FIN (if any) is at start+plen >= nxt: keep it
            else:
                if self.sack_ok:
                    rb.dsack = (start, nxt)
                payload = payload[cut:]
            start = nxt
            plen = len(payload)
        right = nxt + wnd
        if start + plen > right:
            payload = payload[: max(0, right - start)]
            plen = len(payload)
            fin = False
            stats["trimmed_beyond_window"] += 1
            self._ack_now = True  # RFC 9293 §3.10.7.4: unacceptable data gets an ACK
        # TS.Recent update (RFC 7323 §4.3).
        if ts is not None and seq_ge(ts[0], self.ts_recent) and seg_start <= self._last_ack_sent:
            self.ts_recent = ts[0]
            self._ts_recent_age = now
        self._last_rcv = now
        self._ka_probes = 0
        # -- second: RST (RFC 9293 + RFC 5961 §3) -------------------------------------
        if flags & RST:
            if seg_start != nxt:
                self._challenge_ack(now)
                return
            stats["resets_received"] += 1
            if self._una == 0:  # SYN-RECEIVED (or FIN-WAIT-1 reached from it)
                self._close(None if self.passive else "refused")
            elif st in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
                self._close(None)
            else:
                self._close("reset")
            return
        # -- fifth: ACK ----------------------------------------------------------------
        if not flags & ACK:
            stats["drop_no_ack"] += 1
            return
        if self._una == 0:
            # SYN-RECEIVED: the ACK of our SYN completes the handshake.
            if seq_gt(seg.ack, self.iss) and not seq_gt(seg.ack, self.snd_nxt):
                self.snd_wnd = seg.window << self.snd_shift
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self._wl1 = seg.seq
                self._wl2 = seg.ack
                self._una = 1
                if not self._syn_retransmitted:
                    self._rtt.sample(now - self._created, now)
                self._established(now)
                if self._syn_queued or self._syn_fin:
                    self._deliver_syn_text(now)
                st = self.state
            else:
                stats["drop_bad_ack"] += 1
                self._send_rst(seg.ack, now)
                return
        if not self._process_ack(seg, now):
            return
        st = self.state
        if st is State.CLOSED:
            return
        # -- sixth: URG (RFC 9293 §3.10.7.4; RFC 6093 pointer) -------------------------
        if flags & URG and seg.urgent and st in _RECEIVING:
            # (A zero pointer marks no octet as urgent: ignored.)
            up = seg_start + seg.urgent
            if up > self._rcv_up:
                # MUST-32: tell the user each time the urgent pointer advances; the
                # urgent data itself stays in line (MUST-30/31).
                self._rcv_up = up
                stats["urgent_received"] += 1
                self._events.append(_EV_URGENT)
        # -- seventh: text; eighth: FIN ----------------------------------------------
        if plen or fin:
            self._text_and_fin(start, payload, fin, now)

    def _disordered_ack(self, seg: TCPSegment, tsval: int) -> bool:
        """A pure duplicate ACK (no data, same SEQ/ACK/window as now) whose TSval is
        only slightly older than TS.Recent: reordered, not a wrapped old segment."""
        return (
            seg.flags == ACK
            and not seg.payload
            and seg.seq == self.rcv_nxt
            and seg.ack == self.snd_una
            and (seg.window << self.snd_shift) == self.snd_wnd
            and ((self.ts_recent - tsval) & MASK) <= self._rtt.rto * 1000
        )

    def _text_and_fin(self, start: int, payload: bytes, fin: bool, now: float) -> None:
        st = self.state
        rb = self._rb
        plen = len(payload)
        if plen:
            if st in _RECEIVING:
                before = rb.nxt
                res = rb.add(start, payload)
                if res == ADD_INORDER:
                    got = rb.nxt - before
                    self.bytes_received += got
                    if plen > self._rcv_mss:
                        self._rcv_mss = min(plen, self.our_mss)
                    self._rcv_unacked += got
                    if self._rcv_unacked >= 2 * self._rcv_mss or self.config.delayed_ack is None:
                        self._ack_now = True
                    elif self._t_delack is None:
                        self._t_delack = now + self.config.delayed_ack
                elif res in (ADD_OOO, ADD_DUP, ADD_DROP):
                    self._ack_now = True
                    if res == ADD_DUP:
                        self.stats["dup_data"] += 1
                else:  # ADD_FILLED
                    self.bytes_received += rb.nxt - before
                    self._ack_now = True
                if rb.nxt > before and not self._readable_ev:
                    self._readable_ev = True
                    self._events.append(_EV_READABLE)
            else:
                self.stats["drop_data_after_fin"] += 1
                self._ack_now = True
        if fin:
            if st in (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK):
                self._ack_now = True  # retransmitted FIN
                return
            if st is State.TIME_WAIT:
                self._ack_now = True
                self._t_tw = now + self.config.time_wait_duration
                return
            self._fin_rcvd_off = start + plen
            self._ack_now = True
        if self._fin_rcvd_off >= 0 and not self._fin_rcvd and rb.nxt == self._fin_rcvd_off:
            self._process_fin(now)

    def _process_fin(self, now: float) -> None:
        """RFC 9293 §3.10.7.4 eighth: the FIN is next in sequence."""
        rb = self._rb
        self._fin_rcvd = True
        rb.nxt += 1
        self._ack_now = True
        self._events.append(_EV_EOF)
        st = self.state
        if st is State.ESTABLISHED or st is State.SYN_RECEIVED:
            self.state = State.CLOSE_WAIT
        elif st is State.FIN_WAIT_1:
            if self._fin_sent and self._una > self._fin_off:
                self._enter_time_wait(now)
            else:
                self.state = State.CLOSING
        elif st is State.FIN_WAIT_2:
            self._enter_time_wait(now)

    def _process_ack(self, seg: TCPSegment, now: float) -> bool:
        """RFC 9293 §3.10.7.4 fifth, ESTABLISHED and later. Returns False if the
        segment is to be dropped."""
        una = self._una
        nxt = self._nxt
        ack = una + seq_diff(seg.ack, (self.iss + una) & MASK)
        stats = self.stats
        if ack > nxt:
            stats["drop_ack_unsent"] += 1
            self._ack_now = True
            return False
        if ack < una - self.max_snd_wnd:
            # RFC 5961 §5.2: far below SND.UNA: drop with a (challenge) ACK.
            stats["drop_old_ack"] += 1
            self._challenge_ack(now)
            return False
        st = self.state
        snd_shift = self.snd_shift
        window = seg.window << snd_shift
        window_changed = False
        if ack >= una:
            wl1 = self._wl1
            if seq_lt(wl1, seg.seq) or (wl1 == seg.seq and seq_ge(seg.ack, self._wl2)):
                if window != self.snd_wnd:
                    window_changed = True
                    if window == 0:
                        stats["zero_window_seen"] += 1
                    else:
                        self._persist_backoff = 0
                    if window > self.snd_wnd:
                        self._want_writable = True
                    self.snd_wnd = window
                    if window > self.max_snd_wnd:
                        self.max_snd_wnd = window
                self._wl1 = seg.seq
                self._wl2 = seg.ack
        self._ack_rcvd_at = now
        if self._rtx_mode == T_PERSIST:
            self._persist_unanswered = 0
        if st is State.TIME_WAIT:
            return True
        sb = self._sb
        acked = ack - una
        sacked_before = sb.sacked
        rtt: float | None = None
        if acked > 0:
            last, newest = sb.on_ack(ack)
            self._una = ack
            # RTT: Karn's algorithm; timestamps make retransmissions unambiguous.
            if last is not None and not last.flags & EVER_RETRANS:
                rtt = now - last.xmit
            elif self.ts_ok and seg.timestamps is not None and seg.timestamps[1]:
                r = ((self._tsval(now) - seg.timestamps[1]) & MASK) / 1000.0
                if r < 60.0:
                    rtt = r
            if rtt is not None:
                self._rtt.sample(rtt, now)
            if newest is not None and self.sack_ok and self.config.rack:
                self._rack.update(newest, now, self._rtt.min_rtt)
            # Spurious RTO detection (Eifel, RFC 3522): the first ACK after a timeout
            # echoes a timestamp older than the retransmission.
            if (
                self._ca == CA_LOSS
                and self._rto_count == 1
                and self._undo_tsval is not None
                and seg.timestamps is not None
                and seq_lt(seg.timestamps[1], self._undo_tsval)
                and self._undo_state is not None
            ):
                self.cc.restore(self._undo_state)
                self._undo_state = None
                self._ca = CA_OPEN
                sb.clear_marks()
                stats["spurious_rto_undo"] += 1
            self._rto_count = 0
            self._zw_rtos = 0
            self._ut_base = now
            self._rtt.clear_backoff()
            self._persist_backoff = 0
            data_acked = self._sndbuf.drop_to(ack)
            self.bytes_acked += acked
            if data_acked:
                self._want_writable = True
            self._dupacks = 0
            if self._reno_sacked:
                # Cumulatively ACKed bytes include those the dupACKs stood for.
                self._reno_sacked = max(0, self._reno_sacked - acked)
                if self._ca != CA_RECOVERY:
                    self._reno_sacked = 0
            # RFC 6298 §5.3: restart the timer for the remaining data.
            if ack < nxt:
                self._arm_rto(now)
            else:
                self._t_rtx = None
        if self._tlp_end is not None and ack >= self._tlp_end:
            if self._tlp_retrans and self._ca == CA_OPEN and not seg.sack_blocks:
                # RFC 8985 §7.4: the probe repaired a loss: reduce the window once.
                self.cc.on_congestion_event(now, self._flight_size())
                self.cc.on_recovery_exit(now)
                stats["tlp_recovery"] += 1
            self._tlp_end = None
        # -- SACK information ----------------------------------------------------------
        if self.sack_ok and seg.sack_blocks:
            self._process_sack(seg, ack, now)
        delivered = acked + (sb.sacked - sacked_before)
        # -- loss detection ------------------------------------------------------------
        if self.sack_ok:
            if self.config.rack:
                if sb.sacked or sb.retrans:
                    self._rack_detect(now)
                else:
                    self._t_reo = None
            elif sb.sacked:
                sb.mark_lost_dupthresh(self.mss, DUPTHRESH)
        else:
            is_dup = (
                acked == 0
                and nxt > una
                and not seg.payload
                and not seg.flags & (SYN | FIN)
                and not window_changed
            )
            if is_dup:
                self._dupacks += 1
                stats["dupacks"] += 1
                room = sb.outstanding - sb.lost - self._reno_sacked
                d = self.mss if room >= self.mss else max(room, 0)
                self._reno_sacked += d
                delivered += d
                if self._ca == CA_OPEN and self._dupacks == DUPTHRESH:
                    # RFC 6582 §3.2 step 2: only if the ACK covers more than "recover".
                    if ack >= self._reno_recover:
                        if sb.segs:
                            self._mark_head_lost()
                    else:
                        stats["dupacks_ignored_recover"] += 1
        # -- F-RTO (RFC 5682 §2) ------------------------------------------------------
        frto = self._frto
        if frto and self._ca == CA_LOSS:
            if frto == 1:
                can_send = self._sndbuf.end > nxt and una + self.snd_wnd > nxt
                if acked > 0 and ack < self._recovery_point and can_send:
                    self._frto = 2  # step 2b: probe with new data
                else:
                    self._frto = 0  # step 2a: conventional recovery
            elif frto == 3:
                self._frto = 0
                if acked > 0 and self._undo_state is not None:
                    # Step 3b: the original transmissions were acknowledged: the
                    # timeout was spurious; undo the window reduction.
                    self.cc.restore(self._undo_state)
                    self._undo_state = None
                    self._ca = CA_OPEN
                    sb.clear_marks()
                    stats["frto_spurious_rto"] += 1
        elif frto:
            self._frto = 0
        # -- recovery state machine ----------------------------------------------------
        ca = self._ca
        if ca == CA_RECOVERY:
            if ack >= self._recovery_point:
                self._ca = CA_OPEN
                acked = 0  # no window growth on the ACK that ends recovery
                self._reno_sacked = 0
                if self._rec_undo is not None and self._undo_retrans <= 0:
                    # Every retransmission was D-SACKed: the originals all arrived,
                    # nothing was lost; undo the window reduction (RFC 3708 §3).
                    self.cc.restore(self._rec_undo)
                    stats["spurious_recovery_undo"] += 1
                else:
                    self.cc.on_recovery_exit(now)
                self._rec_undo = None
                self._undo_ranges = []
                self._rack.on_recovery_exit()
                stats["recovery_exits"] += 1
            else:
                if not self.sack_ok and acked > 0 and sb.segs:
                    # RFC 6582 §3.2 step 5: partial ACK: retransmit the next hole.
                    self._mark_head_lost()
                self._prr_update(delivered)
        elif ca == CA_LOSS:
            if ack >= self._recovery_point:
                self._ca = CA_OPEN
            elif acked > 0:
                self.cc.on_ack(acked, now, rtt, ack, nxt, self._pipe())
        if self._ca == CA_OPEN:
            if sb.lost > 0:
                self._enter_recovery(now, delivered)
            elif acked > 0:
                self.cc.on_ack(delivered, now, rtt, ack, nxt, self._pipe())
        # -- state transitions on our FIN being acknowledged --------------------------
        if self._fin_sent and ack > self._fin_off:
            if st is State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
                self._events.append(_EV_FIN_ACKED)
                self._t_rtx = None
            elif st is State.CLOSING:
                self._events.append(_EV_FIN_ACKED)
                self._enter_time_wait(now)
            elif st is State.LAST_ACK:
                self._events.append(_EV_FIN_ACKED)
                self._close(None)
                return False
        return True

    def _process_sack(self, seg: TCPSegment, ack: int, now: float) -> None:
        sb = self._sb
        una = self._una
        nxt = self._nxt
        iss = self.iss
        blocks: list[tuple[int, int]] = []
        for i, (ls, rs) in enumerate(seg.sack_blocks):
            s = una + seq_diff(ls, (iss + una) & MASK)
            e = s + ((rs - ls) & MASK)
            if e <= s or e > nxt:
                self.stats["sack_blocks_invalid"] += 1
                continue
            if s < una or (i == 0 and e <= ack):
                # D-SACK (RFC 2883): a duplicate was received.
                self.stats["dsack_received"] += 1
                if self.config.rack:
                    self._rack.on_dsack(una, nxt)
                if self._rec_undo is not None and s >= self._undo_marker and e <= una:
                    self._dsack_undo(s, e)
                continue
            blocks.append((s, e))
        if not blocks:
            return
        newest, reordered, _ = sb.on_sack(blocks)
        if reordered and not self._rack.reord:
            self._rack.reord = True
            self.stats["reordering_seen"] += 1
        if newest is not None and self.config.rack:
            self._rack.update(newest, now, self._rtt.min_rtt)

    def _dsack_undo(self, s: int, e: int) -> None:
        """The peer D-SACKed ``[s, e)`` (below SND.UNA): it received it twice. Only the
        retransmissions of this recovery it covers prove unnecessary, each once
        (Linux decrements undo_retrans only for D-SACKed retransmitted segments): a
        duplicate the network made of an original, or a repeated D-SACK, says nothing
        about whether a retransmission repaired a real loss."""
        ranges = self._undo_ranges
        seen: set[tuple[int, int]] = set()
        keep: list[tuple[int, int]] = []
        for rng in ranges:
            if s <= rng[0] and rng[1] <= e and rng not in seen:
                # This retransmission turned out unnecessary.
                seen.add(rng)
                self._undo_retrans -= 1
            else:
                keep.append(rng)
        if seen:
            self._undo_ranges = keep

    def _mark_head_lost(self) -> None:
        """Without SACK (RFC 6582): the first MSS at SND.UNA is lost (a TSO
        super-segment's record is cut there, so only that much is resent)."""
        sb = self._sb
        r = sb.segs[0]
        mss = self._data_mss()
        if r.end - r.start > mss:
            sb.split(0, r.start + mss)
        sb.mark_lost(0)

    def _rack_detect(self, now: float) -> None:
        sb = self._sb
        rtt = self._rtt
        reo = self._rack.reo_wnd(
            rtt.min_rtt,
            rtt.srtt,
            self._ca != CA_OPEN,
            sb.sacked >= DUPTHRESH * self.mss,
        )
        marked, timeout = self._rack.detect_loss(sb, now, reo)
        if marked:
            self.stats["rack_marked_lost"] += 1
        self._t_reo = now + timeout if timeout > 0 else None

    def _after_loss_marking(self, now: float) -> None:
        if self._ca == CA_OPEN and self._sb.lost > 0:
            self._enter_recovery(now, 0)

    def _enter_recovery(self, now: float, delivered: int) -> None:
        """Start fast recovery (RFC 6675 §5 / RFC 6582 §3.2) with PRR (RFC 6937)."""
        self.stats["fast_recovery"] += 1
        self._undo_state = None
        self._rec_undo = self.cc.save()
        self._undo_marker = self._una
        self._undo_retrans = 0
        self._undo_ranges = []
        # RFC 5681 eq. (4) / RFC 6675 §5: FlightSize, bounded by cwnd (see there).
        self.cc.on_congestion_event(now, self._flight_size())
        self._ca = CA_RECOVERY
        self._recovery_point = self._nxt
        self._reno_recover = self._nxt
        self._prr.start(self._nxt - self._una)
        self._tlp_end = None
        self._prr_update(delivered, entering=True)

    def _prr_update(self, delivered: int, entering: bool = False) -> None:
        """RFC 6937: the window for this ACK is what is in flight plus sndcnt."""
        pipe = self._pipe()
        sndcnt = self._prr.on_ack(delivered, pipe, self.cc.ssthresh, self.mss, first=entering)
        self.cc.cwnd = pipe + sndcnt

    # -- path MTU ------------------------------------------------------------------------
    def set_path_mtu(self, mtu: int, now: float) -> None:
        """The path MTU dropped to ``mtu`` (from ICMPv6 Packet Too Big): lower the
        effective send MSS and retransmit what no longer fits. Never raises it."""
        if mtu < 1280:
            self.stats["pmtu_ignored"] += 1
            return
        new = mtu - 60
        if new >= self._path_mss:
            return
        self.stats["pmtu_reductions"] += 1
        self._pmtu_mss = new
        self._path_mss = new
        self._update_mss()
        sb = self._sb
        mss = self.mss
        if self.state in _SENDING and sb.segs and any(r.end - r.start > mss for r in sb.segs):
            # Re-send everything in flight in segments that fit, without treating it as
            # congestion (RFC 8201 §4 / RFC 4821 spirit): loss state, no cwnd change.
            sb.mark_all_lost()
            self._reno_sacked = 0
            if self._ca != CA_LOSS:
                self._ca = CA_LOSS
                self._recovery_point = self._nxt
            self._t_reo = None
            self._tlp_end = None
            self._output(now)
        self._flush_events()

    def time_wait_accepts_syn(self, seg: TCPSegment) -> bool:
        """RFC 6191: may a new SYN reuse this TIME-WAIT connection's 4-tuple? True if
        its timestamp (or, without timestamps, its sequence number) shows it is newer;
        the runtime then closes this connection and accepts the SYN afresh."""
        if self.state is not State.TIME_WAIT or not seg.syn or seg.rst or seg.has_ack:
            return False
        if self.ts_ok and seg.timestamps is not None:
            return seq_gt(seg.timestamps[0], self.ts_recent)
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
        if self._fin_queued or self.state not in (
            State.SYN_SENT,
            State.SYN_RECEIVED,
            State.ESTABLISHED,
            State.CLOSE_WAIT,
        ):
            return 0
        n = self._sndbuf.append(data)
        if n and (nodelay or urgent):
            self._push_end = self._sndbuf.end
            if urgent:
                self._snd_up = self._sndbuf.end
        if n and self.state in _SENDING:
            self._output(now)
        if self._sndbuf.space == 0:
            self._writable_ev = False
        self._flush_events()
        return n

    @property
    def send_space(self) -> int:
        """Bytes :meth:`send` accepts now (free send-buffer space)."""
        if self._fin_queued:
            return 0
        return self._sndbuf.space

    @property
    def send_queue_end(self) -> int:
        """Sequence number just past the last byte queued so far; once
        ``snd_una`` reaches it, everything written is acknowledged."""
        return (self.iss + self._sndbuf.end) & MASK

    @property
    def send_queued(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self._sndbuf)

    def receive(self, max_bytes: int, now: float) -> bytes:
        """Take up to ``max_bytes`` of in-order received data (b"" if none); may
        queue a window update."""
        rb = self._rb
        data = rb.read(max_bytes)
        if not rb.readable:
            self._readable_ev = False
        if data and self.state in _RECEIVING:
            # Window update when the right edge would move substantially.
            cap = self._rcv_cap
            adv_wnd = self._rcv_adv - rb.nxt
            right = rb.nxt + min(cap - rb.held, 0xFFFF << self.rcv_shift)
            if adv_wnd < (cap >> 1) and right - self._rcv_adv >= min(cap >> 1, 2 * self.our_mss):
                self._ack_now = True
                self.stats["window_updates"] += 1
                self._output(now)
        return data

    @property
    def readable(self) -> int:
        """Bytes of in-order data waiting for :meth:`receive`."""
        return self._rb.readable

    @property
    def urgent_pending(self) -> int:
        """RFC 9293 §3.8.5 (MUST-33): how many bytes of urgent data the user has yet
        to read (received or not), 0 outside urgent mode. The data is delivered in
        line by :meth:`receive`; an ``URGENT`` event says the pointer advanced."""
        rb = self._rb
        read = rb.nxt - rb.readable - (1 if self._fin_rcvd else 0)
        up = self._rcv_up - read
        return up if up > 0 else 0

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it was taken."""
        return self._fin_rcvd and self._rb.readable == 0

    def shutdown(self, now: float) -> None:
        """CLOSE: send FIN after the queued data (half-close)."""
        st = self.state
        if self._fin_queued:
            return
        if st is State.SYN_SENT:
            self._close(None)
            return
        if st not in (State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT):
            return
        self._fin_queued = True
        self._fin_off = self._sndbuf.end
        self._push_end = self._fin_off
        if st is State.ESTABLISHED or (st is State.SYN_RECEIVED and not len(self._sndbuf)):
            # RFC 9293 §3.10.4: in SYN-RECEIVED with nothing queued, send the FIN now.
            self.state = State.FIN_WAIT_1
        elif st is State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        self._output(now)
        self._flush_events()

    def abort(self, now: float) -> None:
        """ABORT: send RST (if synchronized) and go to CLOSED."""
        st = self.state
        if st is State.CLOSED:
            return
        if (st in _SYNCHRONIZED or st is State.SYN_RECEIVED) and st is not State.TIME_WAIT:
            self._send_rst(self.snd_nxt, now)
        self._close("aborted")

    # -- output --------------------------------------------------------------------------
    def take_segments(self) -> list[TCPSegment]:
        out = self._out
        if out:
            self._out = []
        return out

    def take_events(self) -> list[Event]:
        ev = self._events
        if ev:
            self._events = []
        self._readable_ev = False
        self._writable_ev = False
        return ev

    def info(self) -> dict[str, object]:
        """Live state for ``Flow.info()``: state, srtt, rttvar, rto, cwnd, ssthresh,
        mss, snd_wnd, rcv_wnd, retransmits, bytes_acked, bytes_received, sack,
        timestamps, wscale (send/receive shifts), rcv_ooo (out-of-order bytes held),
        rcv_held (bytes counted against ``receive_buffer``, out-of-order overhead
        included)."""
        rtt = self._rtt
        sb = self._sb
        return {
            "state": self.state.value,
            "srtt": rtt.srtt,
            "rttvar": rtt.rttvar,
            "rto": rtt.rto,
            "min_rtt": rtt.min_rtt,
            "cwnd": self.cc.cwnd,
            "ssthresh": self.cc.ssthresh,
            "mss": self.mss,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": self.rcv_wnd,
            "retransmits": self.retransmits,
            "bytes_acked": self.bytes_acked,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "sack": self.sack_ok,
            "timestamps": self.ts_ok,
            "wscale": (self.snd_shift, self.rcv_shift) if self.ws_ok else None,
            "in_flight": sb.pipe,
            "lost": sb.lost,
            "sacked": sb.sacked,
            "reordering": self._rack.reord,
            "ca_state": ("open", "recovery", "loss")[self._ca],
            "unacked": self._nxt - self._una,
            "rcv_ooo": self._rb.ooo_bytes,
            "rcv_held": self._rb.held,
        }
