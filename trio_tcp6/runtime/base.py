"""What both stacks share: the public :class:`Flow`, :class:`Listener` and :class:`Stack`
base classes, and :class:`FlowInfo`.

A concrete flow implements trio's :class:`~trio.abc.HalfCloseableStream` methods plus
three hooks (``_write_nodelay``, ``_close_gracefully``, ``info``/``get_dest``); the
mirage-style calls (``read``, ``write``, ``writev``, ``write_nodelay``, ``close``) are
written once here on top of them. Likewise a concrete stack implements
``open_tcp_stream`` and ``_listen_nowait``; ``open_tcp_listener``, ``serve_tcp``,
``create_connection``, ``listen`` and ``unlisten`` live here.

trio style and mirage style differ in one default: the trio-style entry points
(``open_tcp_stream``, ``open_tcp_listener(s)``, ``serve_tcp`` and the flows their
listeners accept) turn Nagle's algorithm off (``TCP_NODELAY``), as
:class:`trio.SocketStream` does; the mirage calls (``create_connection``, ``listen``)
keep the stack's ``TCPConfig.nagle``: ``write`` may coalesce small writes and
``write_nodelay`` flushes and waits for the acknowledgement.

Per-flow options use the :mod:`socket` module's constants (:meth:`Flow.setsockopt`,
:meth:`Flow.getsockopt`); see :data:`FLOW_OPTIONS`.
"""

from __future__ import annotations

import abc
import errno
import ipaddress
import operator
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio

from ..config import TCPConfig
from ..errors import Refused, TCPError, Timeout, Unknown
from ..results import EOF, Eof, Error, Ok
from ..tcp.info import TCPInfo
from ..tcp.trace import FlowTrace

__all__ = [
    "FLOW_OPTIONS",
    "LOCALHOST_NAMES",
    "Buffer",
    "Flow",
    "FlowCallback",
    "FlowInfo",
    "FlowSocket",
    "Listener",
    "ListenerSocket",
    "PortRangeError",
    "Stack",
    "as_tcp_error",
    "check_port",
    "congestion_name",
    "option_name",
    "option_value",
    "parse_host",
    "sockopt_result",
]

Buffer = bytes | bytearray | memoryview
FlowCallback = Callable[["Flow"], Awaitable[None]]


#: A snapshot of one connection (``Flow.info()``): the engine's typed record,
#: :class:`trio_tcp6.tcp.info.TCPInfo`; the kernel stack fills it from ``TCP_INFO``.
FlowInfo = TCPInfo


def parse_host(host: str | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """An IPv6 literal (``"2001:db8::1"``, ``"[::1]"``) or address object."""
    if isinstance(host, ipaddress.IPv6Address):
        return host
    if isinstance(host, bytes):
        return ipaddress.IPv6Address(host)
    text = str(host)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"not an IPv6 address literal: {host!r}") from None


class PortRangeError(ValueError, OverflowError):
    """A port outside 0..65535: both a ValueError (as this package always raised)
    and an OverflowError (what trio's kernel sockets raise)."""


def check_port(port: object, *, connect: bool) -> int:
    """Validate a port the same way on both stacks: an ``int`` (``operator.index``;
    a string such as ``"80"`` is a TypeError, as in :func:`trio.open_tcp_listeners`),
    in 0..65535 (:class:`PortRangeError`); 0 cannot be connected to (ValueError)."""
    if isinstance(port, (str, bytes)):
        raise TypeError(f"port must be an int, not {port!r}")
    try:
        value = operator.index(port)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"port must be an int, not {port!r}") from None
    if not 0 <= value <= 65535:
        raise PortRangeError(f"port must be 0..65535, got {value}")
    if connect and value == 0:
        raise ValueError("cannot connect to port 0")
    return value


#: Names every stack resolves to its own loopback address (``"localhost"``).
LOCALHOST_NAMES = frozenset({"localhost", "localhost6", "ip6-localhost", "ip6-loopback"})

# Linux numbers, for a socket module that does not name them.
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
_TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
_TCP_KEEPIDLE = getattr(socket, "TCP_KEEPIDLE", 4)
_TCP_KEEPINTVL = getattr(socket, "TCP_KEEPINTVL", 5)
_TCP_KEEPCNT = getattr(socket, "TCP_KEEPCNT", 6)

