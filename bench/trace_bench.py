"""What a flow trace costs the engine: off (the default) and on.

    python bench/trace_bench.py [--megabytes N] [--rounds R] [--loss P]

Two engines back to back (no runtime, no trio: the sans-I/O ``Connection`` driven in
a loop with a fixed one-way delay of 10 ms and, with ``--loss``, every ``1/P``-th data
segment dropped), one bulk transfer of ``N`` MiB per run, in virtual time; it prints
the CPU seconds per MiB with the trace off and with a ``FlowTrace`` attached to the
sender, each the best of ``R`` rounds, alternating so both see the same machine load.
Off must match a checkout without traces (the hook points are one ``is not None``
test each); run it from each checkout to compare.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from pathlib import Path

# Measure the checkout this file belongs to, not whichever trio_tcp6 is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.tcp import TCPSegment

try:
    from trio_tcp6.tcp.trace import FlowTrace
except ImportError:  # a checkout from before traces: measure "off" only
    FlowTrace = None  # type: ignore[assignment,misc]

DELAY = 0.01


def transfer(nbytes: int, every: int, traced: bool) -> tuple[float, int]:
    """One transfer; returns (CPU seconds, trace records)."""
    cfg = TCPConfig(send_buffer=1 << 20, receive_buffer=1 << 20)
    now = 0.0
    heap: list[tuple[float, int, int, TCPSegment]] = []
    n = 0
    a = Connection.connect(cfg, local_port=1, remote_port=2, iss=0, mss=1440, now=now)
    trace = FlowTrace() if traced and FlowTrace is not None else None
    if trace is not None:
        trace.attach(a)
    b: Connection | None = None
    data = bytes(65536)
    sent = received = 0
    k = 0
    start = time.process_time()

    def flush(c: Connection, src: int) -> None:
        nonlocal n, k, received
        for seg in c.take_segments():
            if src == 0 and seg.payload and every:
                k += 1
                if k % every == 0:
                    continue
            heapq.heappush(heap, (now + DELAY, n, 1 - src, seg))
            n += 1
        c.take_events()
        if c.readable:
            received += len(c.receive(c.readable, now))

    flush(a, 0)
    while received < nbytes:
        if sent < nbytes and a.send_space:
            sent += a.send(data[: min(len(data), nbytes - sent)], now)
            flush(a, 0)
        times = [c.next_deadline for c in (a, b) if c is not None and c.next_deadline]
        if heap:
            times.append(heap[0][0])
        now = max(now, min(times))
        while heap and heap[0][0] <= now:
            _, _, dst, seg = heapq.heappop(heap)
            if dst == 1 and b is None:
                b = Connection.accept(cfg, seg, iss=7, mss=1440, now=now)
            else:
                c = a if dst == 0 else b
                assert c is not None
                c.on_segment(seg, now)
            flush(a if dst == 0 else b, dst)  # type: ignore[arg-type]
        for i, c in enumerate((a, b)):
            if c is not None and c.next_deadline is not None and c.next_deadline <= now:
                c.on_timer(now)
                flush(c, i)
    return time.process_time() - start, 0 if trace is None else len(trace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loss", type=float, default=0.0, help="drop every 1/P-th segment")
    args = parser.parse_args()
    nbytes = int(args.megabytes * (1 << 20))
    every = round(1 / args.loss) if args.loss else 0
    best = {False: float("inf"), True: float("inf")}
    records = 0
    modes = [False] if FlowTrace is None else [False, True]
    for _ in range(args.rounds):
        for traced in modes:
            seconds, count = transfer(nbytes, every, traced)
            best[traced] = min(best[traced], seconds)
            records = max(records, count)
    mib = nbytes / (1 << 20)
    print(f"{mib:g} MiB, loss 1/{every or 'inf'}, best of {args.rounds}:")
    print(f"  trace off: {best[False] / mib * 1000:.1f} ms CPU per MiB")
    if FlowTrace is not None:
        extra = best[True] / best[False] - 1
        print(
            f"  trace on:  {best[True] / mib * 1000:.1f} ms CPU per MiB "
            f"({extra:+.0%}; {records} records)"
        )


if __name__ == "__main__":
    main()
