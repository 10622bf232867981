"""The TCP connection state machine (RFC 9293 §3.10), sans-I/O.

STUB — this file fixes the engine's API; the implementation is in progress.

A :class:`Connection` is driven only by method calls that carry the current time
(``now``, seconds as a float, from whatever clock the caller uses). After any call
the caller drains:

* :meth:`Connection.take_segments` — segments to transmit, in order;
* :meth:`Connection.take_events` — :class:`~trio_tcp6.tcp.events.Event` for the user;
* :attr:`Connection.next_deadline` — the earliest time at which :meth:`on_timer`
  must be called (None: no timer armed).

Nothing here raises for anything a peer sends: bad segments are dropped (with the
ACK RFC 9293 requires) and counted in the ``stats`` mapping passed in.
"""

from __future__ import annotations

from collections import Counter

from ..config import TCPConfig
from ..wire.tcp import TCPSegment
from .events import Event, State

__all__ = ["Connection"]


class Connection:
    """One TCP connection (its TCB).

    Create it with :meth:`connect` (active open) or :meth:`accept` (passive open from
    a SYN received on a listening port), or :meth:`accept_cookie` (an ACK that
    carried a valid SYN cookie).
    """

    state: State
    # RFC 9293 §3.3.1 send / receive sequence variables (all mod 2**32).
    iss: int
    snd_una: int
    snd_nxt: int
    snd_wnd: int
    irs: int
    rcv_nxt: int
    rcv_wnd: int

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
        raise NotImplementedError

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
        raise NotImplementedError

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
        raise NotImplementedError

    # -- input ---------------------------------------------------------------------
    def on_segment(self, seg: TCPSegment, now: float) -> None:
        """A segment for this connection arrived (checksum already verified)."""
        raise NotImplementedError

    def on_timer(self, now: float) -> None:
        """Run every timer that has expired at ``now`` (safe to call early)."""
        raise NotImplementedError

    def set_path_mtu(self, mtu: int, now: float) -> None:
        """The path MTU dropped to ``mtu`` (from ICMPv6 Packet Too Big): lower the
        effective send MSS and retransmit what no longer fits. Never raises it."""
        raise NotImplementedError

    # -- user calls (RFC 9293 §3.10.1-5) ---------------------------------------------
    def send(self, data: bytes | bytearray | memoryview, now: float, *, nodelay: bool = False) -> int:
        """Queue up to :attr:`send_space` bytes of ``data``; returns how many were
        taken. ``nodelay`` sends them without waiting for Nagle."""
        raise NotImplementedError

    @property
    def send_space(self) -> int:
        """Bytes :meth:`send` accepts now (free send-buffer space)."""
        raise NotImplementedError

    @property
    def send_queue_end(self) -> int:
        """Sequence number just past the last byte queued so far; once
        ``snd_una`` reaches it, everything written is acknowledged."""
        raise NotImplementedError

    def receive(self, max_bytes: int, now: float) -> bytes:
        """Take up to ``max_bytes`` of in-order received data (b"" if none); may
        queue a window update."""
        raise NotImplementedError

    @property
    def readable(self) -> int:
        """Bytes of in-order data waiting for :meth:`receive`."""
        raise NotImplementedError

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it was taken."""
        raise NotImplementedError

    def shutdown(self, now: float) -> None:
        """CLOSE: send FIN after the queued data (half-close)."""
        raise NotImplementedError

    def abort(self, now: float) -> None:
        """ABORT: send RST (if synchronized) and go to CLOSED."""
        raise NotImplementedError

    # -- output --------------------------------------------------------------------
    def take_segments(self) -> list[TCPSegment]:
        raise NotImplementedError

    def take_events(self) -> list[Event]:
        raise NotImplementedError

    @property
    def next_deadline(self) -> float | None:
        raise NotImplementedError

    def info(self) -> dict[str, object]:
        """Live state for ``Flow.info()``: state, srtt, rttvar, rto, cwnd, ssthresh,
        mss, snd_wnd, rcv_wnd, retransmits, bytes_acked, bytes_received, sack,
        timestamps, wscale (send/receive shifts)."""
        raise NotImplementedError
