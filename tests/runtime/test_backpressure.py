"""Many flows between two stacks through a VirtualNetwork whose inbound queues are
small: a full queue pushes back on the senders (the stack's ``send_nowait`` gets
``trio.WouldBlock`` and its tasks wait in ``send_batch``), so no packet is lost to
the simulator and the flows share the path. The queue only fills when packets wait in
it, so these runs turn inline delivery off (with it, the stacks' inputs take every
packet in the sender's call); the last test runs the same flows with it on."""

from __future__ import annotations

import trio
import trio.testing

import trio_tcp6 as tcp6

from .helpers import two_stacks

FLOWS = 20
EACH = 1_000_000


def jain(xs: list[int]) -> float:
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


async def run_flows(
    backpressure: bool, inline: bool = False
) -> tuple[dict[str, int], dict[str, int], list[int]]:
    config = tcp6.TCPConfig(max_connections=FLOWS + 8)
    async with two_stacks(
        config, rx_queue=64, backpressure=backpressure, inline_delivery=inline
    ) as (net, a, b):
        listener = await b.open_tcp_listener(80, backlog=FLOWS)
        pairs = []
        for _ in range(FLOWS):
            client = await a.open_tcp_stream(b.address, 80)
            pairs.append((client, await listener.accept()))
        got = [0] * FLOWS
        at_half: list[int] = []

        async def write(stream: trio.abc.Stream) -> None:
            await stream.send_all(bytes(EACH))
            await stream.send_eof()  # type: ignore[attr-defined]

        async def read(i: int, stream: trio.abc.ReceiveStream) -> None:
            while data := await stream.receive_some(65536):
                got[i] += len(data)
                if not at_half and sum(got) >= FLOWS * EACH // 2:
                    at_half.extend(got)

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for i, (client, server) in enumerate(pairs):
                    nursery.start_soon(write, client)
                    nursery.start_soon(read, i, server)
        assert got == [EACH] * FLOWS
        return net.stats(), a.stats(), at_half


async def test_backpressure_instead_of_inbound_queue_drops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, a, at_half = await run_flows(backpressure=True)
    assert net["dropped_rx_overflow"] == 0
    assert net["sent"] == net["delivered"]  # not one packet lost anywhere
    assert not {k: v for k, v in a.items() if k.startswith("drop_") and v}
    # (Retransmissions may still happen: tail loss probes fire while ACKs queue.)
    # Halfway through, no flow starved. Measured over runs (trio orders ready tasks
    # at random, so the figures move a little): Jain 0.951-0.965, smallest share
    # 0.70-0.84 of the fair one; without backpressure 0.54-0.57 and 0.02-0.04.
    fair = sum(at_half) / FLOWS
    assert jain(at_half) >= 0.9, at_half
    assert min(at_half) >= fair / 2, at_half


async def test_the_same_flows_lose_packets_without_backpressure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The control: the same run with ``backpressure=False`` overflows the queue."""
    net, a, at_half = await run_flows(backpressure=False)
    assert net["dropped_rx_overflow"] > 0
    assert a["retransmits"] > 0
    assert min(at_half) < sum(at_half) / FLOWS / 2  # some flow starved


async def test_inline_delivery_shares_the_path_without_the_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same flows with inline delivery (the default): the inbound queue never
    fills, so nothing overflows even without backpressure, and no flow starves."""
    net, a, at_half = await run_flows(backpressure=False, inline=True)
    assert net["dropped_rx_overflow"] == 0
    assert net["sent"] == net["delivered"]
    assert not {k: v for k, v in a.items() if k.startswith("drop_") and v}
    fair = sum(at_half) / FLOWS
    assert jain(at_half) >= 0.9, at_half
    assert min(at_half) >= fair / 2, at_half
