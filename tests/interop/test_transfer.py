"""Our stack against the Linux kernel's TCP over a TUN device: bulk transfers both
ways (trio style and mirage style), clean half-close, RST on close with unread data,
the same transfers with 2% loss each way, and Refused / Timeout against the kernel.

The kernel peer is ``kernel_peer.py`` (plain sockets) inside the test's namespace.
"""

from __future__ import annotations

import errno
import hashlib
import random

import pytest
import trio

import trio_tcp6 as tcp6
from tests.netns import NetNS

from .conftest import (
    kernel_peer,
    needs_kernel,
    receive_digest,
    send_pattern,
    tun_stack,
    wait_line,
)

BIG = 100_000_000
LOSSY = 100_000_000


def _digest(n: int, seed: int) -> str:
    return hashlib.sha256(random.Random(seed).randbytes(n)).hexdigest()


async def _trio_style(ns: NetNS, stack: tcp6.Stack, kernel: str, size: int) -> None:
    # kernel -> us: the kernel sends, shuts down its side, and waits for our EOF.
    peer = kernel_peer(ns, "listen", kernel, 5001, "source", str(size), "11")
    flow = await stack.open_tcp_stream(kernel, 5001)
    assert await receive_digest(flow) == (size, _digest(size, 11))
    await flow.send_eof()
    assert await wait_line(peer, "PEER_EOF") == "PEER_EOF 0"
    await wait_line(peer, "DONE")
    await flow.aclose()
    # us -> kernel
    data = random.Random(12).randbytes(size)
    peer = kernel_peer(ns, "listen", kernel, 5002, "sink")
    flow = await stack.open_tcp_stream(kernel, 5002)
    await send_pattern(flow, data)
    await flow.send_eof()
    assert await wait_line(peer, "RECEIVED", 120) == f"RECEIVED {size} {_digest(size, 12)}"
    assert await flow.receive_some() == b""  # the kernel closed after our EOF
    await flow.aclose()


async def _mirage_style(ns: NetNS, stack: tcp6.Stack, kernel: str, size: int) -> None:
    # Both directions at once on one connection, with read/write/close.
    peer = kernel_peer(ns, "listen", kernel, 5003, "both", str(size), "21")
    match await stack.create_connection((kernel, 5003)):
        case tcp6.Ok(flow):
            pass
        case other:
            raise AssertionError(other)
    data = random.Random(22).randbytes(size)
    h = hashlib.sha256()
    received = 0

    async def reader() -> None:
        nonlocal received
        while True:
            match await flow.read():
                case tcp6.Ok(chunk):
                    h.update(chunk)
                    received += len(chunk)
                case tcp6.Eof():
                    return
                case tcp6.Error(err):
                    raise AssertionError(tcp6.error_message(err))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        view = memoryview(data)
        for i in range(0, size, 1 << 18):
            assert await flow.write(view[i : i + (1 << 18)]) == tcp6.Ok(None)
        await flow.close()  # flush, FIN, and wait for the kernel's FIN
    assert (received, h.hexdigest()) == (size, _digest(size, 21))
    assert await wait_line(peer, "RECEIVED", 120) == f"RECEIVED {size} {_digest(size, 22)}"


@needs_kernel
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
async def test_bulk_both_ways(netns: NetNS, offload: bool) -> None:
    """100 MB each way, trio style, then 100 MB each way at once, mirage style."""
    async with tun_stack(netns, offload=offload) as t:
        await _trio_style(netns, t.stack, t.kernel, BIG)
        await _mirage_style(netns, t.stack, t.kernel, BIG)
        stats = t.stack.stats()
        assert stats["drop_bad_checksum"] == 0
        assert stats["drop_malformed"] == 0
        if offload:
            # The kernel really handed us TSO super-segments (longer than our MSS).
            assert t.tun.offload
            link = t.tun.stats()
            assert link["rx_gso"] > 0
            # We handed the kernel TSO super-segments too (the 100 MB we sent
            # arrived intact above), and trusted the checksums it vouched for.
            assert link["tx_gso"] > 0
            assert link["rx_csum_trusted"] > 0
            assert stats["segments_out"] < link["tx_packets"] * 2


