"""The same API on the operating system's TCP, through trio sockets (AF_INET6).

This is the "conventional kernel" baseline the userspace stack is measured against.
``TCPConfig`` maps onto socket options where the kernel has one
(:mod:`~trio_tcp6.runtime.sockopts`); ``info()`` and ``stats()`` come from the
kernel's ``TCP_INFO`` (:mod:`~trio_tcp6.runtime.tcpinfo`).
"""

from __future__ import annotations

import errno
import ipaddress
import socket as _stdsocket
import struct
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager

import trio

from ..config import TCPConfig
from ..errors import TCPError, Unknown
from ._util import ConflictDetector, check_max_bytes
from .base import (
    Buffer,
    Flow,
    FlowInfo,
    Listener,
    Stack,
    as_tcp_error,
    check_port,
    congestion_name,
    option_name,
    option_value,
    sockopt_result,
)
from .sockopts import configure_socket, unacked_bytes
from .tcpinfo import (
    CLOSED_INFO,
    add_flow_counters,
    parse_tcp_info,
    read_tcp_info,
    tcp_info_to_flow_info,
)

__all__ = ["KernelFlow", "KernelListener", "KernelStack", "open_kernel_stack", "parse_tcp_info"]


@contextmanager
def _raising_tcp_errors() -> Iterator[None]:
    try:
        yield
    except TCPError:
        raise
    except OSError as exc:
        raise as_tcp_error(exc) from exc


class KernelFlow(Flow):
    """A kernel TCP connection (wraps :class:`trio.SocketStream`)."""

    def __init__(self, stream: trio.SocketStream, stack: KernelStack) -> None:
        super().__init__()
        self._stream = stream
        self._sock = stream.socket
        self._stack = stack
        self._closed = False
        self._aborted = False
        self._receive_conflict = ConflictDetector("another task is receiving on this flow")
        # The socket's receive side is shared by the user's reads and close()'s drain:
        # close() keeps reading (into _pending) until the peer's FIN shows up.
        self._recv_lock = trio.Lock()
        self._pending = bytearray()
        self._pending_taken = trio.Event()
        self._eof = False
        self._dest = _address(self._sock.getpeername())
        self._local = _address(self._sock.getsockname())
        # trio.SocketStream turns TCP_NODELAY on; the stack decides (the trio-style
        # calls turn it on again, the mirage ones follow the config).
        self._nodelay = not self._stack.config.nagle
        self._apply_nagle()

    def _apply_nagle(self) -> None:
        self._stream.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, self._nodelay)

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except trio.ClosedResourceError:
            if self._aborted:
                raise trio.BrokenResourceError("the stack was closed") from Unknown(
                    "connection aborted: the stack was closed", errno.ECONNABORTED
                )
            raise

    # -- trio stream -------------------------------------------------------------------
    async def send_all(self, data: Buffer) -> None:
        with self._translate():
            await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        with self._translate():
            await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        with self._translate():
            await self._stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        max_bytes = check_max_bytes(max_bytes)
        with self._receive_conflict, self._translate():
            if self._closed:
                raise trio.ClosedResourceError("flow was closed")
            async with self._recv_lock:
                if self._closed:
                    raise trio.ClosedResourceError("flow was closed")
                if self._pending:
                    chunk = bytes(self._pending[:max_bytes])
                    del self._pending[:max_bytes]
                    self._pending_taken.set()
                    return chunk
                if self._eof:
                    return b""
                data = await self._stream.receive_some(max_bytes)
                if not data:
                    self._eof = True
                return data

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._pending and self._sock.fileno() != -1:
                # Data we read for the user will never be read: tell the peer (RST).
                self._sock.setsockopt(
                    _stdsocket.SOL_SOCKET, _stdsocket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self._stack._forget_flow(self)
            self._pending_taken.set()
        await self._stream.aclose()

    def _abort(self) -> None:
        """Reset the connection at once (the stack is closing)."""
        if self._closed:
            return
        self._aborted = True
        self._closed = True
        self._stack._forget_flow(self)
        if self._sock.fileno() != -1:
            try:
                self._sock.setsockopt(
                    _stdsocket.SOL_SOCKET, _stdsocket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError:
                pass
            self._sock.close()
        self._pending_taken.set()

    # -- mirage hooks -------------------------------------------------------------------
    async def _write_nodelay(self, bufs: Sequence[Buffer]) -> None:
        data = b"".join(bufs)
        with self._translate():
            if self._sock.fileno() == -1:
                raise trio.ClosedResourceError("flow was closed")
            self._stream.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, True)
            try:
                await self._stream.send_all(data)
                await self._wait_all_acked()
            finally:
                if self._sock.fileno() != -1:
                    self._apply_nagle()

    async def _wait_all_acked(self) -> None:
        delay = 0.0002
        while True:
            if self._sock.fileno() == -1:
                raise trio.ClosedResourceError("flow was closed")
            if not sys.platform.startswith("linux"):
                await trio.lowlevel.checkpoint()
                return
            if unacked_bytes(self._sock) == 0:
                await trio.lowlevel.checkpoint()
                return
            info = read_tcp_info(self._sock)
            if info is not None and info["state"] == 7:  # TCP_CLOSE: reset or timed out
                err = self._sock.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_ERROR)
                raise trio.BrokenResourceError("connection failed") from as_tcp_error(
                    OSError(err or errno.ECONNRESET, "connection failed")
                )
            await trio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def _close_gracefully(self) -> None:
        await self.send_eof()
        limit = self._stack.config.receive_buffer
        while True:
            with self._translate():
                if self._closed:
                    raise trio.ClosedResourceError("flow was closed")
                async with self._recv_lock:
                    if self._eof:
                        return
                    if len(self._pending) < limit:
                        data = await self._stream.receive_some(65536)
                        if not data:
                            self._eof = True
                            return
                        self._pending += data
                        continue
                    self._pending_taken = trio.Event()
                await self._pending_taken.wait()

    # -- options ---------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: int | bytes | str) -> None:
        name = option_name(level, optname)
        sock = self._sock
        if name == "TCP_CONGESTION":
            algorithm = b"reno" if congestion_name(value) == "newreno" else b"cubic"
            if algorithm != self.getsockopt(level, optname):
                info = read_tcp_info(sock)
                if info is not None and info["bytes_sent"] > 0:
                    # (Linux would switch; the direct stack cannot: the same rule.)
                    raise OSError(errno.EBUSY, "congestion control is fixed once data was sent")
                sock.setsockopt(level, optname, algorithm)
            return
        number = option_value(name, value)
        sock.setsockopt(level, optname, number)
        if name == "TCP_NODELAY":
            self._nodelay = bool(number)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        name = option_name(level, optname)
        value: int | bytes
        if name == "TCP_CONGESTION":
            value = self._sock.getsockopt(level, optname, 16).split(b"\0", 1)[0]
        else:
            value = int(self._sock.getsockopt(level, optname))
            if name == "TCP_NODELAY":
                value = int(bool(value))
        return sockopt_result(value, buflen)

    # -- introspection -------------------------------------------------------------------
    def get_dest(self) -> tuple[ipaddress.IPv6Address, int]:
        return self._dest

    def get_local(self) -> tuple[ipaddress.IPv6Address, int]:
        return self._local

    def info(self) -> FlowInfo:
        raw = read_tcp_info(self._sock)
        if raw is None:
            return CLOSED_INFO
        return tcp_info_to_flow_info(raw)

    @property
    def socket(self) -> trio.socket.SocketType:
        """The underlying trio socket."""
        return self._sock

    def __repr__(self) -> str:
        (laddr, lport), (addr, port) = self._local, self._dest
        state = "CLOSED" if self._closed else self.info().state.value
        return f"<KernelFlow [{laddr}]:{lport} -> [{addr}]:{port} {state}>"


