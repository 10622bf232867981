"""HTTP/1.1 client with h11 over a trio_tcp6 flow: several requests on one keep-alive connection.

python examples/http_client.py                              # against an in-process server
python examples/http_client.py --kernel --port 8080 / /bytes/10   # against [::1]:8080
"""

from __future__ import annotations

import argparse
import ipaddress

import h11
import trio

import trio_tcp6 as tcp6

Response = tuple[int, list[tuple[bytes, bytes]], bytes]


async def request(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    host: str,
    method: str,
    path: str,
    body: bytes = b"",
) -> Response:
    """One request/response exchange on an open h11 client connection."""
    headers = [("Host", host), ("Content-Length", str(len(body)))]
    await stream.send_all(conn.send(h11.Request(method=method, target=path, headers=headers)))
    if body:
        await stream.send_all(conn.send(h11.Data(data=body)))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    status, response_headers, chunks = 0, [], []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status, response_headers = event.status_code, list(event.headers)
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return status, response_headers, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("server closed the connection mid-response")


async def fetch(
    stack: tcp6.Stack, host: str | ipaddress.IPv6Address, port: int, paths: list[str]
) -> list[Response]:
    """GET each path in turn over one keep-alive connection."""
    address = ipaddress.IPv6Address(host)
    stream = await stack.open_tcp_stream(address, port)
    conn = h11.Connection(h11.CLIENT)
    results = []
    try:
        for path in paths:
            results.append(await request(stream, conn, f"[{address}]:{port}", "GET", path))
            conn.start_next_cycle()
    finally:
        await stream.aclose()
    return results


async def run_kernel(host: str, port: int, paths: list[str]) -> list[Response]:
    async with tcp6.open_kernel_stack() as stack:
        return await fetch(stack, host, port, paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", action="store_true", help="use the kernel's TCP")
    parser.add_argument("--host", default="::1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("paths", nargs="*", default=["/"])
    args = parser.parse_args()
    if args.kernel:
        for status, _headers, body in trio.run(run_kernel, args.host, args.port, args.paths):
            print(status, len(body), "bytes")
    else:
        from http_server import run_virtual  # type: ignore[import-not-found]

        trio.run(run_virtual)


if __name__ == "__main__":
    main()
