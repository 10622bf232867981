"""The lossy-path grid: bulk throughput under random loss, in virtual time.

    python bench/lossy_grid.py [--cells 4096x0.01,32768x0] [--seeds N] [--quick]
                               [--trace DIR] [--jobs N] [--linux] [--anchors FILE]

The scenario is smoltcp's ``tests/netsim.rs``: two hosts on a VirtualNetwork, one-way
delay 50 ms, independent random loss ``p`` on every packet in both directions, no
rate limit, MTU 1500; both ends' send and receive buffers are ``buf`` bytes
(``TCPConfig(send_buffer=buf, receive_buffer=buf)``, everything else default: CUBIC,
SACK, timestamps, RACK-TLP, PRR; with ``--linux`` both ends use
``TCPConfig.linux(send_buffer=buf, receive_buffer=buf)``, the choices Linux 6.x
makes where the RFCs allow both). A client connects and sends 1 MiB (256 KiB at
p = 0.20); throughput = bytes / seconds from the ``connect`` call until the
receiving application has read every byte. Everything runs under
``trio.testing.MockClock(autojump_threshold=0)``, so a run takes CPU time only.

Per cell (5 seeds unless ``--seeds``) it prints the median throughput, the range,
the longest stall (the largest gap between two reads that returned data at the
receiver, counting from the connect call: a lost SYN is a stall too), the
retransmission timeouts (data RTOs of both ends, plus SYN/SYN-ACK retransmissions),
and the ratio of the median to the Linux and smoltcp medians below. ``--anchors FILE``
takes the Linux medians (and longest stalls) from a results file written by
``bench/linux_grid.py --json FILE`` (this machine's kernel through the userspace
bridge) instead of the constants.

``--trace DIR`` writes one CSV per run (``DIR/buf<b>_p<p>_s<seed>.csv``): a row
after every call into either engine (segment in, timer, user send) and one per
segment out, with the sender's state (snd_una, snd_nxt, cwnd, ssthresh, pipe,
srtt, rto, ca_state, retransmits, ...). It reads the engines only (their methods
are wrapped for the run to take the samples); the runs are the same with and
without it.

Determinism: the network's loss draws come from ``seed``; trio's scheduler also
shuffles ready tasks at random, so its generator is seeded from ``seed`` too. The
stacks' ISNs, ports and timestamp offsets are random but do not change timing.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

# Measure the checkout this file belongs to, not whichever trio_tcp6 is installed:
# Python puts the script's directory (bench/), not the working directory, on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import ACK, FIN, PSH, RST, SYN, TCPSegment

A = "2001:db8::1"
B = "2001:db8::2"
PORT = 80
DELAY = 0.050  # one way
MTU = 1500
BUFS = (4096, 16384, 32768)
LOSSES = (0.0, 0.01, 0.05, 0.10, 0.20)
BULK = 1 << 20
BULK_HEAVY_LOSS = 256 << 10  # at p = 0.20
READ_SIZE = 65536
#: A run that has not finished after this much virtual time is reported as failed.
VIRTUAL_LIMIT = 3600.0

#: Median throughput (bytes/s) of the Linux kernel in the same scenario.
LINUX_SOURCE = "issue 10, Linux 6.18 via userspace impairment bridge"
LINUX: dict[tuple[int, float], float] = {
    (4096, 0.0): 40_627,
    (4096, 0.01): 36_316,
    (4096, 0.05): 27_277,
    (4096, 0.10): 19_289,
    (4096, 0.20): 2_583,
    (16384, 0.0): 150_259,
    (16384, 0.01): 120_556,
    (16384, 0.05): 59_488,
    (16384, 0.10): 31_146,
    (16384, 0.20): 1_244,
    (32768, 0.0): 310_361,
    (32768, 0.01): 221_961,
    (32768, 0.05): 70_696,
    (32768, 0.10): 32_648,
    (32768, 0.20): 7_071,
}
#: Median throughput (bytes/s) of smoltcp (no congestion control by default).
SMOLTCP_SOURCE = "smoltcp tests/netsim.rs snapshot"
SMOLTCP: dict[tuple[int, float], float] = {
    (4096, 0.0): 35_062,
    (4096, 0.01): 26_937,
    (4096, 0.05): 14_074,
    (4096, 0.10): 7_871,
    (4096, 0.20): 1_604,
    (16384, 0.0): 161_842,
    (16384, 0.01): 127_091,
    (16384, 0.05): 55_319,
    (16384, 0.10): 27_269,
    (16384, 0.20): 7_655,
    (32768, 0.0): 322_945,
    (32768, 0.01): 219_671,
    (32768, 0.05): 76_626,
    (32768, 0.10): 37_775,
    (32768, 0.20): 6_079,
}
#: Linux's longest stalls (seconds) by loss rate, same source as LINUX.
LINUX_STALL: dict[float, tuple[float, float]] = {
    0.05: (0.5, 0.6),
    0.10: (1.2, 2.0),
    0.20: (18.0, 65.0),
}

TRACE_FIELDS = (
    "time",
    "side",
    "what",
    "detail",
    "snd_una",
    "snd_nxt",
    "cwnd",
    "ssthresh",
    "pipe",
    "sacked",
    "lost",
    "snd_wnd",
    "srtt",
    "rttvar",
    "rto",
    "ca_state",
    "retransmits",
    "rtos",
    "tlps",
    "fast_recoveries",
    "bytes_received",
)


@dataclass
class RunResult:
    buf: int
    loss: float
    seed: int
    nbytes: int
    seconds: float
    stall: float
    rtos: int
    syn_retransmits: int
    retransmits: int
    tlps: int
    recoveries: int
    failed: str = ""

    @property
    def throughput(self) -> float:
        return self.nbytes / self.seconds if self.seconds > 0 and not self.failed else 0.0


def bulk_size(loss: float) -> int:
    return BULK_HEAVY_LOSS if loss >= 0.2 else BULK


def flag_text(flags: int) -> str:
    """Flags as packetdrill prints them (S, S., ., P., F., R, ...)."""
    text = "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P")) if flags & bit)
    return (text + "." if flags & ACK else text) or "-"


# -- tracing ---------------------------------------------------------------------------
class Tracer:
    """Rows for the trace CSV, taken from the engines through wrapped methods."""

    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def side(self, conn: Connection) -> str:
        return "rcv" if conn.passive else "snd"

    def _rel(self, conn: Connection, seq: int) -> int:
        return (seq - conn.iss) & 0xFFFFFFFF

    def _rel_peer(self, conn: Connection, seq: int) -> int:
        return (seq - conn.irs) & 0xFFFFFFFF

    def state(self, conn: Connection, now: float, what: str, detail: str) -> None:
        info = conn.info()
        stats = conn.stats
        ssthresh = info.ssthresh
        self.rows.append(
            {
                "time": f"{now:.6f}",
                "side": self.side(conn),
                "what": what,
                "detail": detail,
                "snd_una": self._rel(conn, conn.snd_una),
                "snd_nxt": self._rel(conn, conn.snd_nxt),
                "cwnd": info.cwnd,
                "ssthresh": "inf" if ssthresh is None else ssthresh,
                "pipe": info.in_flight,
                "sacked": info.sacked,
                "lost": info.lost,
                "snd_wnd": info.snd_wnd,
                "srtt": "" if info.srtt is None else f"{info.srtt:.4f}",
                "rttvar": "" if info.rttvar is None else f"{info.rttvar:.4f}",
                "rto": f"{info.rto:.4f}",
                "ca_state": info.ca_state,
                "retransmits": info.retransmits,
                "rtos": stats["rto"],
                "tlps": stats["tlp"],
                "fast_recoveries": stats["fast_recovery"],
                "bytes_received": info.bytes_received,
            }
        )

    def describe_in(self, conn: Connection, seg: TCPSegment) -> str:
        parts = [flag_text(seg.flags), f"seq={self._rel_peer(conn, seg.seq)}"]
        if seg.payload:
            parts.append(f"len={len(seg.payload)}")
        if seg.has_ack:
            parts.append(f"ack={self._rel(conn, seg.ack)}")
        parts.append(f"win={seg.window}")
        if seg.sack_blocks:
            blocks = " ".join(
                f"{self._rel(conn, s)}-{self._rel(conn, e)}" for s, e in seg.sack_blocks
            )
            parts.append(f"sack={blocks}")
        if seg.timestamps is not None:
            parts.append(f"ts={seg.timestamps[0]}/{seg.timestamps[1]}")
        return " ".join(parts)

    def describe_out(self, conn: Connection, seg: TCPSegment) -> str:
        parts = [flag_text(seg.flags), f"seq={self._rel(conn, seg.seq)}"]
        if seg.payload:
            parts.append(f"len={len(seg.payload)}")
        if seg.has_ack:
            parts.append(f"ack={self._rel_peer(conn, seg.ack)}")
        parts.append(f"win={seg.window}")
        if seg.sack_blocks:
            blocks = " ".join(
                f"{self._rel_peer(conn, s)}-{self._rel_peer(conn, e)}" for s, e in seg.sack_blocks
            )
            parts.append(f"sack={blocks}")
        if seg.timestamps is not None:
            parts.append(f"ts={seg.timestamps[0]}/{seg.timestamps[1]}")
        return " ".join(parts)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap the engine's entry points (class-wide, for this run only)."""
        tracer = self
        orig_seg = Connection.on_segment
        orig_timer = Connection.on_timer
        orig_send = Connection.send
        orig_take = Connection.take_segments

        def on_segment(self: Connection, seg: TCPSegment, now: float) -> None:
            orig_seg(self, seg, now)
            # (described afterwards: a SYN sets the IRS its sequence number is shown from)
            tracer.state(self, now, "in", tracer.describe_in(self, seg))

        def on_timer(self: Connection, now: float) -> None:
            before = (self.retransmits, len(self.stats), self.stats["rto"], self.stats["tlp"])
            orig_timer(self, now)
            after = (self.retransmits, len(self.stats), self.stats["rto"], self.stats["tlp"])
            what = "timer"
            if after[2] > before[2]:
                what = "rto"
            elif after[3] > before[3]:
                what = "tlp"
            tracer.state(self, now, what, "")

        def send(self: Connection, data: Any, now: float, **kw: Any) -> int:
            n = orig_send(self, data, now, **kw)
            if n:
                tracer.state(self, now, "send", f"{n}")
            return n

        def take_segments(self: Connection) -> list[TCPSegment]:
            out = orig_take(self)
            if out:
                now = trio.current_time()
                for seg in out:
                    tracer.state(self, now, "out", tracer.describe_out(self, seg))
            return out

        patched: dict[str, Callable[..., Any]] = {
            "on_segment": on_segment,
            "on_timer": on_timer,
            "send": send,
            "take_segments": take_segments,
        }
        saved = {name: Connection.__dict__[name] for name in patched}
        for name, fn in patched.items():
            setattr(Connection, name, fn)
        try:
            yield
        finally:
            for name, fn in saved.items():
                setattr(Connection, name, fn)

    def write(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=TRACE_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)


