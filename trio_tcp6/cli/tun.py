"""``python -m trio_tcp6 tun ...``: the stack on a Linux TUN device, from the shell.

::

    python -m trio_tcp6 tun --address fd00:7463:70::2 --kernel-address fd00:7463:70::1/64 \\
        serve-http --port 80
    curl -g 'http://[fd00:7463:70::2]/bytes/1000000' -o /dev/null     # from the kernel side

Subcommands (after the TUN options):

``serve-http [--port 80]``
    A small HTTP/1.1 server with keep-alive: ``GET /`` a page, ``GET /bytes/N`` N bytes
    (byte i is ``i % 256``), ``POST /sha256`` the SHA-256 of the body, ``GET /stats``
    the stack's counters.
``serve-echo [--port 7]``
    Echo every connection until the client half-closes.
``serve-discard [--port 9]``
    Read and drop everything; print each connection's byte count and rate.
``connect ADDRESS PORT``
    netcat: standard input to the connection (``send_eof`` at its end), the
    connection to standard output; ends when the peer closes. ADDRESS is an IPv6
    address: the stack asks no resolver, so host names are not accepted.
``idle``
    Only the stack (it answers ``ping -6``; everything else is refused with a RST).

The device: ``--name`` (default ``tcp6tun%d``: the kernel picks the number), ``--mtu``,
checksum and TSO6 offload with a virtio header (on by default, falling back
silently where the kernel refuses; ``--no-offload`` turns it off, ``--offload`` is
accepted), ``--netns NS`` (create the
interface inside an existing named namespace). ``--kernel-address ADDR/LEN`` gives the
kernel side that address and brings the interface up (ioctls; the same as ``ip addr
add ADDR/LEN dev NAME; ip link set NAME up``); without it the command prints the
``ip`` commands to run and waits for you. ``--loss P`` drops packets with probability
P in each direction (an :class:`~trio_tcp6.links.ImpairedLink`), ``--pcap FILE``
writes every packet the stack sends and receives. Needs CAP_NET_ADMIN. Ctrl-C stops
it; the interface disappears with the process.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from ..config import TCPConfig
from ..errors import TCPError, error_message
from ..links import Packet, TunLink, impair_link, open_tun
from ..runtime import DirectStack, Flow, open_stack
from ..wire import PcapWriter
from . import args as checks
from .http import Request, Response, serve_http
from .output import format_table

__all__ = [
    "add_tun_parser",
    "check_arguments",
    "environment_problem",
    "has_cap_net_admin",
    "echo_service",
    "discard_service",
    "http_service",
    "open_tun_stack",
    "run_tun",
]

_PATTERN = bytes(range(256)) * 256  # 64 KiB; /bytes/N is this pattern repeated


# -- the device ------------------------------------------------------------------------


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _PcapLink:
    """Write every packet a link carries (both ways) to a pcap file."""

    def __init__(self, link: Any, writer: PcapWriter) -> None:
        self.link = link
        self.writer = writer

    @property
    def mtu(self) -> int:
        return int(self.link.mtu)

    async def send(self, packet: Packet) -> None:
        self.writer.write(packet, time.time())
        await self.link.send(packet)

    async def send_batch(self, packets: Iterable[Packet]) -> None:
        batch = list(packets)
        now = time.time()
        for packet in batch:
            self.writer.write(packet, now)
        await self.link.send_batch(batch)

    async def receive(self) -> bytes:
        packet: bytes = await self.link.receive()
        self.writer.write(packet, time.time())
        return packet

    async def receive_batch(self) -> list[bytes]:
        batch: list[bytes] = await self.link.receive_batch()
        now = time.time()
        for packet in batch:
            self.writer.write(packet, now)
        return batch


def _ip_commands(link: TunLink, address: str) -> list[str]:
    ns = f"-n {link.netns} " if link.netns else ""
    return [
        f"ip {ns}addr add <kernel address, e.g. {_kernel_example(address)}> dev {link.name}",
        f"ip {ns}link set {link.name} up",
    ]


def _kernel_example(address: str) -> str:
    ours = ipaddress.IPv6Address(address)
    net = ipaddress.IPv6Network((int(ours) & ~((1 << 64) - 1), 64))
    kernel = net[1] if net[1] != ours else net[2]
    return f"{kernel}/64"


@asynccontextmanager
async def open_tun_stack(args: argparse.Namespace) -> AsyncIterator[tuple[TunLink, DirectStack]]:
    """The TUN device configured as ``args`` say, and the stack on it."""
    address = str(ipaddress.IPv6Address(args.address))
    config = TCPConfig(congestion=args.congestion)
    async with AsyncExitStack() as stack:
        tun = await stack.enter_async_context(
            open_tun(args.name, mtu=args.mtu, offload=args.offload, netns=args.netns)
        )
        if args.kernel_address:
            iface = ipaddress.IPv6Interface(args.kernel_address)
            if iface.ip == ipaddress.IPv6Address(address):
                raise ValueError("--kernel-address must differ from --address")
            tun.add_kernel_address(iface.ip, iface.network.prefixlen)
            tun.set_up()
            _say(f"{tun.name}: kernel side {iface.with_prefixlen}, interface up")
        else:
            _say(f"{tun.name} created; configure the kernel side with:")
            for command in _ip_commands(tun, address):
                _say(f"    {command}")
        link: Any = tun
        if args.loss:
            link = await stack.enter_async_context(impair_link(tun, loss=args.loss))
        if args.pcap:
            link = _PcapLink(link, stack.enter_context(PcapWriter(args.pcap)))
        direct = await stack.enter_async_context(open_stack(link, address, config=config))
        offload = "on" if tun.offload else "off"
        _say(
            f"trio_tcp6 stack on {tun.name} (mtu {tun.mtu}, offload {offload}) at {address}"
            + (f" in netns {tun.netns}" if tun.netns else "")
        )
        try:
            yield tun, direct
        finally:
            if args.stats:
                _say(_format_stats(direct.stats(), tun.stats()))


def _format_stats(stack: dict[str, int], link: dict[str, int]) -> str:
    rows = [(k, v) for k, v in sorted(stack.items()) if v]
    rows += [(f"link.{k}", v) for k, v in sorted(link.items()) if v]
    return "stats: (non-zero counters)\n" + format_table(["counter", "count"], rows, indent="  ")


# -- services ------------------------------------------------------------------------------


_PAGE = (
    b"<html><body><h1>trio_tcp6</h1><p>HTTP/1.1 over a userspace TCP/IPv6 stack "
    b"on a TUN device.</p></body></html>\n"
)


def _pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes of the /bytes/N body (byte i is ``i % 256``), in 64 KiB chunks."""
    for offset in range(0, size, len(_PATTERN)):
        left = size - offset
        yield _PATTERN if left >= len(_PATTERN) else _PATTERN[:left]


