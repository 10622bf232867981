"""The direct stack on a link that offers inline input (a VirtualNetwork's default):
its IPv6 input runs in the sender's call, answers at once, is contained like the
reader's, and is withdrawn when the stack stops; connections behave the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import ipinput
from trio_tcp6.runtime.ipinput import IPv6Input
from trio_tcp6.wire.ipv6 import parse_ipv6
from trio_tcp6.wire.pcap import read_pcap
from trio_tcp6.wire.tcp import ACK, FIN, SYN, TCPSegment, parse_tcp

from .helpers import A, B, connect, receive_exactly
from .test_stack_hardening import PB, PC, C, tcp_packet, tcp_replies


async def test_a_syn_is_answered_before_send_nowait_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(B), B) as stack:
        listener = await stack.open_tcp_listener(80)
        await trio.testing.wait_all_tasks_blocked()  # (the reader registers it)
        before = stack.stats()["segments_in"]
        raw.send_nowait(tcp_packet(TCPSegment(40000, 80, 1000, 0, SYN, 65535), PC, PB))
        # No checkpoint since: the stack's input ran in this call and sent its answer.
        assert stack.stats()["segments_in"] == before + 1
        (syn_ack,) = tcp_replies(raw)
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == 1001
        await listener.aclose()


async def test_without_inline_delivery_the_reader_takes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork(inline_delivery=False)
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(B), B) as stack:
        listener = await stack.open_tcp_listener(80)
        await trio.testing.wait_all_tasks_blocked()  # (the reader registers it)
        before = stack.stats()["segments_in"]
        raw.send_nowait(tcp_packet(TCPSegment(40000, 80, 1000, 0, SYN, 65535), PC, PB))
        assert stack.stats()["segments_in"] == before
        assert tcp_replies(raw) == []
        await trio.testing.wait_all_tasks_blocked()
        assert stack.stats()["segments_in"] == before + 1
        (syn_ack,) = tcp_replies(raw)
        assert syn_ack.flags == SYN | ACK
        await listener.aclose()


async def test_the_input_is_registered_only_while_the_stack_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    link = net.attach(B)
    assert link.inline is None
    async with tcp6.open_stack(link, B):
        await trio.testing.wait_all_tasks_blocked()
        assert link.inline is not None
    assert link.inline is None


async def test_a_failing_input_is_contained(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug hit by one inline packet drops that packet, is counted, and neither
    raises into the sender nor stops the stack."""
    if not str(ipinput.__file__).endswith(".py"):
        pytest.skip("patches a class's method; this build compiled the IPv6 input")
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    real = IPv6Input.ip_input
    poisoned = tcp_packet(TCPSegment(40000, 80, 1000, 0, SYN, 65535), PC, PB)

    def ip_input(self: IPv6Input, data: bytes, now: float, partial: bool = False) -> None:
        if data == poisoned:
            raise RuntimeError("bug")
        real(self, data, now, partial)

    monkeypatch.setattr(IPv6Input, "ip_input", ip_input)
    async with tcp6.open_stack(net.attach(A), A) as sa, tcp6.open_stack(net.attach(B), B) as sb:
        listener = await sb.open_tcp_listener(80)
        await trio.testing.wait_all_tasks_blocked()
        raw.send_nowait(poisoned)  # does not raise
        assert sb.stats()["engine_errors"] == 1
        assert tcp_replies(raw) == []
        await listener.aclose()
        client, server = await connect(sa, sb)
        await client.send_all(b"still works")
        assert await receive_exactly(server, 11) == b"still works"
        await client.aclose()
        await server.aclose()


def data_segments(pcap: Path, server: bool) -> list[tuple[int, int, int]]:
    """(offset, length, flags) of every segment the server (port 80), or the client,
    sent that carries data or a FIN; offsets from its ISN (ISNs follow the clock)."""
    out = []
    iss = None
    for _, packet in read_pcap(pcap):
        seg = parse_tcp(parse_ipv6(packet).payload)
        if (seg.src_port == 80) != server:
            continue
        if seg.flags & SYN:
            iss = seg.seq
        elif seg.payload or seg.flags & FIN:
            assert iss is not None
            out.append(((seg.seq - iss) % 2**32, len(seg.payload), seg.flags))
    return out


async def exchange(inline: bool, pcap: Path) -> tuple[bytes, dict[str, int], dict[str, int]]:
    """A seeded run: a request, a 200 kB answer, both closes (then the FIN handshake
    settles). Returns what the client read, both stacks' counters and the capture."""
    net = tcp6.VirtualNetwork(seed=7, inline_delivery=inline)
    with net.capture(pcap):
        async with (
            tcp6.open_stack(net.attach(A), A) as sa,
            tcp6.open_stack(net.attach(B), B) as sb,
        ):
            client, server = await connect(sa, sb)
            await client.send_all(b"GET")
            assert await receive_exactly(server, 3) == b"GET"
            await server.send_all(bytes(range(256)) * 800)
            await server.send_eof()
            got = await receive_exactly(client, 204800)
            assert await client.receive_some() == b""
            await client.aclose()
            await server.aclose()
            await trio.sleep(1)
            stats = sa.stats(), sb.stats()
    return got, *stats


async def test_connections_behave_the_same_with_and_without_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Inline input changes when a receiver's task runs, so its ACKs may cover a
    segment more or less (the capture differs there); what each side sends of its
    data, the data itself and every counter are the same."""
    pcap_on, pcap_off = tmp_path / "on.pcap", tmp_path / "off.pcap"
    got_on, client_on, server_on = await exchange(True, pcap_on)
    got_off, client_off, server_off = await exchange(False, pcap_off)
    assert got_on == got_off == bytes(range(256)) * 800
    assert client_on == client_off
    assert server_on == server_off
    assert data_segments(pcap_on, True) == data_segments(pcap_off, True)
    assert len(data_segments(pcap_on, True)) == 204800 // 1428 + 1
    assert data_segments(pcap_on, False) == data_segments(pcap_off, False)
