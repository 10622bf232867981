"""A dumbbell's flows share one bottleneck queue; a cable's timing is its delays
plus the serialization of each packet, exactly; Packet Too Big from a narrow middle
link makes a TCP transfer shrink its MSS and complete."""

from __future__ import annotations

import io

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.sim import DropTail, Host, Network, dumbbell

from .util import Sink, bulk

RATE = 10e6
RTT = 0.040
#: One bandwidth-delay product of full-sized packets.
BDP_PACKETS = round(RATE * RTT / 8 / 1500)


async def test_two_flows_share_one_bottleneck_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    d = dumbbell(2, rate=RATE, rtt=RTT, queue=lambda: DropTail(packets=BDP_PACKETS))
    sinks = [Sink(), Sink()]
    start, end = 2.0, 5.0
    async with trio.open_nursery() as nursery:
        stacks = []
        for host in [*d.senders, *d.receivers]:
            stacks.append(await nursery.start(run_stack, host))
        for i in range(2):
            await nursery.start(stacks[2 + i].serve_tcp, sinks[i], 80)
        for i in range(2):
            nursery.start_soon(bulk, stacks[i], d.receivers[i], 80, end)
        await trio.sleep(start)
        sent_at_start = d.bottleneck.sent_bytes
        busy_at_start = d.bottleneck.busy_time
        await trio.sleep(end - start)
        wire = d.bottleneck.sent_bytes - sent_at_start
        busy = d.bottleneck.busy_time - busy_at_start
        nursery.cancel_scope.cancel()
    # Both flows crossed the same serializer: it sent at its rate, never more.
    assert wire * 8 / (end - start) == pytest.approx(RATE, rel=0.03)
    assert wire * 8 / (end - start) <= RATE * 1.001
    assert busy == pytest.approx(wire * 8 / RATE)
    goodputs = [s.between(start, end) * 8 / (end - start) for s in sinks]
    # Payload is 1428 of each 1500 bytes on the wire (IPv6 + TCP with timestamps).
    assert sum(goodputs) == pytest.approx(RATE * 1428 / 1500, rel=0.05)
    assert all(0.1 * RATE < g < 0.9 * RATE for g in goodputs)
    # The queue overflowed, and each drop is counted once, in the queue and the channel.
    stats = d.bottleneck.stats()
    assert stats["queue_drops"] > 0 and stats["dropped_queue"] == stats["queue_drops"]
    assert stats["drops"] == stats["queue_drops"]  # no random loss configured
    assert d.net.stats()["channels"]["r1->r2"] == stats


async def run_stack(host: Host, *, task_status: trio.TaskStatus[tcp6.Stack]) -> None:
    async with tcp6.open_stack(host.link, host.address) as stack:
        task_status.started(stack)
        await trio.sleep_forever()


async def test_handshake_time_is_delays_plus_serialization(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = Network()
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r1 = net.router("r1")
    net.connect(a, r1, rate=1e6, delay=0.003)
    net.connect(r1, b, rate=2e6, delay=0.011)
    pcap = io.BytesIO()
    net.capture(pcap, link="a-r1")
    async with (
        tcp6.open_stack(a.link, a.address) as sa,
        tcp6.open_stack(b.link, b.address) as sb,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(sb.serve_tcp, Sink(), 80)
        start = trio.current_time()
        flow = await sa.open_tcp_stream(b.address, 80)
        took = trio.current_time() - start
        await flow.aclose()
        nursery.cancel_scope.cancel()
    syn, syn_ack = (len(p) for p in first_two(pcap.getvalue()))
    per_byte = 8 / 1e6 + 8 / 2e6  # serialization on each cable, each way
    assert took == pytest.approx(2 * (0.003 + 0.011) + (syn + syn_ack) * per_byte, abs=1e-12)
    assert took > 0.028


def first_two(data: bytes) -> list[bytes]:
    """The first two packets of a pcap in memory."""
    out: list[bytes] = []
    offset = 24
    while len(out) < 2:
        length = int.from_bytes(data[offset + 8 : offset + 12], "little")
        out.append(data[offset + 16 : offset + 16 + length])
        offset += 16 + length
    return out


async def test_packet_too_big_shrinks_the_mss_and_the_transfer_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = Network()
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r1, r2 = net.router("r1"), net.router("r2")
    net.connect(a, r1, delay=0.002)
    net.connect(r1, r2, delay=0.005, mtu=1280, rate=10e6)
    net.connect(r2, b, delay=0.002)
    sink = Sink()
    sink.keep = True
    payload = bytes(range(256)) * 800  # 200 kB
    async with (
        tcp6.open_stack(a.link, a.address) as sa,
        tcp6.open_stack(b.link, b.address) as sb,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(sb.serve_tcp, sink, 80)
        flow = await sa.open_tcp_stream(b.address, 80)
        # info().mss is the payload per segment: MTU - 40 - 20 - 12 (the timestamps).
        assert flow.info().mss == 1500 - 60 - 12  # the SYN fit: nothing is known yet
        await flow.send_all(payload)
        await flow.aclose()
        with trio.fail_after(30):
            while len(sink.data) < len(payload):
                await trio.sleep(0.01)
        assert flow.info().mss == 1280 - 60 - 12
        nursery.cancel_scope.cancel()
    assert bytes(sink.data) == payload
    assert sa.stats()["icmp_packet_too_big"] >= 1
    assert net.stats()["routers"]["r1"]["packet_too_big"] >= 1
    assert net.stats()["channels"]["r1->r2"]["sent_packets"] > len(payload) // 1220


async def test_each_pair_gets_its_round_trip_time(autojump_clock: trio.testing.MockClock) -> None:
    d = dumbbell(2, rate=None, rtt=[0.020, 0.080])
    assert d.bottleneck.delay == 0.010 and d.bottleneck.name == "r1->r2"
    took = []
    async with trio.open_nursery() as nursery:
        stacks = [await nursery.start(run_stack, h) for h in [*d.senders, *d.receivers]]
        for i in range(2):
            await nursery.start(stacks[2 + i].serve_tcp, Sink(), 80)
            start = trio.current_time()
            await stacks[i].open_tcp_stream(f"receiver{i}", 80)  # hosts resolve by name
            took.append(trio.current_time() - start)
        nursery.cancel_scope.cancel()
    assert took == pytest.approx([0.020, 0.080], abs=1e-12)
    with pytest.raises(ValueError, match="round-trip"):
        dumbbell(3, rtt=[0.01, 0.02])
