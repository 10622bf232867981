"""Adapters that let other libraries run over trio_tcp6 flows and listeners.

Each adapter is a module of its own with an optional dependency, installed by the
extra of the same name and never imported by ``import trio_tcp6``:

* :mod:`trio_tcp6.contrib.httpx` -- an ``httpcore`` network backend and an ``httpx``
  transport (``pip install 'trio-tcp6[httpx]'``);
* :mod:`trio_tcp6.contrib.hypercorn` -- serve an ASGI app with hypercorn's trio worker
  from a trio_tcp6 listener (``pip install 'trio-tcp6[hypercorn]'``);
* :mod:`trio_tcp6.contrib.anyio` -- a flow as an ``anyio.abc.ByteStream``, for anyio's
  stream wrappers (``pip install 'trio-tcp6[anyio]'``).

This package itself needs nothing beyond trio_tcp6: it holds the address and
readability queries the adapters share.
"""

from __future__ import annotations

import trio

from ..runtime import DirectFlow, Flow
from ..tcp.events import State

__all__ = ["flow_is_readable", "local_address", "remote_address", "transport_flow"]


def transport_flow(stream: trio.abc.Stream) -> Flow | None:
    """The :class:`~trio_tcp6.Flow` under ``stream`` (itself, or under any number of
    :class:`trio.SSLStream` layers); None if there is none."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, Flow) else None


def remote_address(flow: Flow) -> tuple[str, int]:
    """The peer's ``(host, port)`` as a socket's ``getpeername()`` gives it for IPv6
    (host without brackets)."""
    host, port = flow.get_dest()
    return (str(host), port)


def local_address(flow: Flow) -> tuple[str, int]:
    """Our ``(host, port)`` of ``flow``, as a socket's ``getsockname()`` gives it for
    IPv6 (host without brackets)."""
    host, port = flow.get_local()
    return (str(host), port)


def flow_is_readable(flow: Flow) -> bool:
    """Whether ``receive_some`` would return at once: data is buffered, the peer's
    FIN was reached, or the connection is gone (reset, timed out, closed).

    An HTTP client asks this of an *idle* keep-alive connection: readable then means
    the server closed it, so it must not be reused. Unknown flow kinds answer False.
    """
    if isinstance(flow, DirectFlow):
        conn = flow.engine
        return bool(conn.readable) or conn.at_eof or flow.state is State.CLOSED
    sock = flow.socket
    if isinstance(sock, trio.socket.SocketType):  # a kernel flow's real socket
        return sock.is_readable()
    return False
