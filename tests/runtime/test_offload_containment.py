"""Checksum offload on a VirtualNetwork, and containment of engine errors.

* Offload (see ``trio_tcp6.links.base.Link``): stacks send TCP packets with a partial
  checksum while ``link.checksum_offload`` is True; the network completes them for
  every capture, every plain receiver and before corrupting one; corruption anywhere
  turns offload off for good.
* Containment: an unexpected exception inside the engine aborts only its connection.
* A link's ``send_nowait`` may refuse a packet: the flow's tasks send it (in order).
"""

from __future__ import annotations

import ipaddress
import logging

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.links.base import LinkCapabilities
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.ipv6 import PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.pcap import read_pcap
from trio_tcp6.wire.tcp import (
    ACK,
    TCPSegment,
    build_tcp,
    build_tcp_header_partial,
    complete_tcp_checksum,
    partial_tcp_checksum,
    verify_tcp_checksum,
)

from .helpers import A, B, connect, receive_exactly, two_stacks

C = "2001:db8::c"
PA = ipaddress.IPv6Address(A).packed
PC = ipaddress.IPv6Address(C).packed


def partial_packet(payload: bytes = b"hello") -> bytes:
    seg = TCPSegment(40000, 81, 1, 0, ACK, 65535, payload, timestamps=(1, 2))
    header = build_tcp_header_partial(seg, PC, PA)
    return build_ipv6_header(PC, PA, PROTO_TCP, len(header) + len(payload)) + header + payload


def test_partial_checksum_helpers() -> None:
    packet = partial_packet(b"odd length!")
    assert int.from_bytes(packet[56:58], "big") == partial_tcp_checksum(packet)
    assert not verify_tcp_checksum(packet[40:], PC, PA)
    done = complete_tcp_checksum(packet)
    assert verify_tcp_checksum(done[40:], PC, PA)
    seg = TCPSegment(40000, 81, 1, 0, ACK, 65535, b"odd length!", timestamps=(1, 2))
    assert done[40:] == build_tcp(seg, PC, PA)


async def test_plain_receivers_get_complete_checksums(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    raw, dst = net.attach(C), net.attach(A)
    assert raw.checksum_offload and dst.checksum_offload
    for _ in range(3):
        await raw.send(partial_packet(), partial_checksum=True)
    assert [p for p, _ in await dst.receive_batch_offload()] == [partial_packet()] * 3
    await raw.send_batch([partial_packet()] * 2, partial_checksum=True)
    raw.send_nowait(partial_packet(), partial_checksum=True)
    assert verify_tcp_checksum((await dst.receive())[40:], PC, PA)
    assert dst.receive_nowait() is not None
    (packet,) = await dst.receive_batch()
    assert verify_tcp_checksum(packet[40:], PC, PA)
    # A packet sent without the mark is handed up unmarked (and verified by stacks).
    await raw.send(partial_packet())
    assert await dst.receive_batch_offload() == [(partial_packet(), False)]


async def test_stacks_use_offload_and_captures_show_real_checksums(
    autojump_clock: trio.testing.MockClock, tmp_path: object
) -> None:
    import pathlib

    pcap = pathlib.Path(str(tmp_path)) / "offload.pcap"
    async with two_stacks(delay=0.001) as (net, a, b):
        with net.capture(pcap):
            client, server = await connect(a, b)
            payload = bytes(range(256)) * 300
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.send_all, payload)
                assert await receive_exactly(server, len(payload)) == payload
            await client.aclose()
            await server.aclose()
    records = read_pcap(pcap)
    assert len(records) > 10
    for _ts, packet in records:
        pkt = parse_ipv6(packet)
        assert verify_tcp_checksum(pkt.payload, pkt.src, pkt.dst)
    assert a.stats()["drop_bad_checksum"] == 0 and b.stats()["drop_bad_checksum"] == 0