def http_service(stack: DirectStack) -> Callable[[Flow], Awaitable[None]]:
    """A keep-alive HTTP/1.1 handler (GET /, /bytes/N, /stats; POST /sha256)."""

    async def app(request: Request) -> Response:
        method, target = request.method, request.target
        if method == "GET" and target == "/":
            return Response(200, _PAGE, content_type="text/html")
        if method == "GET" and target.startswith("/bytes/") and target[7:].isdigit():
            size = int(target[7:])
            return Response(200, _pattern(size), size, "application/octet-stream")
        if method == "GET" and target == "/stats":
            return Response(
                200, "".join(f"{k} {v}\n" for k, v in sorted(stack.stats().items())).encode()
            )
        if method == "POST" and target == "/sha256":
            digest = hashlib.sha256()
            async for chunk in request.body():
                digest.update(chunk)
            return Response(200, digest.hexdigest().encode())
        return Response(404, b"not found\n")

    async def handler(flow: Flow) -> None:
        await serve_http(flow, app)

    return handler


async def echo_service(flow: Flow) -> None:
    try:
        while data := await flow.receive_some(65536):
            await flow.send_all(data)
        await flow.send_eof()
    except (trio.BrokenResourceError, TCPError):
        pass
    finally:
        await flow.aclose()


