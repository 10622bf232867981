"""The lossy-path grid against this machine's own Linux TCP (needs root and /dev/net/tun).

    python bench/linux_grid.py [--cells 4096x0.01,32768x] [--seeds N] [--jobs N]
                               [--json FILE] [--runs] [--rcvbuf-factor F] [--ping]

The scenario of ``bench/lossy_grid.py`` with the kernel at both ends: two network
namespaces (``lg<pid>-<n>a`` and ``...b``, made per run and always deleted), each with
a TUN device (plain packets, no offloads: the kernel segments before the device, so
every packet is at most the MTU of 1500 bytes). This process is the wire between
them: it reads each packet from one TUN and writes it to the other after a one-way
delay of 50 ms, dropping each packet independently with probability ``p`` (both
directions, a seeded generator per direction), with no rate limit. The kernel has no
netem here, so loss and delay are done in Python; ``--ping`` checks that the bridge's
delay is accurate (UDP echo round trips through it, ≈ 100 ms).

In namespace b a Python ``socket`` server receives; in namespace a a client connects
and sends 1 MiB (256 KiB at p = 0.20). Both sockets get ``SO_SNDBUF = buf`` and
``SO_RCVBUF = rcvbuf(buf)`` before ``connect``/``listen``, so the window scale and the
receive window follow from them. Linux doubles the value given to ``SO_RCVBUF`` and
advertises only part of the doubled space (``tcp_win_from_space``: the space times a
ratio learnt from the received packets' payload/truesize). :func:`rcvbuf_for` is the
value that makes the advertised window equal ``buf`` on this kernel with MTU-sized
packets from a TUN device; the bridge reads every window the receiver advertises (with
its window scale) and prints the largest per cell (column ``wnd``), and ``ss -ti`` on
the sender shows it as ``snd_wnd`` (printed with ``--runs``).

Per run: throughput = bytes / seconds from the ``connect`` call until the server's
last ``recv`` that completed the bulk; the longest stall is the largest gap between
two ``recv`` calls that returned data, counting from the ``connect`` call (a lost SYN
is a stall too); and the kernel's own counters: ``ss -ti`` ``retrans`` of the sending
socket (total retransmitted segments), and ``nstat`` of both namespaces (fresh per
run): ``TcpExtTCPTimeouts`` (RTOs, SYN timeouts included), ``TcpExtTCPLossProbes`` (TLPs),
``TcpExtTCPSynRetrans``. The table has the columns of ``bench/lossy_grid.py``: median,
min-max, stall median/max, RTO count (median, max; both ends), SYN retransmissions
(sum), then retransmissions and TLPs (median) and the ratio to the issue's Linux
figures. ``--json FILE`` writes the medians (and every run) in the form
``bench/lossy_grid.py --anchors FILE`` reads.

This is real time: a run at p = 0 takes about 3 s (32 KiB) to 30 s (4 KiB), 256 KiB
at p = 0.20 minutes; each run is mostly waiting, so run cells in parallel with
``--jobs``. Kernel defaults are used (CUBIC, SACK, timestamps, RACK-TLP, PRR on
Linux 6.x); the header prints the kernel version and the namespace's TCP sysctls.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import itertools
import json
import os
import platform
import random
import statistics
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from bench.lossy_grid import BULK, DELAY, LINUX, LINUX_SOURCE, MTU, bulk_size, parse_cells
from trio_tcp6.links.tun import TunLink, open_tun

PREFIX = ipaddress.IPv6Network("fd00:7463:70:1e::/64")
CLIENT = str(PREFIX[1])
SERVER = str(PREFIX[2])
PORT = 5001
#: The bridge's timer wakes this much before a packet is due (see :func:`pump`).
EARLY = 0.001
#: Scheduling priority of the bridge and the peers (see :func:`raise_priority`).
NICE = -10
#: A run not finished after this many seconds of wall time is reported as failed.
WALL_LIMIT = 900.0
CC_SYSCTL = "net.ipv4.tcp_congestion_control"
SYSCTLS = (
    CC_SYSCTL,
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_recovery",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
)
NSTAT = ("TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPSynRetrans", "TcpRetransSegs")

#: ``SO_RCVBUF`` per ``buf`` as (without loss, with loss), found by measurement (see
#: the docs). Without window scaling, which these buffer sizes do not get, Linux
#: advertises a whole number of MSS (1428 bytes here); the target is the one nearest to
#: ``buf``: 3, 11 and 23 MSS, i.e. 4284, 15708 and 32844 bytes. The window is the
#: doubled buffer times a payload/truesize ratio the kernel learns from the received
#: packets, and under loss (out-of-order packets coalesced) the ratio rises enough to
#: add one MSS to the larger windows: so a lossy cell needs a smaller value. Each value
#: is inside the measured range that gives the target: 4300-4500 for 4 KiB (both),
#: 13926-14745 and 13650-13850 for 16 KiB, 27852-28835 and 27600-27700 for 32 KiB.
RCVBUF: dict[int, tuple[int, int]] = {
    4096: (4400, 4400),
    16384: (14300, 13750),
    32768: (28350, 27650),
}
#: For any other ``buf``: SO_RCVBUF = buf x this (the larger buffers' ratio).
RCVBUF_FACTOR = 0.87


def rcvbuf_for(buf: int, loss: float, factor: float | None = None) -> int:
    """The ``SO_RCVBUF`` value that makes the advertised window ``buf`` bytes, to the
    MSS, at loss rate ``loss`` (``factor`` overrides the table: ``buf * factor``)."""
    if factor is not None:
        return int(buf * factor)
    if buf in RCVBUF:
        return RCVBUF[buf][1 if loss else 0]
    return int(buf * RCVBUF_FACTOR)


SERVER_CODE = r"""
import json, socket, sys, time
addr, port, rcvbuf, sndbuf, nbytes = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
s.bind((addr, port))
s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
got = 0
first = last = None
gap = 0.0
while got < nbytes:
    b = c.recv(65536)
    if not b:
        break
    now = time.monotonic()
    if last is None:
        first = now
    else:
        gap = max(gap, now - last)
    last = now
    got += len(b)
