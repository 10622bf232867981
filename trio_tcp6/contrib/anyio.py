"""A flow as an :class:`anyio.abc.ByteStream`, so anyio's stream wrappers run on it.

``pip install 'trio-tcp6[anyio]'``. Under anyio's trio backend (trio_tcp6 runs on trio
only), :class:`FlowByteStream` gives anyio code a flow of either stack::

    stream = FlowByteStream(await stack.open_tcp_stream(host, port))
    tls = await anyio.streams.tls.TLSStream.wrap(stream, hostname=name, ssl_context=ctx)
    buffered = anyio.streams.buffered.BufferedByteReceiveStream(tls)
    line = await buffered.receive_until(b"\\r\\n", 65536)

trio's exceptions become anyio's: the peer's FIN is :class:`anyio.EndOfStream` on
``receive``; a broken connection :class:`anyio.BrokenResourceError` (its ``__cause__``
the trio exception, whose own cause is the :class:`~trio_tcp6.TCPError`); a closed
stream :class:`anyio.ClosedResourceError`; two tasks receiving (or sending) at once
:class:`anyio.BusyResourceError`. The typed attributes are
:class:`anyio.abc.SocketAttribute`'s ``family``, ``local_address``, ``local_port``,
``remote_address`` and ``remote_port`` (no ``raw_socket``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import trio

try:
    import anyio
    from anyio.abc import ByteStream, SocketAttribute
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trio_tcp6.contrib.anyio needs anyio: pip install 'trio-tcp6[anyio]'"
    ) from exc

from ..runtime import Flow
from . import local_address, remote_address

__all__ = ["FlowByteStream"]


@contextmanager
def _anyio_errors() -> Iterator[None]:
    try:
        yield
    except trio.BrokenResourceError as exc:
        raise anyio.BrokenResourceError(str(exc)) from exc
    except trio.ClosedResourceError as exc:
        raise anyio.ClosedResourceError(str(exc)) from exc
    except trio.BusyResourceError as exc:
        raise anyio.BusyResourceError(str(exc)) from exc


class FlowByteStream(ByteStream):
    """An :class:`anyio.abc.ByteStream` over ``flow`` (see the module docstring);
    ``aclose()`` closes the flow."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow

    async def receive(self, max_bytes: int = 65536) -> bytes:
        with _anyio_errors():
            data = await self.flow.receive_some(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return bytes(data)

    async def send(self, item: bytes) -> None:
        with _anyio_errors():
            await self.flow.send_all(item)

    async def send_eof(self) -> None:
        with _anyio_errors():
            await self.flow.send_eof()

    async def aclose(self) -> None:
        await self.flow.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        flow = self.flow
        return {
            SocketAttribute.family: lambda: socket.AF_INET6,
            SocketAttribute.local_address: lambda: local_address(flow),
            SocketAttribute.local_port: lambda: local_address(flow)[1],
            SocketAttribute.remote_address: lambda: remote_address(flow),
            SocketAttribute.remote_port: lambda: remote_address(flow)[1],
        }
