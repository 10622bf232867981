"""The userspace impairment bridge of ``bench/linux_grid.py``: the kernel at both ends
of a delayed (and lossy) wire between two namespaces.

One short transfer through the bridge (64 KiB, no loss, 10 ms each way) must arrive
whole, the kernel's own RTT estimate and the UDP echo round trips must match the
configured delay, and the receive buffer the grid picks for 4 KiB must make the
receiver advertise the window nearest to 4 KiB that Linux can (3 MSS). And the
results file the grid writes is what ``bench/lossy_grid.py --anchors`` reads.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from bench.linux_grid import CellSummary, LinuxRun, ping, ss_field, summarise, transfer
from bench.lossy_grid import load_anchors
from tests.netns import needs_kernel

DELAY = 0.010
#: How much later than configured a round trip may be on a loaded machine (the
#: bridge's wakeups); never earlier than the delay less the bridge's early release.
LATE = 0.015
EARLY = 0.001
MSS = 1428  # MTU 1500 - IPv6 - TCP - timestamps


@needs_kernel
async def test_transfer_through_the_bridge() -> None:
    run = await transfer(4096, 0.0, 1, 64 << 10, delay=DELAY, wall_limit=60.0)
    assert run.failed == ""
    assert run.dropped == 0
    assert run.seconds > 0
    # The kernel's own minimum RTT of the connection is the wire's delay both ways.
    minrtt = float(ss_field(run.ss, "minrtt")) / 1000
    assert 2 * DELAY - EARLY <= minrtt <= 2 * DELAY + LATE, run.ss
    assert run.connect_rtt >= 2 * DELAY - EARLY
    assert "cubic" in run.ss.split()
    assert run.window == 3 * MSS


@needs_kernel
async def test_ping_through_the_bridge() -> None:
    rtts = await ping(DELAY, count=10)
    assert len(rtts) == 10
    assert min(rtts) >= 2 * DELAY - EARLY
    assert statistics.median(rtts) <= 2 * DELAY + LATE


def test_results_file_feeds_lossy_grid_anchors(tmp_path: Path) -> None:
    runs = [
        LinuxRun(4096, 0.05, seed, 1 << 20, seconds=s, stall=st)
        for seed, s, st in ((1, 40.0, 0.4), (2, 32.0, 0.7), (3, 50.0, 0.5))
    ]
    cell: CellSummary = summarise((4096, 0.05), runs)
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"source": "test", "cells": [asdict(cell)]}))
    source, medians, stalls = load_anchors(str(path))
    assert medians == {(4096, 0.05): (1 << 20) / 40.0}
    assert stalls == {0.05: (0.7, 0.7)}
    assert source.startswith("test")
