"""Passive open for the direct stack: segments to a listening port, SYN cookies.

The link reader hands :meth:`PassiveOpen.listen_input` every segment for a port
with a listener that no connection (and no TIME-WAIT entry) owns, and it does what
RFC 9293 §3.10.7.2 says of the LISTEN state: a RST is ignored, an ACK is answered
with a RST, a SYN makes a new connection in SYN-RECEIVED, whose flow the stack
registers at once (its SYN-ACK leaves with the call). Before that the SYN passes the
stack's bounds: ``max_connections``, the listener's accept queue, and its half-open
connections (``config.syn_backlog``). Over the last, with ``config.syn_cookies`` the
SYN is answered statelessly (RFC 4987 §3.6): the SYN-ACK's ISN is a SYN cookie and
the window scale and SACK permission travel in its timestamp; the ACK that returns
the cookie within :data:`COOKIE_CHECK_WINDOW` seconds of the last cookie sent makes
the connection, already ESTABLISHED.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

from ..config import TCPConfig
from ..tcp.connection import DEFAULT_IPV6_MSS, Connection, choose_shift, shared_config
from ..tcp.isn import ISNGenerator, SynCookies, decode_ts_options, encode_ts_options
from ..tcp.memory import MemoryAccount
from ..tcp.seq import MASK, seq_gt
from ..wire.tcp import ACK, RST, SYN, TCPSegment
from .flow import DirectFlow
from .flowhost import FlowHost
from .ipoutput import IPv6Output
from .listener import DirectListener
from .timewait import FlowKey

__all__ = ["COOKIE_CHECK_WINDOW", "PassiveOpen", "accepted_config"]

#: Seconds after the last cookie we sent during which cookie ACKs are checked.
COOKIE_CHECK_WINDOW = 128.0


def accepted_config(config: TCPConfig, listener: DirectListener) -> TCPConfig:
    """The configuration of a connection accepted by ``listener``: with
    TCP_NODELAY from the start if the listener gives it to accepted flows
    (``accept()`` then has nothing to change)."""
    return shared_config(config, nagle=False) if listener.nodelay and config.nagle else config


class PassiveOpen:
    """The passive-open side of one direct stack (see the module docstring).

    ``host``: the stack, each new flow's :class:`~trio_tcp6.runtime.flowhost.FlowHost`
    (its ``config``, ``counters`` and ``address`` are read here too);
    ``register(flow)`` adds a new connection to the stack and starts it; ``flows``:
    the stack's live connections (counted, never changed here); ``output``: where
    cookie SYN-ACKs and RSTs go. ``isn`` and ``ts_offsets`` are the stack's RFC 6528
    generators of ISNs and timestamp offsets; ``cookies`` makes and checks its SYN
    cookies; ``link_mss``: the MSS a new connection offers; ``our_mss``: the one a
    cookie SYN-ACK announces; ``memory``: the stack's memory account.
    """

    def __init__(
        self,
        host: FlowHost[DirectFlow],
        register: Callable[[DirectFlow], None],
        flows: Mapping[FlowKey, DirectFlow],
        output: IPv6Output,
        *,
        isn: ISNGenerator,
        ts_offsets: ISNGenerator,
        cookies: SynCookies,
        link_mss: int,
        our_mss: int,
        memory: MemoryAccount,
    ) -> None:
        self._host = host
        self._register = register
        self._flows = flows
        self._output = output
        self._config = host.config
        self._counters = host.counters
        self._addr = host.address.packed
        self._isn = isn
        self._ts_offsets = ts_offsets
        self._cookies = cookies
        self._link_mss = link_mss
        self._our_mss = our_mss
        self._memory = memory
        self._last_cookie: float | None = None
        # The address of the last peer a passive open came from: the flows from one
        # peer share it (168 bytes with its int, for every accepted connection).
        self._last_peer: ipaddress.IPv6Address | None = None

    def _ts_offset(self, local_port: int, remote: bytes, remote_port: int) -> int:
        return self._ts_offsets.offset(self._addr, local_port, remote, remote_port)

    def _peer_address(self, src: bytes) -> ipaddress.IPv6Address:
        peer = self._last_peer
        if peer is None or peer.packed != src:
            peer = self._last_peer = ipaddress.IPv6Address(src)
        return peer

    def listen_input(
        self,
        listener: DirectListener,
        src: bytes,
        seg: TCPSegment,
        now: float,
        iss_floor: int | None = None,
    ) -> None:
        """RFC 9293 §3.10.7.2: a segment for a listening port. ``iss_floor``: the
        ISS must be above it (a SYN that took over a TIME-WAIT 4-tuple)."""
        c = self._counters
        cfg = self._config
        flags = seg.flags
        if flags & RST:
            c["drop_listen_rst"] += 1
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(listener, src, seg, now):
                return
            c["drop_listen_bad_ack"] += 1
            self._output.reset_for(src, seg, now)
            return
        if not flags & SYN:
            c["drop_listen_no_syn"] += 1
            return
        if seg.src_port == seg.dst_port and src == self._addr:
            # LAND: a spoofed SYN from our own address and port would make a
            # connection with itself that ACKs its own ACKs for ever.
            c["drop_land"] += 1
            return
        if len(self._flows) >= cfg.max_connections:
            c["drop_max_connections"] += 1
            return
        if listener.accept_queue_full:
            c["drop_accept_queue_full"] += 1
            return
        if listener.half_open >= cfg.syn_backlog:
            if cfg.syn_cookies:
                self._send_cookie(src, seg, now)
            else:
                c["drop_syn_backlog_full"] += 1
            return
        lport, rport = seg.dst_port, seg.src_port
        iss = self._isn.isn(self._addr, lport, src, rport, now)
        if iss_floor is not None and not seq_gt(iss, iss_floor):
            iss = iss_floor
        conn = Connection.accept(
            accepted_config(cfg, listener),
            seg,
            iss=iss,
            mss=self._link_mss,
            now=now,
            stats=c,
            ts_offset=self._ts_offset(lport, src, rport),
            memory=self._memory,
        )
        flow = DirectFlow(self._host, conn, self._peer_address(src), rport, lport, listener)
        listener.add_half_open(flow)
        c["passive_opens"] += 1
        self._register(flow)

    def _send_cookie(self, src: bytes, seg: TCPSegment, now: float) -> None:
        """A stateless SYN-ACK whose ISN is a SYN cookie (RFC 4987 §3.6)."""
        cfg = self._config
        lport, rport = seg.dst_port, seg.src_port
        peer_mss = seg.mss if seg.mss is not None else DEFAULT_IPV6_MSS
        cookie = self._cookies.make(
            self._addr, lport, src, rport, seg.seq, min(peer_mss, self._our_mss), now
        )
        wscale: int | None = None
        sack = False
        timestamps: tuple[int, int] | None = None
        if cfg.timestamps and seg.timestamps is not None:
            # Without timestamps there is nowhere to keep window scale and SACK.
            peer_ws = min(seg.wscale, 14) if cfg.window_scale and seg.wscale is not None else None
            sack = cfg.sack and seg.sack_permitted
            tsval = (int(now * 1000) + self._ts_offset(lport, src, rport)) & MASK
            timestamps = (encode_ts_options(tsval, peer_ws, sack), seg.timestamps[0])
            if peer_ws is not None:
                wscale = choose_shift(cfg.receive_buffer)
        syn_ack = TCPSegment.handshake(
            lport,
            rport,
            cookie,
            min(cfg.receive_buffer, 0xFFFF),
            ack=(seg.seq + 1) & MASK,
            mss=self._our_mss,
            wscale=wscale,
            sack_permitted=sack,
            timestamps=timestamps,
        )
        self._output.pending.append(self._output.packet(src, syn_ack))
        self._last_cookie = now
        c = self._counters
        c["syn_cookies_sent"] += 1
        c["segments_out"] += 1

    def _cookie_ack(
        self, listener: DirectListener, src: bytes, seg: TCPSegment, now: float
    ) -> bool:
        """The ACK completing a SYN-cookie handshake? Then the connection is made."""
        cfg = self._config
        if not cfg.syn_cookies or self._last_cookie is None:
            return False
        if now - self._last_cookie > COOKIE_CHECK_WINDOW:
            return False
        c = self._counters
        lport, rport = seg.dst_port, seg.src_port
        cookie = (seg.ack - 1) & MASK
        mss = self._cookies.check(self._addr, lport, src, rport, (seg.seq - 1) & MASK, cookie, now)
        if mss is None:
            c["syn_cookies_failed"] += 1
            return False
        c["syn_cookies_validated"] += 1
        if len(self._flows) >= cfg.max_connections or listener.accept_queue_full:
            c["drop_accept_queue_full"] += 1
            return True
        if seg.timestamps is not None:
            peer_ws, sack = decode_ts_options(seg.timestamps[1])
        else:
            peer_ws, sack = None, False
        conn = Connection.accept_cookie(
            accepted_config(cfg, listener),
            seg,
            iss=cookie,
            peer_mss=mss,
            peer_wscale=peer_ws,
            sack_permitted=sack,
            timestamps=seg.timestamps is not None,
            mss=self._link_mss,
            now=now,
            stats=c,
            ts_offset=self._ts_offset(lport, src, rport),
            memory=self._memory,
        )
        flow = DirectFlow(self._host, conn, self._peer_address(src), rport, lport, listener)
        c["passive_opens"] += 1
        self._register(flow)
        return True