async def test_corruption_turns_offload_off_for_good(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    raw, dst = net.attach(C), net.attach(A)
    assert dst.checksum_offload
    net.impair(src=C, dst=A, corrupt=1.0)
    assert not dst.checksum_offload and not raw.checksum_offload
    # A partial packet on a corrupting path is completed first, then corrupted: the
    # receiver gets it unmarked and its checksum fails.
    await raw.send(partial_packet(), partial_checksum=True)
    ((packet, partial),) = await dst.receive_batch_offload()
    assert not partial
    assert not verify_tcp_checksum(packet[40:], PC, PA)
    net.impair(src=C, dst=A, corrupt=0.0)
    net.clear_impairments()
    assert not dst.checksum_offload  # sticky
    assert not tcp6.VirtualNetwork(corrupt=0.01).attach(A).checksum_offload
    assert not tcp6.VirtualNetwork(checksum_offload=False).attach(A).checksum_offload


async def test_without_offload_stacks_checksum_everything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(checksum_offload=False) as (net, a, b):
        assert not net.attach(C).checksum_offload
        client, server = await connect(a, b)
        await client.send_all(b"x" * 5000)
        assert await receive_exactly(server, 5000) == b"x" * 5000
        await client.aclose()
        await server.aclose()


async def test_engine_error_aborts_only_its_connection(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with two_stacks(delay=0.001) as (_net, a, b):
        c1, s1 = await connect(a, b, 80)
        c2, s2 = await connect(a, b, 81)
        broken = s1._conn
        original = Connection.on_segment
        original_burst = Connection.on_segments

        def on_segment(self: Connection, seg: TCPSegment, now: float) -> None:
            if self is broken:
                raise RuntimeError("boom")
            original(self, seg, now)

        def on_segments(self: Connection, segs: list[TCPSegment], now: float) -> None:
            # (The receiver's entry point; compiled, it calls on_segment directly.)
            if self is broken:
                raise RuntimeError("boom")
            original_burst(self, segs, now)

        monkeypatch.setattr(Connection, "on_segment", on_segment)
        monkeypatch.setattr(Connection, "on_segments", on_segments)
        with caplog.at_level(logging.ERROR, logger="trio_tcp6"):
            await c1.send_all(b"trigger")
            with trio.fail_after(5):
                with pytest.raises(trio.BrokenResourceError, match="internal error"):
                    await s1.receive_some()
            match await s1.read():
                case tcp6.Error(tcp6.Unknown() as err):
                    assert "internal error" in str(err)
                case other:
                    pytest.fail(f"unexpected {other!r}")
            # The peer was reset (the connection was synchronized).
            with trio.fail_after(5):
                with pytest.raises(trio.BrokenResourceError):
                    while await c1.receive_some():
                        pass
        assert b.stats()["engine_errors"] == 1
        assert any("boom" in (r.exc_text or "") for r in caplog.records)
        # The other connection never noticed.
        await c2.send_all(b"still fine")
        assert await receive_exactly(s2, 10) == b"still fine"
        await s2.send_all(b"and back")
        assert await receive_exactly(c2, 8) == b"and back"
        for f in (c1, s1, c2, s2):
            await f.aclose()
        b._counters["engine_errors"] = 0  # expected here: two_stacks checks for none


async def test_packet_processing_bug_drops_only_the_packet(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with two_stacks(delay=0.001) as (_net, a, b):
        listener = await b.open_tcp_listener(80)
        original = Connection.accept
        calls = 0

        def accept(*args: object, **kwargs: object) -> Connection:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("accept bug")
            return original(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Connection, "accept", staticmethod(accept))
        with caplog.at_level(logging.ERROR, logger="trio_tcp6"):
            # The first SYN hits the bug and is dropped; the retransmitted SYN works.
            client = await a.open_tcp_stream(B, 80)
            server = await listener.accept()
        assert b.stats()["engine_errors"] == 1
        await client.send_all(b"ok")
        assert await receive_exactly(server, 2) == b"ok"
        for f in (client, server, listener):
            await f.aclose()
        b._counters["engine_errors"] = 0


class SometimesFullLink:
    """A link whose ``send_nowait`` refuses every third packet (``trio.WouldBlock``)
    and whose ``send`` then waits a little: the stack must fall back to its tasks
    and still deliver everything."""

    def __init__(self, inner: tcp6.VirtualLink) -> None:
        self._inner = inner
        self.calls = 0
        self.refused = 0

    @property
    def mtu(self) -> int:
        return self._inner.mtu

    @property
    def capabilities(self) -> LinkCapabilities:
        return LinkCapabilities(send_nowait=self.send_nowait)

    def send_nowait(self, packet: bytes) -> None:
        self.calls += 1
        if self.calls % 3 == 0:
            self.refused += 1
            raise trio.WouldBlock
        self._inner.send_nowait(packet)

    async def send(self, packet: bytes) -> None:
        await trio.sleep(0.0005)
        await self._inner.send(packet)

    async def receive(self) -> bytes:
        return await self._inner.receive()


async def test_send_nowait_may_refuse(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork(delay=0.001)
    link = SometimesFullLink(net.attach(A))
    async with (
        tcp6.open_stack(link, A) as a,  # type: ignore[arg-type]
        tcp6.open_stack(net.attach(B), B) as b,
    ):
        client, server = await connect(a, b)
        up = bytes(range(256)) * 800
        down = bytes(range(255, -1, -1)) * 600
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, up)
            nursery.start_soon(server.send_all, down)
            assert await receive_exactly(server, len(up)) == up
            assert await receive_exactly(client, len(down)) == down
        assert link.refused > 0
        assert a.stats()["engine_errors"] == 0
        await client.aclose()
        await server.aclose()