async def discard_service(flow: Flow) -> None:
    start = time.perf_counter()
    total = 0
    try:
        while data := await flow.receive_some(1 << 18):
            total += len(data)
    except (trio.BrokenResourceError, TCPError) as exc:
        _say(f"discard: {error_message(exc)}")
    finally:
        await flow.aclose()
    elapsed = max(time.perf_counter() - start, 1e-9)
    host, port = flow.get_dest()
    _say(f"discard: [{host}]:{port} sent {total} bytes, {total * 8 / elapsed / 1e6:.0f} Mbit/s")


async def _connect(stack: DirectStack, host: str, port: int) -> int:
    try:
        flow = await stack.open_tcp_stream(host, port)
    except TCPError as exc:
        _say(f"connect [{host}]:{port}: {error_message(exc)}")
        return 1
    _say(f"connected to [{host}]:{port}")
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    stdout = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
    status = 0

    async def upstream() -> None:
        while data := await stdin.receive_some(65536):
            await flow.send_all(data)
        await flow.send_eof()

    try:
        async with stdin, stdout, trio.open_nursery() as nursery:
            nursery.start_soon(upstream)
            while data := await flow.receive_some(65536):
                await stdout.send_all(data)
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, TCPError) as exc:
        _say(f"connection: {error_message(exc)}")
        status = 1
    finally:
        await flow.aclose()
    return status


async def run_tun(args: argparse.Namespace) -> int:
    """Run the ``tun`` subcommand; returns the exit status (130 after SIGINT or
    SIGTERM, which stop it cleanly: open connections are reset, the device removed)."""
    status = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_tun_stack(args) as (_tun, stack), trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                nonlocal status
                async for signum in signals:
                    _say(f"{signal.Signals(signum).name}: stopping")
                    status = 130
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            status = await _action(args, stack)
            nursery.cancel_scope.cancel()
    return status


async def _action(args: argparse.Namespace, stack: DirectStack) -> int:
    action = args.action
    if action == "connect":
        return await _connect(stack, args.host, args.port)
    handler: Callable[[Flow], Awaitable[None]] | None = {
        "serve-http": http_service(stack),
        "serve-echo": echo_service,
        "serve-discard": discard_service,
    }.get(action)
    if handler is None:
        _say("idle: answering ping; Ctrl-C to stop")
        await trio.sleep_forever()
    listener = await stack.open_tcp_listener(args.port)
    what = action.removeprefix("serve-")
    _say(f"{what} server on [{stack.address}]:{listener.port}; Ctrl-C to stop")
    print(f"LISTENING {listener.port}", flush=True)
    await trio.serve_listeners(handler, [listener])
    return 0  # pragma: no cover - serve_listeners never returns