def _address(sockaddr: tuple[object, ...]) -> tuple[ipaddress.IPv6Address, int]:
    """``(address, port)`` of an AF_INET6 socket address (any ``%scope`` dropped)."""
    return (ipaddress.IPv6Address(str(sockaddr[0]).split("%", 1)[0]), int(str(sockaddr[1])))


class KernelListener(Listener):
    """A listening kernel socket."""

    def __init__(self, sock: trio.socket.SocketType, stack: KernelStack) -> None:
        self._inner = trio.SocketListener(sock)
        self._stack = stack
        self._local = _address(sock.getsockname())
        self._port = self._local[1]
        self._closed = False

    @property
    def port(self) -> int:
        return self._port

    def get_local(self) -> tuple[ipaddress.IPv6Address, int]:
        return self._local

    @property
    def socket(self) -> trio.socket.SocketType:
        """The listening trio socket."""
        return self._inner.socket

    async def accept(self) -> KernelFlow:
        while True:
            try:
                stream = await self._inner.accept()
            except trio.ClosedResourceError:
                if self._stack._shut_down:
                    raise trio.BrokenResourceError("the stack was closed") from None
                raise
            try:
                flow = KernelFlow(stream, self._stack)
            except OSError:
                # Reset before we got to it (getpeername: ENOTCONN): take the next one.
                stream.socket.close()
                continue
            if self.nodelay:
                try:
                    flow.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
                except OSError:
                    pass  # (reset meanwhile: the flow's calls will say so)
            self._stack._counters["passive_opens"] += 1
            self._stack._flows.add(flow)
            return flow

    def _close_nowait(self) -> None:
        if not self._closed:
            self._closed = True
            self._stack._listeners.discard(self)
            self._inner.socket.close()

    async def aclose(self) -> None:
        self._close_nowait()
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        closed = " closed" if self._closed else ""
        return f"<KernelListener [{self._local[0]}]:{self._port}{closed}>"


