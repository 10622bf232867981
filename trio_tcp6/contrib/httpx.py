"""httpx and httpcore over a trio_tcp6 stack.

``pip install 'trio-tcp6[httpx]'``. Two layers:

* :class:`Tcp6Backend`, an :class:`httpcore.AsyncNetworkBackend` whose
  ``connect_tcp`` opens a flow on a stack (direct or kernel), for httpcore itself::

      pool = httpcore.AsyncConnectionPool(network_backend=Tcp6Backend(stack))

* :class:`Tcp6Transport`, an :class:`httpx.AsyncBaseTransport` built on that
  backend, for httpx::

      async with httpx.AsyncClient(transport=Tcp6Transport(stack)) as client:
          r = await client.get("http://[fd00::2]:8080/")

Why not httpcore's own trio backend: its stream insists on a
:class:`trio.SocketStream` underneath (for addresses and for ``is_readable``), which a
direct flow is not. ``is_readable`` matters: before reusing an idle keep-alive
connection httpcore asks whether it became readable, which means the server closed
it; this stream answers from the flow (:func:`~trio_tcp6.contrib.flow_is_readable`).

Errors are httpcore's (``ConnectError``, ``ConnectTimeout``, ``ReadError``, ...), which
the transport turns into httpx's of the same name: a refused port is
``httpx.ConnectError``, a connect that outlasts httpx's connect timeout
``httpx.ConnectTimeout`` (so is a trio_tcp6 :class:`~trio_tcp6.Timeout`, the SYN
retries running out).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import trio

try:
    import httpcore
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trio_tcp6.contrib.httpx needs httpx and httpcore: pip install 'trio-tcp6[httpx]'"
    ) from exc

from ..errors import TCPError, Timeout
from ..runtime import Flow, Stack
from . import flow_is_readable, local_address, remote_address, transport_flow

__all__ = ["Tcp6Backend", "Tcp6Stream", "Tcp6Transport"]

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


@contextmanager
def _mapped(timeout_error: type[Exception], broken_error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except trio.TooSlowError as exc:
        raise timeout_error(str(exc) or "timed out") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        raise broken_error(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    # trio wraps the reason (an ssl.SSLError, a TCPError) as the __cause__.
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) not in text:
        text = f"{text}: {cause}" if text else str(cause)
    return text or type(exc).__name__


class Tcp6Stream(httpcore.AsyncNetworkStream):
    """An httpcore network stream over a flow, or over a :class:`trio.SSLStream` on a
    flow (after :meth:`start_tls`)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        flow = transport_flow(stream)
        if flow is None:
            raise TypeError(f"not a trio_tcp6 flow (or TLS over one): {stream!r}")
        self.stream = stream
        self.flow = flow

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with (
            _mapped(httpcore.ReadTimeout, httpcore.ReadError),
            trio.fail_after(_deadline(timeout)),
        ):
            return bytes(await self.stream.receive_some(max_bytes))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with (
            _mapped(httpcore.WriteTimeout, httpcore.WriteError),
            trio.fail_after(_deadline(timeout)),
        ):
            await self.stream.send_all(buffer)

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = trio.SSLStream(
            self.stream,
            ssl_context,
            server_hostname=server_hostname,
            https_compatible=True,
        )
        try:
            with (
                _mapped(httpcore.ConnectTimeout, httpcore.ConnectError),
                trio.fail_after(_deadline(timeout)),
            ):
                await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(self.stream)
            raise
        return Tcp6Stream(tls)

    def get_extra_info(self, info: str) -> Any:
        """``ssl_object`` (the :class:`trio.SSLStream`, which answers the
        :class:`ssl.SSLObject` queries: ``selected_alpn_protocol``, ``getpeercert``,
        ``version``...), ``client_addr``, ``server_addr``, ``is_readable``, and
        ``flow`` (the trio_tcp6 flow); None for anything else."""
        if info == "ssl_object":
            return self.stream if isinstance(self.stream, trio.SSLStream) else None
        if info == "client_addr":
            return local_address(self.flow)
        if info == "server_addr":
            return remote_address(self.flow)
        if info == "is_readable":
            return flow_is_readable(self.flow)
        if info == "flow":
            return self.flow
        return None


def _apply_socket_options(flow: Flow, options: Iterable[SocketOption]) -> None:
    setsockopt = getattr(flow, "setsockopt", None)
    if setsockopt is None:
        setsockopt = getattr(getattr(flow, "socket", None), "setsockopt", None)
    for option in options:
        if setsockopt is None:
            raise httpcore.ConnectError(f"socket options are not supported on {flow!r}")
        setsockopt(*option)


class Tcp6Backend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for a trio_tcp6 :class:`~trio_tcp6.Stack`.

    ``connect_tcp`` opens ``stack.open_tcp_stream(host, port)`` (with
    ``local_address=`` passed on when given; the stack must accept it) and applies
    ``socket_options`` through the flow's ``setsockopt`` (or its socket's). Unix
    sockets are not a trio_tcp6 thing: ``connect_unix_socket`` raises
    :class:`httpcore.UnsupportedProtocol`.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        kwargs: dict[str, Any] = {}
        if local_address is not None:
            kwargs["local_address"] = local_address
        try:
            with trio.fail_after(_deadline(timeout)):
                flow = await self.stack.open_tcp_stream(host, port, **kwargs)
        except trio.TooSlowError as exc:
            raise httpcore.ConnectTimeout(f"connecting to [{host}]:{port} timed out") from exc
        except Timeout as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (TCPError, OSError, ValueError) as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if socket_options:
            try:
                _apply_socket_options(flow, socket_options)
            except BaseException:
                await trio.aclose_forcefully(flow)
                raise
        return Tcp6Stream(flow)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("trio_tcp6 has no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


def _httpx_error(exc: Exception) -> Exception | None:
    # httpcore and httpx name their exceptions alike: the most specific httpcore
    # class of ``exc`` that httpx also has gives the httpx exception.
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("httpcore"):
            target = getattr(httpx, cls.__name__, None)
            if isinstance(target, type) and issubclass(target, httpx.HTTPError):
                return target(str(exc))
    return None


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _httpx_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes], closer: Any) -> None:
        self._stream = stream
        self._closer = closer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if self._closer is not None:
            with _httpx_errors():
                await self._closer()


class Tcp6Transport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections are trio_tcp6 flows of ``stack``.

    The keywords are :class:`httpx.AsyncHTTPTransport`'s (no proxies, no unix
    sockets): ``verify``/``cert``/``trust_env`` build the TLS context as httpx
    does; ``limits``, ``http1``/``http2`` (``http2`` needs the ``h2`` package),
    ``retries``, ``local_address`` and ``socket_options`` go to httpcore's pool.
    """

    def __init__(
        self,
        stack: Stack,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        retries: int = 0,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> None:
        limits = limits if limits is not None else httpx.Limits()
        if isinstance(verify, ssl.SSLContext):
            ssl_context = verify
        else:
            ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        self.backend = Tcp6Backend(stack)
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            socket_options=socket_options,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self.pool.handle_async_request(core_request)
        stream = response.stream
        assert isinstance(stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(stream, getattr(stream, "aclose", None)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def __aenter__(self) -> Tcp6Transport:
        await self.pool.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        with _httpx_errors():
            await self.pool.__aexit__(exc_type, exc_value, traceback)