#: The per-flow options both stacks support, by ``(level, optname)`` with the
#: :mod:`socket` module's constants, and the name this package gives each.
#: Values are ints (booleans as 0/1; ``TCP_KEEPIDLE``/``TCP_KEEPINTVL`` in seconds,
#: ``TCP_USER_TIMEOUT`` in milliseconds, buffer sizes in bytes), except
#: ``TCP_CONGESTION``: a name, set as ``bytes`` or ``str`` and read as ``bytes``
#: (``b"cubic"``, ``b"reno"``; ``"newreno"`` is accepted for ``"reno"``). Any other
#: option raises ``OSError(ENOPROTOOPT)``.
FLOW_OPTIONS: Mapping[tuple[int, int], str] = {
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): "TCP_NODELAY",
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): "SO_KEEPALIVE",
    (socket.IPPROTO_TCP, _TCP_KEEPIDLE): "TCP_KEEPIDLE",
    (socket.IPPROTO_TCP, _TCP_KEEPINTVL): "TCP_KEEPINTVL",
    (socket.IPPROTO_TCP, _TCP_KEEPCNT): "TCP_KEEPCNT",
    (socket.IPPROTO_TCP, _TCP_USER_TIMEOUT): "TCP_USER_TIMEOUT",
    (socket.SOL_SOCKET, socket.SO_SNDBUF): "SO_SNDBUF",
    (socket.SOL_SOCKET, socket.SO_RCVBUF): "SO_RCVBUF",
    (socket.IPPROTO_TCP, _TCP_CONGESTION): "TCP_CONGESTION",
}

#: Linux's limits for the keepalive options (``MAX_TCP_KEEPIDLE``, ...).
_KEEPALIVE_MAX = {"TCP_KEEPIDLE": 32767, "TCP_KEEPINTVL": 32767, "TCP_KEEPCNT": 127}


def option_name(level: int, optname: int) -> str:
    """The :data:`FLOW_OPTIONS` name of ``(level, optname)``, or
    ``OSError(ENOPROTOOPT)``."""
    name = FLOW_OPTIONS.get((level, optname))
    if name is None:
        raise OSError(errno.ENOPROTOOPT, f"option ({level}, {optname}) is not supported")
    return name


def congestion_name(value: object) -> str:
    """The engine's name (``"cubic"``, ``"newreno"``) for a ``TCP_CONGESTION`` value
    (``bytes`` or ``str``, NUL-padded or not; Linux's ``"reno"`` is NewReno)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).split(b"\0", 1)[0].decode("ascii", "replace")
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(f"TCP_CONGESTION takes a name (bytes or str), not {value!r}")
    key = text.strip().lower()
    if key == "reno":
        key = "newreno"
    if key not in ("cubic", "newreno"):
        raise OSError(errno.ENOENT, f"unknown congestion control {text!r}")
    return key


def option_value(name: str, value: object) -> int:
    """Validate an integer option value for :meth:`Flow.setsockopt` (EINVAL as
    Linux for one out of range)."""
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 4:
        value = struct.unpack("=i", bytes(value))[0]
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} takes an int, not {value!r}") from None
    limit = _KEEPALIVE_MAX.get(name)
    if limit is not None and not 1 <= number <= limit:
        raise OSError(errno.EINVAL, f"{name} must be 1..{limit}, got {number}")
    if name == "TCP_USER_TIMEOUT" and number < 0:
        raise OSError(errno.EINVAL, f"{name} must not be negative, got {number}")
    if name in ("SO_SNDBUF", "SO_RCVBUF") and number < 1:
        raise OSError(errno.EINVAL, f"{name} must be positive, got {number}")
    return int(number)


def sockopt_result(value: int | bytes, buflen: int | None) -> int | bytes:
    """What ``getsockopt`` returns: ``value``, or with ``buflen`` the raw bytes (an
    int as a native 4-byte int, a name NUL-padded to ``buflen``), as the
    :mod:`socket` module does."""
    if buflen is None:
        return value
    raw = struct.pack("=i", value) if isinstance(value, int) else value
    return raw[:buflen].ljust(buflen, b"\0") if isinstance(value, bytes) else raw[:buflen]


def as_tcp_error(exc: BaseException) -> TCPError:
    """The :class:`TCPError` behind a stream exception or an ``OSError``."""
    if isinstance(exc, TCPError):
        return exc
    cause = exc.__cause__
    if isinstance(cause, TCPError):
        return cause
    if isinstance(exc, trio.ClosedResourceError):
        return Unknown("flow is closed", errno.EBADF)
    oserr = exc if isinstance(exc, OSError) else cause
    if isinstance(oserr, OSError):
        if oserr.errno == errno.ECONNREFUSED:
            return Refused()
        if oserr.errno == errno.ETIMEDOUT:
            return Timeout()
        if oserr.errno == errno.ECONNRESET:
            return Unknown("connection reset by peer", errno.ECONNRESET)
        if oserr.errno is not None:
            return Unknown(oserr.strerror or str(oserr), oserr.errno)
        return Unknown(str(oserr))
    text = str(exc) or type(exc).__name__
    return Unknown(text)


class FlowSocket:
    """The socket-shaped view of a direct flow (``flow.socket``): exactly what trio
    libraries look up on ``stream.socket`` (hypercorn, httpcore, trio-websocket):
    ``family``, ``type``, ``proto``, ``getsockname()``, ``getpeername()``,
    ``setsockopt()``, ``getsockopt()``.

    There is no ``fileno()``: a userspace connection has no kernel file descriptor
    (nothing the kernel could poll, pass or ``ioctl``); code that needs one needs the
    kernel stack, whose flows expose their real trio socket.
    """

    __slots__ = ("_flow",)

    family = socket.AF_INET6
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, flow: Flow) -> None:
        self._flow = flow

    def getsockname(self) -> tuple[str, int, int, int]:
        """``(address, port, flowinfo, scope_id)``, as an AF_INET6 socket answers."""
        addr, port = self._flow.get_local()
        return (str(addr), port, 0, 0)

    def getpeername(self) -> tuple[str, int, int, int]:
        """The peer's ``(address, port, flowinfo, scope_id)``."""
        addr, port = self._flow.get_dest()
        return (str(addr), port, 0, 0)

    def setsockopt(self, level: int, optname: int, value: int | bytes | str) -> None:
        """:meth:`Flow.setsockopt`."""
        self._flow.setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        """:meth:`Flow.getsockopt`."""
        return self._flow.getsockopt(level, optname, buflen)

    def __repr__(self) -> str:
        return f"<FlowSocket of {self._flow!r}>"


