"""Impairments, the shared fate logic, and ImpairedLink (virtual time)."""

from __future__ import annotations

import ipaddress
import random

import pytest
import trio
import trio.testing

from trio_tcp6.links import (
    ImpairedLink,
    Impairer,
    Impairments,
    Link,
    VirtualNetwork,
    impair_link,
)
from trio_tcp6.links.impair import PathState, Wire, corrupt_packet

A = "2001:db8::a"
B = "2001:db8::b"


def numbered(src: str, dst: str, i: int, size: int = 100) -> bytes:
    payload = i.to_bytes(4, "big") + bytes(size - 44)
    return (
        bytes([0x60, 0, 0, 0])
        + len(payload).to_bytes(2, "big")
        + bytes([59, 64])
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def number(p: bytes) -> int:
    return int.from_bytes(p[40:44], "big")


# -- Impairments and the fate function ----------------------------------------------------


def test_impairments_validation() -> None:
    assert Impairments().trivial
    assert not Impairments(delay=0.1).trivial
    assert not Impairments(rate=1000).trivial
    assert Impairments(queue=10).trivial  # a queue without a rate does nothing
    with pytest.raises(ValueError):
        Impairments(loss=-0.1)
    with pytest.raises(ValueError):
        Impairments(duplicate=2)
    with pytest.raises(ValueError):
        Impairments(jitter=-1)
    with pytest.raises(ValueError):
        Impairments(rate=-5)
    with pytest.raises(TypeError):
        Impairments().evolve(latency=1)
    assert Impairments().evolve(loss=1).loss == 1.0


def test_wire_admit() -> None:
    wire = Wire()
    # idle wire: leaves after len/rate
    assert wire.admit(0.0, 100, 1000.0, 150) == 0.1
    # busy: waits, queue holds 100 of 150 bytes
    assert wire.admit(0.0, 100, 1000.0, 150) == pytest.approx(0.2)
    assert wire.queued_bytes == 100
    assert wire.admit(0.0, 100, 1000.0, 150) is None  # 200 > 150: drop-tail
    # at t=0.1 the queued packet started transmitting: the queue is empty again
    assert wire.admit(0.1, 100, 1000.0, 150) == pytest.approx(0.3)
    assert wire.queued_bytes == 100
    assert wire.admit(5.0, 10, 1000.0, 0) == pytest.approx(5.01)  # idle: queue=0 is fine


def test_fate_order_and_counters() -> None:
    imp = Impairer(seed=1)
    data = numbered(A, B, 1)
    at, out, copies = imp.fate(Impairments(loss=1.0), data, 1.0, Wire(), PathState())
    assert copies == 0
    assert imp.counters.dropped_loss == 1
    at, out, copies = imp.fate(
        Impairments(delay=0.5, duplicate=1.0, corrupt=1.0), data, 1.0, Wire(), PathState()
    )
    assert (at, copies) == (1.5, 2)
    assert out != data and out[:40] == data[:40]
    assert imp.counters.as_dict()["corrupted"] == 1
    assert imp.counters.as_dict()["duplicated"] == 1


def test_unimpaired_fate_draws_no_randomness() -> None:
    imp = Impairer(seed=7)
    state = imp.rng.getstate()
    imp.fate(Impairments(delay=1.0, rate=1e6), numbered(A, B, 1), 0.0, Wire(), PathState())
    assert imp.rng.getstate() == state


def test_corrupt_packet() -> None:
    rng = random.Random(0)
    data = numbered(A, B, 5, size=200)
    for _ in range(200):
        out = corrupt_packet(data, rng)
        diff = [i for i in range(len(data)) if data[i] != out[i]]
        assert len(diff) == 1 and diff[0] >= 40
    header_only = data[:40]
    for _ in range(50):
        out = corrupt_packet(header_only, rng)
        diff = [i for i in range(40) if header_only[i] != out[i]]
        assert len(diff) == 1 and diff[0] < 8


# -- ImpairedLink ----------------------------------------------------------------------------


async def test_impaired_link_delay_both_directions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    async with impair_link(a, delay=0.2) as ia:
        assert isinstance(ia, Link)
        assert ia.mtu == 1500
        t0 = trio.current_time()
        await ia.send(numbered(A, B, 1))
        assert number(await b.receive()) == 1
        assert trio.current_time() == t0 + 0.2
        t1 = trio.current_time()
        await b.send(numbered(B, A, 2))
        assert number(await ia.receive()) == 2
        assert trio.current_time() == t1 + 0.2
        st = ia.stats()
        assert st["send"]["sent"] == st["send"]["delivered"] == 1
        assert st["receive"]["sent"] == st["receive"]["delivered"] == 1


async def test_impaired_link_per_direction(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    async with impair_link(
        a, seed=3, send=Impairments(loss=1.0), receive=Impairments(delay=1.0)
    ) as ia:
        for i in range(10):
            await ia.send(numbered(A, B, i))
        await trio.sleep(1)
        assert b.pending() == 0
        assert ia.stats()["send"]["dropped_loss"] == 10
        t0 = trio.current_time()
        await b.send_batch([numbered(B, A, 1), numbered(B, A, 2)])
        assert [number(p) for p in await ia.receive_batch()] == [1, 2]
        assert trio.current_time() == t0 + 1.0
        # change at runtime
        ia.impair("send", loss=0.0)
        ia.impair(delay=0.0)
        assert ia.impairments("receive").delay == 0.0
        await ia.send(numbered(A, B, 3))
        assert number(await b.receive()) == 3
        with pytest.raises(TypeError):
            ia.impair(whatever=1)


async def test_impaired_link_rate_and_loss_statistics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B, rx_queue=10_000)
    async with impair_link(a, seed=11, send=Impairments(rate=100_000, loss=0.25)) as ia:
        t0 = trio.current_time()
        await ia.send_batch([numbered(A, B, i, size=1000) for i in range(400)])
        await trio.sleep(3.99 - (trio.current_time() - t0))
        early = b.pending()
        await trio.sleep(1)
        got = b.pending()
    # 400 packets of 1000 B at 100 kB/s take 4 s on the wire, lost or not
    assert early < got
    assert 250 < got < 350
    assert ia.stats()["send"]["dropped_loss"] == 400 - got


def test_impaired_link_deterministic() -> None:
    async def one(seed: int) -> list[tuple[float, int]]:
        net = VirtualNetwork()
        a, b = net.attach(A), net.attach(B)
        out: list[tuple[float, int]] = []
        async with impair_link(
            a, seed=seed, delay=0.01, jitter=0.01, loss=0.1, reorder=0.1, duplicate=0.1
        ) as ia:
            for i in range(300):
                await ia.send(numbered(A, B, i))
                await trio.sleep(0.001)
            await trio.sleep(1)
            out = [(trio.current_time(), number(p)) for p in await b.receive_batch()]
        return out

    def run(seed: int) -> list[tuple[float, int]]:
        return trio.run(one, seed, clock=trio.testing.MockClock(autojump_threshold=0))

    assert run(5) == run(5)
    assert run(5) != run(6)


async def test_impaired_link_close(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a = net.attach(A)
    net.attach(B)
    async with impair_link(a) as ia:
        result: list[BaseException] = []

        async def receiver() -> None:
            try:
                await ia.receive()
            except trio.ClosedResourceError as exc:
                result.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.sleep(1)
            await ia.aclose()
        assert len(result) == 1
        with pytest.raises(trio.ClosedResourceError):
            await ia.send(numbered(A, B, 1))


async def test_impaired_link_inner_closed(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a = net.attach(A)
    async with impair_link(a) as ia:
        await trio.sleep(1)
        a.close()
        with pytest.raises(trio.ClosedResourceError):
            await ia.receive()


async def test_run_twice_is_an_error(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    ia = ImpairedLink(net.attach(A), delay=0.1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ia.run)
        await trio.sleep(0.1)
        with pytest.raises(RuntimeError):
            await ia.run()
        nursery.cancel_scope.cancel()
