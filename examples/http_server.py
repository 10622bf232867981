"""HTTP/1.1 server with h11 on a trio_tcp6 flow (keep-alive, streaming bodies).

    python examples/http_server.py                       # server + client, VirtualNetwork
    python examples/http_server.py --kernel --port 8080  # then: curl -g 'http://[::1]:8080/'

Routes: ``GET /`` a small page, ``GET /bytes/N`` N bytes of a fixed pattern (streamed),
``POST /sha256`` the SHA-256 of the request body. ``http_handler`` works on any trio
stream: the kernel's, ours, or a TLS stream on top of either.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress

import h11
import trio

import trio_tcp6 as tcp6

SERVER = ipaddress.IPv6Address("fd00:4854::2")
CLIENT = ipaddress.IPv6Address("fd00:4854::1")
CHUNK = 65536
PAGE = b"<html><body><h1>trio_tcp6</h1><p>HTTP/1.1 over a userspace TCP stack.</p></body></html>\n"
_PATTERN = bytes(range(256)) * (CHUNK // 256)


def pattern(offset: int, size: int) -> bytes:
    """``size`` bytes of the /bytes/N body starting at ``offset`` (byte i is i % 256)."""
    start = offset % 256
    out = (_PATTERN * 2)[start : start + min(size, CHUNK)]
    while len(out) < size:
        out += pattern(offset + len(out), size - len(out))
    return out


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(CHUNK))
            continue
        return event


async def _send(stream: trio.abc.Stream, conn: h11.Connection, event: object) -> None:
    data = conn.send(event)  # type: ignore[arg-type]
    if data:
        await stream.send_all(data)


async def http_handler(stream: trio.abc.HalfCloseableStream) -> None:
    """Serve HTTP/1.1 requests on ``stream`` until the client closes."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = await _next_event(stream, conn)
            if not isinstance(event, h11.Request):
                break  # ConnectionClosed, or the client stopped sending
            digest = hashlib.sha256()
            while not isinstance(body := await _next_event(stream, conn), h11.EndOfMessage):
                if isinstance(body, h11.Data):
                    digest.update(body.data)
            await _respond(stream, conn, event, digest)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, trio.BrokenResourceError):
        pass
    finally:
        await stream.aclose()


async def _respond(
    stream: trio.abc.Stream, conn: h11.Connection, request: h11.Request, digest: object
) -> None:
    target = request.target.decode()
    if request.method == b"GET" and target == "/":
        body, size = PAGE, len(PAGE)
    elif request.method == b"GET" and target.startswith("/bytes/") and target[7:].isdigit():
        body, size = None, int(target[7:])
    elif request.method == b"POST" and target == "/sha256":
        body = digest.hexdigest().encode()  # type: ignore[attr-defined]
        size = len(body)
    else:
        body = b"not found\n"
        await _send(stream, conn, _response(404, len(body)))
        await _send(stream, conn, h11.Data(data=body))
        await _send(stream, conn, h11.EndOfMessage())
        return
    await _send(stream, conn, _response(200, size))
    if body is not None:
        await _send(stream, conn, h11.Data(data=body))
    else:
        sent = 0
        while sent < size:
            chunk = pattern(sent, min(CHUNK, size - sent))
            await _send(stream, conn, h11.Data(data=chunk))
            sent += len(chunk)
    await _send(stream, conn, h11.EndOfMessage())


def _response(status: int, length: int) -> h11.Response:
    return h11.Response(
        status_code=status,
        headers=[("Content-Length", str(length)), ("Server", "trio_tcp6-example")],
    )


async def run_virtual() -> list[tuple[int, int]]:
    """Server and client on one in-memory network: a few keep-alive requests."""
    from http_client import fetch  # type: ignore[import-not-found]

    net = tcp6.VirtualNetwork()
    async with (
        tcp6.open_stack(net.attach(SERVER), SERVER) as server,
        tcp6.open_stack(net.attach(CLIENT), CLIENT) as client,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(server.serve_tcp, http_handler, 80)
        results = await fetch(client, SERVER, 80, ["/", "/bytes/1000000", "/missing"])
        nursery.cancel_scope.cancel()
    summary = [(status, len(body)) for status, _headers, body in results]
    for path, (status, size) in zip(["/", "/bytes/1000000", "/missing"], summary, strict=True):
        print(f"GET {path} -> {status}, {size} bytes")
    return summary


async def serve_kernel(port: int) -> None:
    async with tcp6.open_kernel_stack() as stack:
        print(f"HTTP server on the kernel's TCP: curl -g 'http://[::1]:{port}/'; Ctrl-C to stop")
        await stack.serve_tcp(http_handler, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", action="store_true", help="serve on the kernel's TCP")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    if args.kernel:
        trio.run(serve_kernel, args.port)
    else:
        trio.run(run_virtual)


if __name__ == "__main__":
    main()
