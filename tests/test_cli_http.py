"""The command line's one HTTP implementation (``trio_tcp6.cli.http``, on h11): keep-alive,
bodies an app leaves unread, HTTP/1.0 and ``Connection: close`` peers, and a response
that leaves in one segment."""

from __future__ import annotations

import hashlib

import h11
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.cli.http import Request, Response, http_get, serve_http

SERVER = "fd00:4854:7470::2"
CLIENT = "fd00:4854:7470::1"


async def _app(request: Request) -> Response:
    if request.target == "/sha256":
        digest = hashlib.sha256()
        async for chunk in request.body():
            digest.update(chunk)
        return Response(200, digest.hexdigest().encode())
    if request.target == "/chunks":
        return Response(200, iter([b"ab", b"cd", b"e"]), 5, "application/octet-stream")
    if request.target == "/":
        return Response(200, b"page", content_type="text/html")
    return Response(404, b"not found\n")  # never reads the body


async def _exchange(
    stream: trio.abc.Stream, conn: h11.Connection, method: str, target: str, body: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    headers = [("Host", "x"), ("Content-Length", str(len(body)))]
    data = conn.send(h11.Request(method=method, target=target, headers=headers))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)
    status, response_headers, received = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status, response_headers = event.status_code, dict(event.headers)
        elif isinstance(event, h11.Data):
            received += event.data
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return status, response_headers, received
        else:
            raise AssertionError(event)


async def test_keep_alive_serves_requests_in_turn_on_one_stream() -> None:
    client, server = trio.testing.memory_stream_pair()
    body = bytes(range(256)) * 1000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_http, server, _app)
        conn = h11.Connection(h11.CLIENT)
        status, headers, page = await _exchange(client, conn, "GET", "/")
        assert (status, page) == (200, b"page")
        assert headers[b"content-type"] == b"text/html"
        assert headers[b"server"] == b"trio_tcp6"
        assert await _exchange(client, conn, "POST", "/sha256", body) == (
            200,
            {b"content-length": b"64", b"content-type": b"text/plain", b"server": b"trio_tcp6"},
            hashlib.sha256(body).hexdigest().encode(),
        )
        # The 404 app never reads the body: the server drops it, so the next request
        # on the connection is parsed from the right place.
        status, _, _ = await _exchange(client, conn, "POST", "/missing", body)
        assert status == 404
        status, headers, chunks = await _exchange(client, conn, "GET", "/chunks")
        assert (status, chunks, headers[b"content-length"]) == (200, b"abcde", b"5")
        await client.aclose()  # the client is done: the server closes its side and returns


async def test_http_1_0_client_gets_one_response_then_close() -> None:
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_http, server, _app)
        await client.send_all(b"GET / HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := await client.receive_some(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert received.endswith(b"\r\n\r\npage")


async def test_protocol_error_ends_the_connection_quietly() -> None:
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_http, server, _app)
        await client.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        assert await client.receive_some(65536) == b""


async def test_http_get_over_flows() -> None:
    net = tcp6.VirtualNetwork()
    async with (
        tcp6.open_stack(net.attach(SERVER), SERVER) as server,
        tcp6.open_stack(net.attach(CLIENT), CLIENT) as client,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(server.serve_tcp, lambda flow: serve_http(flow, _app), 80)
        for target, expected in (("/", (200, b"page")), ("/nope", (404, b"not found\n"))):
            flow = await client.open_tcp_stream(SERVER, 80)
            assert await http_get(flow, f"[{SERVER}]:80", target) == expected
            await flow.aclose()
        nursery.cancel_scope.cancel()


async def test_small_keep_alive_response_is_one_segment(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The response's head and body go out in one ``send_all``: sent as two, Nagle
    would hold the body until the client's delayed ACK (40 ms) of the head."""
    net = tcp6.VirtualNetwork(delay=0.005)
    async with (
        tcp6.open_stack(net.attach(SERVER), SERVER) as server,
        tcp6.open_stack(net.attach(CLIENT), CLIENT) as client,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(server.serve_tcp, lambda flow: serve_http(flow, _app), 80)
        flow = await client.open_tcp_stream(SERVER, 80)
        conn = h11.Connection(h11.CLIENT)
        for _ in range(3):
            t0 = trio.current_time()
            assert (await _exchange(flow, conn, "GET", "/"))[2] == b"page"
            # One round trip of 2 x 5 ms (request out, response back), well below 40 ms.
            assert trio.current_time() - t0 < 0.015
        await flow.aclose()
        nursery.cancel_scope.cancel()
