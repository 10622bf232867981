"""Bulk transfers in both directions at once over a bad path stay intact (virtual time)."""

from __future__ import annotations

import hashlib
import random

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow

from .helpers import connect, two_stacks

SIZE = 2 << 20


async def _send(flow: DirectFlow, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    view = memoryview(data)
    while view:
        n = rng.randint(1, 65536)
        await flow.send_all(view[:n])
        view = view[n:]
    await flow.send_eof()


async def _digest(flow: DirectFlow, seed: int) -> tuple[int, str]:
    rng = random.Random(seed)
    h = hashlib.sha256()
    total = 0
    while chunk := await flow.receive_some(rng.randint(1, 65536)):
        h.update(chunk)
        total += len(chunk)
    return total, h.hexdigest()


@pytest.mark.parametrize(
    ("seed", "sack"), [(1, True), (2, True), (3, True), (4, False), (5, False)]
)
async def test_both_directions_over_an_impaired_path(
    autojump_clock: trio.testing.MockClock, seed: int, sack: bool
) -> None:
    rng = random.Random(seed)
    up = rng.randbytes(SIZE)
    down = rng.randbytes(SIZE + 12345)
    async with two_stacks(
        tcp6.TCPConfig(sack=sack),
        seed=seed,
        delay=0.01,
        jitter=0.002,
        loss=0.05,
        reorder=0.05,
        duplicate=0.05,
        corrupt=0.05,
    ) as (net, a, b):
        # Establish over the impaired path too (SYNs get lost and retried).
        client, server = await connect(a, b)
        results: dict[str, tuple[int, str]] = {}

        async def receive(name: str, flow: DirectFlow, seed: int) -> None:
            results[name] = await _digest(flow, seed)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_send, client, up, seed)
            nursery.start_soon(_send, server, down, seed + 100)
            nursery.start_soon(receive, "at server", server, seed + 200)
            nursery.start_soon(receive, "at client", client, seed + 300)
        assert results["at server"] == (len(up), hashlib.sha256(up).hexdigest())
        assert results["at client"] == (len(down), hashlib.sha256(down).hexdigest())
        # The impairments did happen, and the stacks noticed.
        net_stats = net.stats()
        assert net_stats["corrupted"] > 0 and net_stats["dropped_loss"] > 0
        assert net_stats["dropped_mtu"] == 0  # every packet fits the link
        assert a.stats()["drop_bad_checksum"] + b.stats()["drop_bad_checksum"] > 0
        assert a.stats()["retransmits"] > 0 and b.stats()["retransmits"] > 0
        await client.aclose()
        await server.aclose()
