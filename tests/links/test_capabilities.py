"""Link capabilities: the typed record a link declares and the stack reads once."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.links import ImpairedLink
from trio_tcp6.links.base import ChecksumOffload, LinkCapabilities, capabilities_of
from trio_tcp6.wire.ipv6 import parse_ipv6
from trio_tcp6.wire.tcp import verify_tcp_checksum

A = "2001:db8::a"
B = "2001:db8::b"


class PlainLink:
    """Only what the Link protocol requires, around a VirtualLink."""

    def __init__(self, inner: tcp6.VirtualLink) -> None:
        self.inner = inner
        self.sends = 0
        self.receives = 0

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    async def send(self, packet: bytes | bytearray | memoryview) -> None:
        self.sends += 1
        await self.inner.send(packet)

    async def receive(self) -> bytes:
        self.receives += 1
        return await self.inner.receive()


class BatchLink(PlainLink):
    """Declares its batch forms; counts how the stack uses them."""

    def __init__(self, inner: tcp6.VirtualLink) -> None:
        super().__init__(inner)
        self.batches_out = 0
        self.batches_in = 0

    @property
    def capabilities(self) -> LinkCapabilities:
        return LinkCapabilities(receive_batch=self.receive_batch, send_batch=self.send_batch)

    async def send_batch(self, packets: list[bytes]) -> None:
        self.batches_out += 1
        await self.inner.send_batch(packets)

    async def receive_batch(self) -> list[bytes]:
        self.batches_in += 1
        return await self.inner.receive_batch()


async def _exchange(link: PlainLink, net: tcp6.VirtualNetwork) -> None:
    async with (
        tcp6.open_stack(link, A) as a,  # type: ignore[arg-type]
        tcp6.open_stack(net.attach(B), B) as b,
    ):
        listener = await b.open_tcp_listener(80)
        client = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        await client.send_all(b"x" * 5000)
        got = b""
        while len(got) < 5000:
            got += await server.receive_some()
        await server.send_all(b"ok")
        assert await client.receive_some() == b"ok"
        assert a.stats()["engine_errors"] == 0


async def test_a_plain_link_offers_nothing(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    link = PlainLink(net.attach(A))
    assert capabilities_of(link) == LinkCapabilities()
    await _exchange(link, net)
    assert link.sends > 0 and link.receives > 0


async def test_the_stack_uses_declared_batch_forms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    link = BatchLink(net.attach(A))
    await _exchange(link, net)
    assert link.batches_out > 0 and link.batches_in > 0
    assert link.sends == 0 and link.receives == 0


def test_offload_needs_the_partial_twin_of_each_send_form() -> None:
    net = tcp6.VirtualNetwork()
    link = net.attach(A)
    offload = ChecksumOffload(
        active=lambda: True, send=link.send, receive_batch=link.receive_batch_offload
    )
    with pytest.raises(ValueError, match="send_nowait"):
        LinkCapabilities(send_nowait=link.send_nowait, checksum_offload=offload)
    with pytest.raises(ValueError, match="send_batch"):
        LinkCapabilities(send_batch=link.send_batch, checksum_offload=offload)
    LinkCapabilities(checksum_offload=offload)  # send alone is enough


def test_declarations() -> None:
    net = tcp6.VirtualNetwork()
    caps = net.attach(A).capabilities
    assert caps.receive_batch and caps.send_batch and caps.send_nowait
    assert caps.checksum_offload is not None and caps.gso_max == 0
    assert caps.checksum_offload.active()
    ilink = ImpairedLink(net.attach(B))
    icaps = capabilities_of(ilink)
    assert icaps.receive_batch and icaps.send_batch
    assert icaps.send_nowait is None and icaps.checksum_offload is None


async def test_offload_is_asked_live(autojump_clock: trio.testing.MockClock) -> None:
    """The stack reads the record once, but asks ``active()`` per batch: once
    corruption is configured, it sends full checksums on the same connection."""
    net = tcp6.VirtualNetwork()
    async with (
        tcp6.open_stack(net.attach(A), A) as a,
        tcp6.open_stack(net.attach(B), B) as b,
    ):
        listener = await b.open_tcp_listener(80)
        client = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        sent: list[bytes] = []
        real_send = net.route  # record what A's link hands the network

        def spy(
            link: tcp6.VirtualLink, packet: bytes, partial: bool = False, queue: bool = True
        ) -> tcp6.VirtualLink | None:
            if link.address == a.address:
                sent.append(bytes(packet) if not partial else b"partial")
            return real_send(link, packet, partial, queue)

        net.route = spy  # type: ignore[assignment]
        await client.send_all(b"before")
        assert await server.receive_some() == b"before"
        assert b"partial" in sent
        sent.clear()
        net.impair(corrupt=1e-9)  # any corruption: offload off for good
        await client.send_all(b"after")
        assert await server.receive_some() == b"after"
        assert sent and b"partial" not in sent
        for packet in sent:
            pkt = parse_ipv6(packet)
            assert verify_tcp_checksum(pkt.payload, pkt.src, pkt.dst)