class ListenerSocket:
    """The socket-shaped view of a direct listener (``listener.socket``):
    ``family``, ``type``, ``proto``, ``getsockname()`` (what
    :func:`trio.testing.open_stream_to_socket_listener` and trio-websocket read),
    and ``TCP_NODELAY`` through ``setsockopt``/``getsockopt`` (the flows it accepts
    inherit it, as on Linux). No ``fileno()``, as for :class:`FlowSocket`."""

    __slots__ = ("_listener",)

    family = socket.AF_INET6
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    def getsockname(self) -> tuple[str, int, int, int]:
        """``(address, port, 0, 0)``: the address it listens on and its port."""
        addr, port = self._listener.get_local()
        return (str(addr), port, 0, 0)

    def getpeername(self) -> tuple[str, int, int, int]:
        """A listening socket has no peer: ``OSError(ENOTCONN)``."""
        raise OSError(errno.ENOTCONN, "a listener is not connected")

    def setsockopt(self, level: int, optname: int, value: int | bytes | str) -> None:
        """Only ``TCP_NODELAY`` (for the flows accepted from now on)."""
        if option_name(level, optname) != "TCP_NODELAY":
            raise OSError(errno.ENOPROTOOPT, "only TCP_NODELAY applies to a listener")
        self._listener.nodelay = bool(option_value("TCP_NODELAY", value))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        """Only ``TCP_NODELAY``."""
        if option_name(level, optname) != "TCP_NODELAY":
            raise OSError(errno.ENOPROTOOPT, "only TCP_NODELAY applies to a listener")
        return sockopt_result(int(self._listener.nodelay), buflen)

    def __repr__(self) -> str:
        return f"<ListenerSocket of {self._listener!r}>"


