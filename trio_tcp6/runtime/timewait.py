"""TIME-WAIT: connections that wait out 2*MSL, kept apart from the live ones.

When a connection of the direct stack enters TIME-WAIT (RFC 9293 §3.10.7.4: both
FINs are acknowledged and this side closed first) nothing remains for its user to
wait for: its flow hands the engine to the stack and its task pair ends. The stack
keeps the engine in a :class:`TimeWaitTable` until 2*MSL have passed, outside
``max_connections`` (Linux keeps ``inet_timewait_sock`` in the same way, bounded by
``tcp_max_tw_buckets``): a server that closes first, as HTTP/1.0 servers do, must not
lock new clients out with connections that are already over.

The table holds the engine's :class:`~trio_tcp6.tcp.connection.Connection` itself
and feeds it what arrives for its 4-tuple synchronously, from the stack's reader:
the engine already answers a retransmitted FIN with an ACK (and restarts 2*MSL),
closes on a RST at RCV.NXT and challenges one elsewhere in the window (RFC 5961),
rate-limits its answers to anything else, and tells whether a SYN may reuse the
4-tuple (RFC 6191, ``time_wait_accepts_syn``); the engine scripts pin all of it.
Its buffers are empty by then (every byte sent is acknowledged and freed; the
receive buffer holds only what a user who still has the flow has not read), so an
entry costs the engine's fixed state: about 5.7 KB measured with tracemalloc,
against about 16.6 KB for the flow with its task pair, channel and parking lots
that TIME-WAIT used to keep (``tests/runtime/test_time_wait_table.py``).

Every entry waits the same ``time_wait_duration``, so insertion order is expiry
order: the table is an ``OrderedDict`` whose head expires first, and an entry whose
timer restarts (a retransmitted FIN) moves to the end. One sweep task sleeps until
the head's deadline; a lookup also expires a due entry on the spot. When the table
is full (``TCPConfig.max_time_wait``) the head, the entry closest to expiry, is
recycled (closed early; counted as ``time_wait_recycled``), as FreeBSD's ``tcptw``
zone did (it reused its oldest entry when full). (Linux instead skips TIME-WAIT for the
connection that does not fit, counting ``TCPTimeWaitOverflow``: the newest
connection's old duplicates are the likeliest to be still in flight, so recycling
the oldest is the safer of the two.)
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from collections.abc import Callable

import trio

from ..alarm import Alarm
from ..tcp.connection import Connection
from ..tcp.events import State
from ..wire.tcp import TCPSegment

__all__ = ["FlowKey", "TimeWaitTable"]

#: ``(remote address packed, remote port, local port)``: the stack's demux key.
FlowKey = tuple[bytes, int, int]

logger = logging.getLogger("trio_tcp6")


class TimeWaitTable:
    """Connections in TIME-WAIT by 4-tuple, oldest first, at most ``limit``.

    ``counters`` are the stack's (``time_wait_recycled``, ``engine_errors``);
    ``released(key)`` is called for every entry that leaves the table, however it
    leaves (expiry, RST, reuse by a new SYN, recycling, shutdown).
    """

    def __init__(
        self, limit: int, counters: Counter[str], released: Callable[[FlowKey], None]
    ) -> None:
        self.limit = limit
        self._counters = counters
        self._released = released
        self._entries: OrderedDict[FlowKey, Connection] = OrderedDict()
        self._alarm = Alarm("a TIME-WAIT table has one sweep task")

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def add(self, key: FlowKey, conn: Connection, now: float) -> None:
        """Keep ``conn`` (in TIME-WAIT) until its 2*MSL timer fires; recycle the
        oldest entry first if the table is full."""
        entries = self._entries
        while entries and len(entries) >= self.limit:
            old_key, old = entries.popitem(last=False)
            self._counters["time_wait_recycled"] += 1
            self._close(old_key, old, "time-wait recycled", now)
        if self.limit <= 0:
            self._counters["time_wait_recycled"] += 1
            self._close(key, conn, "time-wait recycled", now)
            return
        if not entries:
            self._alarm.wake()  # the sweep task slept without a deadline
        entries[key] = conn

    def get(self, key: FlowKey, now: float) -> Connection | None:
        """The connection waiting on ``key``, None if there is none or its 2*MSL is
        over (it is expired now)."""
        conn = self._entries.get(key)
        if conn is None:
            return None
        deadline = conn.next_deadline
        if deadline is None or deadline <= now:
            self.expire(now)
            return self._entries.get(key)
        return conn

    def segment(
        self, key: FlowKey, conn: Connection, seg: TCPSegment, now: float
    ) -> list[TCPSegment]:
        """Feed ``seg`` to the waiting ``conn`` (from :meth:`get`); returns what it
        answers. The entry leaves the table if that closed it (a RST), and moves to
        the end if it restarted the timer (a retransmitted FIN)."""
        deadline = conn.next_deadline
        try:
            conn.on_segment(seg, now)
            segs = conn.take_segments()
            conn.take_events()  # nobody waits on a connection in TIME-WAIT
        except Exception as exc:
            self._failed(key, exc)
            return []
        if conn.state is not State.TIME_WAIT:
            self.remove(key, now)
        elif conn.next_deadline != deadline:
            self._entries.move_to_end(key)
        return segs

    def accepts_syn(self, key: FlowKey, conn: Connection, seg: TCPSegment) -> bool:
        """RFC 6191: may ``seg`` (a SYN) reuse the 4-tuple of ``conn``?"""
        try:
            return conn.time_wait_accepts_syn(seg)
        except Exception as exc:
            self._failed(key, exc)
            return False

    def remove(self, key: FlowKey, now: float, reason: str = "time-wait reused") -> None:
        """Drop the entry for ``key`` (closing its connection if it is not closed)."""
        conn = self._entries.pop(key, None)
        if conn is not None:
            self._close(key, conn, reason, now)

    def expire(self, now: float) -> None:
        """Close every entry whose 2*MSL is over (they are at the head)."""
        entries = self._entries
        while entries:
            key, conn = next(iter(entries.items()))
            deadline = conn.next_deadline
            if deadline is not None and deadline > now:
                return
            del entries[key]
            try:
                conn.on_timer(now)  # the engine's own TIME-WAIT expiry
            except Exception as exc:
                self._counters["engine_errors"] += 1
                logger.error("trio_tcp6: internal error expiring %r", conn, exc_info=exc)
            self._close(key, conn, "time-wait expired", now)

    def close_all(self, now: float) -> None:
        """The stack shuts down: close every entry."""
        entries = self._entries
        while entries:
            key, conn = entries.popitem(last=False)
            self._close(key, conn, "stack closed", now)

    async def run(self) -> None:
        """The sweep task: expire entries as their 2*MSL ends (one task for the
        whole table, sleeping until the head's deadline)."""
        alarm = self._alarm
        while True:
            alarm.clear()
            now = trio.current_time()
            self.expire(now)
            deadline = math.inf
            if self._entries:
                head = next(iter(self._entries.values())).next_deadline
                deadline = now if head is None else head
            await alarm.sleep_until(deadline)

    # -- internals ----------------------------------------------------------------------
    def _close(self, key: FlowKey, conn: Connection, reason: str, now: float) -> None:
        if conn.state is not State.CLOSED and conn.broken is None:
            conn.close(None, reason, now)  # no RST: the peer is done (RFC 9293 §3.10.4)
        self._released(key)

    def _failed(self, key: FlowKey, exc: Exception) -> None:
        """An engine bug while answering for a TIME-WAIT connection: drop the entry
        (count and log it); the 4-tuple is free."""
        self._counters["engine_errors"] += 1
        conn = self._entries.pop(key, None)
        logger.error("trio_tcp6: internal error in TIME-WAIT %r; dropped", conn, exc_info=exc)
        if conn is not None:
            self._released(key)
