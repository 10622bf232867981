"""Runtime checks from the engine audit: the stack's side of RFC 9293 rules that the
engine alone cannot show (a passive SYN-RECEIVED reset back to LISTEN, RFC 6191
TIME-WAIT reuse, text on a SYN), driven with raw segments in virtual time."""

from __future__ import annotations

import ipaddress

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectStack
from trio_tcp6.tcp.events import State
from trio_tcp6.wire.ipv6 import PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import ACK, FIN, RST, SYN, TCPSegment, build_tcp, parse_tcp

from .helpers import A

C = "2001:db8::c"
PA = ipaddress.IPv6Address(A).packed
PC = ipaddress.IPv6Address(C).packed
CPORT = 40000
MASK = 0xFFFFFFFF


def packet(seg: TCPSegment) -> bytes:
    body = build_tcp(seg, PC, PA)
    return build_ipv6_header(PC, PA, PROTO_TCP, len(body)) + body


async def next_tcp(link: tcp6.Link, timeout: float = 5.0) -> TCPSegment:
    with trio.fail_after(timeout):
        pkt = parse_ipv6(await link.receive())
    assert pkt.next_header == PROTO_TCP
    return parse_tcp(pkt.payload)


async def nothing_arrives(link: tcp6.Link, wait: float = 5.0) -> None:
    with trio.move_on_after(wait):
        data = await link.receive()
        pytest.fail(f"unexpected packet {parse_tcp(parse_ipv6(data).payload)!r}")


def seg(seq: int, ack: int, flags: int, payload: bytes = b"", **kw: object) -> TCPSegment:
    return TCPSegment(CPORT, 80, seq & MASK, ack & MASK, flags, 65535, payload, **kw)  # type: ignore[arg-type]