def add_tun_parser(sub: Any) -> None:
    """Add the ``tun`` subcommand to an argparse subparsers object."""
    tun = sub.add_parser(
        "tun",
        help="run the stack on a Linux TUN device (serve HTTP/echo, or connect)",
        description="Run the trio_tcp6 stack on a Linux TUN device (needs CAP_NET_ADMIN).",
    )
    tun.add_argument(
        "--name",
        type=checks.interface_name,
        default="tcp6tun%d",
        help="interface name, at most 15 bytes (%%d: the kernel picks the number)",
    )
    tun.add_argument(
        "--address", type=checks.address, required=True, help="the stack's IPv6 address"
    )
    tun.add_argument(
        "--kernel-address",
        type=checks.interface,
        metavar="ADDR/LEN",
        help="configure the kernel side with this address and bring the interface up",
    )
    tun.add_argument(
        "--netns", type=checks.netns, help="create the interface inside this named namespace"
    )
    tun.add_argument(
        "--mtu", type=checks.mtu, help="interface MTU, 1280..65535 (default: the kernel's, 1500)"
    )
    tun.add_argument(
        "--offload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="checksum and TSO6 offload (default: on, if the kernel agrees)",
    )
    tun.add_argument(
        "--loss",
        type=checks.probability(below_one=True, why=" (1 would stop every packet)"),
        default=0.0,
        metavar="P",
        help="drop probability, each way",
    )
    tun.add_argument(
        "--pcap",
        type=checks.pcap_path,
        metavar="PATH",
        help="write every packet of the stack to this file",
    )
    tun.add_argument("--congestion", choices=("cubic", "newreno"), default="cubic")
    tun.add_argument("--stats", action="store_true", help="print the counters at exit")
    actions = tun.add_subparsers(dest="action", required=True)
    for name, port, text in (
        ("serve-http", 80, "HTTP/1.1 server (keep-alive): /, /bytes/N, /stats, POST /sha256"),
        ("serve-echo", 7, "echo server"),
        ("serve-discard", 9, "discard server (prints each connection's rate)"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument(
            "--port",
            type=checks.port(allow_zero=True),
            default=port,
            help="0..65535, 0 picks a free one (default %(default)s)",
        )
    connect = actions.add_parser("connect", help="netcat: stdin to the peer, the peer to stdout")
    # An address, not a name: a stack on a TUN device resolves only the names of its
    # ``hosts`` mapping (it never asks the system's resolver), and the command has none.
    connect.add_argument("host", type=checks.address, help="the peer's IPv6 address")
    connect.add_argument("port", type=checks.port(allow_zero=False), help="1..65535")
    actions.add_parser("idle", help="only answer ping (and RST everything else)")
    tun.set_defaults(func=_main, parser=tun)


#: Bit of CAP_NET_ADMIN in the capability sets of /proc/PID/status (linux/capability.h).
CAP_NET_ADMIN = 12


def has_cap_net_admin(status: str) -> bool | None:
    """Whether the ``CapEff`` line of a ``/proc/self/status`` text includes
    CAP_NET_ADMIN; None if the text has no such line (not Linux)."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return None


def environment_problem(
    *, device: str = "/dev/net/tun", status_path: str = "/proc/self/status"
) -> str | None:
    """Why a TUN device cannot be created here (one line), or None if it can."""
    if not sys.platform.startswith("linux"):
        return f"TUN devices need Linux (this is {sys.platform})"
    if not os.path.exists(device):
        return (
            f"{device} does not exist: load the tun module (modprobe tun) or run on a host with it"
        )
    try:
        with open(status_path) as f:
            allowed = has_cap_net_admin(f.read())
    except OSError:
        allowed = None
    if allowed is False:
        return (
            "creating a TUN device needs CAP_NET_ADMIN: run as root (sudo) or grant the capability"
        )
    return None


def check_arguments(ns: argparse.Namespace) -> None:
    """The checks that involve several arguments (``ns.parser.error`` on failure)."""
    if ns.kernel_address is not None:
        if ns.kernel_address.ip == ns.address:
            ns.parser.error(f"--kernel-address must differ from --address ({ns.address})")
        if ns.address not in ns.kernel_address.network:
            _say(
                f"warning: {ns.address} is outside {ns.kernel_address.network}: the kernel "
                "needs a route to reach the stack"
            )


def _main(ns: argparse.Namespace) -> int:
    check_arguments(ns)
    problem = environment_problem()
    if problem is not None:
        return checks.fail(ns.parser.prog, problem)
    try:
        status: int = trio.run(run_tun, ns)
    except (PermissionError, FileNotFoundError) as exc:
        return checks.fail(ns.parser.prog, str(exc))
    return status
