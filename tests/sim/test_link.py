"""One cable direction: serialization one packet at a time, then the delay; the
queue's sojourn; loss drawn per packet; captures of one cable or all, at arrival
time; routes recomputed when the topology changes; hostile packets never crash."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_tcp6.sim import DropTail, Host, Network
from trio_tcp6.wire.pcap import read_pcap

from .util import echo, no_next_header


def pair(**cable: object) -> tuple[Network, Host, Host]:
    net = Network(seed=2)
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r = net.router("r")
    net.connect(a, r, **cable)  # type: ignore[arg-type]
    net.connect(r, b)
    return net, a, b


async def arrivals(host: Host, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await host.link.receive()
        times.append(trio.current_time())
    return times


async def test_serializer_sends_one_packet_at_a_time_then_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, b = pair(rate=1e6, delay=0.005, queue=lambda: DropTail(packets=2))
    for _ in range(4):  # 1250 bytes = 10 ms at 1 Mbit/s; the queue holds 2 behind the wire
        a.link.send_nowait(no_next_header(a, b, 1250))
    got = await arrivals(b, 3)
    assert got == pytest.approx([0.015, 0.025, 0.035], abs=1e-12)
    channel = net.channel("a->r")
    s = channel.stats()
    assert s["sent_packets"] == 3 and s["sent_bytes"] == 3750
    assert s["busy_time"] == pytest.approx(0.030, abs=1e-12)
    assert s["dropped_queue"] == 1 and s["drops"] == 1 and s["offered"] == 4
    assert s["queue_sojourn_max"] == pytest.approx(0.020, abs=1e-12)  # the third waited 2
    assert b.link.receive_nowait() is None


async def test_an_idle_serializer_starts_at_once(autojump_clock: trio.testing.MockClock) -> None:
    net, a, b = pair(rate=8e6, delay=0.001)
    await trio.sleep(1.0)
    a.link.send_nowait(no_next_header(a, b, 1000))  # 1 ms on the wire
    assert await arrivals(b, 1) == pytest.approx([1.002], abs=1e-12)
    assert net.channel("a->r").stats()["queue_sojourn_max"] == 0.0


async def test_loss_is_drawn_per_packet(autojump_clock: trio.testing.MockClock) -> None:
    net, a, b = pair(loss=0.25)
    for i in range(2000):
        a.link.send_nowait(no_next_header(a, b, 40 + i % 100))
    await trio.sleep(0.1)
    s = net.channel("a->r").stats()
    assert 400 < s["dropped_loss"] < 600
    assert s["sent_packets"] == 2000 - s["dropped_loss"] == net.stats()["hosts"]["b"]["received"]
    cut, a2, b2 = pair(loss=1.0)
    a2.link.send_nowait(no_next_header(a2, b2, 100))
    await trio.sleep(0.1)
    assert cut.channel("a->r").stats()["dropped_loss"] == 1 and b2.link.receive_nowait() is None


async def test_capture_one_cable_or_all_at_arrival_time(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net = Network()
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r = net.router("r")
    net.connect(a, r, delay=0.003)
    net.connect(r, b, delay=0.011)
    everything, one = tmp_path / "all.pcap", tmp_path / "one.pcap"
    with net.capture(everything) as cap_all, net.capture(one, link="r-b") as cap_one:
        await trio.sleep(1.0)
        a.link.send_nowait(echo(a, b))
        await b.link.receive()
    assert cap_all.count == 2 and cap_one.count == 1
    records = read_pcap(everything)
    assert [t for t, _ in records] == pytest.approx([1.003, 1.014], abs=1e-9)
    assert [p[7] for _, p in records] == [64, 63]  # the hop limit as on each cable
    assert read_pcap(one) == records[1:]
    with pytest.raises(KeyError):
        net.capture(io.BytesIO(), link="nowhere")


async def test_routes_follow_the_topology(autojump_clock: trio.testing.MockClock) -> None:
    net = Network()
    a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
    r1, r2 = net.router("r1"), net.router("r2")
    net.connect(a, r1)
    net.connect(r1, r2)
    a.link.send_nowait(echo(a, b))
    await trio.sleep(0.1)
    assert net.stats()["routers"]["r1"]["no_route"] == 1  # nobody has b yet
    net.connect(r2, b)  # b appears: both routers learn the way
    a.link.send_nowait(echo(a, b))
    assert (await b.link.receive())[7] == 62
    with pytest.raises(ValueError, match="one interface"):
        net.connect(b, r1)
    with pytest.raises(ValueError, match="taken"):
        net.host("c", "2001:db8:2::b")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 255))
def test_hostile_packets_never_crash_a_router(data: bytes, hop_limit: int) -> None:
    async def run() -> None:
        net = Network()
        a, b = net.host("a", "2001:db8:1::a"), net.host("b", "2001:db8:2::b")
        r = net.router("r")
        net.connect(a, r)
        net.connect(r, b, mtu=1280)
        packet = bytearray(data)
        if len(packet) > 7:
            packet[0] = 0x60
            packet[7] = hop_limit
        a.link.send_nowait(bytes(packet))
        a.link.send_nowait(echo(a, b))  # and the router still forwards afterwards
        await b.link.receive()

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_an_arrival_as_the_serializer_frees_up_waits_its_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Packets queued behind the wire, and one more offered at the exact instant
    the wire frees up: still one packet at a time, in FIFO order."""
    net, a, b = pair(rate=1e6, delay=0.0)
    channel = net.channel("a->r")
    third = no_next_header(a, b, 1250, hop_limit=8)
    # Scheduled first, so it runs before the serializer's own wake-up at 10 ms.
    net.schedule(0.010, lambda packet, now: channel.offer(packet, now), third)
    a.link.send_nowait(no_next_header(a, b, 1250))  # 10 ms on the wire
    a.link.send_nowait(no_next_header(a, b, 1250, hop_limit=9))
    got = await arrivals(b, 3)
    assert got == pytest.approx([0.010, 0.020, 0.030], abs=1e-12)
    assert channel.stats()["busy_time"] == pytest.approx(0.030, abs=1e-12)