rcvbuf_now = c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
print("DONE", json.dumps({"got": got, "first": first, "last": last, "gap": gap,
                          "rcvbuf": rcvbuf_now}), flush=True)
sys.stdin.read()
"""

CLIENT_CODE = r"""
import json, socket, sys, time
addr, port, rcvbuf, sndbuf, nbytes = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
t0 = time.monotonic()
c.connect((addr, port))
t1 = time.monotonic()
print("CONNECTED", json.dumps({"t0": t0, "connected": t1}), flush=True)
c.sendall(bytes(nbytes))
print("SENT", flush=True)
sys.stdin.read()
"""

ECHO_CODE = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("LISTENING", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""

PING_CODE = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2.0)
rtts = []
for i in range(int(sys.argv[3])):
    t = time.monotonic()
    s.sendto(str(i).encode(), (sys.argv[1], int(sys.argv[2])))
    try:
        while s.recv(2048) != str(i).encode():
            pass
        rtts.append(time.monotonic() - t)
    except TimeoutError:
        pass
    time.sleep(0.05)
print("RTTS", json.dumps(rtts), flush=True)
"""


# -- the bridge ------------------------------------------------------------------------
@dataclass
class Direction:
    """One direction of the wire: what it saw, dropped and delivered."""

    name: str
    loss: float
    rng: random.Random
    packets: int = 0
    dropped: int = 0
    #: Window scale the sender of this direction announced in its SYN (None: not yet).
    wscale: int | None = None
    #: The largest (scaled) window advertised in this direction, SYNs excluded.
    max_window: int = 0
    #: The latest scaled window seen (for the steady-state value).
    last_window: int = 0


