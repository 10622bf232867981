"""What the engine tells its user (the runtime) besides segments to transmit."""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "EV_CLOSED",
    "EV_CONNECTED",
    "EV_EOF",
    "EV_FIN_ACKED",
    "EV_READABLE",
    "EV_URGENT",
    "EV_WRITABLE",
    "ST_CLOSED",
    "ST_CLOSE_WAIT",
    "ST_CLOSING",
    "ST_ESTABLISHED",
    "ST_FIN_WAIT_1",
    "ST_FIN_WAIT_2",
    "ST_LAST_ACK",
    "ST_LISTEN",
    "ST_SYN_RECEIVED",
    "ST_SYN_SENT",
    "ST_TIME_WAIT",
    "Event",
    "EventKind",
    "State",
]


class State(enum.Enum):
    """The eleven connection states of RFC 9293 §3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # The engine tests membership of state sets on every segment and user call;
    # Enum's own __hash__ is a Python-level call, identity's is not (members are
    # singletons compared by identity, so the sets behave the same).
    __hash__ = object.__hash__


# The states as module constants, for the engine's per-segment tests: reading a
# member through its Enum class goes through the metaclass (in CPython 3.11 several
# times the cost of reading a global).
ST_CLOSED = State.CLOSED
ST_LISTEN = State.LISTEN
ST_SYN_SENT = State.SYN_SENT
ST_SYN_RECEIVED = State.SYN_RECEIVED
ST_ESTABLISHED = State.ESTABLISHED
ST_FIN_WAIT_1 = State.FIN_WAIT_1
ST_FIN_WAIT_2 = State.FIN_WAIT_2
ST_CLOSE_WAIT = State.CLOSE_WAIT
ST_CLOSING = State.CLOSING
ST_LAST_ACK = State.LAST_ACK
ST_TIME_WAIT = State.TIME_WAIT


class EventKind(enum.Enum):
    #: The handshake completed (SYN-SENT/SYN-RECEIVED -> ESTABLISHED).
    CONNECTED = "connected"
    #: New in-order data can be taken with ``Connection.receive``.
    READABLE = "readable"
    #: The peer's FIN arrived in order: after the buffered data, the stream ends.
    EOF = "eof"
    #: Send-buffer space was freed (data acknowledged) or the window opened.
    WRITABLE = "writable"
    #: The connection failed: ``Event.error`` is ``"reset"``, ``"refused"``,
    #: ``"timeout"``, or ``"aborted"``; the connection is now CLOSED.
    ERROR = "error"
    #: Everything we sent, FIN included, is acknowledged (our side is done).
    FIN_ACKED = "fin_acked"
    #: The connection reached CLOSED (or TIME-WAIT expired): the TCB may be deleted.
    CLOSED = "closed"
    #: The peer's urgent pointer advanced (RFC 9293 §3.8.5): see
    #: ``Connection.urgent_pending``; the urgent bytes are delivered in line.
    URGENT = "urgent"


@attrs.frozen
class Event:
    """One thing the engine tells its user; see :class:`EventKind`."""

    kind: EventKind
    #: For ERROR: "reset" | "refused" | "timeout" | "aborted".
    error: str | None = None


# The events without an error, shared (events are immutable).
EV_READABLE = Event(EventKind.READABLE)
EV_WRITABLE = Event(EventKind.WRITABLE)
EV_CONNECTED = Event(EventKind.CONNECTED)
EV_EOF = Event(EventKind.EOF)
EV_FIN_ACKED = Event(EventKind.FIN_ACKED)
EV_CLOSED = Event(EventKind.CLOSED)
EV_URGENT = Event(EventKind.URGENT)
