"""``python -m trio_tcp6 demo``: the main job on the embedded default network.

Two userspace stacks on one in-memory :class:`~trio_tcp6.VirtualNetwork` (no
privileges needed):

1. an HTTP/1.1 exchange over a flow (trio-style API),
2. a bulk transfer over an impaired path (loss, delay, reordering, duplication,
   corruption) with the mirage-style API, checked end to end with SHA-256,
3. a summary of what happened (negotiated options, RTT, retransmits, drops) and a
   pcap of every packet, readable with ``tshark -r`` or Wireshark;
4. with ``--plot PATH``, a picture of the transfer: the sender's flow trace drawn by
   :mod:`trio_tcp6.cli.plot` (time-sequence graph, cwnd, RTT).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import ipaddress
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio
import trio.testing

from ..config import TCPConfig
from ..errors import error_message
from ..links import Impairments, VirtualNetwork
from ..results import Eof, Error, Ok
from ..runtime import Flow, Stack, open_stack
from ..tcp.trace import FlowTrace
from . import args as checks
from .build import build_description
from .http import Request, Response, http_get, serve_http
from .output import Progress, counter_table, format_table
from .plot import MissingMatplotlib, draw, from_trace, require_matplotlib

__all__ = [
    "DemoOptions",
    "DemoReport",
    "WallClock",
    "add_demo_parser",
    "demo_clock",
    "options_from",
    "run_demo",
]

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
    """What the demo does; the command line sets these.

    The impairment knobs are those of :class:`~trio_tcp6.VirtualNetwork` (``rate`` in
    bytes per second, None: unlimited; ``queue`` in bytes, ``reorder_delay`` in
    seconds, None: the network's default). ``pcap=None`` writes no capture;
    ``plot``, a path ending in ``.png`` or ``.svg``, records the transfer's flow trace
    and draws it there (needs matplotlib).
    """

    pcap: str | None = "trio_tcp6-demo.pcap"
    megabytes: float = 2.0
    loss: float = 0.02
    delay: float = 0.005
    jitter: float = 0.001
    reorder: float = 0.01
    duplicate: float = 0.01
    corrupt: float = 0.005
    rate: float | None = None
    queue: int | None = None
    reorder_delay: float | None = None
    mtu: int = 1500
    seed: int = 6528
    congestion: str = "cubic"
    plot: str | None = None

    def impairments(self) -> Impairments:
        """The path's impairments during the transfer (raises ValueError if invalid)."""
        return Impairments(
            loss=self.loss,
            delay=self.delay,
            jitter=self.jitter,
            reorder=self.reorder,
            duplicate=self.duplicate,
            corrupt=self.corrupt,
            rate=self.rate,
            queue=self.queue,
            reorder_delay=self.reorder_delay,
        )


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
    #: The flow trace of the transfer's sender (with ``plot``), and the picture drawn.
    trace: FlowTrace | None = None
    plot_path: str | None = None
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


async def run_demo(
    options: DemoOptions,
    *,
    say: Callable[[str], None] = print,
    progress: Callable[[int], Progress] | None = None,
) -> DemoReport:
    """Run the demo on the current trio clock (real time, or virtual under MockClock).

    ``progress(total_bytes)``, if given, makes the :class:`~trio_tcp6.cli.output.Progress`
    that shows the transfer. Invalid options raise ValueError before anything runs.
    """
    impairments = options.impairments()
    config = TCPConfig(congestion=options.congestion)  # type: ignore[arg-type]
    report = DemoReport()
    net = VirtualNetwork(mtu=options.mtu, seed=options.seed)
    capture = net.capture(options.pcap) if options.pcap is not None else None
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
                await _exchange(client, net, options, impairments, report, say, progress)
                services.cancel_scope.cancel()
            report.client_stats = client.stats()
            report.server_stats = server.stats()
    finally:
        if capture is not None:
            capture.close()
            report.pcap_packets = capture.count
        report.network_stats = net.stats()
        net.close()
    _summary(report, options, say)
    return report


def _describe(imp: Impairments) -> str:
    parts = [
        f"{imp.loss:.1%} loss",
        f"{imp.delay * 1000:g} ms delay ±{imp.jitter * 1000:g} ms",
        f"{imp.reorder:.1%} reordered"
        + (f" (held {imp.reorder_delay * 1000:g} ms+)" if imp.reorder_delay else ""),
        f"{imp.duplicate:.1%} duplicated",
        f"{imp.corrupt:.1%} corrupted",
    ]
    if imp.rate is not None:
        queue = "unlimited" if imp.queue is None else f"{imp.queue} B"
        parts.append(f"{imp.rate * 8 / 1e6:g} Mbit/s, queue {queue}")
    return ", ".join(parts)


async def _exchange(
    client: Stack,
    net: VirtualNetwork,
    options: DemoOptions,
    impairments: Impairments,
    report: DemoReport,
    say: Callable[[str], None],
    progress: Callable[[int], Progress] | None,
) -> None:
    say(f"2. HTTP/1.1 GET / over a flow to [{SERVER}]:{HTTP_PORT}")
    t0 = trio.current_time()
    report.http_status, report.http_body = await _http_get(client, SERVER, HTTP_PORT, "/")
    say(
        f"   -> {report.http_status}, {len(report.http_body)} bytes of HTML in "
        f"{(trio.current_time() - t0) * 1000:.1f} ms"
    )

    size = int(options.megabytes * (1 << 20))
    net.impair(**attrs.asdict(impairments))
    say(f"3. Impairing the path: {_describe(impairments)}")
    say(f"   sending {size / (1 << 20):.1f} MiB with write()/close() (mirage style)")
    payload = random.Random(options.seed).randbytes(size)
    report.digest_sent = hashlib.sha256(payload).hexdigest()
    connected = await client.create_connection((SERVER, SINK_PORT))
    if not isinstance(connected, Ok):
        raise RuntimeError(f"could not connect: {error_message(connected.error)}")
    flow = connected.value
    report.trace = flow.trace() if options.plot is not None else None
    t0 = trio.current_time()
    wall0 = time.perf_counter()
    bar = progress(size) if progress is not None else None

    def acked() -> int:
        return min(flow.info().bytes_acked, size)

    async def show_progress() -> None:
        assert bar is not None
        while True:
            bar.update(acked(), trio.current_time() - t0)
            await trio.sleep(_PROGRESS_POLL)

    answer = b""
    async with trio.open_nursery() as nursery:
        if bar is not None:
            nursery.start_soon(show_progress)
        view = memoryview(payload)
        for offset in range(0, size, 65536):
            result = await flow.write(view[offset : offset + 65536])
            if not isinstance(result, Ok):
                raise RuntimeError(f"write failed: {result}")
        await flow.send_eof()
        while True:
            match await flow.read():
                case Ok(data):
                    answer += data
                case Error(err):
                    say(f"   read failed: {error_message(err)}")
                    break
                case _:
                    break
        nursery.cancel_scope.cancel()
    report.transfer_seconds = trio.current_time() - t0
    if bar is not None:
        bar.finish(acked(), report.transfer_seconds)
    wall = time.perf_counter() - wall0
    report.transfer_bytes = size
    report.digest_received = answer.decode(errors="replace")
    info = flow.info()
    report.retransmits = info.retransmits
    await flow.close()
    if report.trace is not None and options.plot is not None:
        report.trace.detach()
        draw(from_trace(report.trace), options.plot)
        report.plot_path = options.plot
    net.clear_impairments()
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


#: How often (trio seconds) the transfer's progress is sampled.
_PROGRESS_POLL = 0.05


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def _summary(report: DemoReport, options: DemoOptions, say: Callable[[str], None]) -> None:
    net = {k: v for k, v in report.network_stats.items() if v}
    say("4. Summary")
    say("   network (packets):")
    say(format_table(["counter", "packets"], sorted(net.items()), indent="     "))
    say("   stacks (non-zero counters):")
    columns = {"client": report.client_stats, "server": report.server_stats}
    say(counter_table(columns, indent="     "))
    if options.pcap is not None:
        path = os.path.abspath(options.pcap)
        say(f"   pcap: {path} ({report.pcap_packets} packets); try: tshark -r {options.pcap}")
    else:
        say("   pcap: none (--no-pcap)")
    if report.plot_path is not None:
        say(f"   plot: {os.path.abspath(report.plot_path)} (time-sequence graph, cwnd, RTT)")
    ok = report.http_status == 200 and report.intact
    say("   result: " + ("everything arrived intact" if ok else "SOMETHING WENT WRONG"))


# -- the clock ------------------------------------------------------------------------------
class WallClock(trio.abc.Clock):
    """trio's clock as seconds since the Unix epoch: monotonic (``perf_counter``),
    anchored once at the wall-clock time of the run's start, so the capture's
    timestamps are the times the packets really passed."""

    def __init__(self) -> None:
        self._offset = time.time() - time.perf_counter()

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._offset + time.perf_counter()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - self.current_time()


def demo_clock(virtual: bool) -> trio.abc.Clock:
    """The clock the command line runs the demo on: real time, or virtual time
    (:class:`trio.testing.MockClock` jumping to each deadline); either way starting at
    the wall-clock time of now, so the pcap's timestamps are dates of this run."""
    if not virtual:
        return WallClock()
    clock = trio.testing.MockClock(autojump_threshold=0)
    clock.jump(time.time())
    return clock


# -- the command line ---------------------------------------------------------------------
def add_demo_parser(sub: Any) -> None:
    """Add the ``demo`` subcommand to an argparse subparsers object."""
    d = DemoOptions()
    demo = sub.add_parser(
        "demo",
        help="two stacks on a virtual network: HTTP, an impaired transfer, a pcap",
        description=(
            "Two trio_tcp6 stacks on an in-memory IPv6 network: an HTTP exchange, then a "
            "transfer over an impaired path checked with SHA-256, a table of counters "
            "and a pcap of every packet."
        ),
    )
    what = demo.add_argument_group("the transfer")
    what.add_argument(
        "--megabytes",
        type=checks.size_mib,
        default=d.megabytes,
        metavar="MIB",
        help="size of the transfer in MiB (default %(default)s)",
    )
    what.add_argument("--congestion", choices=("cubic", "newreno"), default=d.congestion)
    what.add_argument(
        "--virtual", action="store_true", help="run in virtual time (trio.testing.MockClock)"
    )
    what.add_argument(
        "--quiet", action="store_true", help="no progress display during the transfer"
    )
    path = demo.add_argument_group("the path (impairments during the transfer)")
    below_one = checks.probability(below_one=True, why=" (1 would stop every packet)")
    path.add_argument(
        "--loss",
        type=below_one,
        default=d.loss,
        metavar="P",
        help="loss probability (default %(default)s)",
    )
    path.add_argument(
        "--corrupt",
        type=below_one,
        default=d.corrupt,
        metavar="P",
        help="probability of flipping bits in a packet (default %(default)s)",
    )
    path.add_argument(
        "--duplicate",
        type=checks.probability(),
        default=d.duplicate,
        metavar="P",
        help="probability of delivering a packet twice (default %(default)s)",
    )
    path.add_argument(
        "--reorder",
        type=checks.probability(),
        default=d.reorder,
        metavar="P",
        help="probability of holding a packet back, to be overtaken (default %(default)s)",
    )
    path.add_argument(
        "--reorder-delay",
        type=checks.positive,
        default=None,
        metavar="S",
        help="how long a reordered packet is held back (default: max(delay, 1 ms))",
    )
    path.add_argument(
        "--delay",
        type=checks.non_negative,
        default=d.delay,
        metavar="S",
        help="one-way delay in seconds (default %(default)s)",
    )
    path.add_argument(
        "--jitter",
        type=checks.non_negative,
        default=d.jitter,
        metavar="S",
        help="uniform delay variation, +-S (never reorders) (default %(default)s)",
    )
    path.add_argument(
        "--rate",
        type=checks.positive,
        default=None,
        metavar="MBIT",
        help="link rate in Mbit/s (default: unlimited)",
    )
    path.add_argument(
        "--queue",
        type=_queue_bytes,
        default=None,
        metavar="BYTES",
        help="drop-tail queue in front of --rate (default: unlimited)",
    )
    path.add_argument(
        "--mtu", type=checks.mtu, default=d.mtu, help="the network's MTU (default %(default)s)"
    )
    path.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="seed of the network's randomness (default %(default)s)",
    )
    out = demo.add_argument_group("the capture")
    pcap = out.add_mutually_exclusive_group()
    pcap.add_argument(
        "--pcap",
        type=checks.pcap_path,
        default=d.pcap,
        metavar="PATH",
        help="write every packet to this pcap file (default %(default)s)",
    )
    pcap.add_argument(
        "--no-pcap", dest="pcap", action="store_const", const=None, help="write no capture"
    )
    out.add_argument(
        "--plot",
        type=_plot_path,
        default=None,
        metavar="PATH",
        help="record the transfer and draw it to PATH (.png or .svg; needs matplotlib)",
    )
    demo.set_defaults(func=_main, parser=demo)


