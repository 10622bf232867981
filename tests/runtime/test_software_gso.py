"""Software GSO (``trio_tcp6.runtime.ipoutput.SOFTWARE_GSO``): on a link that does not
segment TCP packets itself, the engines send new data in super-segments and the
stack cuts each into MTU-sized packets as it builds them, as Linux's TCP does on
every device (GSO always on; ``skb_gso_segment`` in software where the device has no
TSO). What reaches the link must be exactly what the engines send segment by segment
with it off: same packets, same bytes, same times, through loss, queue drops,
reordering and duplication."""

from __future__ import annotations

import io
import ipaddress
import os
import tempfile
from typing import Any

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import ipoutput
from trio_tcp6.sim import DropTail, dumbbell
from trio_tcp6.wire.pcap import read_pcap

from ..sim.util import Sink, bulk
from .helpers import A, connect, receive_exactly, two_stacks

#: What a super-segment may carry: SOFTWARE_GSO_MAX less the IPv6 and the longest
#: TCP header, as for a TUN link's gso_max.
TSO_MAX = 0xFFFF - 40 - 60


def _run(program: Any) -> Any:
    return trio.run(program, clock=trio.testing.MockClock(autojump_threshold=0))


def _packets(pcap: bytes) -> list[tuple[float, bytes]]:
    """The packets of a pcap file's bytes (read_pcap reads a path)."""
    fd, name = tempfile.mkstemp(suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pcap)
        return read_pcap(name)
    finally:
        os.unlink(name)


def _bulk_over_virtual_network(**net: Any) -> tuple[bytes, dict[str, int], dict[str, int]]:
    """1 MiB from A to B at MTU 1500 over a (possibly impaired) VirtualNetwork;
    the capture and both stacks' counters."""
    payload = bytes(range(256)) * 4096

    async def program() -> tuple[bytes, dict[str, int], dict[str, int]]:
        pcap = io.BytesIO()
        async with two_stacks(deterministic=True, seed=3, **net) as (vnet, a, b):
            vnet.capture(pcap)
            client, server = await connect(a, b)
            assert client.engine.tso_max_bytes == (TSO_MAX if ipoutput.SOFTWARE_GSO else 0)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.send_all, payload)
                assert await receive_exactly(server, len(payload)) == payload
            await client.aclose()
            await server.aclose()
            await trio.sleep(1.0)
            return pcap.getvalue(), a.stats(), b.stats()

    return _run(program)  # type: ignore[no-any-return]


def test_a_link_without_tso_gets_super_segments_cut_to_the_mtu() -> None:
    pcap, a, _b = _bulk_over_virtual_network()
    assert a["gso_cut"] > 0
    packets = _packets(pcap)
    assert max(len(p) for _, p in packets) == 1500
    # Every packet the stack counted went to the link, one by one.
    sent_by_a = [p for _, p in packets if p[8:24] == ipaddress.IPv6Address(A).packed]
    assert a["segments_out"] == len(sent_by_a)


@pytest.mark.parametrize(
    "net",
    [
        {},
        {"checksum_offload": False},  # every packet fully checksummed: the general cut
        {"delay": 0.01, "loss": 0.02},
        {"delay": 0.01, "jitter": 0.004, "reorder": 0.05, "duplicate": 0.02},
        {"delay": 0.005, "rate": 20e6, "queue": 30},
    ],
    ids=["clean", "no-offload", "loss", "reorder", "queue"],
)
def test_the_link_sees_the_same_packets_with_and_without_it(
    net: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipoutput, "SOFTWARE_GSO", False, raising=False)
    off = _bulk_over_virtual_network(**net)
    monkeypatch.setattr(ipoutput, "SOFTWARE_GSO", True, raising=False)
    on = _bulk_over_virtual_network(**net)
    assert on[1].get("gso_cut", 0) > 0
    assert off[1].get("gso_cut", 0) == 0
    assert _packets(on[0]) == _packets(off[0])
    for key in ("segments_out", "segments_in", "retransmits"):
        assert on[1][key] == off[1][key]
        assert on[2][key] == off[2][key]


