"""Exact replay: the same seed and the same program give a byte-identical capture and
the same counters, whatever order trio runs the ready tasks in."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
import trio.testing
from trio._core import _run as trio_run

import trio_tcp6 as tcp6
from trio_tcp6.links.replay import InstantOrder, derive_seed, packet_key, path_random, seed_bytes
from trio_tcp6.runtime.stack import DirectStack

A, B, C = "fd00::a", "fd00::b", "fd00::c"
PORT = 5000
#: (client, server, bytes the client sends): four flows, three hosts, A on three of
#: them, bulk in both directions between A and B.
FLOWS = [(A, B, 200_000), (B, A, 150_000), (C, B, 100_000), (A, C, 100_000)]

Run = tuple[bytes, dict[str, int], list[dict[str, int]], float]


def lossy_network() -> tcp6.VirtualNetwork:
    return tcp6.VirtualNetwork(
        seed=2026,
        deterministic=True,
        delay=0.01,
        jitter=0.004,
        loss=0.03,
        reorder=0.03,
        duplicate=0.02,
        rate=200_000,
    )


async def four_flows() -> Run:
    """A lossy, reordering, duplicating, jittery network carrying four bulk flows."""
    net = lossy_network()
    pcap = io.BytesIO()
    received: dict[tuple[str, str], int] = {}

    async def serve(stream: Any, client: str, server: str) -> None:
        got = 0
        while data := await stream.receive_some():
            got += len(data)
        received[(client, server)] = got
        await stream.aclose()

    async def client(stack: DirectStack, server: str, size: int, delay: float) -> None:
        await trio.sleep(delay)
        stream = await stack.open_tcp_stream(server, PORT)
        payload = random.Random(size).randbytes(size)
        for i in range(0, size, 8192):
            await stream.send_all(payload[i : i + 8192])
        await stream.send_eof()
        assert await stream.receive_some() == b""
        await stream.aclose()

    with net.capture(pcap):
        async with (
            tcp6.open_stack(net.attach(A), A) as sa,
            tcp6.open_stack(net.attach(B), B) as sb,
            tcp6.open_stack(net.attach(C), C) as sc,
        ):
            stacks = {A: sa, B: sb, C: sc}
            async with trio.open_nursery() as servers:
                for addr, stack in stacks.items():

                    async def handler(stream: Any, addr: str = addr) -> None:
                        await serve(stream, str(stream.get_dest()[0]), addr)

                    await servers.start(stack.serve_tcp, handler, PORT)
                async with trio.open_nursery() as clients:
                    for i, (src, dst, size) in enumerate(FLOWS):
                        clients.start_soon(client, stacks[src], dst, size, 0.001 * i)
                while len(received) < len(FLOWS):
                    await trio.sleep(0.01)
                servers.cancel_scope.cancel()
            end = trio.current_time()
            stack_stats = [comparable(stacks[h].stats()) for h in (A, B, C)]
    for src, dst, size in FLOWS:
        assert received[(tcp6_addr(src), tcp6_addr(dst))] == size
    return pcap.getvalue(), net.stats(), stack_stats, end


def comparable(stats: dict[str, int]) -> dict[str, int]:
    """A stack's counters but its memory high-water mark: the peak of the sum over
    its connections is sampled between the steps of tasks of *different*
    connections within one instant, whose order trio picks (each connection's own
    buffers, and everything on the wire, are the same)."""
    return {name: value for name, value in stats.items() if name != "memory_held_peak"}


def tcp6_addr(addr: str) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(addr))


async def both_ways() -> Run:
    """One connection carrying bulk data both ways at once: on each side one task
    writes while another reads the same socket."""
    net = lossy_network()
    pcap = io.BytesIO()
    received = []

    async def pump(stream: Any, size: int) -> None:
        async def write() -> None:
            payload = random.Random(size).randbytes(size)
            for i in range(0, size, 8192):
                await stream.send_all(payload[i : i + 8192])
            await stream.send_eof()

        async def read() -> None:
            got = 0
            while data := await stream.receive_some():
                got += len(data)
            received.append(got)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            nursery.start_soon(read)

    with net.capture(pcap):
        async with (
            tcp6.open_stack(net.attach(A), A) as sa,
            tcp6.open_stack(net.attach(B), B) as sb,
        ):
            listener = await sb.open_tcp_listener(PORT)
            client = await sa.open_tcp_stream(B, PORT)
            server = await listener.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, 150_000)
                nursery.start_soon(pump, server, 100_000)
            await client.aclose()
            await server.aclose()
            end = trio.current_time()
            stack_stats = [comparable(sa.stats()), comparable(sb.stats())]
    assert sorted(received) == [100_000, 150_000]
    return pcap.getvalue(), net.stats(), stack_stats, end


SCENARIOS = {"four_flows": four_flows, "both_ways": both_ways}
_references: dict[str, Run] = {}


def run_once(name: str) -> Run:
    return trio.run(SCENARIOS[name], clock=trio.testing.MockClock(autojump_threshold=0))


def reference(name: str) -> Run:
    """The scenario's first run (made once per test session)."""
    if name not in _references:
        _references[name] = run_once(name)
    return _references[name]


