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
