"""Request latency of HTTP over trio_tcp6 beside trio's own sockets, in one run.

Three workloads, each on three transports: trio's ``open_tcp_stream``/``serve_tcp``
(kernel sockets on ``::1``, the reference), the kernel stack (``open_kernel_stack``,
``::1``) and the direct stack over an unimpaired ``VirtualNetwork`` (real time):

* write-write-read: the client writes a request in two ``send_all`` (head, body),
  the server answers 1 byte (what Nagle with delayed ACKs punishes);
* httpx POST (128-byte body) to an h11 server, one keep-alive connection;
* hypercorn GET through httpx: hypercorn's own ``serve`` on a socket for trio,
  ``trio_tcp6.contrib.hypercorn.serve`` on a listener for the stacks.

Each figure is the mean per request of the best of 5 rounds (``--requests`` each).
``--nagle off`` opens both trio_tcp6 stacks with ``TCPConfig(nagle=False)``, as trio's
sockets run (TCP_NODELAY); the default keeps each stack's own default::

    python bench/http_latency_bench.py [--requests 200] [--rounds 5] [--nagle off]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

import trio_tcp6 as tcp6
from trio_tcp6.cli.http import Request, Response, serve_http
from trio_tcp6.contrib.httpx import Tcp6Transport
from trio_tcp6.contrib.hypercorn import serve as tcp6_hypercorn_serve

TRANSPORTS = ["trio", "kernel", "direct"]


async def _h11_app(request: Request) -> Response:
    async for _ in request.body():
        pass
    return Response(200, b"ok")


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Env:
    """Where to connect and how: a stream opener, a listener opener and an httpx
    transport factory for one transport kind."""

    def __init__(
        self,
        host: str,
        connect: Callable[[int], Awaitable[trio.abc.Stream]],
        listen: Callable[[], Awaitable[trio.abc.Listener[Any]]],
        transport: Callable[[], httpx.AsyncBaseTransport],
        stack: tcp6.Stack | None,
    ) -> None:
        self.host, self.connect, self.listen = host, connect, listen
        self.transport, self.stack = transport, stack


@asynccontextmanager
async def _env(kind: str, config: tcp6.TCPConfig | None) -> AsyncIterator[Env]:
    if kind == "trio":

        async def listen_trio() -> trio.abc.Listener[Any]:
            return (await trio.open_tcp_listeners(0, host="::1"))[0]

        yield Env(
            "::1",
            lambda port: trio.open_tcp_stream("::1", port),
            listen_trio,
            httpx.AsyncHTTPTransport,
            None,
        )
    elif kind == "kernel":
        async with tcp6.open_kernel_stack(config=config) as k:
            yield Env(
                "::1",
                lambda port: k.open_tcp_stream("::1", port),
                lambda: k.open_tcp_listener(0),
                lambda: Tcp6Transport(k),
                k,
            )
    else:
        net = tcp6.VirtualNetwork()
        async with (
            tcp6.open_stack(net.attach("fd00::1"), "fd00::1", config=config) as client,
            tcp6.open_stack(net.attach("fd00::2"), "fd00::2", config=config) as server,
        ):
            yield Env(
                "fd00::2",
                lambda port: client.open_tcp_stream("fd00::2", port),
                lambda: server.open_tcp_listener(0),
                lambda: Tcp6Transport(client),
                server,
            )


def _port(listener: trio.abc.Listener[Any]) -> int:
    if isinstance(listener, tcp6.Listener):
        return listener.port
    assert isinstance(listener, trio.SocketListener)
    return int(listener.socket.getsockname()[1])


async def _serve(
    nursery: trio.Nursery, env: Env, handler: Callable[[Any], Awaitable[None]]
) -> int:
    listener = await env.listen()
    nursery.start_soon(trio.serve_listeners, handler, [listener])
    await trio.sleep(0)
    return _port(listener)


async def write_write_read(env: Env, n: int) -> float:
    async def echo(stream: trio.abc.Stream) -> None:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            if data.endswith(b"!"):
                await stream.send_all(b"k")

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, env, echo)
        stream = await env.connect(port)
        start = time.perf_counter()
        for _ in range(n):
            await stream.send_all(b"head" * 16)
            await stream.send_all(b"body" * 16 + b"!")
            assert await stream.receive_some(1) == b"k"
        elapsed = time.perf_counter() - start
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return elapsed / n


async def httpx_post(env: Env, n: int) -> float:
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, env, lambda s: serve_http(s, _h11_app))
        url = f"http://[{env.host}]:{port}/"
        async with httpx.AsyncClient(transport=env.transport()) as client:
            await client.post(url, content=b"x" * 128)  # connect outside the timing
            start = time.perf_counter()
            for _ in range(n):
                r = await client.post(url, content=b"x" * 128)
                assert r.status_code == 200
            elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed / n


async def hypercorn_get(env: Env, n: int) -> float:
    config = Config()
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        if env.stack is None:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.bind(("::1", 0))
            port = sock.getsockname()[1]
            sock.close()
            config.bind = [f"[::1]:{port}"]
            await nursery.start(hypercorn_serve, _asgi_app, config)
        else:
            listener = await env.listen()
            assert isinstance(listener, tcp6.Listener)
            port = listener.port
            await nursery.start(tcp6_hypercorn_serve, _asgi_app, config, listener)
        url = f"http://[{env.host}]:{port}/"
        async with httpx.AsyncClient(transport=env.transport()) as client:
            await client.get(url)
            start = time.perf_counter()
            for _ in range(n):
                r = await client.get(url)
                assert r.status_code == 200
            elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed / n


WORKLOADS = [
    ("write-write-read", write_write_read),
    ("httpx POST (h11 server)", httpx_post),
    ("hypercorn GET (httpx client)", hypercorn_get),
]


async def main(requests: int, rounds: int, nagle: str) -> None:
    config = tcp6.TCPConfig(nagle=False) if nagle == "off" else None
    print(f"mean per request, best of {rounds} rounds of {requests} requests, nagle={nagle}")
    print(f"| workload | {' | '.join(TRANSPORTS)} |")
    print(f"| --- | {' | '.join('---' for _ in TRANSPORTS)} |")
    for label, workload in WORKLOADS:
        cells = []
        for kind in TRANSPORTS:
            times = []
            for _ in range(rounds):
                async with _env(kind, config) as env:
                    times.append(await workload(env, requests))
            best = min(times)
            cells.append(f"{best * 1e3:.3f} ms (median {statistics.median(times) * 1e3:.3f})")
        print(f"| {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nagle", choices=["default", "off"], default="default")
    args = parser.parse_args()
    trio.run(main, args.requests, args.rounds, args.nagle)
