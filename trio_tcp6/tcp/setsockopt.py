"""The per-connection options, what ``setsockopt`` changes on one connection.

Each starts from the stack's :class:`~trio_tcp6.config.TCPConfig` and replaces this
connection's copy of it (``config`` is frozen and may be shared, see
:func:`shared_config`): nothing is added to the per-segment path, which already
reads ``config``. Values are validated before anything changes, so a rejected value
never marks the connection broken.

``Connection`` keeps the public setters (which refuse a broken connection); the
procedures are here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from ..config import Keepalive, TCPConfig
from .handshake import new_cc
from .output import transmit
from .timers import schedule

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "set_congestion",
    "set_keepalive",
    "set_nodelay",
    "set_receive_buffer",
    "set_send_buffer",
    "set_user_timeout",
    "shared_config",
]

#: Configurations made by the per-connection options, shared by every connection
#: that ends up with the same one (each accepted flow turns TCP_NODELAY on: a copy
#: each would cost ~300 bytes per connection). Bounded: cleared when full.
_SHARED_CONFIGS: dict[tuple[TCPConfig, str, object], TCPConfig] = {}
_SHARED_CONFIGS_MAX = 256


#: The last :func:`shared_config` answer, checked by identity first: hashing a
#: TCPConfig hashes every field, and every trio-style flow asks the same question
#: (its stack's config with TCP_NODELAY on).
_LAST_SHARED: list[tuple[TCPConfig, str, object, TCPConfig]] = []


def shared_config(config: TCPConfig, **change: Any) -> TCPConfig:
    """``attrs.evolve(config, **change)`` (one field), the same object for equal
    inputs."""
    ((name, value),) = change.items()
    if _LAST_SHARED:
        last = _LAST_SHARED[0]
        if last[0] is config and last[1] == name and last[2] is value:
            return last[3]
    key = (config, name, value)
    found = _SHARED_CONFIGS.get(key)
    if found is None:
        if len(_SHARED_CONFIGS) >= _SHARED_CONFIGS_MAX:
            _SHARED_CONFIGS.clear()
        found = _SHARED_CONFIGS[key] = attrs.evolve(config, **change)
    _LAST_SHARED[:] = [(config, name, value, found)]
    return found


def set_nodelay(c: Connection, on: bool, now: float) -> None:
    """TCP_NODELAY (see ``Connection.set_nodelay``)."""
    on = bool(on)
    if on == c.nodelay:
        return
    c.config = shared_config(c.config, nagle=not on)
    if on:
        transmit(c, now)


def set_keepalive(c: Connection, keepalive: Keepalive | None, now: float) -> None:
    """SO_KEEPALIVE and its timings (see ``Connection.set_keepalive``)."""
    if keepalive is not None and not (
        keepalive.idle > 0 and keepalive.interval > 0 and keepalive.probes > 0
    ):
        raise ValueError(f"keepalive times and probes must be positive: {keepalive!r}")
    if keepalive == c.config.keepalive:
        return
    c.config = shared_config(c.config, keepalive=keepalive)
    c.timers.ka_probes = 0
    c.timers.keep = None
    schedule(c, now)


def set_user_timeout(c: Connection, seconds: float | None) -> None:
    """TCP_USER_TIMEOUT (see ``Connection.set_user_timeout``)."""
    if seconds is not None and seconds < 0:
        raise ValueError(f"user timeout must not be negative, got {seconds!r}")
    value = seconds if seconds else None
    if value != c.config.user_timeout:
        c.config = shared_config(c.config, user_timeout=value)


def set_send_buffer(c: Connection, size: int) -> None:
    """SO_SNDBUF (see ``Connection.set_send_buffer``)."""
    if size < 1:
        raise ValueError(f"send buffer must be positive, got {size!r}")
    c.snd.buf.capacity = size
    c.want_writable = True
    c.flush_events()


def set_receive_buffer(c: Connection, size: int) -> None:
    """SO_RCVBUF (see ``Connection.set_receive_buffer``)."""
    if size < 1:
        raise ValueError(f"receive buffer must be positive, got {size!r}")
    c.rcv.cap = size


def set_congestion(c: Connection, name: str) -> None:
    """TCP_CONGESTION (see ``Connection.set_congestion``)."""
    lowered = name.lower()
    key: Literal["cubic", "newreno"]
    if lowered == "cubic":
        key = "cubic"
    elif lowered == "newreno":
        key = "newreno"
    else:
        raise ValueError(f"unknown congestion control {name!r}")
    if key == c.config.congestion:
        return
    if c.data_sent:
        raise ValueError("congestion control can only change before data is sent")
    old = c.cc
    c.config = shared_config(c.config, congestion=key)
    c.cc = new_cc(c)
    # A lost SYN already cut the initial window (RFC 6928 §2): keep that.
    c.cc.cwnd = min(c.cc.cwnd, old.cwnd)
