"""The stack-wide memory account: one budget for every byte the stack's connections
buffer, as Linux's ``tcp_mem`` bounds all TCP sockets together.

Each connection buffers up to its send buffer plus its receive buffer; a stack with
thousands of connections could hold gigabytes even though each one respects its
own caps. A :class:`MemoryAccount` (owned by the stack, shared by its connections)
adds up what they hold -- the send buffer's queued bytes, the receive buffer's
in-order bytes and its out-of-order bytes counted with each piece's overhead (the
``held`` of :mod:`.recvbuf`) -- against ``limit``.

Accounting is incremental and cheap: a connection remembers what it last charged
and, at the end of each call that can change its buffers (a segment, SEND,
RECEIVE), charges the difference (:func:`settle`, two additions); it releases its
whole charge when it enters CLOSED (:func:`detach`). Nothing walks the connections
per packet.

Pressure follows Linux's three ``tcp_mem`` marks (the defaults put ``tcp_mem[1]``
at 2/3 and ``tcp_mem[0]`` at 1/2 of ``tcp_mem[2]``, the hard limit): the account
*enters* pressure when what is held exceeds :data:`PRESSURE_NUM`/:data:`PRESSURE_DEN`
of the limit and *leaves* it once below :data:`RELIEF_NUM`/:data:`RELIEF_DEN`. Under
pressure (``sk_under_memory_pressure``):

* receive windows stop growing: the right edge already offered is honoured (RFC
  9293 §3.8.6.2.2: a receiver should not shrink the window), but no new edge is
  offered beyond :func:`floor` bytes held (four segments, as Linux clamps
  ``rcv_ssthresh`` to ``4 * advmss``), so connections whose readers keep up still
  move data;
* out-of-order data may grow a connection's holding only up to the floor; beyond,
  it may only replace out-of-order data further away (pruned from the far end) and
  is otherwise dropped (counted as ``drop_memory_pressure``). Linux lets a socket
  grow to its fair share of the limit here; refusing speculative data as soon as
  memory is short keeps the room below the hard limit for in-order data
  (otherwise out-of-order floods on many connections fill it, and a legitimate
  transfer's in-order segments are dropped at the hard limit);
* in-order data within the window is always taken below the hard limit; at the
  limit, a connection's holding may not grow past the floor: arriving in-order data
  first makes room by pruning its out-of-order data, the rest is dropped and the
  peer retransmits it. Data once accepted in order is never discarded;
* send buffers stop growing: ``send_space`` offers at most the connection's fair
  share of the limit (``limit / connections``, Linux ``__sk_mem_raise_allocated``;
  at the hard limit four segments), so ``send_all`` blocks. Without pressure a
  write is still cut where it would cross the limit;
* the stack prunes out-of-order data across connections, those holding most first,
  far end first, until the account is below the relief mark (:func:`relieve`),
  when pressure is entered and then at a bounded rate while it lasts.

So what the stack holds stays below ``limit`` plus, per connection, at most the
receive floor and four send segments (plus one segment). Pruned out-of-order data
is no longer SACKed and is retransmitted by its sender (RFC 2018 §8 allows a
receiver to renege).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from ..wire.tcp import Payload

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "FLOOR_SEGMENTS",
    "PRESSURE_DEN",
    "PRESSURE_NUM",
    "RELIEF_DEN",
    "RELIEF_NUM",
    "MemoryAccount",
    "add_under_pressure",
    "detach",
    "floor",
    "holding",
    "receive_cap",
    "relieve",
    "send_room",
    "settle",
    "window_room",
]

#: Pressure is entered above this fraction of the limit (Linux ``tcp_mem[1]``) ...
PRESSURE_NUM, PRESSURE_DEN = 2, 3
#: ... and left below this one (``tcp_mem[0]``).
RELIEF_NUM, RELIEF_DEN = 1, 2
#: Under pressure a connection may still hold this many of its segments (MSS), so
#: that none starves (Linux: ``tcp_rmem[0]``/``tcp_wmem[0]``, ``4 * advmss``).
FLOOR_SEGMENTS = 4

_T = TypeVar("_T")


class MemoryAccount:
    """Bytes buffered by all connections of one stack, against ``limit``.

    ``limit`` None: unlimited (held bytes are still counted; never under pressure).
    Counters go to ``stats`` (the stack's): ``memory_pressure_episodes``,
    ``memory_relief_walks``, ``memory_ofo_pruned``."""

    __slots__ = (
        "held",
        "high",
        "limit",
        "limited",
        "low",
        "peak",
        "pressure",
        "relief_due",
        "stats",
        "users",
    )

    def __init__(self, limit: int | None, stats: Counter[str] | None = None) -> None:
        if limit is not None and limit <= 0:
            raise ValueError(f"memory limit must be positive or None, got {limit!r}")
        #: There is a limit; and the hard limit in bytes (Linux ``tcp_mem[2]``).
        self.limited = limit is not None
        self.limit = limit if limit is not None else 1 << 62
        #: Pressure is entered when ``held`` exceeds ``high`` and left below ``low``.
        self.high = self.limit * PRESSURE_NUM // PRESSURE_DEN
        self.low = self.limit * RELIEF_NUM // RELIEF_DEN
        #: Bytes charged by the connections now, and the most ever charged.
        self.held = 0
        self.peak = 0
        #: Connections charging this account (for the fair share).
        self.users = 0
        #: Under memory pressure (see the module docstring).
        self.pressure = False
        #: The stack should prune out-of-order data (:func:`relieve`).
        self.relief_due = False
        self.stats: Counter[str] = stats if stats is not None else Counter()

    def charge(self, delta: int) -> None:
        """A connection's holding changed by ``delta`` bytes (negative: released)."""
        held = self.held + delta
        self.held = held
        if delta > 0:
            if held > self.peak:
                self.peak = held
            if held > self.high:
                if not self.pressure:
                    self.pressure = True
                    self.stats["memory_pressure_episodes"] += 1
                self.relief_due = True
        elif self.pressure and held < self.low:
            self.pressure = False
            self.relief_due = False

    @property
    def hard(self) -> bool:
        """At or above the hard limit."""
        return self.held >= self.limit

    @property
    def share(self) -> int:
        """A connection's fair share of the limit."""
        return self.limit // self.users if self.users > 1 else self.limit

    def gauges(self) -> dict[str, int]:
        """What ``stack.stats()`` reports: ``memory_held``, ``memory_held_peak``,
        ``memory_limit`` (0: unlimited), ``memory_pressure`` (0/1) and the
        account's counters (0 until they first count)."""
        s = self.stats
        return {
            "memory_held": self.held,
            "memory_held_peak": self.peak,
            "memory_limit": self.limit if self.limited else 0,
            "memory_pressure": int(self.pressure),
            "memory_pressure_episodes": s["memory_pressure_episodes"],
            "memory_relief_walks": s["memory_relief_walks"],
            "memory_ofo_pruned": s["memory_ofo_pruned"],
            "drop_memory_pressure": s["drop_memory_pressure"],
        }


# -- one connection's charge --------------------------------------------------------------
def holding(c: Connection) -> int:
    """What ``c`` holds now: send-buffer bytes plus the receive buffer's ``held``."""
    return c.rcv.buf.held + len(c.snd.buf)


def settle(c: Connection) -> None:
    """Charge ``c``'s account with what its holding changed since the last call."""
    m = c.memory
    if m is None:
        return
    held = c.rcv.buf.held + c.snd.buf.queued
    delta = held - c.memory_charged
    if delta:
        c.memory_charged = held
        m.charge(delta)


def detach(c: Connection) -> None:
    """``c`` is closed: release its charge and stop accounting it."""
    m = c.memory
    if m is None:
        return
    c.memory = None
    m.users -= 1
    if c.memory_charged:
        m.charge(-c.memory_charged)
        c.memory_charged = 0


def floor(c: Connection) -> int:
    """What ``c`` may hold in its receive buffer whatever the pressure."""
    return FLOOR_SEGMENTS * c.opt.our_mss


# -- decisions under pressure (only called while ``pressure`` is set) ---------------------
def window_room(c: Connection, avail: int) -> int:
    """The free space a new window edge may offer under pressure (``avail`` without
    it): only up to :func:`floor` bytes held."""
    room = floor(c) - c.rcv.buf.held
    return room if room < avail else avail


def receive_cap(c: Connection, start: int) -> int:
    """The receive buffer's cap for data arriving at absolute offset ``start`` under
    pressure: in-order data is taken as the window allows below the hard limit;
    otherwise (out-of-order data, or at the hard limit) what the connection holds
    may not grow past :func:`floor`."""
    m = c.memory
    assert m is not None
    rcv = c.rcv
    rb = rcv.buf
    if start <= rb.nxt and not m.hard:
        return rcv.cap
    allowed = floor(c)
    held = rb.held
    if allowed < held:
        allowed = held  # keep what is held; nearer data may replace far-end data
    return allowed if allowed < rcv.cap else rcv.cap


def add_under_pressure(c: Connection, start: int, payload: Payload) -> int:
    """``ReceiveBuffer.add`` under pressure, within :func:`receive_cap`; what that
    drops is counted as ``drop_memory_pressure``, what it prunes also as
    ``memory_ofo_pruned``."""
    rb = c.rcv.buf
    cap = receive_cap(c, start)
    if cap >= rb.cap:
        return rb.add(start, payload)
    saved_cap, saved_stats = rb.cap, rb.stats
    scratch: Counter[str] = Counter()
    rb.cap, rb.stats = cap, scratch
    try:
        res = rb.add(start, payload)
    finally:
        rb.cap, rb.stats = saved_cap, saved_stats
    if scratch:
        stats = c.stats
        if scratch["drop_rcv_buffer_full"]:
            stats["drop_memory_pressure"] += scratch["drop_rcv_buffer_full"]
        if scratch["ofo_pruned"]:
            stats["ofo_pruned"] += scratch["ofo_pruned"]
            stats["memory_ofo_pruned"] += scratch["ofo_pruned"]
    return res


def send_room(c: Connection, space: int) -> int:
    """Send-buffer space within the limit (``space`` without it). Without pressure,
    up to the limit; under pressure the queue may hold up to the fair share less
    what the receive buffer holds; at the hard limit, :data:`FLOOR_SEGMENTS` send
    segments."""
    m = c.memory
    assert m is not None
    queued = c.snd.buf.queued
    low = FLOOR_SEGMENTS * c.opt.mss - queued
    if not m.pressure:
        room = m.limit - m.held
    elif m.hard:
        room = low
    else:
        room = m.share - c.rcv.buf.held - queued
    if room < low:
        room = low
    if room <= 0:
        return 0
    return room if room < space else space


# -- the stack-wide walk ------------------------------------------------------------------
def relieve(
    m: MemoryAccount, conns: Iterable[tuple[Connection, _T]]
) -> list[tuple[_T, Exception]]:
    """Prune out-of-order data until ``m`` is below its relief mark: connections
    holding most first, each from its far end (``Connection.prune_ooo``). ``conns``
    pairs each connection with its owner; returns the owners whose engine raised
    (the connection is then broken) with the exception. O(n log n) in the
    connections: call it when pressure is entered and at a bounded rate after."""
    m.relief_due = False
    m.stats["memory_relief_walks"] += 1
    failed: list[tuple[_T, Exception]] = []
    if m.held <= m.low:
        return failed
    holders = [
        (c.rcv.buf.ooo_cost, i, c, owner)
        for i, (c, owner) in enumerate(conns)
        if c.rcv.buf.has_ooo and c.broken is None
    ]
    holders.sort(reverse=True)
    for _cost, _i, c, owner in holders:
        excess = m.held - m.low
        if excess <= 0:
            break
        try:
            m.stats["memory_ofo_pruned"] += c.prune_ooo(excess)
        except Exception as exc:
            failed.append((owner, exc))
    return failed
