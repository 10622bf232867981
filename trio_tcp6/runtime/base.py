"""What both stacks share: the public :class:`Flow`, :class:`Listener` and :class:`Stack`
base classes, and :class:`FlowInfo`.

A concrete flow implements trio's :class:`~trio.abc.HalfCloseableStream` methods plus
three hooks (``_write_nodelay``, ``_close_gracefully``, ``info``/``get_dest``); the
mirage-style calls (``read``, ``write``, ``writev``, ``write_nodelay``, ``close``) are
written once here on top of them. Likewise a concrete stack implements
``open_tcp_stream`` and ``_listen_nowait``; ``open_tcp_listener``, ``serve_tcp``,
``create_connection``, ``listen`` and ``unlisten`` live here.
"""

from __future__ import annotations

import abc
import errno
import ipaddress
from collections.abc import Awaitable, Callable, Sequence

import trio

from ..errors import Refused, TCPError, Timeout, Unknown
from ..results import EOF, Eof, Error, Ok
from ..tcp.info import TCPInfo

__all__ = [
    "Buffer",
    "Flow",
    "FlowCallback",
    "FlowInfo",
    "Listener",
    "Stack",
    "as_tcp_error",
    "parse_host",
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


class Flow(trio.abc.HalfCloseableStream):
    """One TCP connection: a trio half-closeable stream with MirageOS-style calls.

    The mirage calls serialise among themselves (two tasks may ``write`` at once;
    their buffers are queued in turn) and never raise for network failures: they
    return :class:`~trio_tcp6.Error`. Mixing a mirage call and the trio method of
    the same direction in two tasks at once raises :class:`trio.BusyResourceError`,
    as two concurrent ``send_all`` would.
    """

    def __init__(self) -> None:
        self._mirage_write_lock = trio.Lock()
        self._mirage_read_lock = trio.Lock()

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

    # -- mirage calls ------------------------------------------------------------------
    async def read(self) -> Ok[bytes] | Error | Eof:
        """Wait for data: ``Ok(bytes)``, ``EOF`` once the peer's FIN was reached, or
        ``Error(err)``."""
        async with self._mirage_read_lock:
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
        async with self._mirage_write_lock:
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
        async with self._mirage_write_lock:
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
        """
        async with self._mirage_write_lock:
            try:
                await self._close_gracefully()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


class Listener(trio.abc.Listener[Flow]):
    """A listening port: ``accept()`` returns the next :class:`Flow`."""

    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The local port (the one picked when opened with port 0)."""

    @abc.abstractmethod
    def _close_nowait(self) -> None:
        """Stop listening at once (synchronous form of ``aclose``)."""


class Stack(abc.ABC):
    """The API both stacks share: the trio-style calls (``open_tcp_stream``,
    ``open_tcp_listener``, ``serve_tcp``) and the mirage-style ones (``create_connection``,
    ``listen``, ``unlisten``)."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._mirage_listeners: dict[int, tuple[Listener, trio.CancelScope]] = {}

    # -- concrete stacks implement -----------------------------------------------------
    @abc.abstractmethod
    async def open_tcp_stream(self, host: str | ipaddress.IPv6Address, port: int) -> Flow:
        """Active open. Raises :class:`~trio_tcp6.Refused` or :class:`~trio_tcp6.Timeout`
        (or another :class:`~trio_tcp6.TCPError`)."""

    @abc.abstractmethod
    def _listen_nowait(self, port: int, backlog: int | None) -> Listener:
        """Start listening on ``port`` (0: pick one) right away."""

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
    async def open_tcp_listener(self, port: int, *, backlog: int | None = None) -> Listener:
        """Listen on ``port`` (0 picks a free port; see ``listener.port``)."""
        await trio.lowlevel.checkpoint()
        return self._listen_nowait(port, backlog)

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
        (the flow is closed when the handler returns)."""
        listener = await self.open_tcp_listener(port, backlog=backlog)
        await trio.serve_listeners(
            handler,
            [listener],
            handler_nursery=handler_nursery,
            task_status=task_status,
        )

    # -- mirage style --------------------------------------------------------------------
    async def create_connection(
        self, dest: tuple[str | ipaddress.IPv6Address, int]
    ) -> Ok[Flow] | Error:
        """Active open, returning ``Ok(flow)`` or ``Error(err)`` instead of raising."""
        host, port = dest
        try:
            flow = await self.open_tcp_stream(host, port)
        except TCPError as exc:
            return Error(exc)
        except OSError as exc:
            return Error(as_tcp_error(exc))
        return Ok(flow)

    def listen(self, port: int, callback: FlowCallback) -> None:
        """Accept connections on ``port``; each runs ``await callback(flow)`` in its own
        task in the stack's nursery, and the flow is closed when it returns."""
        if port in self._mirage_listeners:
            raise OSError(errno.EADDRINUSE, f"already listening on port {port}")
        listener = self._listen_nowait(port, None)
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
