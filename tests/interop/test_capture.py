"""Captures of an interop run read by tshark with checksum validation: zero malformed
packets and zero bad checksums among the packets our stack sent.

Two independent captures of the same run: the stack's own pcap (a
:class:`~tests.interop.conftest.CaptureLink` around the TUN link, so it also holds
what the kernel sent us) and ``dumpcap`` on the TUN interface inside the namespace
(what the kernel saw). The run: 3 MB each way with 2% loss (retransmissions, SACK),
a half-close, a RST, a refused connection and pings.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import trio

import trio_tcp6 as tcp6
from tests.netns import NetNS

from .conftest import (
    TunSetup,
    kernel_peer,
    needs_kernel,
    needs_tool,
    receive_digest,
    send_pattern,
    tun_stack,
    wait_line,
)

FIELDS = [
    "frame.number",
    "ipv6.src",
    "ipv6.nxt",
    "_ws.malformed",
    "_ws.expert.severity",
    "tcp.checksum.status",
    "icmpv6.checksum.status",
    "tcp.flags.reset",
    "tcp.len",
]


def tshark_rows(path: Path) -> list[dict[str, str]]:
    argv = ["tshark", "-n", "-r", str(path)]
    for pref in ("tcp.check_checksum:TRUE", "tcp.desegment_tcp_streams:FALSE"):
        argv += ["-o", pref]
    argv += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        argv += ["-e", field]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in done.stdout.splitlines()]
    assert rows
    return rows


async def _traffic(ns: NetNS, t: TunSetup) -> int:
    """TCP both ways, a reset, a refusal and pings; returns how many pings came back."""
    size = 3_000_000
    peer = kernel_peer(ns, "listen", t.kernel, 5101, "both", str(size), "61")
    flow = await t.stack.open_tcp_stream(t.kernel, 5101)
    data = random.Random(62).randbytes(size)
    result: list[tuple[int, str]] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            result.append(await receive_digest(flow))

        nursery.start_soon(reader)
        await send_pattern(flow, data)
        await flow.send_eof()  # half-close
    expected = hashlib.sha256(random.Random(61).randbytes(size)).hexdigest()
    assert result == [(size, expected)]
    assert (await wait_line(peer, "RECEIVED")).split()[2] == hashlib.sha256(data).hexdigest()
    await flow.aclose()
    peer = kernel_peer(ns, "listen", t.kernel, 5102, "reset", "3000")
    flow = await t.stack.open_tcp_stream(t.kernel, 5102)
    while flow.info().bytes_received < 3000:
        await trio.sleep(0.01)
    await flow.aclose()  # RST
    assert await wait_line(peer, "ERROR") == "ERROR ECONNRESET"
    with pytest.raises(tcp6.Refused):
        await t.stack.open_tcp_stream(t.kernel, 5199)
    argv = ["ip", "netns", "exec", ns.name, "ping", "-6", "-n", "-c", str(PINGS), "-i", "0.05"]
    done = await trio.run_process([*argv, "-s", "1000", t.ours], capture_stdout=True, check=False)
    # The path loses 2% each way, so a ping may go unanswered; most must come back.
    received = re.search(rb"(\d+) received", done.stdout)
    assert received is not None and int(received.group(1)) >= PINGS - 2, done.stdout
    return int(received.group(1))


PINGS = 5


def _check(
    rows: list[dict[str, str]], ours: str, exact: bool, answered: int
) -> list[dict[str, str]]:
    mine = [r for r in rows if r["ipv6.src"] == ours]
    assert mine
    assert [r["frame.number"] for r in rows if r["_ws.malformed"]] == []
    assert [
        r["frame.number"] for r in mine if r["ipv6.nxt"] == "6" and r["tcp.checksum.status"] != "1"
    ] == []
    icmp = [r for r in mine if r["ipv6.nxt"] == "58"]
    # The echo replies: at least those the kernel's ping received (our own capture
    # also has replies lost on the way back); dumpcap may drop some on a busy machine.
    assert answered <= len(icmp) <= PINGS if exact else len(icmp) <= PINGS
    assert all(r["icmpv6.checksum.status"] == "1" for r in icmp)
    assert any(r["tcp.flags.reset"] == "1" for r in mine)
    return mine


@needs_kernel
@needs_tool("tshark")
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
async def test_captures_are_clean(netns: NetNS, tmp_path: Path, offload: bool) -> None:
    ours_pcap = tmp_path / "stack.pcap"
    kernel_pcap = tmp_path / "kernel.pcapng"
    dumpcap = shutil.which("dumpcap")
    async with tun_stack(netns, loss=0.02, seed=9, pcap=ours_pcap, offload=offload) as t:
        proc = None
        if dumpcap is not None:
            argv = [dumpcap, "-q", "-B", "32", "-i", t.tun.name, "-w", str(kernel_pcap)]
            proc = netns.start(*argv)
            deadline = time.monotonic() + 10
            while not (kernel_pcap.exists() and kernel_pcap.stat().st_size > 0):
                assert time.monotonic() < deadline, proc.describe()
                await trio.sleep(0.05)
            await trio.sleep(0.2)
        answered = await _traffic(netns, t)
        await trio.sleep(0.5)
        if proc is not None:
            proc.proc.send_signal(signal.SIGINT)
            await trio.to_thread.run_sync(proc.wait, 10)
        assert t.stack.stats()["drop_bad_checksum"] == 0
    mine = _check(tshark_rows(ours_pcap), t.ours, exact=True, answered=answered)
    assert len(mine) > 2000
    if proc is not None:
        seen = _check(tshark_rows(kernel_pcap), t.ours, exact=False, answered=answered)
        # The kernel saw what survived the 2% loss on our way out (less if dumpcap
        # dropped some).
        assert 0.8 * len(mine) < len(seen) <= len(mine)