class Flow(trio.abc.HalfCloseableStream):
    """One TCP connection: a trio half-closeable stream with MirageOS-style calls.

    The mirage calls serialise among themselves (two tasks may ``write`` at once;
    their buffers are queued in turn) and never raise for network failures: they
    return :class:`~trio_tcp6.Error`. Mixing a mirage call and the trio method of
    the same direction in two tasks at once raises :class:`trio.BusyResourceError`,
    as two concurrent ``send_all`` would.

    ``close()`` is the mirage call, a coroutine (flush, FIN, wait for the peer's):
    unlike ``socket.close()`` it does nothing unless awaited (Python then warns
    "coroutine ... was never awaited"). To release a flow use ``await
    flow.aclose()`` or ``async with flow:``.
    """

    # The mirage locks are made on first use: most flows never make a mirage call,
    # and two idle locks cost about half a kilobyte per connection.
    __slots__ = ("_mirage_locks",)

    def __init__(self) -> None:
        self._mirage_locks: tuple[trio.Lock, trio.Lock] | None = None

    def _mirage_lock(self, index: int) -> trio.Lock:
        """The mirage read (0) or write (1) lock."""
        locks = self._mirage_locks
        if locks is None:
            locks = self._mirage_locks = (trio.Lock(), trio.Lock())
        return locks[index]

    # -- hooks for concrete flows ----------------------------------------------------
    @abc.abstractmethod
    async def _write_nodelay(self, bufs: Sequence[Buffer]) -> None:
        """Send ``bufs`` at once (no Nagle) and return when all of it is acked.
        Raises like ``send_all``."""

    @abc.abstractmethod
    async def _close_gracefully(self) -> None:
        """Flush, send FIN and wait until the peer's FIN arrived (reads stay
        possible meanwhile). Raises like ``send_all``/``receive_some``."""

    @abc.abstractmethod
    def get_dest(self) -> tuple[ipaddress.IPv6Address, int]:
        """The remote address and port."""

    @abc.abstractmethod
    def info(self) -> FlowInfo:
        """A :class:`FlowInfo` snapshot of the connection."""

    @abc.abstractmethod
    def get_local(self) -> tuple[ipaddress.IPv6Address, int]:
        """The local address and port (``get_dest``'s counterpart)."""

    @abc.abstractmethod
    def setsockopt(self, level: int, optname: int, value: int | bytes | str) -> None:
        """Set a per-flow option with the :mod:`socket` module's constants, e.g.
        ``flow.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)``; see
        :data:`FLOW_OPTIONS` for what exists. ``OSError(ENOPROTOOPT)`` for any
        other option, ``OSError(EINVAL)`` for a value out of range."""

    @abc.abstractmethod
    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        """Read a per-flow option (:meth:`setsockopt`); with ``buflen``, the raw
        bytes, as :meth:`socket.socket.getsockopt` returns them."""

    @property
    def socket(self) -> FlowSocket | trio.socket.SocketType:
        """A socket-shaped object for libraries that look for ``stream.socket``
        (a :class:`FlowSocket`; a kernel flow's real trio socket)."""
        return FlowSocket(self)

    def trace(self) -> FlowTrace:
        """Record this connection's segments, sender state and loss-recovery events
        from now on; returns the :class:`~trio_tcp6.tcp.trace.FlowTrace` (the same
        one on later calls). Only the userspace stack's flows can be traced: a
        kernel flow raises ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be traced")

    # -- mirage calls ------------------------------------------------------------------
    async def read(self) -> Ok[bytes] | Error | Eof:
        """Wait for data: ``Ok(bytes)``, ``EOF`` once the peer's FIN was reached, or
        ``Error(err)``."""
        async with self._mirage_lock(0):
            try:
                data = await self.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                return Error(as_tcp_error(exc))
        if not data:
            return EOF
        return Ok(bytes(data))

    async def write(self, buf: Buffer) -> Ok[None] | Error | Eof:
        """Queue ``buf``; returns once it is in the send buffer. ``EOF`` if our side
        was already closed for writing."""
        return await self.writev([buf])

    async def writev(self, bufs: Sequence[Buffer]) -> Ok[None] | Error | Eof:
        """Queue every buffer of ``bufs``, in order."""
        async with self._mirage_lock(1):
            try:
                for buf in bufs:
                    await self.send_all(buf)
            except trio.ClosedResourceError:
                return EOF
            except (trio.BrokenResourceError, OSError) as exc:
                return Error(as_tcp_error(exc))
        return Ok(None)

    async def write_nodelay(self, buf: Buffer) -> Ok[None] | Error | Eof:
        """Send ``buf`` at once and return when the peer has acknowledged it."""
        return await self.writev_nodelay([buf])

    async def writev_nodelay(self, bufs: Sequence[Buffer]) -> Ok[None] | Error | Eof:
        """Send ``bufs`` at once and return when the peer has acknowledged them."""
        async with self._mirage_lock(1):
            try:
                await self._write_nodelay(bufs)
            except trio.ClosedResourceError:
                return EOF
            except (trio.BrokenResourceError, OSError) as exc:
                return Error(as_tcp_error(exc))
        return Ok(None)

    async def close(self) -> None:
        """Flush pending writes, send FIN and return once the peer has closed too.

        Reading stays possible meanwhile and afterwards (for data still buffered);
        ``aclose()`` releases the flow. Network failures end the wait silently.
        A coroutine: ``flow.close()`` without ``await`` does nothing at all.
        """
        async with self._mirage_lock(1):
            try:
                await self._close_gracefully()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


class Listener(trio.abc.Listener[Flow]):
    """A listening port: ``accept()`` returns the next :class:`Flow`."""

    #: Accepted flows get ``TCP_NODELAY`` (as trio's ``SocketListener`` does): True
    #: for listeners from ``open_tcp_listener(s)``/``serve_tcp``, False for the
    #: mirage ``listen`` (the stack's ``TCPConfig.nagle`` then applies).
    nodelay: bool = False

    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The local port (the one picked when opened with port 0)."""

    @abc.abstractmethod
    def get_local(self) -> tuple[ipaddress.IPv6Address, int]:
        """The address listened on (``::`` for every address) and the port."""

    @property
    def socket(self) -> ListenerSocket | trio.socket.SocketType:
        """A socket-shaped object (:class:`ListenerSocket`; a kernel listener's
        real trio socket) for :func:`trio.testing.open_stream_to_socket_listener`
        and the libraries that read ``listener.socket.getsockname()``."""
        return ListenerSocket(self)

    @abc.abstractmethod
    def _close_nowait(self) -> None:
        """Stop listening at once (synchronous form of ``aclose``)."""