# -- one run ---------------------------------------------------------------------------
async def _run(
    buf: int, loss: float, seed: int, nbytes: int, linux: bool, sets: dict[str, object]
) -> RunResult:
    preset = tcp6.TCPConfig.linux if linux else tcp6.TCPConfig
    config = preset(send_buffer=buf, receive_buffer=buf, **sets)
    net = tcp6.VirtualNetwork(mtu=MTU, seed=seed, delay=DELAY, loss=loss)
    data = bytes(nbytes)
    chunks: list[float] = []
    done = trio.Event()
    failed = ""
    async with (
        tcp6.open_stack(net.attach(A), A, config=config) as a,
        tcp6.open_stack(net.attach(B), B, config=config) as b,
    ):
        listener = await b.open_tcp_listener(PORT)
        start = trio.current_time()

        async def client() -> None:
            flow = await a.open_tcp_stream(b.address, PORT)
            await flow.send_all(data)
            await trio.sleep_forever()

        async def server() -> None:
            flow = await listener.accept()
            got = 0
            while got < nbytes:
                chunk = await flow.receive_some(READ_SIZE)
                if not chunk:
                    raise RuntimeError(f"EOF after {got} of {nbytes} bytes")
                got += len(chunk)
                chunks.append(trio.current_time())
            done.set()

        with trio.move_on_after(VIRTUAL_LIMIT) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client)
                nursery.start_soon(server)
                await done.wait()
                nursery.cancel_scope.cancel()
        if scope.cancelled_caught:
            failed = f"not done after {VIRTUAL_LIMIT:.0f} s"
        end = chunks[-1] if chunks and not failed else trio.current_time()
        stats_a, stats_b = a.stats(), b.stats()
    net.close()
    times = [start, *chunks]
    stall = max((y - x for x, y in itertools.pairwise(times)), default=0.0)
    return RunResult(
        buf=buf,
        loss=loss,
        seed=seed,
        nbytes=nbytes,
        seconds=end - start,
        stall=stall,
        rtos=stats_a.get("rto", 0) + stats_b.get("rto", 0),
        syn_retransmits=stats_a.get("syn_retransmits", 0) + stats_b.get("syn_retransmits", 0),
        retransmits=stats_a.get("retransmits", 0),
        tlps=stats_a.get("tlp", 0),
        recoveries=stats_a.get("fast_recovery", 0),
        failed=failed,
    )