def test_shared_bottleneck_replays_the_same_with_and_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two bulk flows through a lossy 2 Mbit/s bottleneck with a 10-packet drop-tail
    queue (as tests/sim/test_determinism.py): loss recovery, SACK and RACK act on
    super-segment records, and every packet is still the same."""

    async def program() -> tuple[bytes, dict[str, Any], list[int], int]:
        d = dumbbell(2, rate=2e6, rtt=0.03, loss=0.01, queue=lambda: DropTail(packets=10), seed=9)
        pcap = io.BytesIO()
        d.net.capture(pcap)
        sinks = [Sink(), Sink()]
        stacks: list[tcp6.Stack] = []
        async with trio.open_nursery() as nursery:
            for host in [*d.senders, *d.receivers]:
                stacks.append(await nursery.start(_plain_stack, host))
            for i in range(2):
                await nursery.start(stacks[2 + i].serve_tcp, sinks[i], 80)
            for i in range(2):
                nursery.start_soon(bulk, stacks[i], d.receivers[i], 80, 3.0)
            await trio.sleep(4.00001234)
            cut = sum(s.stats().get("gso_cut", 0) for s in stacks)
            result = pcap.getvalue(), d.net.stats(), [s.received for s in sinks], cut
            nursery.cancel_scope.cancel()
        return result

    monkeypatch.setattr(ipoutput, "SOFTWARE_GSO", False, raising=False)
    off = _run(program)
    monkeypatch.setattr(ipoutput, "SOFTWARE_GSO", True, raising=False)
    on = _run(program)
    assert off[1]["channels"]["r1->r2"]["drops"] > 0
    assert on[3] > 0 and off[3] == 0
    assert on[:3] == off[:3]


def test_staggered_cubic_flows_replay_the_same_with_and_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four CUBIC flows joining a 10 Mbit/s, 1-BDP drop-tail bottleneck 0.25 s apart
    (the congestion-control tests' dumbbell): delayed ACKs acknowledge super-segments
    in part, and the RTT samples, hence HyStart and CUBIC, must not change."""
    import bench.bottleneck_bench as bb

    make = bb.dumbbell
    pcaps: list[io.BytesIO] = []

    def captured(*args: Any, **kw: Any) -> Any:
        d = make(*args, **kw)
        d.net.capture(pcaps[-1])
        return d

    monkeypatch.setattr(bb, "dumbbell", captured)
    runs = []
    for gso in (False, True):
        monkeypatch.setattr(ipoutput, "SOFTWARE_GSO", gso, raising=False)
        pcaps.append(io.BytesIO())
        run = bb.simulate(n=4, duration=1.5, starts=[0.0, 0.25, 0.5, 0.75])
        runs.append((_packets(pcaps[-1].getvalue()), [s.received for s in run.samples]))
    assert sum(runs[0][1][-1]) > 1_000_000
    assert runs[0] == runs[1]


async def _plain_stack(host: Any, *, task_status: trio.TaskStatus[tcp6.Stack]) -> None:
    async with tcp6.open_stack(host.link, host.address) as stack:
        task_status.started(stack)
        await trio.sleep_forever()


async def test_no_super_segments_below_the_links_mss(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A configured MSS below the link's: the cut at the MTU would not respect it."""
    async with two_stacks(tcp6.TCPConfig(mss=1000)) as (_net, a, b):
        client, server = await connect(a, b)
        assert client.engine.tso_max_bytes == 0
        await client.send_all(bytes(100_000))
        await receive_exactly(server, 100_000)
        assert a.stats().get("gso_cut", 0) == 0


async def test_switched_off(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipoutput, "SOFTWARE_GSO", False)
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        assert client.engine.tso_max_bytes == 0
        await client.send_all(bytes(100_000))
        await receive_exactly(server, 100_000)
        assert a.stats().get("gso_cut", 0) == 0
