"""Echo server on trio_tcp6.

    python examples/echo_server.py                       # server + client, VirtualNetwork
    python examples/echo_server.py --kernel --port 7007  # kernel's TCP, at [::1]:7007

``echo_handler`` is an ordinary trio stream handler: it works on any
``trio.abc.HalfCloseableStream``, which is the point of the project.
"""

from __future__ import annotations

import argparse
import ipaddress

import trio

import trio_tcp6 as tcp6

SERVER = ipaddress.IPv6Address("fd00:ec40::2")
CLIENT = ipaddress.IPv6Address("fd00:ec40::1")


async def echo_handler(stream: trio.abc.HalfCloseableStream) -> None:
    """Send back everything received; at EOF, half-close our side too."""
    try:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
        await stream.send_eof()
    except trio.BrokenResourceError:
        pass  # the peer reset the connection: nothing left to do
    finally:
        await stream.aclose()


async def run_virtual(message: bytes = b"hello, echo") -> bytes:
    """Server and client on one in-memory network; returns what the client got back."""
    from echo_client import echo_once  # type: ignore[import-not-found]

    net = tcp6.VirtualNetwork()
    async with (
        tcp6.open_stack(net.attach(SERVER), SERVER) as server,
        tcp6.open_stack(net.attach(CLIENT), CLIENT) as client,
        trio.open_nursery() as nursery,
    ):
        listeners = await nursery.start(server.serve_tcp, echo_handler, 7)
        print(f"echo server listening on [{SERVER}]:{listeners[0].port}")
        reply: bytes = await echo_once(client, SERVER, 7, message)
        nursery.cancel_scope.cancel()
    return reply


async def serve_kernel(port: int) -> None:
    async with tcp6.open_kernel_stack() as stack:
        print(f"echo server on the kernel's TCP at [::]:{port}; Ctrl-C to stop")
        await stack.serve_tcp(echo_handler, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", action="store_true", help="serve on the kernel's TCP")
    parser.add_argument("--port", type=int, default=7007)
    args = parser.parse_args()
    if args.kernel:
        trio.run(serve_kernel, args.port)
    else:
        print("client got back:", trio.run(run_virtual))


if __name__ == "__main__":
    main()