@contextmanager
def seeded_scheduler(seed: int) -> Iterator[None]:
    """trio's scheduler made deterministic and seeded (test code may touch trio's
    privates): every batch of ready tasks is shuffled by ``seed``'s generator."""
    allowed = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    state = trio_run._r.getstate()
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio_run._r.seed(seed)
    try:
        yield
    finally:
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = allowed  # type: ignore[misc]
        trio_run._r.setstate(state)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_is_lossy_and_long(name: str) -> None:
    pcap, stats, _stacks, end = reference(name)
    # The scenario exercises what replay must survive: every impairment fired.
    for counter in ("dropped_loss", "reordered", "duplicated"):
        assert stats[counter] > 5, (counter, stats)
    assert 1.0 < end < 30.0
    assert len(pcap) > 250_000


@pytest.mark.parametrize("name", SCENARIOS)
def test_two_runs_are_identical(name: str) -> None:
    pcap, stats, stacks, end = run_once(name)
    assert (stats, stacks, end) == reference(name)[1:]
    assert pcap == reference(name)[0]


@pytest.mark.parametrize("scheduler_seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("name", SCENARIOS)
def test_scheduler_order_does_not_matter(name: str, scheduler_seed: int) -> None:
    with seeded_scheduler(scheduler_seed):
        pcap, stats, stacks, end = run_once(name)
    assert (stats, stacks, end) == reference(name)[1:]
    assert pcap == reference(name)[0]


def test_seeded_scheduler_changes_the_order() -> None:
    """The seeded scheduler does shuffle: two seeds order ready tasks differently
    (so the test above compares genuinely different schedules)."""

    async def order() -> list[int]:
        seen: list[int] = []

        async def task(i: int) -> None:
            await trio.sleep(1)
            seen.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(task, i)
        return seen

    orders = set()
    for seed in (1, 2, 3):
        with seeded_scheduler(seed):
            orders.add(tuple(trio.run(order, clock=trio.testing.MockClock(autojump_threshold=0))))
    assert len(orders) > 1


# -- the pieces ------------------------------------------------------------------------


def test_derive_seed_separates_labels_and_parts() -> None:
    assert derive_seed(1, "isn") == derive_seed(1, "isn")
    assert derive_seed(1, "isn") == derive_seed(b"\x01", "isn")
    values = {
        derive_seed(1, "isn"),
        derive_seed(2, "isn"),
        derive_seed(1, "ports"),
        derive_seed(1, "path", b"ab", b"c"),
        derive_seed(1, "path", b"a", b"bc"),
        derive_seed(-1, "isn"),
    }
    assert len(values) == 6
    assert seed_bytes(255) == b"\x00\xff" and seed_bytes(-1) == b"\xff"
    with pytest.raises(ValueError):
        seed_bytes(b"")


def test_path_random_depends_on_the_path_only() -> None:
    a = path_random(7, b"x", b"y").random()
    assert a == path_random(7, b"x", b"y").random()
    assert a != path_random(7, b"y", b"x").random()
    assert a != path_random(8, b"x", b"y").random()


async def test_instant_order_sorts_by_key_and_keeps_each_flow_in_order() -> None:
    order: InstantOrder[str] = InstantOrder()
    for key, item in [(b"b", "b1"), (b"a", "a1"), (b"b", "b2"), (b"a", "a2"), (b"c", "c1")]:
        order.hold(key, item)
    assert len(order) == 5
    assert await order.settle() == ["a1", "a2", "b1", "b2", "c1"]
    assert len(order) == 0


async def test_instant_order_waits_until_every_task_is_blocked() -> None:
    order: InstantOrder[int] = InstantOrder()
    released: list[int] = []

    async def sender(i: int) -> None:
        for _ in range(i):
            await trio.lowlevel.checkpoint()  # ready again at once: not blocked
        order.hold(bytes([9 - i]), i)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(sender, i)
        released = await order.settle()
    assert released == [4, 3, 2, 1, 0]


def test_packet_key_orders_by_link_then_flow() -> None:
    def packet(src: bytes, dst: bytes, ports: bytes) -> bytes:
        return bytes([0x60, 0, 0, 0, 0, 4, 6, 64]) + src + dst + ports

    s1, s2, d = bytes(15) + b"\x01", bytes(15) + b"\x02", bytes(15) + b"\x03"
    assert packet_key(s1, packet(s1, d, b"\x00\x02\x00\x01")) < packet_key(
        s2, packet(s2, d, b"\x00\x01\x00\x01")
    )
    assert packet_key(s1, packet(s1, d, b"\x00\x01\x00\x01")) < packet_key(
        s1, packet(s1, d, b"\x00\x02\x00\x01")
    )
    # A flow's packets share a key whatever their payload.
    assert packet_key(s1, packet(s1, d, b"\x00\x01\x00\x01") + b"x") == packet_key(
        s1, packet(s1, d, b"\x00\x01\x00\x01") + b"y"
    )


# -- seeded stacks -------------------------------------------------------------------


async def first_syn(net: tcp6.VirtualNetwork, seed: int | None) -> bytes:
    """The SYN a stack at A sends first (its ISN, timestamp and port)."""
    link = net.attach(B)
    async with (
        tcp6.open_stack(net.attach(A), A, seed=seed) as stack,
        trio.open_nursery() as nursery,
    ):

        async def connect() -> None:
            with trio.move_on_after(0.5):
                await stack.open_tcp_stream(B, PORT)

        nursery.start_soon(connect)
        syn = await link.receive()
        nursery.cancel_scope.cancel()
    link.close()
    return syn


async def test_stack_secrets_come_from_the_seed(autojump_clock: trio.abc.Clock) -> None:
    syns = [await first_syn(tcp6.VirtualNetwork(), 5) for _ in range(2)]
    assert syns[0] == syns[1]
    other = await first_syn(tcp6.VirtualNetwork(), 6)
    assert other[40:48] != syns[0][40:48]  # another port and ISN


async def test_network_seed_seeds_its_stacks(autojump_clock: trio.abc.Clock) -> None:
    syns = [await first_syn(tcp6.VirtualNetwork(seed=3), None) for _ in range(2)]
    assert syns[0] == syns[1]
    assert tcp6.VirtualNetwork(seed=3).stack_seed(A) != tcp6.VirtualNetwork(seed=3).stack_seed(B)
    assert tcp6.VirtualNetwork(seed=3).stack_seed(A) != tcp6.VirtualNetwork(seed=4).stack_seed(A)


async def test_no_seed_no_repeat(autojump_clock: trio.abc.Clock) -> None:
    # Unseeded (as on any real link): the secrets are random, the SYNs differ.
    assert tcp6.VirtualNetwork().stack_seed(A) is None
    syns = {(await first_syn(tcp6.VirtualNetwork(), None))[40:48] for _ in range(3)}
    assert len(syns) == 3


async def test_deterministic_network_delivers_after_the_instant(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Nothing arrives synchronously; everything sent in an instant arrives in one
    release, in canonical order, at the same virtual time."""
    net = tcp6.VirtualNetwork(deterministic=True)
    a, b, c = net.attach(A), net.attach(B), net.attach(C)

    b.send_nowait(raw_packet(B, C, 1))
    a.send_nowait(raw_packet(A, C, 2))
    b.send_nowait(raw_packet(B, C, 0))
    assert c.receive_nowait() is None
    assert net.stats()["in_flight"] == 3
    before = trio.current_time()
    got = [(await c.receive())[44] for _ in range(3)]
    assert trio.current_time() == before
    assert got == [2, 1, 0]  # link A first, then B's two packets in their order
    assert net.stats()["delivered"] == 3 and net.stats()["in_flight"] == 0
    net.close()


def test_deterministic_network_in_real_time() -> None:
    """Without MockClock the release waits only until the run loop is idle: a
    connection works as usual (in real time, so its timing is not reproducible)."""

    async def main() -> bytes:
        net = tcp6.VirtualNetwork(seed=1, deterministic=True)
        async with (
            tcp6.open_stack(net.attach(A), A) as sa,
            tcp6.open_stack(net.attach(B), B) as sb,
        ):
            listener = await sb.open_tcp_listener(PORT)
            with trio.fail_after(10):
                client = await sa.open_tcp_stream(B, PORT)
                server = await listener.accept()
                await client.send_all(b"ping" * 10_000)
                await client.send_eof()
                got = b""
                while data := await server.receive_some():
                    got += data
            await client.aclose()
            await server.aclose()
        return got

    assert trio.run(main) == b"ping" * 10_000


def raw_packet(src: str, dst: str, n: int = 0) -> bytes:
    import ipaddress

    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    return bytes([0x60, 0, 0, 0, 0, 5, 59, 64]) + s + d + bytes([0, 7, 0, 0, n])


def balance(stats: dict[str, int]) -> int:
    dropped = sum(v for k, v in stats.items() if k.startswith("dropped_"))
    return stats["sent"] + stats["duplicated"] - stats["delivered"] - dropped - stats["in_flight"]


async def test_deterministic_no_route_is_answered_at_the_release(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = tcp6.VirtualNetwork(deterministic=True)
    a = net.attach(A)
    a.send_nowait(raw_packet(A, "fd00::99"))
    stats = net.stats()
    assert stats["in_flight"] == 1 and stats["dropped_no_route"] == 0 and balance(stats) == 0
    reply = await a.receive()
    assert reply[6] == 58 and reply[40] == 1  # ICMPv6 Destination Unreachable
    stats = net.stats()
    assert stats["in_flight"] == 0 and stats["dropped_no_route"] == 1 and balance(stats) == 0
    assert stats["icmp_unreachable_sent"] == 1
    net.close()


async def test_deterministic_held_packets_count_against_the_inbound_queue(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Backpressure sees held packets as in flight towards their destination."""
    net = tcp6.VirtualNetwork(deterministic=True, rx_queue=2)
    a, b = net.attach(A), net.attach(B)
    a.send_nowait(raw_packet(A, B, 1))
    a.send_nowait(raw_packet(A, B, 2))
    with pytest.raises(trio.WouldBlock):
        a.send_nowait(raw_packet(A, B, 3))
    assert [p[44] for p in await b.receive_batch()] == [1, 2]
    a.send_nowait(raw_packet(A, B, 3))
    assert [p[44] for p in await b.receive_batch()] == [3]
    assert balance(net.stats()) == 0
    net.close()


async def syn_acks(seed: int) -> list[bytes]:
    """The SYN-ACKs a listener at B (a one-entry SYN backlog) sends to two SYNs: the
    second is a SYN cookie."""
    import ipaddress

    from trio_tcp6.wire.ipv6 import PROTO_TCP, build_ipv6_header
    from trio_tcp6.wire.tcp import SYN, TCPSegment, build_tcp

    net = tcp6.VirtualNetwork()
    raw = net.attach(A)
    pa, pb = ipaddress.IPv6Address(A).packed, ipaddress.IPv6Address(B).packed
    config = tcp6.TCPConfig(syn_backlog=1, syn_cookies=True)
    async with tcp6.open_stack(net.attach(B), B, config=config, seed=seed) as stack:
        await stack.open_tcp_listener(PORT)
        replies = []
        for port in (40000, 40001):
            body = build_tcp(TCPSegment(port, PORT, 1000, 0, SYN, 65535), pa, pb)
            await raw.send(build_ipv6_header(pa, pb, PROTO_TCP, len(body)) + body)
            replies.append(await raw.receive())
        assert stack.stats()["syn_cookies_sent"] == 1
    net.close()
    return replies


async def test_syn_cookie_secret_comes_from_the_seed(autojump_clock: trio.abc.Clock) -> None:
    first, again, other = await syn_acks(5), await syn_acks(5), await syn_acks(6)
    assert first == again
    assert first[1][44:48] != other[1][44:48]  # the cookie (our ISN)


async def test_an_impaired_virtual_link_keeps_the_network_seed(
    autojump_clock: trio.abc.Clock,
) -> None:
    from trio_tcp6.links import ImpairedLink
    from trio_tcp6.links.base import capabilities_of

    net = tcp6.VirtualNetwork(seed=3)
    assert capabilities_of(ImpairedLink(net.attach(A))).seed == net.stack_seed(A)
    assert capabilities_of(ImpairedLink(tcp6.VirtualNetwork().attach(A))).seed is None