def tcp_window(packet: bytes, way: Direction) -> None:
    """Track the receive window in a TCP/IPv6 packet (no extension headers here)."""
    if len(packet) < 60 or packet[6] != 6:
        return
    flags = packet[53]
    window = struct.unpack_from("!H", packet, 54)[0]
    if flags & 0x02:  # SYN: the window is unscaled; find the window scale option
        offset = (packet[52] >> 4) * 4
        i, end = 60, 40 + offset
        way.wscale = 0
        while i < end:
            kind = packet[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if kind == 3 and i + 2 < end:
                way.wscale = packet[i + 2]
            i += max(2, packet[i + 1])
        return
    scaled = window << (way.wscale or 0)
    way.last_window = scaled
    way.max_window = max(way.max_window, scaled)


async def pump(src: TunLink, dst: TunLink, way: Direction, delay: float) -> None:
    """Move packets from ``src`` to ``dst`` ``delay`` seconds after they were read,
    dropping each with probability ``way.loss``. One FIFO: the delay is constant, so
    release times are in order."""
    queue: deque[tuple[float, bytes]] = deque()
    wake = trio.Event()

    async def release() -> None:
        nonlocal wake
        while True:
            if not queue:
                await wake.wait()
                wake = trio.Event()
                continue
            # epoll rounds its timeout up to whole milliseconds: wake up to one early
            # and release what is due within a fifth of one (the rest is the wakeup latency).
            await trio.sleep_until(queue[0][0] - EARLY)
            now = trio.current_time() + EARLY / 5
            batch = []
            while queue and queue[0][0] <= now:
                batch.append(queue.popleft()[1])
            await dst.send_batch(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release)
        while True:
            packets = await src.receive_batch()
            due = trio.current_time() + delay
            for packet in packets:
                way.packets += 1
                if way.loss and way.rng.random() < way.loss:
                    way.dropped += 1
                    continue
                tcp_window(packet, way)
                queue.append((due, packet))
            wake.set()


# -- namespaces and processes ----------------------------------------------------------
_names = itertools.count(1)


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.asynccontextmanager
async def bridged_pair(
    delay: float, loss: float, seed: int
) -> AsyncIterator[tuple[str, str, Direction, Direction]]:
    """Two fresh namespaces joined by the bridge: yields (ns_a, ns_b, a_to_b, b_to_a);
    the client side is ``CLIENT`` in ns_a, the server side ``SERVER`` in ns_b."""
    n = next(_names)
    names = (f"lg{os.getpid()}-{n}a", f"lg{os.getpid()}-{n}b")
    created: list[str] = []
    try:
        for ns in names:
            sh("ip", "netns", "add", ns)
            created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        tun_names = (f"lga{os.getpid() % 100000}x{n}"[:15], f"lgb{os.getpid() % 100000}x{n}"[:15])
        async with (
            open_tun(tun_names[0], netns=names[0], mtu=MTU, offload=False) as tun_a,
            open_tun(tun_names[1], netns=names[1], mtu=MTU, offload=False) as tun_b,
        ):
            for ns, tun, addr in ((names[0], tun_a, CLIENT), (names[1], tun_b, SERVER)):
                sh("ip", "-n", ns, "addr", "add", f"{addr}/64", "dev", tun.name, "nodad")
                sh("ip", "-n", ns, "link", "set", tun.name, "up")
            for ns, tun, addr in ((names[0], tun_a, CLIENT), (names[1], tun_b, SERVER)):
                wait_address(ns, tun.name, addr)
            a_to_b = Direction("a>b", loss, random.Random(seed * 2))
            b_to_a = Direction("b>a", loss, random.Random(seed * 2 + 1))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, tun_a, tun_b, a_to_b, delay)
                nursery.start_soon(pump, tun_b, tun_a, b_to_a, delay)
                yield names[0], names[1], a_to_b, b_to_a
                nursery.cancel_scope.cancel()
    finally:
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)


