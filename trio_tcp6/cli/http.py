"""HTTP/1.1 over any trio stream, with h11: the server loop behind the command line's
HTTP services (``demo`` and ``tun serve-http``) and the small client the demo uses.

h11 does the protocol (framing, keep-alive, HTTP/1.0 peers, header limits); this module
only moves its bytes to and from the stream. A service is an *app*: an async function
from a :class:`Request` to a :class:`Response`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import attrs
import h11
import trio

from ..errors import TCPError

__all__ = ["App", "Request", "Response", "http_get", "serve_http"]

CHUNK = 65536
SERVER_NAME = "trio_tcp6"


class _Peer:
    """One h11 connection and the stream under it."""

    def __init__(self, stream: trio.abc.Stream, role: type[h11.CLIENT] | type[h11.SERVER]):
        self.stream = stream
        self.h11 = h11.Connection(role)

    async def next_event(self) -> object:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(bytes(await self.stream.receive_some(CHUNK)))

    async def send(self, *events: h11.Event) -> None:
        """Send ``events`` with one ``send_all``: a response's head and a small body in
        one segment, not two (the second would wait for a delayed ACK under Nagle)."""
        # The passthrough form returns a body chunk as it is, not joined to the framing:
        # a large chunk sent alone is never copied.
        parts = [
            part for event in events for part in self.h11.send_with_data_passthrough(event) or ()
        ]
        if len(parts) == 1:
            await self.stream.send_all(parts[0])
        elif parts:
            await self.stream.send_all(b"".join(parts))


class Request:
    """A request whose head has arrived; its body is read by iterating :meth:`body`
    (what the app leaves unread is read and dropped before the response goes out)."""

    def __init__(self, event: h11.Request, peer: _Peer) -> None:
        self.method = event.method.decode("ascii")
        self.target = event.target.decode("ascii", errors="replace")
        self.headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
        ]
        self._peer = peer
        self._complete = False

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive."""
        while not self._complete:
            event = await self._peer.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
            else:
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")


@attrs.frozen
class Response:
    """What an app answers: a status, a body (bytes, or chunks whose total ``length``
    is given) and its content type."""

    status: int
    body: bytes | Iterable[bytes] = b""
    length: int | None = None
    content_type: str = "text/plain"


App = Callable[[Request], Awaitable[Response]]


def _head(status: int, length: int, content_type: str) -> h11.Response:
    headers = [
        ("Content-Length", str(length)),
        ("Content-Type", content_type),
        ("Server", SERVER_NAME),
    ]
    return h11.Response(status_code=status, headers=headers)


async def _respond(peer: _Peer, response: Response) -> None:
    body = response.body
    if isinstance(body, bytes):
        head = _head(response.status, len(body), response.content_type)
        await peer.send(head, h11.Data(data=body), h11.EndOfMessage())
        return
    if response.length is None:
        raise ValueError("a Response with a chunked body needs its length")
    await peer.send(_head(response.status, response.length, response.content_type))
    for chunk in body:
        await peer.send(h11.Data(data=chunk))
    await peer.send(h11.EndOfMessage())


async def serve_http(stream: trio.abc.HalfCloseableStream, app: App) -> None:
    """Serve HTTP/1.1 requests on ``stream`` with ``app`` (keep-alive: one after the
    other) until either side closes; then close the stream. A peer that breaks the
    protocol or the connection just ends it."""
    peer = _Peer(stream, h11.SERVER)
    try:
        while True:
            event = await peer.next_event()
            if not isinstance(event, h11.Request):
                break  # ConnectionClosed: the client is done
            request = Request(event, peer)
            response = await app(request)
            async for _ in request.body():
                pass
            await _respond(peer, response)
            if peer.h11.our_state is not h11.DONE or peer.h11.their_state is not h11.DONE:
                break  # MUST_CLOSE: Connection: close, or an HTTP/1.0 client
            peer.h11.start_next_cycle()
    except (h11.ProtocolError, trio.BrokenResourceError, TCPError):
        pass
    finally:
        await stream.aclose()


async def http_get(stream: trio.abc.Stream, host: str, target: str) -> tuple[int, bytes]:
    """``GET target`` with ``Connection: close``; returns the status and the body."""
    peer = _Peer(stream, h11.CLIENT)
    headers = [("Host", host), ("Connection", "close")]
    await peer.send(h11.Request(method="GET", target=target, headers=headers), h11.EndOfMessage())
    status, body = 0, bytearray()
    while True:
        event = await peer.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(body)
        else:
            raise ConnectionError("the server closed the connection before the response")