@needs_kernel
async def test_bulk_with_two_percent_loss(netns: NetNS) -> None:
    """100 MB each way (trio style, then mirage style both at once) with 2% of the
    packets dropped in each direction on the TUN path."""
    async with tun_stack(netns, loss=0.02, seed=5) as t:
        await _trio_style(netns, t.stack, t.kernel, LOSSY)
        await _mirage_style(netns, t.stack, t.kernel, LOSSY)
        assert t.impaired is not None
        counters = t.impaired.stats()
        assert counters["send"]["dropped_loss"] > 100
        assert counters["receive"]["dropped_loss"] > 100
        assert t.stack.stats()["retransmits"] > 0


@needs_kernel
async def test_half_close_seen_by_the_kernel(netns: NetNS) -> None:
    """Our send_eof: the kernel's recv returns b"", and it can still send to us."""
    async with tun_stack(netns) as t:
        peer = kernel_peer(netns, "listen", t.kernel, 5010, "halfclose")
        flow = await t.stack.open_tcp_stream(t.kernel, 5010)
        await flow.send_all(b"x" * 100_000)
        await flow.send_eof()
        assert await wait_line(peer, "EOF") == "EOF 100000"
        got = b""
        while chunk := await flow.receive_some():
            got += chunk
        assert got == b"after-eof"
        await wait_line(peer, "DONE")
        await flow.aclose()


@needs_kernel
async def test_close_with_unread_data_resets_the_kernel(netns: NetNS) -> None:
    """aclose() with unread data sends RST (RFC 9293 §3.10.4, as Linux): the
    kernel's blocked recv fails with ECONNRESET."""
    async with tun_stack(netns) as t:
        peer = kernel_peer(netns, "listen", t.kernel, 5011, "reset", "5000")
        flow = await t.stack.open_tcp_stream(t.kernel, 5011)
        await wait_line(peer, "SENT")
        while flow.info().bytes_received < 5000:  # in our receive buffer, unread
            await trio.sleep(0.01)
        await flow.aclose()
        assert await wait_line(peer, "ERROR") == "ERROR ECONNRESET"


@needs_kernel
async def test_kernel_client_to_our_listener(netns: NetNS) -> None:
    """The kernel connects to us (passive open on our side), both directions."""
    async with tun_stack(netns) as t:
        size = 10_000_000
        listener = await t.stack.open_tcp_listener(7000)
        peer = kernel_peer(netns, "connect", t.ours, 7000, "both", str(size), "31")
        flow = await listener.accept()
        data = random.Random(32).randbytes(size)
        async with trio.open_nursery() as nursery:
            result: list[tuple[int, str]] = []

            async def reader() -> None:
                result.append(await receive_digest(flow))

            nursery.start_soon(reader)
            await send_pattern(flow, data)
            await flow.send_eof()
        assert result == [(size, _digest(size, 31))]
        assert await wait_line(peer, "RECEIVED") == f"RECEIVED {size} {_digest(size, 32)}"
        await flow.aclose()
        await listener.aclose()


@needs_kernel
async def test_refused_by_the_kernel(netns: NetNS) -> None:
    """Nobody listens on the kernel side: its RST fails the attempt as Refused."""
    async with tun_stack(netns) as t:
        with pytest.raises(tcp6.Refused) as excinfo:
            await t.stack.open_tcp_stream(t.kernel, 5099)
        assert excinfo.value.errno == errno.ECONNREFUSED
        assert await t.stack.create_connection((t.kernel, 5099)) == tcp6.Error(tcp6.Refused())


@needs_kernel
async def test_timeout_when_nothing_answers(netns: NetNS) -> None:
    """An address of the prefix that nobody has (the kernel, not a router, drops
    the SYNs silently), and a path cut with loss=1.0: Timeout."""
    config = tcp6.TCPConfig(syn_retries=2, initial_rto=0.2)
    # A tiny loss only to get the ImpairedLink whose loss is raised to 1.0 below.
    async with tun_stack(netns, config=config, loss=1e-9) as t:
        nobody = str(t.prefix[0xDEAD])
        with trio.fail_after(10):
            with pytest.raises(tcp6.Timeout) as excinfo:
                await t.stack.open_tcp_stream(nobody, 80)
        assert excinfo.value.errno == errno.ETIMEDOUT
        # Cut the path both ways: the kernel's listener never sees our SYN.
        assert t.impaired is not None
        t.impaired.impair(loss=1.0)
        with trio.fail_after(10):
            result = await t.stack.create_connection((t.kernel, 22))
        assert result == tcp6.Error(tcp6.Timeout())
