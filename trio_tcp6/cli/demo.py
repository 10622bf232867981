"""``python -m trio_tcp6 demo``: the main job on the embedded default network.

Two userspace stacks on one in-memory :class:`~trio_tcp6.VirtualNetwork` (no
privileges needed):

1. an HTTP/1.1 exchange over a flow (trio-style API),
2. a bulk transfer over an impaired path (loss, delay, reordering, duplication,
   corruption) with the mirage-style API, checked end to end with SHA-256,
3. a summary of what happened (negotiated options, RTT, retransmits, drops) and a
   pcap of every packet, readable with ``tshark -r`` or Wireshark.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import random
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio
import trio.testing

from ..config import TCPConfig
from ..errors import error_message
from ..links import VirtualNetwork
from ..results import Eof, Error, Ok
from ..runtime import Flow, Stack, open_stack
from .http import Request, Response, http_get, serve_http

__all__ = ["DemoOptions", "DemoReport", "add_demo_parser", "run_demo"]

CLIENT = ipaddress.IPv6Address("fd00:7463:7036::1")
SERVER = ipaddress.IPv6Address("fd00:7463:7036::2")
HTTP_PORT = 80
SINK_PORT = 9000
PAGE = (
    b"<html><body><h1>Hello from trio_tcp6</h1>"
    b"<p>Served over a userspace TCP/IPv6 stack.</p></body></html>\n"
)


@attrs.define
class DemoOptions:
    """What the demo does; the command line sets these."""

    pcap: str = "trio_tcp6-demo.pcap"
    megabytes: float = 2.0
    loss: float = 0.02
    delay: float = 0.005
    jitter: float = 0.001
    reorder: float = 0.01
    duplicate: float = 0.01
    corrupt: float = 0.005
    seed: int = 6528
    congestion: str = "cubic"


@attrs.define
class DemoReport:
    """What happened (the test suite checks these figures)."""

    http_status: int = 0
    http_body: bytes = b""
    transfer_bytes: int = 0
    transfer_seconds: float = 0.0
    digest_sent: str = ""
    digest_received: str = ""
    retransmits: int = 0
    pcap_packets: int = 0
    client_stats: dict[str, int] = attrs.Factory(dict)
    server_stats: dict[str, int] = attrs.Factory(dict)
    network_stats: dict[str, int] = attrs.Factory(dict)

    @property
    def intact(self) -> bool:
        return bool(self.digest_sent) and self.digest_sent == self.digest_received


# -- the web page: the one HTTP implementation of the command line (h11) ---------------
async def _page(request: Request) -> Response:
    if request.method == "GET" and request.target == "/":
        return Response(200, PAGE, content_type="text/html")
    return Response(404, b"not found\n")


async def _http_handler(flow: Flow) -> None:
    await serve_http(flow, _page)


async def _http_get(
    stack: Stack, host: ipaddress.IPv6Address, port: int, path: str
) -> tuple[int, bytes]:
    flow = await stack.open_tcp_stream(host, port)
    try:
        return await http_get(flow, f"[{host}]:{port}", path)
    finally:
        await flow.aclose()


# -- the sink: reads everything, answers with the SHA-256 of what it got --------------
async def _sink(flow: Flow) -> None:
    digest = hashlib.sha256()
    while True:
        match await flow.read():
            case Ok(data):
                digest.update(data)
            case Eof():
                break
            case Error(err):
                print(f"  sink: {error_message(err)}")
                return
    await flow.write(digest.hexdigest().encode())
    await flow.close()


async def run_demo(options: DemoOptions, *, say: Callable[[str], None] = print) -> DemoReport:
    """Run the demo on the current trio clock (real time, or virtual under MockClock)."""
    report = DemoReport()
    net = VirtualNetwork(mtu=1500, seed=options.seed)
    capture = net.capture(options.pcap)
    config = TCPConfig(congestion=options.congestion)  # type: ignore[arg-type]
    try:
        async with (
            open_stack(net.attach(CLIENT), CLIENT, config=config) as client,
            open_stack(net.attach(SERVER), SERVER, config=config) as server,
        ):
            say(f"1. Two stacks on a virtual IPv6 network: client [{CLIENT}], server [{SERVER}]")
            async with trio.open_nursery() as services:
                # trio style: serve_tcp, like trio.serve_tcp; mirage style: listen(port, cb).
                await services.start(server.serve_tcp, _http_handler, HTTP_PORT)
                server.listen(SINK_PORT, _sink)
                await _exchange(client, net, options, report, say)
                services.cancel_scope.cancel()
            report.client_stats = client.stats()
            report.server_stats = server.stats()
    finally:
        capture.close()
        report.pcap_packets = capture.count
        report.network_stats = net.stats()
        net.close()
    _summary(report, options, say)
    return report


async def _exchange(
    client: Stack,
    net: VirtualNetwork,
    options: DemoOptions,
    report: DemoReport,
    say: Callable[[str], None],
) -> None:
    say(f"2. HTTP/1.1 GET / over a flow to [{SERVER}]:{HTTP_PORT}")
    t0 = trio.current_time()
    report.http_status, report.http_body = await _http_get(client, SERVER, HTTP_PORT, "/")
    say(
        f"   -> {report.http_status}, {len(report.http_body)} bytes of HTML in "
        f"{(trio.current_time() - t0) * 1000:.1f} ms"
    )

    size = int(options.megabytes * (1 << 20))
    net.impair(
        loss=options.loss,
        delay=options.delay,
        jitter=options.jitter,
        reorder=options.reorder,
        duplicate=options.duplicate,
        corrupt=options.corrupt,
    )
    say(
        f"3. Impairing the path: {options.loss:.1%} loss, {options.delay * 1000:.0f} ms "
        f"delay ±{options.jitter * 1000:.0f} ms, {options.reorder:.1%} reordered, "
        f"{options.duplicate:.1%} duplicated, {options.corrupt:.1%} corrupted"
    )
    say(f"   sending {size / (1 << 20):.1f} MiB with write()/close() (mirage style)")
    payload = random.Random(options.seed).randbytes(size)
    report.digest_sent = hashlib.sha256(payload).hexdigest()
    connected = await client.create_connection((SERVER, SINK_PORT))
    if not isinstance(connected, Ok):
        raise RuntimeError(f"could not connect: {connected}")
    flow = connected.value
    t0 = trio.current_time()
    wall0 = time.perf_counter()
    view = memoryview(payload)
    for offset in range(0, size, 65536):
        result = await flow.write(view[offset : offset + 65536])
        if not isinstance(result, Ok):
            raise RuntimeError(f"write failed: {result}")
    await flow.send_eof()
    answer = b""
    while True:
        match await flow.read():
            case Ok(data):
                answer += data
            case Error(err):
                say(f"   read failed: {error_message(err)}")
                break
            case _:
                break
    report.transfer_seconds = trio.current_time() - t0
    wall = time.perf_counter() - wall0
    report.transfer_bytes = size
    report.digest_received = answer.decode(errors="replace")
    info = flow.info()
    report.retransmits = info.retransmits
    await flow.close()
    net.impair(loss=0.0, delay=0.0, jitter=0.0, reorder=0.0, duplicate=0.0, corrupt=0.0)
    rate = size * 8 / report.transfer_seconds / 1e6 if report.transfer_seconds else 0.0
    say(
        f"   -> {size / (1 << 20):.1f} MiB in {report.transfer_seconds:.2f} s "
        f"({rate:.1f} Mbit/s; {wall:.2f} s of wall time), "
        f"SHA-256 {'matches' if report.intact else 'DIFFERS'}"
    )
    say(
        f"   connection: {info.state.value}, srtt {_ms(info.srtt)}, rto {info.rto * 1000:.0f} ms, "
        f"cwnd {info.cwnd} B, mss {info.mss} B, retransmits {info.retransmits}, "
        f"options: sack={info.sack} timestamps={info.timestamps} wscale={info.wscale}"
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def _summary(report: DemoReport, options: DemoOptions, say: Callable[[str], None]) -> None:
    net = report.network_stats
    dropped = {k: v for k, v in net.items() if k.startswith("dropped") and v}
    say("4. Summary")
    say(
        f"   network: {net.get('sent', 0)} packets sent, {net.get('delivered', 0)} delivered, "
        f"{net.get('duplicated', 0)} duplicated, {net.get('corrupted', 0)} corrupted, "
        f"dropped {dropped or 'none'}"
    )
    for name, stats in (("client", report.client_stats), ("server", report.server_stats)):
        interesting = {k: v for k, v in sorted(stats.items()) if v}
        say(f"   {name} stack: " + ", ".join(f"{k}={v}" for k, v in interesting.items()))
    path = os.path.abspath(options.pcap)
    say(f"   pcap: {path} ({report.pcap_packets} packets); try: tshark -r {options.pcap}")
    ok = report.http_status == 200 and report.intact
    say("   result: " + ("everything arrived intact" if ok else "SOMETHING WENT WRONG"))


# -- the command line ---------------------------------------------------------------------
def add_demo_parser(sub: Any) -> None:
    """Add the ``demo`` subcommand to an argparse subparsers object."""
    demo = sub.add_parser(
        "demo", help="two stacks on a virtual network: HTTP, an impaired transfer, a pcap"
    )
    demo.add_argument("--pcap", default="trio_tcp6-demo.pcap", help="where to write the capture")
    demo.add_argument("--megabytes", type=float, default=2.0, help="size of the transfer (MiB)")
    demo.add_argument("--loss", type=float, default=0.02, help="packet loss probability")
    demo.add_argument("--delay", type=float, default=0.005, help="one-way delay (s)")
    demo.add_argument("--seed", type=int, default=6528, help="seed of the network's randomness")
    demo.add_argument("--congestion", choices=("cubic", "newreno"), default="cubic")
    demo.add_argument("--virtual", action="store_true", help="run in virtual time (MockClock)")
    demo.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    options = DemoOptions(
        pcap=args.pcap,
        megabytes=args.megabytes,
        loss=args.loss,
        delay=args.delay,
        seed=args.seed,
        congestion=args.congestion,
    )
    print("trio_tcp6 demo: a userspace TCP/IPv6 stack on trio, over an in-memory network")
    if args.virtual:
        print("(virtual time: trio.testing.MockClock; times below are simulated)")
        clock = trio.testing.MockClock(autojump_threshold=0)
        report = trio.run(run_demo, options, clock=clock)
    else:
        report = trio.run(run_demo, options)
    return 0 if report.http_status == 200 and report.intact else 1