class Stack(abc.ABC):
    """The API both stacks share: the trio-style calls (``open_tcp_stream``,
    ``open_tcp_listener(s)``, ``serve_tcp``) and the mirage-style ones
    (``create_connection``, ``listen``, ``unlisten``).

    Hosts are IPv6 literals or names: ``"localhost"`` (:data:`LOCALHOST_NAMES`:
    the direct stack's own address, ``::1`` for the kernel stack), the names of the
    ``hosts`` mapping given when the stack was opened, and (direct stack) the names
    its link knows (``VirtualNetwork.attach(addr, name=...)``). An unknown name
    raises :class:`socket.gaierror` (``EAI_NONAME``), as trio's
    ``open_tcp_stream`` does.
    """

    #: The stack's configuration.
    config: TCPConfig

    def __init__(
        self,
        nursery: trio.Nursery,
        hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
    ) -> None:
        self._nursery = nursery
        self._mirage_listeners: dict[int, tuple[Listener, trio.CancelScope]] = {}
        #: Names this stack resolves (``open_stack(..., hosts=...)``), lower case.
        self.hosts: dict[str, ipaddress.IPv6Address] = {
            name.lower().rstrip("."): parse_host(addr) for name, addr in (hosts or {}).items()
        }

    # -- concrete stacks implement -----------------------------------------------------
    @abc.abstractmethod
    async def open_tcp_stream(
        self,
        host: str | ipaddress.IPv6Address,
        port: int,
        *,
        local_address: str | ipaddress.IPv6Address | None = None,
    ) -> Flow:
        """Active open, with ``TCP_NODELAY`` (as :func:`trio.open_tcp_stream`).
        ``local_address``: the source address (it must be one of the stack's).
        Raises :class:`~trio_tcp6.Refused` or :class:`~trio_tcp6.Timeout` (or another
        :class:`~trio_tcp6.TCPError`)."""

    @abc.abstractmethod
    def _listen_nowait(
        self, port: int, backlog: int | None, host: ipaddress.IPv6Address | None = None
    ) -> Listener:
        """Start listening on ``port`` (0: pick one) right away (on ``host`` only,
        if given)."""

    @property
    @abc.abstractmethod
    def localhost(self) -> ipaddress.IPv6Address:
        """What ``"localhost"`` means to this stack."""

    def lookup(self, name: str) -> ipaddress.IPv6Address | None:
        """A name the stack knows besides ``hosts`` and ``"localhost"`` (None: none).
        The direct stack asks its link."""
        return None

    def resolve(self, host: str | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
        """The address ``host`` names (see the class docstring)."""
        if isinstance(host, ipaddress.IPv6Address):
            return host
        text = host.decode() if isinstance(host, bytes) else str(host)
        try:
            return parse_host(text)
        except ValueError:
            pass
        name = text.lower().rstrip(".")
        found = self.hosts.get(name)
        if found is not None:
            return found
        if name in LOCALHOST_NAMES:
            return self.localhost
        found = self.lookup(name)
        if found is not None:
            return found
        raise socket.gaierror(socket.EAI_NONAME, f"unknown host {text!r}")

    @abc.abstractmethod
    async def input(
        self,
        src: str | ipaddress.IPv6Address,
        dst: str | ipaddress.IPv6Address,
        payload: Buffer,
    ) -> None:
        """Hand one TCP segment (an IPv6 payload) to TCP."""

    @abc.abstractmethod
    def stats(self) -> dict[str, int]:
        """Counters in the spirit of ``netstat -s``."""

    # -- trio style ----------------------------------------------------------------------
    async def open_tcp_listener(
        self,
        port: int,
        *,
        host: str | ipaddress.IPv6Address | None = None,
        backlog: int | None = None,
    ) -> Listener:
        """Listen on ``port`` (0 picks a free port; see ``listener.port``); accepted
        flows get ``TCP_NODELAY``. ``host``: listen on that address only."""
        await trio.lowlevel.checkpoint()
        listener = self._listen_nowait(port, backlog, None if host is None else self.resolve(host))
        listener.nodelay = True
        return listener

    async def open_tcp_listeners(
        self,
        port: int,
        *,
        host: str | ipaddress.IPv6Address | None = None,
        backlog: int | None = None,
    ) -> list[Listener]:
        """:func:`trio.open_tcp_listeners`'s shape: a list (of one listener, on
        every address or on ``host``), for :func:`trio.serve_listeners`."""
        return [await self.open_tcp_listener(port, host=host, backlog=backlog)]

    async def serve_tcp(
        self,
        handler: Callable[[Flow], Awaitable[object]],
        port: int,
        *,
        backlog: int | None = None,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[Listener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Like :func:`trio.serve_tcp`: accept forever, one ``handler`` task per flow
        (the flow is closed when the handler returns; flows have ``TCP_NODELAY``)."""
        listeners = await self.open_tcp_listeners(port, backlog=backlog)
        await trio.serve_listeners(
            handler,
            listeners,
            handler_nursery=handler_nursery,
            task_status=task_status,
        )

    # -- mirage style --------------------------------------------------------------------
    async def create_connection(
        self, dest: tuple[str | ipaddress.IPv6Address, int]
    ) -> Ok[Flow] | Error:
        """Active open, returning ``Ok(flow)`` or ``Error(err)`` instead of raising.
        The flow keeps the stack's ``TCPConfig.nagle`` (``write`` may coalesce)."""
        host, port = dest
        try:
            flow = await self.open_tcp_stream(host, port)
            flow.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, not self.config.nagle)
        except TCPError as exc:
            return Error(exc)
        except OSError as exc:
            if isinstance(exc, socket.gaierror):
                raise
            return Error(as_tcp_error(exc))
        return Ok(flow)

    def listen(self, port: int, callback: FlowCallback) -> None:
        """Accept connections on ``port``; each runs ``await callback(flow)`` in its own
        task in the stack's nursery, and the flow is closed when it returns."""
        if port in self._mirage_listeners:
            raise OSError(errno.EADDRINUSE, f"already listening on port {port}")
        listener = self._listen_nowait(port, None)  # (no TCP_NODELAY: config.nagle)
        scope = trio.CancelScope()
        self._mirage_listeners[listener.port] = (listener, scope)
        self._nursery.start_soon(self._mirage_accept_loop, listener, scope, callback)

    def unlisten(self, port: int) -> None:
        """Stop accepting on ``port``; flows already accepted carry on."""
        entry = self._mirage_listeners.pop(port, None)
        if entry is None:
            return
        listener, scope = entry
        scope.cancel()
        listener._close_nowait()

    async def _mirage_accept_loop(
        self, listener: Listener, scope: trio.CancelScope, callback: FlowCallback
    ) -> None:
        with scope:
            while True:
                try:
                    flow = await listener.accept()
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
                self._nursery.start_soon(self._run_callback, flow, callback)

    @staticmethod
    async def _run_callback(flow: Flow, callback: FlowCallback) -> None:
        try:
            await callback(flow)
        except (trio.BrokenResourceError, trio.ClosedResourceError, TCPError):
            # A connection failing under the callback is the network's doing, not
            # a bug: the flow is closed below and the stack carries on.
            pass
        finally:
            await _aclose(flow)

    def _close_mirage_listeners(self) -> None:
        for port in list(self._mirage_listeners):
            self.unlisten(port)


async def _aclose(flow: Flow) -> None:
    with trio.CancelScope(shield=True):
        await flow.aclose()
