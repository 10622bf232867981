"""A flow's endpoint: its addresses, socket options, state, info and trace.

:class:`FlowEndpoint` is the part of a :class:`~trio_tcp6.runtime.flow.DirectFlow`
that is not on the per-packet path: the socket-like calls a user makes now and then
(``setsockopt`` / ``getsockopt`` with Linux's option names, ``get_dest`` /
``get_local``, ``state``, ``info()``, ``trace()``). It holds what those calls read --
the engine, the host, the addresses and ports -- and :class:`DirectFlow` derives from
it, reading the same attributes on its own hot path directly (no delegation).
"""

from __future__ import annotations

import abc
import errno
import ipaddress
from collections.abc import Callable
from typing import Any

import attrs

from ..config import Keepalive
from ..tcp.connection import Connection, EngineError
from ..tcp.events import State
from ..tcp.states import StateTrace
from ..tcp.trace import FlowTrace
from .base import Flow, FlowInfo, congestion_name, option_name, option_value, sockopt_result
from .flowhost import FlowHost

__all__ = ["FlowEndpoint"]

# Keepalive is frozen: every flow without configured timings shares this one.
DEFAULT_KEEPALIVE = Keepalive()


class FlowEndpoint(Flow):
    """The socket-like surface of a connection over a sans-I/O engine ``conn``, for
    the host ``host``, between the host's address and ``remote``.

    A concrete flow provides :meth:`flush` (act on what an option call made the
    engine produce).
    """

    # Slots, read as ``self._conn`` etc. by the subclass's per-segment and per-call
    # code too: a property here would add a call on that path.
    __slots__ = (
        "_clock",
        "_conn",
        "_host",
        "_keepalive_params",
        "_local_port",
        "_remote",
        "_remote_port",
    )

    def __init__(
        self,
        host: FlowHost[Any],
        conn: Connection,
        remote: ipaddress.IPv6Address,
        remote_port: int,
        local_port: int,
    ) -> None:
        super().__init__()
        self._host = host
        self._clock = host.clock
        self._conn = conn
        self._remote = remote
        self._remote_port = remote_port
        self._local_port = local_port
        # Keepalive timings set while SO_KEEPALIVE is off (used once it is on).
        self._keepalive_params = host.config.keepalive or DEFAULT_KEEPALIVE

    @property
    def engine(self) -> Connection:
        """The sans-I/O connection this flow drives."""
        return self._conn

    @abc.abstractmethod
    def flush(self) -> None:
        """Act on what the engine produced since the flow last looked."""

    # -- options ------------------------------------------------------------------------
    def set_nodelay(self, on: bool) -> None:
        """``TCP_NODELAY`` without the socket-option plumbing: what the trio-style
        opens and accepts set on every flow (``setsockopt`` does the same)."""
        self._option_call(self._conn.set_nodelay, on, self._clock())
        self.flush()

    def setsockopt(self, level: int, optname: int, value: int | bytes | str) -> None:
        name = option_name(level, optname)
        conn = self._conn
        if name == "TCP_CONGESTION":
            algorithm = congestion_name(value)
            if algorithm != conn.congestion and conn.data_sent:
                raise OSError(errno.EBUSY, "congestion control is fixed once data was sent")
            self._option_call(conn.set_congestion, algorithm)
            return
        number = option_value(name, value)
        if name == "TCP_NODELAY":
            self._option_call(conn.set_nodelay, bool(number), self._clock())
        elif name == "TCP_USER_TIMEOUT":
            self._option_call(conn.set_user_timeout, number / 1000 if number else None)
        elif name == "SO_SNDBUF":
            self._option_call(conn.set_send_buffer, number)
        elif name == "SO_RCVBUF":
            self._option_call(conn.set_receive_buffer, number)
        else:
            ka = conn.config.keepalive
            params = self._keepalive_params if ka is None else ka
            if name == "SO_KEEPALIVE":
                ka = params if number else None
            else:
                field = {"TCP_KEEPIDLE": "idle", "TCP_KEEPINTVL": "interval"}.get(name, "probes")
                params = attrs.evolve(params, **{field: number})
                self._keepalive_params = params
                ka = None if ka is None else params
            self._option_call(conn.set_keepalive, ka, self._clock())
        self.flush()

    def _option_call(self, call: Callable[..., None], *args: object) -> None:
        try:
            call(*args)
        except EngineError as exc:
            raise OSError(errno.EBADF, "the connection was broken by an internal error") from exc

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        name = option_name(level, optname)
        conn = self._conn
        value: int | bytes
        if name == "TCP_CONGESTION":
            value = b"reno" if conn.congestion == "newreno" else conn.congestion.encode()
        elif name == "TCP_NODELAY":
            value = int(conn.nodelay)
        elif name == "SO_KEEPALIVE":
            value = int(conn.config.keepalive is not None)
        elif name == "TCP_USER_TIMEOUT":
            timeout = conn.config.user_timeout
            value = round(timeout * 1000) if timeout else 0
        elif name == "SO_SNDBUF":
            value = conn.send_buffer
        elif name == "SO_RCVBUF":
            value = conn.receive_buffer
        else:
            params = conn.config.keepalive or self._keepalive_params
            value = {
                "TCP_KEEPIDLE": round(params.idle),
                "TCP_KEEPINTVL": round(params.interval),
            }.get(name, params.probes)
        return sockopt_result(value, buflen)

    # -- introspection -----------------------------------------------------------------
    def get_dest(self) -> tuple[ipaddress.IPv6Address, int]:
        return (self._remote, self._remote_port)

    def get_local(self) -> tuple[ipaddress.IPv6Address, int]:
        return (self._host.address, self._local_port)

    @property
    def local_port(self) -> int:
        return self._local_port

    @property
    def state(self) -> State:
        """The connection's RFC 9293 state."""
        return self._conn.state

    def info(self) -> FlowInfo:
        return self._conn.info()

    def trace_states(self, hook: StateTrace | None) -> None:
        """Call ``hook(old, new, reason, now)`` on every state transition of this
        connection from now on (None: stop)."""
        self._conn.trace = hook

    def trace(self) -> FlowTrace:
        """Record this connection from now on and return the recorder (the same one
        on later calls): a :class:`~trio_tcp6.tcp.trace.FlowTrace` of every segment
        in and out with the sender's state, the loss-recovery events and the state
        transitions; ``trace.save(path)`` writes it for ``python -m trio_tcp6 plot``.
        ``trace.detach()`` stops it. Off (the default) it costs nothing."""
        ft = self._conn.flow_trace
        if ft is None:
            ft = FlowTrace({"local": str(self._host.address), "remote": str(self._remote)})
            ft.attach(self._conn)
        return ft