async def test_rst_in_syn_received_returns_a_passive_open_to_listen(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9293 §3.10.7.4 (second, SYN-RECEIVED), MUST-11: a RST to a passively
    opened connection drops the half-open TCB (no reply, nothing for accept()), and
    the listener goes on: the same 4-tuple can connect again at once."""
    config = tcp6.TCPConfig(timestamps=False)
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        listener = await a.open_tcp_listener(80)
        await raw.send(packet(seg(1000, 0, SYN, mss=1440)))
        syn_ack = await next_tcp(raw)
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == 1001
        assert listener.half_open == 1 and a.stats()["flows_open"] == 1
        await raw.send(packet(seg(1001, 0, RST)))
        await nothing_arrives(raw, 10.0)  # no reply, no SYN,ACK retransmission
        assert listener.half_open == 0 and listener.queued == 0
        assert a.stats()["flows_open"] == 0
        # Back in LISTEN: the same SYN opens a connection afresh.
        await raw.send(packet(seg(1000, 0, SYN, mss=1440)))
        syn_ack = await next_tcp(raw)
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == 1001
        await raw.send(packet(seg(1001, syn_ack.seq + 1, ACK, b"again")))
        with trio.fail_after(5):
            flow = await listener.accept()
        assert await flow.receive_some() == b"again"


async def test_text_on_a_syn_reaches_the_application(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9293 §3.10.7.2 (LISTEN, third): text on a SYN is queued and delivered
    once the connection is established."""
    config = tcp6.TCPConfig(timestamps=False, delayed_ack=None)
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        listener = await a.open_tcp_listener(80)
        await raw.send(packet(seg(1000, 0, SYN, b"early", mss=1440)))
        syn_ack = await next_tcp(raw)
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == 1001  # the SYN only
        await raw.send(packet(seg(1006, syn_ack.seq + 1, ACK)))
        ack = await next_tcp(raw)
        assert ack.flags == ACK and ack.ack == 1006
        with trio.fail_after(5):
            flow = await listener.accept()
        assert await flow.receive_some() == b"early"


async def _into_time_wait(
    a: DirectStack, raw: tcp6.Link, syn_kw: dict[str, object]
) -> tuple[tcp6.Flow, int, int]:
    """Open a connection from the raw peer to A:80 and close it with A as the active
    closer: A's end is in TIME-WAIT. Returns (flow, A's next seq, peer's next seq)."""
    listener = await a.open_tcp_listener(80)
    await raw.send(packet(seg(1000, 0, SYN, mss=1440, **syn_kw)))
    syn_ack = await next_tcp(raw)
    ts = syn_ack.timestamps
    ts_kw: dict[str, object] = {"timestamps": (200, ts[0])} if ts else {}
    await raw.send(packet(seg(1001, syn_ack.seq + 1, ACK, **ts_kw)))
    flow = await listener.accept()
    await flow.send_eof()
    fin = await next_tcp(raw)
    assert fin.flags & FIN
    ts_kw = {"timestamps": (300, fin.timestamps[0])} if fin.timestamps else {}
    await raw.send(packet(seg(1001, fin.seq + 1, ACK | FIN, **ts_kw)))
    last = await next_tcp(raw)
    assert last.flags == ACK and last.ack == 1002
    assert flow.state is State.TIME_WAIT
    return flow, fin.seq + 1, 1002


async def test_time_wait_reuse_by_sequence_number(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9293 §3.6.1 / RFC 1122 §4.2.2.13 (without timestamps, RFC 6191 §2): a SYN
    for a TIME-WAIT 4-tuple is accepted if its sequence number is above the old
    connection's; otherwise TIME-WAIT stays (the SYN draws a challenge ACK)."""
    config = tcp6.TCPConfig(timestamps=False, time_wait=60.0)
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        flow, _snd, rcv = await _into_time_wait(a, raw, {})
        # An old sequence number: not a new incarnation.
        await raw.send(packet(seg(rcv - 500, 0, SYN, mss=1440)))
        reply = await next_tcp(raw)
        assert reply.flags == ACK and reply.ack == rcv  # challenge ACK
        assert flow.state is State.TIME_WAIT
        # A higher one: TIME-WAIT gives way to the new connection.
        await raw.send(packet(seg(rcv + 100000, 0, SYN, mss=1440)))
        reply = await next_tcp(raw)
        assert reply.flags == SYN | ACK and reply.ack == (rcv + 100001) & MASK
        assert a.stats()["time_wait_reused"] == 1
        assert flow.state is State.CLOSED


async def test_time_wait_reuse_by_timestamp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 6191 §2: with timestamps, a newer TSval admits the SYN even with a lower
    sequence number, and an older TSval does not, whatever the sequence number."""
    config = tcp6.TCPConfig(time_wait=60.0)
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        flow, _snd, rcv = await _into_time_wait(a, raw, {"timestamps": (100, 0)})
        await raw.send(packet(seg(rcv + 100000, 0, SYN, mss=1440, timestamps=(250, 0))))
        reply = await next_tcp(raw)
        assert reply.flags & ACK and not reply.flags & SYN  # older TSval: stays
        assert flow.state is State.TIME_WAIT
        await raw.send(packet(seg(rcv - 500, 0, SYN, mss=1440, timestamps=(400, 0))))
        reply = await next_tcp(raw)
        assert reply.flags == SYN | ACK and reply.ack == (rcv - 499) & MASK
        assert a.stats()["time_wait_reused"] == 1


async def test_time_wait_reuse_picks_an_iss_above_the_old_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 1122 §4.2.2.13 / RFC 9293 §3.6.1: a connection that reuses a TIME-WAIT
    4-tuple starts with an ISS above the largest sequence number the old one used,
    so that old duplicates of ours cannot fall into the new connection's window."""
    config = tcp6.TCPConfig(timestamps=False, time_wait=60.0)
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        _flow, snd, rcv = await _into_time_wait(a, raw, {})
        await raw.send(packet(seg(rcv + 100000, 0, SYN, mss=1440)))
        reply = await next_tcp(raw)
        assert reply.flags == SYN | ACK
        assert 0 < (reply.seq - snd) & MASK < 1 << 31