class KernelStack(Stack):
    """TCP through the kernel: see :func:`open_kernel_stack`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        config: TCPConfig,
        hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
    ) -> None:
        super().__init__(nursery, hosts)
        self.config = config
        self._flows: set[KernelFlow] = set()
        self._listeners: set[KernelListener] = set()
        self._counters: Counter[str] = Counter()
        self._shut_down = False

    # -- Stack API ---------------------------------------------------------------------
    @property
    def localhost(self) -> ipaddress.IPv6Address:
        """``"localhost"`` is the kernel's loopback, ``::1``."""
        return _LOOPBACK

    async def open_tcp_stream(
        self,
        host: str | ipaddress.IPv6Address,
        port: int,
        *,
        local_address: str | ipaddress.IPv6Address | None = None,
    ) -> KernelFlow:
        port = check_port(port, connect=True)
        addr = self.resolve(host)
        local = None if local_address is None else self.resolve(local_address)
        if self._shut_down:
            raise trio.ClosedResourceError("the stack was closed")
        sock = trio.socket.socket(_stdsocket.AF_INET6, _stdsocket.SOCK_STREAM)
        try:
            configure_socket(sock, self.config)
            with _raising_tcp_errors():
                if local is not None:
                    await sock.bind((str(local), 0))
                await sock.connect((str(addr), port))
        except TCPError:
            sock.close()
            self._counters["attempt_fails"] += 1
            raise
        except BaseException:
            sock.close()
            raise
        try:
            flow = KernelFlow(trio.SocketStream(sock), self)
        except OSError as exc:  # reset right after the handshake (getpeername: ENOTCONN)
            sock.close()
            self._counters["attempt_fails"] += 1
            raise as_tcp_error(exc) from exc
        self._counters["active_opens"] += 1
        self._flows.add(flow)
        flow.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)  # trio's default
        return flow

    async def open_tcp_listener(
        self,
        port: int,
        *,
        host: str | ipaddress.IPv6Address | None = None,
        backlog: int | None = None,
    ) -> KernelListener:
        """Listen on ``port`` on every address, or on ``host`` (0 picks a free port;
        see ``listener.port``); accepted flows get ``TCP_NODELAY``."""
        await trio.lowlevel.checkpoint()
        listener = self._listen_nowait(port, backlog, None if host is None else self.resolve(host))
        listener.nodelay = True
        return listener

    def _listen_nowait(
        self, port: int, backlog: int | None, host: ipaddress.IPv6Address | None = None
    ) -> KernelListener:
        if self._shut_down:
            raise trio.ClosedResourceError("the stack was closed")
        port = check_port(port, connect=False)
        sock = _stdsocket.socket(_stdsocket.AF_INET6, _stdsocket.SOCK_STREAM)
        try:
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            configure_socket(sock, self.config)
            sock.bind(("::" if host is None else str(host), port))
            sock.listen(backlog if backlog is not None else self.config.syn_backlog)
        except BaseException:
            sock.close()
            raise
        listener = KernelListener(trio.socket.from_stdlib_socket(sock), self)
        self._listeners.add(listener)
        return listener

    async def input(
        self,
        src: str | ipaddress.IPv6Address,
        dst: str | ipaddress.IPv6Address,
        payload: Buffer,
    ) -> None:
        """The kernel does its own IP input: nothing to do."""
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        """This stack's connection counters plus the kernel's per-connection counters
        (``TCP_INFO``) summed over its flows, open and closed."""
        totals = Counter(self._counters)
        for flow in self._flows:
            info = read_tcp_info(flow.socket)
            if info is not None:
                add_flow_counters(totals, info)
        totals["flows_open"] = len(self._flows)
        totals["listeners_open"] = len(self._listeners)
        for key in ("segments_in", "segments_out", "retransmits", "bytes_acked"):
            totals.setdefault(key, 0)
        return dict(totals)

    def _forget_flow(self, flow: KernelFlow) -> None:
        if flow in self._flows:
            self._flows.discard(flow)
            info = read_tcp_info(flow.socket)
            if info is not None:
                add_flow_counters(self._counters, info)

    def _shutdown(self) -> None:
        self._shut_down = True
        self._close_mirage_listeners()
        for listener in list(self._listeners):
            listener._close_nowait()
        for flow in list(self._flows):
            flow._abort()
        self._nursery.cancel_scope.cancel()

    def __repr__(self) -> str:
        return f"<KernelStack flows={len(self._flows)}>"


_LOOPBACK = ipaddress.IPv6Address("::1")


@asynccontextmanager
async def open_kernel_stack(
    *,
    config: TCPConfig | None = None,
    hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
) -> AsyncIterator[KernelStack]:
    """A stack on the operating system's TCP, with the same API as :func:`open_stack`
    (``hosts``: names to addresses, as there; the system resolver is not asked).

    Its tasks (mirage ``listen`` callbacks) live in a nursery scoped to this block;
    leaving the block resets the flows still open and closes every listener.
    """
    async with trio.open_nursery() as nursery:
        stack = KernelStack(nursery, config if config is not None else TCPConfig(), hosts)
        try:
            yield stack
        finally:
            stack._shutdown()