def wait_address(ns: str, ifname: str, address: str, timeout: float = 5.0) -> None:
    """Until the address is local (addrconf runs a little after ``link set up``)."""
    deadline = time.monotonic() + timeout
    while f"local {address} " not in sh("ip", "-n", ns, "-6", "route", "show", "table", "local"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{address} on {ifname} in {ns} not ready")
        time.sleep(0.01)


class Peer:
    """A Python helper inside a namespace; its stdout read line by line."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.pending = b""

    @classmethod
    async def start(cls, ns: str, code: str, *args: object) -> Peer:
        argv = ["ip", "netns", "exec", ns, sys.executable, "-u", "-c", code, *map(str, args)]
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        return cls(process)

    async def line(self, marker: str) -> str:
        """The rest of the next line that starts with ``marker``."""
        assert self.process.stdout is not None
        while True:
            while b"\n" not in self.pending:
                chunk = await self.process.stdout.receive_some(65536)
                if not chunk:
                    raise EOFError(f"helper ended before {marker!r}")
                self.pending += chunk
            line, _, self.pending = self.pending.partition(b"\n")
            text = line.decode()
            if text.startswith(marker):
                return text[len(marker) :].strip()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


@contextlib.asynccontextmanager
async def peers() -> AsyncIterator[list[Peer]]:
    """Every helper started into the list is killed (and reaped) on exit."""
    started: list[Peer] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()
        with trio.CancelScope(shield=True):
            for p in started:
                with trio.move_on_after(5):
                    await p.process.wait()


def nstat(ns: str) -> dict[str, int]:
    """The namespace's absolute counters (a fresh namespace counts this run only)."""
    out = sh("ip", "netns", "exec", ns, "nstat", "-asz", *NSTAT, check=False)
    counters = dict.fromkeys(NSTAT, 0)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in counters:
            counters[parts[0]] = int(parts[1])
    return counters


def ss_info(ns: str) -> str:
    """``ss -tin`` of the sending socket (the established one to the server)."""
    out = sh("ip", "netns", "exec", ns, "ss", "-tinH", "dst", f"[{SERVER}]", check=False)
    return " ".join(out.split())


def ss_field(info: str, name: str) -> str:
    for word in info.split():
        if word.startswith(name + ":"):
            return word[len(name) + 1 :]
    return ""


# -- one run ---------------------------------------------------------------------------
@dataclass
class LinuxRun:
    buf: int
    loss: float
    seed: int
    nbytes: int
    seconds: float = 0.0
    stall: float = 0.0
    rtos: int = 0
    syn_retransmits: int = 0
    retransmits: int = 0
    tlps: int = 0
    window: int = 0
    rcvbuf: int = 0
    connect_rtt: float = 0.0
    dropped: int = 0
    packets: int = 0
    ss: str = ""
    failed: str = ""
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.nbytes / self.seconds if self.seconds > 0 and not self.failed else 0.0


async def transfer(
    buf: int,
    loss: float,
    seed: int,
    nbytes: int,
    *,
    delay: float = DELAY,
    rcvbuf: int | None = None,
    wall_limit: float = WALL_LIMIT,
) -> LinuxRun:
    """One bulk transfer from the client namespace to the server's, through the bridge."""
    run = LinuxRun(buf, loss, seed, nbytes)
    rcv = rcvbuf_for(buf, loss) if rcvbuf is None else rcvbuf
    async with bridged_pair(delay, loss, seed) as (ns_a, ns_b, a_to_b, b_to_a):
        async with peers() as started:
            server = await Peer.start(ns_b, SERVER_CODE, SERVER, PORT, rcv, buf, nbytes)
            started.append(server)
            await server.line("LISTENING")
            client = await Peer.start(ns_a, CLIENT_CODE, SERVER, PORT, rcv, buf, nbytes)
            started.append(client)
            with trio.move_on_after(wall_limit) as scope:
                begun = json.loads(await client.line("CONNECTED"))
                done = json.loads(await server.line("DONE"))
            if scope.cancelled_caught:
                run.failed = f"not done after {wall_limit:.0f} s"
            else:
                run.seconds = done["last"] - begun["t0"]
                run.stall = max(done["first"] - begun["t0"], done["gap"])
                run.connect_rtt = begun["connected"] - begun["t0"]
                run.rcvbuf = done["rcvbuf"]
                if done["got"] < nbytes:
                    run.failed = f"EOF after {done['got']} of {nbytes} bytes"
            run.ss = ss_info(ns_a)
            a, b = nstat(ns_a), nstat(ns_b)
        run.counters = {k: a[k] + b[k] for k in NSTAT}
        run.rtos = run.counters["TcpExtTCPTimeouts"]
        run.syn_retransmits = run.counters["TcpExtTCPSynRetrans"]
        run.tlps = a["TcpExtTCPLossProbes"]
        retrans = ss_field(run.ss, "retrans")
        run.retransmits = int(retrans.split("/")[-1]) if retrans else a["TcpRetransSegs"]
        run.window = b_to_a.max_window
        run.dropped = a_to_b.dropped + b_to_a.dropped
        run.packets = a_to_b.packets + b_to_a.packets
    return run


def raise_priority() -> None:
    """Run the wire (and the peers it starts) at nice -10: on a loaded machine the
    bridge's wakeups otherwise come late and lengthen every round trip."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)


def run_one(args: tuple[int, float, int, int, int | None]) -> LinuxRun:
    """One run in its own trio loop (a Pool worker entry point)."""
    buf, loss, seed, nbytes, rcvbuf = args
    raise_priority()
    try:
        return trio.run(lambda: transfer(buf, loss, seed, nbytes, rcvbuf=rcvbuf))
    except Exception as exc:  # a failed run is reported, the grid goes on
        return LinuxRun(buf, loss, seed, nbytes, failed=f"{type(exc).__name__}: {exc}")


async def ping(delay: float = DELAY, count: int = 20) -> list[float]:
    """UDP echo round trips through the bridge (no loss)."""
    async with bridged_pair(delay, 0.0, 1) as (ns_a, ns_b, _, _), peers() as started:
        echo = await Peer.start(ns_b, ECHO_CODE, SERVER, PORT)
        started.append(echo)
        await echo.line("LISTENING")
        prober = await Peer.start(ns_a, PING_CODE, SERVER, PORT, count)
        started.append(prober)
        rtts: list[float] = json.loads(await prober.line("RTTS"))
        return rtts


def kernel_settings() -> dict[str, str]:
    """The TCP sysctls a fresh namespace starts with (what the runs use)."""
    ns = f"lg{os.getpid()}-sysctl"
    sh("ip", "netns", "add", ns)
    try:
        out = sh("ip", "netns", "exec", ns, "sysctl", *SYSCTLS)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    settings = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        settings[key.strip().removeprefix("net.ipv4.")] = " ".join(value.split())
    return settings


# -- the grid --------------------------------------------------------------------------
@dataclass
class CellSummary:
    buf: int
    loss: float
    median: float
    low: float
    high: float
    stall_median: float
    stall_max: float
    rto_median: float
    rto_max: int
    syn: int
    retransmits: float
    tlps: float
    window: int
    failed: int


def summarise(cell: tuple[int, float], runs: Sequence[LinuxRun]) -> CellSummary:
    rates = sorted(r.throughput for r in runs)
    return CellSummary(
        buf=cell[0],
        loss=cell[1],
        median=statistics.median(rates),
        low=rates[0],
        high=rates[-1],
        stall_median=statistics.median(r.stall for r in runs),
        stall_max=max(r.stall for r in runs),
        rto_median=statistics.median(r.rtos for r in runs),
        rto_max=max(r.rtos for r in runs),
        syn=sum(r.syn_retransmits for r in runs),
        retransmits=statistics.median(r.retransmits for r in runs),
        tlps=statistics.median(r.tlps for r in runs),
        window=max(r.window for r in runs),
        failed=sum(1 for r in runs if r.failed),
    )


HEADER = (
    f"{'buf':>6} {'p':>5} {'median':>9} {'min-max (bytes/s)':^19} {'stall':>6} "
    f"{'max':>7} {'rto':>5} {'max':>4} {'syn':>4} {'rtx':>6} {'tlp':>5} {'wnd':>6} "
    f"{'/issue':>7}"
)


def format_row(s: CellSummary) -> str:
    anchor = LINUX.get((s.buf, s.loss))
    ratio = f"{s.median / anchor:5.2f}x" if anchor else "    -"
    fails = f"  FAILED {s.failed}" if s.failed else ""
    return (
        f"{s.buf:>6} {s.loss:>5.2f} {s.median:>9,.0f} {s.low:>9,.0f}-{s.high:<9,.0f} "
        f"{s.stall_median:>6.2f} {s.stall_max:>7.2f} {s.rto_median:>5g} {s.rto_max:>4} "
        f"{s.syn:>4} {s.retransmits:>6g} {s.tlps:>5g} {s.window:>6} {ratio:>7}{fails}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", help="BUFxP cells as for bench/lossy_grid.py (default all)")
    parser.add_argument("--seeds", type=int, default=5, help="runs per cell (seeds 1..N)")
    parser.add_argument("--jobs", type=int, default=4, help="runs in parallel (default 4)")
    parser.add_argument("--json", metavar="FILE", help="write medians and runs as JSON")
    parser.add_argument("--runs", action="store_true", help="also print every run")
    parser.add_argument(
        "--progress", action="store_true", help="a line on stderr as each run ends"
    )
    parser.add_argument(
        "--rcvbuf-factor",
        type=float,
        help="SO_RCVBUF = buf x this instead of the measured table",
    )
    parser.add_argument("--bulk", type=int, help="bytes per run (default: the grid's)")
    parser.add_argument("--ping", action="store_true", help="only measure RTT through the bridge")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        raise SystemExit("needs root and /dev/net/tun")
    print(f"kernel: Linux {platform.release()} ({platform.version()})")
    if args.ping:
        raise_priority()
        rtts = trio.run(ping)
        print(
            f"UDP echo through the bridge ({DELAY * 1000:.0f} ms each way), {len(rtts)} probes: "
            f"min {min(rtts) * 1000:.2f} ms, median {statistics.median(rtts) * 1000:.2f} ms, "
            f"max {max(rtts) * 1000:.2f} ms"
        )
        return
    settings = kernel_settings()
    print(
        "namespace defaults: "
        + ", ".join(f"{k}={v}" for k, v in settings.items())
        + "; both sockets set TCP_CONGESTION=cubic (Linux's default)"
    )
    cells = parse_cells(args.cells)
    work = [
        (buf, loss, seed, args.bulk or bulk_size(loss), rcvbuf_for(buf, loss, args.rcvbuf_factor))
        for buf, loss in cells
        for seed in range(1, args.seeds + 1)
    ]
    # The longest runs first, so that the parallel jobs finish together.
    order = sorted(range(len(work)), key=lambda i: (-work[i][1], work[i][0]))
    print(
        f"linux grid: one-way delay {DELAY * 1000:.0f} ms, MTU {MTU}, random loss p both ways "
        f"(userspace bridge), {BULK >> 10} KiB bulk (256 KiB at p=0.20), {args.seeds} seeds, "
        f"SO_SNDBUF=buf, SO_RCVBUF="
        + ", ".join(
            f"{buf}x{loss:g}:{rcvbuf_for(buf, loss, args.rcvbuf_factor)}" for buf, loss in cells
        )
        + f", real time, {args.jobs} jobs"
    )
    print(
        "stall = longest gap between recv() calls returning data (median, max); rto = "
        "TcpExtTCPTimeouts both ends (median, max); syn = TcpExtTCPSynRetrans (sum); rtx = ss "
        "retrans of the sender, tlp = its TcpExtTCPLossProbes (median); wnd = largest "
        f"window the receiver advertised; /issue = median / {LINUX_SOURCE}"
    )
    print(HEADER, flush=True)
    t0 = time.monotonic()
    done: list[LinuxRun] = []
    with Pool(args.jobs) as pool:
        for r in pool.imap_unordered(run_one, [work[i] for i in order], chunksize=1):
            done.append(r)
            if args.progress:
                print(
                    f"  [{len(done)}/{len(work)} {time.monotonic() - t0:.0f} s] "
                    f"{r.buf}x{r.loss:g} "
                    f"seed {r.seed}: {r.throughput:,.0f} B/s"
                    + (f" FAILED {r.failed}" if r.failed else ""),
                    file=sys.stderr,
                    flush=True,
                )
    results: dict[tuple[int, float], list[LinuxRun]] = {}
    for r in sorted(done, key=lambda r: r.seed):
        results.setdefault((r.buf, r.loss), []).append(r)
    summaries = []
    for cell in cells:
        runs = results[cell]
        summary = summarise(cell, runs)
        summaries.append(summary)
        print(format_row(summary))
        if args.runs:
            for r in runs:
                print(
                    f"         seed {r.seed}: {r.throughput:,.0f} B/s in {r.seconds:.2f} s, "
                    f"stall {r.stall:.2f} s, connect {r.connect_rtt * 1000:.0f} ms, "
                    f"rto {r.rtos}, syn {r.syn_retransmits}, rtx {r.retransmits}, "
                    f"tlp {r.tlps}, wnd {r.window}, rcvbuf {r.rcvbuf}, dropped "
                    f"{r.dropped}/{r.packets}" + (f" FAILED: {r.failed}" if r.failed else "")
                )
                print(f"           ss: {r.ss}")
    elapsed = time.monotonic() - t0
    print(f"{len(work)} runs in {elapsed:.0f} s (wall clock, {args.jobs} jobs)")
    if args.json:
        payload: dict[str, Any] = {
            "source": (
                f"bench/linux_grid.py, Linux {platform.release()}, "
                f"{time.strftime('%Y-%m-%d', time.gmtime())}"
            ),
            "kernel": platform.release(),
            "settings": settings,
            "seeds": args.seeds,
            "rcvbuf": {f"{b}x{p:g}": rcvbuf_for(b, p, args.rcvbuf_factor) for b, p in cells},
            "cells": [asdict(s) for s in summaries],
            "runs": [asdict(r) for rs in results.values() for r in rs],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
