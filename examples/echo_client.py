"""Echo client on trio_tcp6, written with the mirage-style calls.

python examples/echo_client.py                         # against an in-process echo server
python examples/echo_client.py --kernel --port 7007 hi # against [::1]:7007 via the kernel's TCP
"""

from __future__ import annotations

import argparse
import ipaddress

import trio

import trio_tcp6 as tcp6


async def echo_once(
    stack: tcp6.Stack, host: str | ipaddress.IPv6Address, port: int, message: bytes
) -> bytes:
    """Connect, write ``message``, half-close, read the echo to EOF, close."""
    match await stack.create_connection((ipaddress.IPv6Address(host), port)):
        case tcp6.Ok(flow):
            pass
        case tcp6.Error(err):
            raise err
    reply = b""
    try:
        match await flow.write(message):
            case tcp6.Error(err):
                raise err
        await flow.send_eof()
        while True:
            match await flow.read():
                case tcp6.Ok(data):
                    reply += data
                case tcp6.Eof():
                    break
                case tcp6.Error(err):
                    raise err
    finally:
        await flow.close()
    return reply


async def run_kernel(host: str, port: int, message: bytes) -> bytes:
    async with tcp6.open_kernel_stack() as stack:
        return await echo_once(stack, host, port, message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", action="store_true", help="use the kernel's TCP")
    parser.add_argument("--host", default="::1")
    parser.add_argument("--port", type=int, default=7007)
    parser.add_argument("message", nargs="?", default="hello, echo")
    args = parser.parse_args()
    if args.kernel:
        reply = trio.run(run_kernel, args.host, args.port, args.message.encode())
    else:
        from echo_server import run_virtual  # type: ignore[import-not-found]

        reply = trio.run(run_virtual, args.message.encode())
    print("echoed:", reply.decode(errors="replace"))


if __name__ == "__main__":
    main()
