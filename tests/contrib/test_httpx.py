"""httpx over both stacks through trio_tcp6.contrib.httpx (real httpx and httpcore)."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trio
import trustme

import trio_tcp6 as tcp6
from trio_tcp6.cli.http import Request, Response, serve_http
from trio_tcp6.contrib import flow_is_readable
from trio_tcp6.contrib.httpx import Tcp6Backend, Tcp6Transport
from trio_tcp6.testing import virtual_run

from .helpers import KERNEL_PATIENCE, KINDS, stack_pair

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


def _pattern(n: int) -> bytes:
    return (bytes(range(251)) * (n // 251 + 1))[:n]


async def _app(request: Request) -> Response:
    """``POST /`` answers the body's length and sha256; ``GET /bytes/N`` sends N
    bytes in 64 KiB chunks."""
    if request.method == "POST":
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.body():
            digest.update(chunk)
            size += len(chunk)
        return Response(200, f"{size} {digest.hexdigest()}".encode())
    if request.target.startswith("/bytes/"):
        n = int(request.target.rsplit("/", 1)[1])
        data = _pattern(n)
        chunks = [data[i : i + 65536] for i in range(0, n, 65536)]
        return Response(200, chunks, length=n, content_type="application/octet-stream")
    return Response(200, b"hello")


class Server:
    """An h11 server on a stack that counts the connections it accepted."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.ssl_context = ssl_context

    async def handler(self, flow: tcp6.Flow) -> None:
        self.connections += 1
        stream: trio.abc.HalfCloseableStream = flow
        if self.ssl_context is not None:
            tls = trio.SSLStream(flow, self.ssl_context, server_side=True, https_compatible=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                return
            await serve_http(_HalfCloseless(tls), _app)
            return
        await serve_http(stream, _app)

    async def start(self, nursery: trio.Nursery, stack: tcp6.Stack) -> int:
        listeners = await nursery.start(stack.serve_tcp, self.handler, 0)
        return int(listeners[0].port)


class _HalfCloseless(trio.abc.HalfCloseableStream):
    """An SSLStream offered where serve_http wants a half-closeable stream."""

    def __init__(self, tls: trio.SSLStream[tcp6.Flow]) -> None:
        self.tls = tls

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.tls.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.tls.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.tls.receive_some(max_bytes)

    async def send_eof(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.tls.aclose()


def _patience(kind: str) -> trio.CancelScope:
    # Virtual time never waits for real; the kernel cases get a generous bound.
    return trio.fail_after(KERNEL_PATIENCE if kind == "kernel" else 600.0)


@pytest.mark.parametrize("kind", KINDS)
async def test_keep_alive_reuses_one_connection(kind: str) -> None:
    async with stack_pair(kind) as pair, trio.open_nursery() as nursery:
        server = Server()
        port = await server.start(nursery, pair.server)
        with _patience(kind):
            async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:
                first = await client.get(pair.url(port))
                second = await client.post(pair.url(port), content=b"abc")
        assert first.text == "hello"
        assert second.text == f"3 {hashlib.sha256(b'abc').hexdigest()}"
        assert server.connections == 1
        nursery.cancel_scope.cancel()


async def _close_after_one_response(flow: tcp6.Flow, counter: list[int]) -> None:
    """A keep-alive response (no ``Connection: close``), then the server closes."""
    counter.append(1)
    head = b""
    while b"\r\n\r\n" not in head:
        head += await flow.receive_some(65536)
    await flow.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await flow.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_idle_connection_closed_by_the_server_is_not_reused(kind: str) -> None:
    # httpcore asks get_extra_info("is_readable") of an idle connection before reuse;
    # answering False here would send the second request into a closed connection.
    counter: list[int] = []
    async with stack_pair(kind) as pair, trio.open_nursery() as nursery:
        listeners = await nursery.start(
            pair.server.serve_tcp, lambda flow: _close_after_one_response(flow, counter), 0
        )
        port = listeners[0].port
        with _patience(kind):
            async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:
                assert (await client.get(pair.url(port))).text == "ok"
                await trio.sleep(0.5)  # the server's FIN arrives meanwhile
                assert (await client.get(pair.url(port))).text == "ok"
        assert len(counter) == 2
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", KINDS)
async def test_is_readable_answers_eof_and_data(kind: str) -> None:
    async with stack_pair(kind) as pair:
        listener = await pair.server.open_tcp_listener(0)
        flow = await pair.client.open_tcp_stream(pair.host, listener.port)
        peer = await listener.accept()
        with _patience(kind):
            assert not flow_is_readable(flow)
            await peer.send_all(b"x")
            while not flow_is_readable(flow):
                await trio.sleep(0.01)
            assert await flow.receive_some() == b"x"
            assert not flow_is_readable(flow)
            await peer.send_eof()
            while not flow_is_readable(flow):
                await trio.sleep(0.01)
            assert await flow.receive_some() == b""
        await flow.aclose()
        await peer.aclose()


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("kind", KINDS)
async def test_streams_ten_mib_up_and_down(kind: str) -> None:
    payload = _pattern(10 * MiB)

    async with stack_pair(kind) as pair, trio.open_nursery() as nursery:
        port = await Server().start(nursery, pair.server)
        with _patience(kind):
            async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:

                async def body() -> AsyncIterator[bytes]:
                    for chunk in _chunks(payload, 256 * 1024):
                        yield chunk

                up = await client.post(pair.url(port), content=body())
                assert up.text == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
                received = bytearray()
                async with client.stream("GET", pair.url(port, f"/bytes/{len(payload)}")) as r:
                    assert r.headers["content-length"] == str(len(payload))
                    async for part in r.aiter_raw():
                        received += part
                assert bytes(received) == payload
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", KINDS)
async def test_https_with_a_verified_certificate(kind: str) -> None:
    ca = trustme.CA()
    async with stack_pair(kind) as pair, trio.open_nursery() as nursery:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(pair.host).configure_cert(server_ctx)
        port = await Server(server_ctx).start(nursery, pair.server)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        with _patience(kind):
            transport = Tcp6Transport(pair.client, verify=client_ctx)
            async with httpx.AsyncClient(transport=transport) as client:
                r = await client.get(pair.url(port, scheme="https"))
                assert r.text == "hello"
                assert r.extensions["network_stream"].get_extra_info("ssl_object").version()
            # An unknown CA is refused by verification.
            async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(pair.url(port, scheme="https"))
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", KINDS)
async def test_refused_port_is_connect_error(kind: str) -> None:
    async with stack_pair(kind) as pair:
        listener = await pair.server.open_tcp_listener(0)
        port = listener.port
        await listener.aclose()  # nobody listens there now
        with _patience(kind):
            async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:
                with pytest.raises(httpx.ConnectError) as info:
                    await client.get(pair.url(port))
        assert "refused" in str(info.value)
        assert any(isinstance(exc, tcp6.Refused) for exc in _chain(info.value))


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.mark.trio(run=virtual_run)
async def test_connect_timeout_direct() -> None:
    # Virtual time: the SYNs to a cut host go nowhere; httpx's connect timeout ends it.
    async with stack_pair("direct") as pair:
        assert pair.net is not None
        pair.net.impair(dst=pair.host, loss=1.0)
        start = trio.current_time()
        async with httpx.AsyncClient(transport=Tcp6Transport(pair.client), timeout=3.0) as c:
            with pytest.raises(httpx.ConnectTimeout):
                await c.get(pair.url(80))
        assert trio.current_time() - start == pytest.approx(3.0)


async def test_connect_timeout_kernel() -> None:
    # A listener that never accepts: once its accept queue is full Linux drops further
    # SYNs, so the next connect hangs until httpx's connect timeout.
    async with tcp6.open_kernel_stack() as stack:
        listener = await stack.open_tcp_listener(0, backlog=1)
        held = []
        with trio.fail_after(KERNEL_PATIENCE):
            for _ in range(64):
                with trio.move_on_after(0.5) as scope:
                    held.append(await stack.open_tcp_stream("::1", listener.port))
                if scope.cancelled_caught:
                    break
            else:
                pytest.skip("the kernel accepted every connection: cannot provoke a timeout")
            async with httpx.AsyncClient(transport=Tcp6Transport(stack), timeout=0.5) as c:
                with pytest.raises(httpx.ConnectTimeout):
                    await c.get(f"http://[::1]:{listener.port}/")
        for flow in held:
            await flow.aclose()


async def test_backend_works_for_httpcore_directly(autojump_clock: trio.abc.Clock) -> None:
    import httpcore

    async with stack_pair("direct") as pair, trio.open_nursery() as nursery:
        port = await Server().start(nursery, pair.server)
        async with httpcore.AsyncConnectionPool(network_backend=Tcp6Backend(pair.client)) as p:
            r = await p.request("GET", pair.url(port))
        assert r.status == 200 and r.content == b"hello"
        with pytest.raises(httpcore.UnsupportedProtocol):
            await Tcp6Backend(pair.client).connect_unix_socket("/x")
        nursery.cancel_scope.cancel()