def _plot_path(text: str) -> str:
    if os.path.splitext(text)[1].lower() not in (".png", ".svg", ".pdf"):
        raise argparse.ArgumentTypeError(f"a picture ends in .png, .svg or .pdf, got {text}")
    return checks.pcap_path(text)


def _queue_bytes(text: str) -> int:
    value = checks.positive(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"a queue is a whole number of bytes, got {text}")
    return int(value)


def options_from(ns: argparse.Namespace) -> DemoOptions:
    """The :class:`DemoOptions` a parsed command line asks for."""
    return DemoOptions(
        pcap=ns.pcap,
        megabytes=ns.megabytes,
        loss=ns.loss,
        delay=ns.delay,
        jitter=ns.jitter,
        reorder=ns.reorder,
        reorder_delay=ns.reorder_delay,
        duplicate=ns.duplicate,
        corrupt=ns.corrupt,
        rate=None if ns.rate is None else ns.rate * 1e6 / 8,
        queue=ns.queue,
        mtu=ns.mtu,
        seed=ns.seed,
        congestion=ns.congestion,
        plot=ns.plot,
    )


def _main(ns: argparse.Namespace) -> int:
    if ns.queue is not None and ns.rate is None:
        ns.parser.error("--queue needs --rate (a queue forms only in front of a rate limit)")
    options = options_from(ns)
    try:
        options.impairments()
    except ValueError as exc:  # the argument types should have caught it
        ns.parser.error(str(exc))
    if options.plot is not None:
        try:
            require_matplotlib()
        except MissingMatplotlib as exc:
            return checks.fail(ns.parser.prog, str(exc), 1)
    progress = (
        None
        if ns.quiet
        else functools.partial(Progress, stream=sys.stdout, tty=sys.stdout.isatty())
    )
    print("trio_tcp6 demo: a userspace TCP/IPv6 stack on trio, over an in-memory network")
    print(f"(engine build: {build_description()})")
    if ns.virtual:
        print("(virtual time: trio.testing.MockClock; times below are simulated)")
    try:
        report = trio.run(
            functools.partial(run_demo, options, progress=progress),
            clock=demo_clock(ns.virtual),
        )
    except OSError as exc:
        return checks.fail(ns.parser.prog, str(exc), 1)
    except KeyboardInterrupt:
        return checks.fail(ns.parser.prog, "interrupted", 130)
    return 0 if report.http_status == 200 and report.intact else 1