def run_one(
    args: tuple[int, float, int, int, str | None, bool, dict[str, object]],
) -> RunResult:
    """One run in its own trio loop and virtual clock (a Pool worker entry point)."""
    buf, loss, seed, nbytes, trace_dir, linux, sets = args
    # trio shuffles the order of ready tasks with its own generator; seed it so that
    # a run (and its trace) is reproducible.
    trio._core._run._r.seed(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    if trace_dir is None:
        return trio.run(_run, buf, loss, seed, nbytes, linux, sets, clock=clock)
    tracer = Tracer()
    with tracer.installed():
        result = trio.run(_run, buf, loss, seed, nbytes, linux, sets, clock=clock)
    tracer.write(os.path.join(trace_dir, f"buf{buf}_p{loss:g}_s{seed}.csv"))
    return result


# -- the grid --------------------------------------------------------------------------
def parse_cells(text: str | None) -> list[tuple[int, float]]:
    if not text:
        return [(b, p) for b in BUFS for p in LOSSES]
    cells: list[tuple[int, float]] = []
    for item in text.split(","):
        b, _, p = item.strip().partition("x")
        bufs = BUFS if b in ("", "*") else (int(b),)
        losses = LOSSES if p in ("", "*") else (float(p),)
        cells.extend((x, y) for x in bufs for y in losses)
    return cells


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def load_anchors(
    path: str,
) -> tuple[str, dict[tuple[int, float], float], dict[float, tuple[float, float]]]:
    """(source, medians, longest stalls by p) from a ``bench/linux_grid.py --json`` file;
    the stalls are the range over the cells' longest stalls at each p."""
    with open(path) as f:
        data = json.load(f)
    medians: dict[tuple[int, float], float] = {}
    stalls: dict[float, list[float]] = {}
    for cell in data["cells"]:
        if cell.get("failed"):
            continue
        key = (int(cell["buf"]), float(cell["loss"]))
        medians[key] = float(cell["median"])
        stalls.setdefault(key[1], []).append(float(cell["stall_max"]))
    source = f"{data.get('source', 'bench/linux_grid.py')} ({path})"
    return source, medians, {p: (min(v), max(v)) for p, v in sorted(stalls.items())}


def summarise(
    cell: tuple[int, float],
    runs: list[RunResult],
    anchors: dict[tuple[int, float], float] = LINUX,
) -> str:
    buf, loss = cell
    ok = [r for r in runs if not r.failed]
    rates = sorted(r.throughput for r in runs)
    med = statistics.median(rates)
    linux = anchors.get(cell)
    smol = SMOLTCP.get(cell)
    stall_med = statistics.median(r.stall for r in runs)
    stall_max = max(r.stall for r in runs)
    rto_med = statistics.median(r.rtos for r in runs)
    rto_max = max(r.rtos for r in runs)
    syn = sum(r.syn_retransmits for r in runs)
    rtx = statistics.median(r.retransmits for r in runs)
    tlp = statistics.median(r.tlps for r in runs)
    rec = statistics.median(r.recoveries for r in runs)
    ratio_l = f"{med / linux:5.2f}x" if linux else "    -"
    ratio_s = f"{med / smol:5.2f}x" if smol else "    -"
    fails = f"  FAILED {len(runs) - len(ok)}" if len(ok) < len(runs) else ""
    return (
        f"{buf:>6} {loss:>5.2f} {_fmt_rate(med):>9} {_fmt_rate(rates[0]):>9}-"
        f"{_fmt_rate(rates[-1]):<9} {stall_med:>6.2f} {stall_max:>7.2f} "
        f"{rto_med:>5g} {rto_max:>4} {syn:>4} {rtx:>6g} {tlp:>5g} {rec:>5g} "
        f"{ratio_l:>7} {ratio_s:>7}{fails}"
    )


HEADER = (
    f"{'buf':>6} {'p':>5} {'median':>9} {'min-max (bytes/s)':^19} {'stall':>6} "
    f"{'max':>7} {'rto':>5} {'max':>4} {'syn':>4} {'rtx':>6} {'tlp':>5} {'rec':>5} "
    f"{'/Linux':>7} {'/smol':>7}"
)


def parse_setting(item: str) -> tuple[str, object]:
    """``FIELD=VALUE`` from ``--set``: VALUE as an int, float, bool or None if it
    reads as one, else the string."""
    field, sep, text = item.partition("=")
    if not sep:
        raise SystemExit(f"--set wants FIELD=VALUE, got {item!r}")
    value: object = text
    special = {"true": True, "false": False, "none": None}
    if text.lower() in special:
        value = special[text.lower()]
    else:
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                pass
    return field, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cells",
        help="comma-separated BUFxP cells, '*' or nothing for all: 4096x0.01,32768x,x0.2",
    )
    parser.add_argument("--seeds", type=int, default=5, help="runs per cell (seeds 1..N)")
    parser.add_argument("--quick", action="store_true", help="2 seeds per cell")
    parser.add_argument("--trace", metavar="DIR", help="write a trace CSV per run into DIR")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--runs", action="store_true", help="also print every run")
    parser.add_argument(
        "--linux", action="store_true", help="both ends use TCPConfig.linux() (Linux's choices)"
    )
    parser.add_argument(
        "--anchors",
        metavar="FILE",
        help="Linux medians from a bench/linux_grid.py --json FILE instead of the constants",
    )
    parser.add_argument(
        "--set",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="override a TCPConfig field on both ends (repeatable): --set min_rto=0.3",
    )
    args = parser.parse_args()
    sets = dict(parse_setting(item) for item in args.set)
    linux_source, linux, linux_stall = LINUX_SOURCE, LINUX, LINUX_STALL
    if args.anchors:
        linux_source, linux, linux_stall = load_anchors(args.anchors)
    seeds = 2 if args.quick else args.seeds
    cells = parse_cells(args.cells)
    if args.trace:
        os.makedirs(args.trace, exist_ok=True)
    work = [
        (buf, loss, seed, bulk_size(loss), args.trace, args.linux, sets)
        for buf, loss in cells
        for seed in range(1, seeds + 1)
    ]
    print(
        f"lossy grid: one-way delay {DELAY * 1000:.0f} ms, MTU {MTU}, random loss p both "
        f"ways, {BULK >> 10} KiB bulk ({BULK_HEAVY_LOSS >> 10} KiB at p=0.20), "
        f"{seeds} seeds, virtual time"
        + (", TCPConfig.linux()" if args.linux else "")
        + "".join(f", {k}={v!r}" for k, v in sets.items())
    )
    print(f"ratios against: Linux = {linux_source}; smol = {SMOLTCP_SOURCE}")
    print(
        "stall = longest gap between reads returning data (median of runs, max); "
        "rto = data RTOs both ends (median, max); syn = SYN/SYN-ACK retransmissions "
        "(sum); rtx/tlp/rec = sender retransmissions, tail loss probes, fast "
        "recoveries (median)"
    )
    print(HEADER)
    t0 = time.perf_counter()
    results: dict[tuple[int, float], list[RunResult]] = {}
    if args.jobs > 1:
        with Pool(args.jobs) as pool:
            flat = pool.map(run_one, work)
    else:
        flat = []
        for item in work:
            flat.append(run_one(item))
    for r in flat:
        results.setdefault((r.buf, r.loss), []).append(r)
    for cell in cells:
        runs = results[cell]
        print(summarise(cell, runs, linux))
        if args.runs:
            for r in runs:
                print(
                    f"         seed {r.seed}: {r.throughput:,.0f} B/s in {r.seconds:.2f} s, "
                    f"stall {r.stall:.2f} s, rto {r.rtos}, syn {r.syn_retransmits}, "
                    f"rtx {r.retransmits}, tlp {r.tlps}, rec {r.recoveries}"
                    + (f" FAILED: {r.failed}" if r.failed else "")
                )
        sys.stdout.flush()
    elapsed = time.perf_counter() - t0
    stalls = ", ".join(f"p={p:g} {lo:.3g}-{hi:.3g} s" for p, (lo, hi) in linux_stall.items())
    print(f"Linux longest stalls ({linux_source}): {stalls}")
    print(f"{len(work)} runs in {elapsed:.1f} s (wall clock, {args.jobs} job(s)); trio_tcp6 from")
    print(f"  {os.path.dirname(tcp6.__file__)}")


if __name__ == "__main__":
    main()
