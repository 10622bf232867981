"""VirtualNetwork tests, all in virtual time (MockClock with autojump)."""

from __future__ import annotations

import ipaddress
import itertools
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_tcp6.links import Link, VirtualLink, VirtualNetwork

A = "2001:db8::1"
B = "2001:db8::2"
C = "2001:db8::3"


def packet(src: str, dst: str, payload: bytes = b"", *, size: int | None = None) -> bytes:
    """A minimal IPv6 packet (next header 59 = no next header) with ``payload``."""
    if size is not None:
        payload = payload + bytes(max(0, size - 40 - len(payload)))
    header = (
        bytes([0x60, 0, 0, 0])
        + len(payload).to_bytes(2, "big")
        + bytes([59, 64])
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
    )
    return header + payload


def numbered(src: str, dst: str, i: int, size: int = 100) -> bytes:
    return packet(src, dst, i.to_bytes(4, "big"), size=size)


def number(p: bytes) -> int:
    return int.from_bytes(p[40:44], "big")


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


async def drain(link: VirtualLink, log: list[tuple[float, bytes]]) -> None:
    while True:
        for p in await link.receive_batch():
            log.append((trio.current_time(), p))


# -- basics ----------------------------------------------------------------------------


async def test_two_hosts_both_directions(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a = net.attach(A)
    b = net.attach(ipaddress.IPv6Address(B))
    assert isinstance(a, Link)
    assert a.mtu == 1500
    assert a.address == ipaddress.IPv6Address(A)
    t0 = trio.current_time()
    await a.send(packet(A, B, b"hello"))
    assert await b.receive() == packet(A, B, b"hello")
    await b.send(bytearray(packet(B, A, b"back")))
    assert await a.receive() == packet(B, A, b"back")
    assert trio.current_time() == t0  # zero delay: no time passes
    st = net.stats()
    assert st["sent"] == 2
    assert st["delivered"] == 2
    assert a.stats() == {"sent": 1, "received": 1, "rx_dropped": 0}


async def test_three_hosts_and_routing(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b, c = net.attach(A), net.attach(B), net.attach(C)
    await a.send(packet(A, C, b"to c"))
    await b.send(packet(B, C, b"b to c"))
    await c.send(packet(C, A, b"to a"))
    await c.send(memoryview(packet(C, B, b"to b")))
    assert await c.receive_batch() == [packet(A, C, b"to c"), packet(B, C, b"b to c")]
    assert await a.receive() == packet(C, A, b"to a")
    assert await b.receive() == packet(C, B, b"to b")
    # unknown destination and too-short packets are dropped and counted
    await a.send(packet(A, "2001:db8::99"))
    await a.send(b"\x60" * 20)
    st = net.stats()
    assert st["dropped_no_route"] == 1
    assert st["dropped_malformed"] == 1
    assert st["delivered"] == 4


async def test_attach_duplicate_address() -> None:
    net = VirtualNetwork()
    net.attach(A)
    with pytest.raises(ValueError):
        net.attach(ipaddress.IPv6Address(A))
    with pytest.raises(ValueError):
        net.attach("not an address")


async def test_receive_blocks_until_send(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    got: list[tuple[float, bytes]] = []

    async def receiver() -> None:
        p = await b.receive()
        got.append((trio.current_time(), p))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.sleep(3)
        await a.send(packet(A, B, b"x"))
    assert got == [(3.0, packet(A, B, b"x"))]


async def test_close_semantics(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    result: list[BaseException] = []

    async def receiver() -> None:
        try:
            await b.receive()
        except trio.ClosedResourceError as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.sleep(1)
        with pytest.raises(trio.BusyResourceError):
            await b.receive()
        await b.aclose()
    assert len(result) == 1
    with pytest.raises(trio.ClosedResourceError):
        await b.receive()
    with pytest.raises(trio.ClosedResourceError):
        await b.send(packet(B, A))
    # the address is free again; the old link stays closed
    await a.send(packet(A, B))
    assert net.stats()["dropped_no_route"] == 1
    b2 = net.attach(B)
    await a.send(packet(A, B, b"new"))
    assert await b2.receive() == packet(A, B, b"new")


async def test_receive_is_cancellable(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    with trio.move_on_after(1):
        await b.receive()
    await a.send(packet(A, B, b"after"))
    assert await b.receive() == packet(A, B, b"after")


async def test_network_context_manager(autojump_clock: trio.testing.MockClock) -> None:
    async with VirtualNetwork(delay=1.0) as net:
        a, b = net.attach(A), net.attach(B)
        await a.send(packet(A, B))
        assert net.stats()["in_flight"] == 1
    assert a.closed and b.closed
    with pytest.raises(trio.ClosedResourceError):
        net.attach(C)


# -- MTU and bounded queues -------------------------------------------------------------


async def test_mtu_drop(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(mtu=1280)
    a, b = net.attach(A), net.attach(B)
    assert a.mtu == 1280
    await a.send(packet(A, B, size=1281))
    await a.send(packet(A, B, size=1280))
    assert len(await b.receive()) == 1280
    assert net.stats()["dropped_mtu"] == 1
    assert b.pending() == 0


async def test_bounded_inbound_queue(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(rx_queue=100, backpressure=False)
    a, b = net.attach(A), net.attach(B)
    await a.send_batch(numbered(A, B, i) for i in range(150))
    assert b.pending() == 100
    st = net.stats()
    assert st["delivered"] == 100
    assert st["dropped_rx_overflow"] == 50
    assert b.stats()["rx_dropped"] == 50
    batch = await b.receive_batch()
    assert [number(p) for p in batch] == list(range(100))
    # room again
    await a.send(numbered(A, B, 7))
    assert number(await b.receive()) == 7


async def test_bounded_inbound_queue_bytes_and_delayed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork(delay=0.5, backpressure=False)
    a = net.attach(A)
    b = net.attach(B, rx_queue_bytes=10_000)
    for i in range(20):
        await a.send(numbered(A, B, i, size=1000))
    await trio.sleep(1)
    assert b.pending() == 10
    assert net.stats()["dropped_rx_overflow"] == 10


async def test_host_that_never_reads_does_not_grow_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork(delay=0.001, backpressure=False)
    a = net.attach(A)
    b = net.attach(B)
    for i in range(10_000):
        await a.send(numbered(A, B, i))
        if i % 100 == 0:
            await trio.sleep(0.01)
    await trio.sleep(1)
    st = net.stats()
    assert b.pending() == 4096
    assert st["dropped_rx_overflow"] == 10_000 - 4096
    assert st["in_flight"] == 0


# -- backpressure: a full inbound queue makes senders wait ------------------------------


async def test_full_inbound_queue_makes_senders_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork(rx_queue=100)
    a, b = net.attach(A), net.attach(B)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_batch, [numbered(A, B, i) for i in range(150)])
        await trio.testing.wait_all_tasks_blocked()
        assert b.pending() == 100  # the bound holds; the sender waits for the rest
        with pytest.raises(trio.WouldBlock):
            a.send_nowait(numbered(A, B, 999))  # not taken, not counted
        assert net.stats()["sent"] == 100
        got = [number(p) for p in await b.receive_batch()]
        await trio.testing.wait_all_tasks_blocked()
        got += [number(p) for p in await b.receive_batch()]
    assert got == list(range(150))
    st = net.stats()
    assert st["dropped_rx_overflow"] == 0 and b.stats()["rx_dropped"] == 0
    assert st["sent"] == st["delivered"] == 150


async def test_byte_bound_pushes_back_too(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B, rx_queue_bytes=10_000)
    for i in range(10):
        a.send_nowait(numbered(A, B, i, size=1000))
    with pytest.raises(trio.WouldBlock):
        a.send_nowait(numbered(A, B, 10, size=1000))
    assert b.receive_nowait() is not None
    a.send_nowait(numbered(A, B, 10, size=1000))  # room for exactly one again
    assert b.pending() == 10


async def test_packets_in_flight_count_in_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With a delay, the bound covers what is on its way: nothing is dropped when it
    arrives, however long the receiver waits."""
    net = VirtualNetwork(delay=0.5, rx_queue=10)
    a, b = net.attach(A), net.attach(B)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_batch, [numbered(A, B, i) for i in range(25)])
        await trio.sleep(0.1)
        assert b.pending() == 0 and net.stats()["in_flight"] == 10
        await trio.sleep(5)
        assert b.pending() == 10 and net.stats()["in_flight"] == 0  # nothing more sent
        got: list[int] = []
        while len(got) < 25:
            got += [number(p) for p in await b.receive_batch()]
    assert got == list(range(25))
    assert net.stats()["dropped_rx_overflow"] == 0


async def test_waiting_senders_take_turns(autojump_clock: trio.testing.MockClock) -> None:
    """Three senders behind a full queue of 6 (the first one filled it alone): each
    drain lets every waiting sender in for an equal share, so the room goes
    round-robin."""
    hosts = ["2001:db8::a", "2001:db8::b", "2001:db8::c"]
    net = VirtualNetwork(rx_queue=6)
    b = net.attach(B)
    senders = [net.attach(h) for h in hosts]
    async with trio.open_nursery() as nursery:
        for link in senders:
            nursery.start_soon(link.send_batch, [packet(str(link.address), B)] * 20)
            await trio.testing.wait_all_tasks_blocked()
        sources: list[str] = []
        while len(sources) < 60:
            await trio.testing.wait_all_tasks_blocked()
            batch = await b.receive_batch()
            sources += [str(ipaddress.IPv6Address(p[8:24])) for p in batch]
    assert sources[:6] == [hosts[0]] * 6
    counts = [sources[6:36].count(h) for h in hosts]
    assert counts == [10, 10, 10], counts  # equal shares while all three wait
    assert net.stats()["dropped_rx_overflow"] == 0


async def test_impairment_queue_and_loss_still_drop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Backpressure is for the host's inbound queue only: a rate-limited wire's
    queue and random loss drop as configured."""
    net = VirtualNetwork(rate=100_000, queue=5_000, loss=0.2, seed=3)
    a, b = net.attach(A), net.attach(B, rx_queue=1_000)
    await a.send_batch(numbered(A, B, i, size=1000) for i in range(100))
    await trio.sleep(5)
    st = net.stats()
    assert st["dropped_queue"] > 0 and st["dropped_loss"] > 0
    assert st["dropped_rx_overflow"] == 0
    assert st["delivered"] == b.pending() == 100 - st["dropped_queue"] - st["dropped_loss"]


async def test_closing_the_receiver_releases_waiting_senders(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork(rx_queue=5)
    a, b = net.attach(A), net.attach(B)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send_batch, [numbered(A, B, i) for i in range(20)])
            await trio.testing.wait_all_tasks_blocked()
            b.close()  # the rest finds no route: dropped, the sender returns
    assert net.stats()["dropped_no_route"] > 0


# -- delay, jitter ---------------------------------------------------------------------


async def test_delay_is_exact(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(delay=0.25)
    a, b = net.attach(A), net.attach(B)
    log: list[tuple[float, bytes]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        await trio.sleep(1)
        t0 = trio.current_time()
        await a.send(numbered(A, B, 1))
        await trio.sleep(0.1)
        t1 = trio.current_time()
        await a.send(numbered(A, B, 2))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert log == [(t0 + 0.25, numbered(A, B, 1)), (t1 + 0.25, numbered(A, B, 2))]


async def test_jitter_bounds_and_fifo(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(delay=0.1, jitter=0.05, seed=1)
    a, b = net.attach(A), net.attach(B)
    log: list[tuple[float, bytes]] = []
    sent_at: dict[int, float] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        for i in range(1000):
            sent_at[i] = trio.current_time()
            await a.send(numbered(A, B, i))
            await trio.sleep(0.01)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert len(log) == 1000
    delays = [t - sent_at[number(p)] for t, p in log]
    assert all(0.05 - 1e-9 <= d <= 0.15 + 1e-9 for d in delays)
    assert max(delays) - min(delays) > 0.08  # it really varies
    # jitter alone never reorders a path
    assert [number(p) for _, p in log] == list(range(1000))


async def test_jitter_never_negative(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(delay=0.0, jitter=0.01, seed=3)
    a, b = net.attach(A), net.attach(B)
    log: list[tuple[float, bytes]] = []
    sent_at: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        for i in range(200):
            sent_at.append(trio.current_time())
            await a.send(numbered(A, B, i))
            await trio.sleep(0.02)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert len(log) == 200
    delays = [t - sent_at[number(p)] for t, p in log]
    assert min(delays) == 0.0  # clamped at zero, never earlier than sent
    assert max(delays) > 0.005


# -- loss, duplicate, reorder, corrupt ----------------------------------------------------


async def test_loss_rate(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(loss=0.3, seed=42)
    a, b = net.attach(A), net.attach(B, rx_queue=20_000)
    await a.send_batch(numbered(A, B, i) for i in range(10_000))
    got = b.pending()
    # 3 sigma of a binomial(10000, 0.7) is about 138
    assert abs(got - 7000) < 140
    st = net.stats()
    assert st["dropped_loss"] == 10_000 - got
    assert st["delivered"] == got


async def test_loss_one_cuts_one_direction(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    net.impair(A, B, loss=1.0)
    for i in range(50):
        await a.send(numbered(A, B, i))
        await b.send(numbered(B, A, i))
    assert b.pending() == 0
    assert a.pending() == 50
    assert net.stats()["dropped_loss"] == 50
    net.impair(A, B, loss=0.0)
    await a.send(numbered(A, B, 99))
    assert number(await b.receive()) == 99


async def test_duplicate(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(duplicate=0.2, seed=5)
    a, b = net.attach(A), net.attach(B)
    await a.send_batch(numbered(A, B, i) for i in range(1000))
    batch = await b.receive_batch()
    dups = net.stats()["duplicated"]
    assert 140 < dups < 260
    assert len(batch) == 1000 + dups
    nums = [number(p) for p in batch]
    assert sorted(set(nums)) == list(range(1000))
    # the copy arrives right after its original
    assert nums == sorted(nums)


async def test_reorder(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(delay=0.01, reorder=0.1, seed=9)
    a, b = net.attach(A), net.attach(B)
    log: list[tuple[float, bytes]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        for i in range(1000):
            await a.send(numbered(A, B, i))
            await trio.sleep(0.001)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    nums = [number(p) for _, p in log]
    assert sorted(nums) == list(range(1000))
    reordered = net.stats()["reordered"]
    assert 60 < reordered < 140
    # a held-back packet arrives after some later ones: count those "late" arrivals
    late = sum(1 for i, n in enumerate(nums) if n < max(nums[: i + 1]))
    # (a held packet with nothing sent after it while it is held is not "late")
    assert reordered - 3 <= late <= reordered
    assert all(t2 >= t1 for (t1, _), (t2, _) in itertools.pairwise(log))


async def test_corrupt_payload_only(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(corrupt=1.0, seed=11)
    a, b = net.attach(A), net.attach(B)
    originals = [packet(A, B, bytes(range(i % 7, i % 7 + 60))) for i in range(500)]
    await a.send_batch(originals)
    received = await b.receive_batch()
    assert len(received) == 500
    assert net.stats()["corrupted"] == 500
    for orig, got in zip(originals, received, strict=True):
        assert got != orig
        assert len(got) == len(orig)
        assert got[:40] == orig[:40]  # header (and so the addresses) untouched
        assert sum(got[40:]) != sum(orig[40:])
        # a ones'-complement (Internet) checksum over the payload always catches it
        assert ones_complement_sum(got[40:]) != ones_complement_sum(orig[40:])
        flipped = sum(bin(x ^ y).count("1") for x, y in zip(got, orig, strict=True))
        assert 1 <= flipped <= 8


async def test_corrupt_probability(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(corrupt=0.1, seed=12)
    a, b = net.attach(A), net.attach(B)
    originals = [numbered(A, B, i) for i in range(2000)]
    await a.send_batch(originals)
    received = await b.receive_batch()
    changed = sum(1 for x, y in zip(originals, received, strict=True) if x != y)
    assert changed == net.stats()["corrupted"]
    assert 140 < changed < 260


# -- rate and queue -------------------------------------------------------------------------


async def test_rate_spreads_packets(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(rate=100_000)
    a, b = net.attach(A), net.attach(B)
    log: list[tuple[float, bytes]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        t0 = trio.current_time()
        await a.send_batch(numbered(A, B, i, size=1000) for i in range(100))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    times = [t - t0 for t, _ in log]
    assert len(times) == 100
    assert [number(p) for _, p in log] == list(range(100))
    for i, t in enumerate(times):
        assert math.isclose(t, (i + 1) * 0.01, abs_tol=1e-9)
    assert math.isclose(times[-1], 1.0, abs_tol=1e-9)


async def test_rate_plus_delay(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(rate=1000, delay=0.5)
    a, b = net.attach(A), net.attach(B)
    t0 = trio.current_time()
    await a.send(packet(A, B, size=100))
    await b.receive()
    assert math.isclose(trio.current_time() - t0, 0.1 + 0.5)


async def test_queue_drop_tail(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(rate=10_000, queue=5000)
    a, b = net.attach(A), net.attach(B)
    # the first packet goes on the wire at once, five fill the queue, the rest drop
    await a.send_batch(numbered(A, B, i, size=1000) for i in range(20))
    assert net.stats()["dropped_queue"] == 14
    await trio.sleep(0.35)  # three have left the wire: room for three more
    await a.send_batch(numbered(A, B, 100 + i, size=1000) for i in range(5))
    assert net.stats()["dropped_queue"] == 14 + 2
    await trio.sleep(10)
    nums = [number(p) for p in await b.receive_batch()]
    assert nums == [0, 1, 2, 3, 4, 5, 100, 101, 102]
    st = net.stats()
    assert st["sent"] == st["delivered"] + st["dropped_queue"]


async def test_rate_is_per_sender(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(rate=1000)
    a, b, c = net.attach(A), net.attach(B), net.attach(C)
    await a.send(packet(A, C, size=500))
    await b.send(packet(B, C, size=500))
    await a.send(packet(A, B, size=500))
    await trio.sleep(0.6)
    assert c.pending() == 2  # both senders' first packets took 0.5 s in parallel
    assert b.pending() == 0  # A's second packet waited behind its first
    await trio.sleep(0.5)
    assert b.pending() == 1


# -- impair() at runtime -----------------------------------------------------------------------


async def test_impair_per_direction_and_wildcards(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork()
    a, b, c = net.attach(A), net.attach(B), net.attach(C)

    async def one_way(src: VirtualLink, dst: VirtualLink) -> float | None:
        t0 = trio.current_time()
        await src.send(packet(str(src.address), str(dst.address)))
        with trio.move_on_after(10):
            await dst.receive()
            return trio.current_time() - t0
        return None

    assert await one_way(a, b) == 0.0
    net.impair(A, B, delay=1.0)
    assert await one_way(a, b) == 1.0
    assert await one_way(b, a) == 0.0
    assert await one_way(a, c) == 0.0
    net.impair(src=A, delay=2.0)  # all from A; the A->B layer still wins there
    assert await one_way(a, c) == 2.0
    assert await one_way(a, b) == 1.0
    net.impair(dst=C, loss=1.0)  # all to C
    assert await one_way(b, c) is None
    assert await one_way(a, c) is None
    assert await one_way(c, b) == 0.0
    net.impair(delay=0.5)  # network-wide, overridden where a layer sets delay
    assert await one_way(c, b) == 0.5
    assert await one_way(a, b) == 1.0
    assert net.impairments(A, C).loss == 1.0
    net.clear_impairments(dst=C)
    assert await one_way(a, c) == 2.0
    net.clear_impairments()
    assert await one_way(a, c) == 0.0
    assert net.impairments(A, B).trivial


async def test_impair_validation() -> None:
    net = VirtualNetwork()
    with pytest.raises(TypeError):
        net.impair(lossy=0.5)
    with pytest.raises(TypeError):
        VirtualNetwork(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        net.impair(loss=1.5)
    with pytest.raises(ValueError):
        net.impair(A, B, delay=-1)
    with pytest.raises(ValueError):
        VirtualNetwork(rate=0)


async def test_path_turning_fast_keeps_fifo(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(delay=1.0)
    a, b = net.attach(A), net.attach(B)
    await a.send(numbered(A, B, 1))
    net.impair(delay=0.0)
    await a.send(numbered(A, B, 2))  # must not overtake the packet still in flight
    assert b.pending() == 0
    await trio.sleep(1)
    assert [number(p) for p in await b.receive_batch()] == [1, 2]
    await a.send(numbered(A, B, 3))
    assert b.pending() == 1


# -- determinism ---------------------------------------------------------------------------------


async def _impaired_run(seed: int) -> list[tuple[float, bytes]]:
    net = VirtualNetwork(
        seed=seed,
        delay=0.01,
        jitter=0.005,
        loss=0.05,
        duplicate=0.05,
        reorder=0.05,
        corrupt=0.05,
        rate=4_000_000,
        queue=20_000,
    )
    a, b = net.attach(A), net.attach(B)
    log: list[tuple[float, bytes]] = []
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        for i in range(500):
            await a.send_batch([numbered(A, B, i, size=500), numbered(A, B, i, size=900)])
            await trio.sleep(0.0005 * (i % 3))
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    return [(t - t0, p) for t, p in log]


def test_determinism() -> None:
    # each run in a fresh trio.run with a fresh virtual clock starting at 0
    def run(seed: int) -> list[tuple[float, bytes]]:
        clock = trio.testing.MockClock(autojump_threshold=0)
        return trio.run(_impaired_run, seed, clock=clock)

    first = run(1234)
    second = run(1234)
    other = run(4321)
    assert len(first) > 800
    assert first == second
    assert first != other


# -- capture --------------------------------------------------------------------------------


async def test_capture(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    from trio_tcp6.wire.pcap import read_pcap

    path = tmp_path / "net.pcap"
    net = VirtualNetwork(delay=0.01, loss=0.2, duplicate=0.1, seed=2)
    a, b = net.attach(A), net.attach(B)
    await trio.sleep(1)
    cap = net.capture(str(path))
    log: list[tuple[float, bytes]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, b, log)
        for i in range(100):
            await a.send(numbered(A, B, i))
            await trio.sleep(0.003)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    net.close()
    assert cap.closed
    records = read_pcap(path)
    st = net.stats()
    assert len(records) == cap.count == st["delivered"] == len(log)
    assert st["dropped_loss"] > 0 and st["duplicated"] > 0
    stamps = [t for t, _ in records]
    assert stamps == sorted(stamps)
    assert [p for _, p in records] == [p for _, p in log]
    for (ts, _), (t, _) in zip(records, log, strict=True):
        assert math.isclose(ts, t, abs_tol=1e-6)
    if shutil.which("tshark"):
        out = subprocess.run(
            ["tshark", "-r", str(path), "-T", "fields", "-e", "ipv6.dst"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = out.stdout.split()
        assert len(lines) == len(records)
        assert set(lines) == {B}


async def test_capture_context_manager(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    from trio_tcp6.wire.pcap import read_pcap

    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    with net.capture(tmp_path / "x.pcap") as cap:
        await a.send(packet(A, B))
        await b.send(packet(B, A))
    await a.send(packet(A, B))  # after the capture stopped
    assert cap.count == 2
    assert len(read_pcap(tmp_path / "x.pcap")) == 2


async def test_stats_balance(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork(delay=0.05, loss=0.1, duplicate=0.1, rate=50_000, queue=3000, seed=8)
    a = net.attach(A)
    net.attach(B, rx_queue=50)
    await a.send_batch(numbered(A, B, i, size=500) for i in range(300))
    await a.send(packet(A, B, size=2000))
    await trio.sleep(0.1)
    st = net.stats()
    drops = sum(v for k, v in st.items() if k.startswith("dropped_"))
    assert st["sent"] + st["duplicated"] == st["delivered"] + drops + st["in_flight"]
    await trio.sleep(10)
    st = net.stats()
    drops = sum(v for k, v in st.items() if k.startswith("dropped_"))
    assert st["in_flight"] == 0
    assert st["sent"] + st["duplicated"] == st["delivered"] + drops


async def test_close_after_wakeup_before_receiver_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    result: list[BaseException] = []

    async def receiver() -> None:
        try:
            await b.receive()
        except trio.ClosedResourceError as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.sleep(1)
        a.send_nowait(packet(A, B))  # wakes the receiver, which has not run yet...
        b.close()  # ...when its link closes
    assert len(result) == 1


def test_network_made_outside_trio_and_reused_across_runs() -> None:
    net = VirtualNetwork(delay=0.5)
    a, b = net.attach(A), net.attach(B)

    async def exchange() -> float:
        t0 = trio.current_time()
        await a.send(packet(A, B))
        await b.receive()
        return trio.current_time() - t0

    for _ in range(2):
        assert trio.run(exchange, clock=trio.testing.MockClock(autojump_threshold=0)) == 0.5


def _dst(i: int) -> bytes:
    return ipaddress.IPv6Address(f"2001:db8:ffff::{i // 65536:x}:{i % 65536:x}").packed


async def test_spoofed_destinations_do_not_grow_the_path_cache(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A host answering 100k spoofed sources sends to 100k destinations nobody has:
    the network must not keep a cached path for each (it held ~330 B apiece)."""
    net = VirtualNetwork()
    a = net.attach(A)
    header = bytearray(packet(A, B, b"x"))
    for i in range(100_000):
        header[24:40] = _dst(i)
        a.send_nowait(bytes(header))
    assert net.stats()["dropped_no_route"] == 100_000
    assert len(net._plane.paths) <= 1 and len(a.paths) <= 1


async def test_path_cache_is_bounded_and_evicts_idle_paths(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Paths to many reachable destinations are cached up to a bound; idle ones are
    evicted first, a path with packets still in flight never (it keeps FIFO order)."""
    net = VirtualNetwork()
    a = net.attach(A)
    b = net.attach(B)
    net.impair(src=A, dst=B, delay=1.0)
    a.send_nowait(packet(A, B, b"first"))  # in flight on A->B for 1 s
    n = 2 * VirtualNetwork.PATH_CACHE_SIZE
    sinks = [net.attach(_dst(i)) for i in range(n)]
    for sink in sinks:
        a.send_nowait(packet(A, str(sink.address), b"y"))
        assert sink.pending() == 1
    assert len(net._plane.paths) <= VirtualNetwork.PATH_CACHE_SIZE
    assert len(a.paths) <= VirtualNetwork.PATH_CACHE_SIZE
    assert (a.packed, b.packed) in net._plane.paths  # busy: kept
    a.send_nowait(packet(A, B, b"second"))
    await trio.sleep(1.5)
    assert [b.receive_nowait(), b.receive_nowait()] == [
        packet(A, B, b"first"),
        packet(A, B, b"second"),
    ]
    # Evicted paths come back on use, with the impairments that apply to them.
    for sink in sinks[:10]:
        sink.receive_nowait()
        a.send_nowait(packet(A, str(sink.address), b"z"))
        assert sink.receive_nowait() == packet(A, str(sink.address), b"z")
    assert net.stats()["delivered"] == n + 2 + 10
