"""TIME-WAIT outside the connection limit (issue 9, item 6).

A connection the server closes first leaves the server in TIME-WAIT for 2*MSL. If
those count against ``max_connections``, ordinary HTTP/1.0-style load (the server
closes every connection) locks out every new client once ``max_connections``
connections closed within 2*MSL. The stack keeps them in their own bounded table
(``TCPConfig.max_time_wait``; when full the oldest entry is recycled, counted as
``time_wait_recycled``), answers what arrives for them without a task per entry,
and frees them after 2*MSL. Everything runs in virtual time over a VirtualNetwork,
the raw-segment tests with a bare link playing the peer.
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import tracemalloc

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow, DirectStack
from trio_tcp6.runtime import stack as stack_module
from trio_tcp6.tcp.events import State
from trio_tcp6.tcp.ports import EphemeralPorts
from trio_tcp6.wire.ipv6 import PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import ACK, FIN, RST, SYN, TCPSegment, build_tcp, parse_tcp

from .helpers import A, B, two_stacks

C = "2001:db8::c"
PA = ipaddress.IPv6Address(A).packed
PC = ipaddress.IPv6Address(C).packed
CPORT = 40000
MASK = 0xFFFFFFFF
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"


# -- an HTTP/1.0-style server that closes first -------------------------------------------
async def serve_and_close(listener: tcp6.Listener) -> None:
    """Answer every request and close first (the server's end goes to TIME-WAIT)."""
    while True:
        flow = await listener.accept()
        assert await flow.receive_some() == REQUEST
        await flow.send_all(RESPONSE)
        await flow.aclose()


async def one_request(client: DirectStack, server: DirectStack) -> None:
    """One client connection: request, the response until EOF, close."""
    with trio.fail_after(5):  # a SYN dropped by a full stack is retried only after 1 s
        flow = await client.open_tcp_stream(server.address, 80)
        await flow.send_all(REQUEST)
        response = b""
        while chunk := await flow.receive_some():
            response += chunk
        assert response == RESPONSE
        await flow.aclose()


async def test_server_closed_connections_do_not_lock_out_new_clients(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1,000 sequential connections that the server closes first, against a server
    with ``max_connections=64``: all succeed at once (their TIME-WAIT does not count
    against the limit), and the TIME-WAIT table stays within its bound."""
    server_config = tcp6.TCPConfig(max_connections=64)
    async with two_stacks(tcp6.TCPConfig(), server_config) as (_net, client, server):
        listener = await server.open_tcp_listener(80)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_and_close, listener)
            for _ in range(1000):
                await one_request(client, server)
            nursery.cancel_scope.cancel()
        stats = server.stats()
        assert stats["flows_open"] == 0
        assert stats["time_wait"] <= server_config.max_time_wait
        assert stats.get("drop_max_connections", 0) == 0
        assert stats["passive_opens"] == 1000
        # Well within 2*MSL: every one of them is still in TIME-WAIT.
        assert trio.current_time() < server_config.time_wait_duration
        assert stats["time_wait"] == 1000 and stats["time_wait_recycled"] == 0


async def test_a_full_time_wait_table_recycles_its_oldest_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With ``max_time_wait=100``, 300 server-closed connections leave exactly 100
    entries (the newest) and count 200 recycled."""
    server_config = tcp6.TCPConfig(max_connections=64, max_time_wait=100)
    async with two_stacks(tcp6.TCPConfig(), server_config) as (_net, client, server):
        listener = await server.open_tcp_listener(80)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_and_close, listener)
            for _ in range(300):
                await one_request(client, server)
                assert server.stats()["time_wait"] <= 100
            nursery.cancel_scope.cancel()
        stats = server.stats()
        assert stats["time_wait"] == 100
        assert stats["time_wait_recycled"] == 200
        assert stats.get("drop_max_connections", 0) == 0


async def test_no_time_wait_at_all_with_a_zero_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``max_time_wait=0``: a connection entering TIME-WAIT is recycled at once."""
    server_config = tcp6.TCPConfig(max_time_wait=0)
    async with two_stacks(tcp6.TCPConfig(), server_config) as (_net, client, server):
        listener = await server.open_tcp_listener(80)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_and_close, listener)
            for _ in range(3):
                await one_request(client, server)
            nursery.cancel_scope.cancel()
        stats = server.stats()
        assert stats["time_wait"] == 0 and stats["time_wait_recycled"] == 3


async def test_memory_per_time_wait_entry_is_small(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What one TIME-WAIT entry holds, measured with tracemalloc over 400 entries
    (the server dropped its flows): the engine's state, about 5.7 KB, where a flow
    with its task pair, inbox and parking lots (what TIME-WAIT kept before the
    table) holds about 16.6 KB."""
    n = 400
    async with two_stacks() as (_net, client, server):
        listener = await server.open_tcp_listener(80)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_and_close, listener)
            for _ in range(50):  # warm every cache and free list first
                await one_request(client, server)
            await trio.sleep(1)
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(n):
                    await one_request(client, server)
                await trio.sleep(1)
                gc.collect()
                per_entry = (tracemalloc.get_traced_memory()[0] - before) / n
            finally:
                tracemalloc.stop()
            nursery.cancel_scope.cancel()
        assert server.stats()["time_wait"] == 50 + n
        assert client.stats()["time_wait"] == 0  # the client closed second
    print(f"memory per TIME-WAIT entry: {per_entry:.0f} bytes")
    assert per_entry < 12_000


# -- a raw peer: the segments a TIME-WAIT entry answers -----------------------------------
def packet(seg: TCPSegment) -> bytes:
    body = build_tcp(seg, PC, PA)
    return build_ipv6_header(PC, PA, PROTO_TCP, len(body)) + body


async def next_tcp(link: tcp6.Link, timeout: float = 5.0) -> TCPSegment:
    with trio.fail_after(timeout):
        pkt = parse_ipv6(await link.receive())
    assert pkt.next_header == PROTO_TCP
    return parse_tcp(pkt.payload)


async def nothing_arrives(link: tcp6.Link, wait: float = 2.0) -> None:
    with trio.move_on_after(wait):
        data = await link.receive()
        pytest.fail(f"unexpected packet {parse_tcp(parse_ipv6(data).payload)!r}")


def seg(seq: int, ack: int, flags: int, payload: bytes = b"", **kw: object) -> TCPSegment:
    return TCPSegment(CPORT, 80, seq & MASK, ack & MASK, flags, 65535, payload, **kw)  # type: ignore[arg-type]


async def into_time_wait(
    a: DirectStack, raw: tcp6.Link, data: bytes = b""
) -> tuple[DirectFlow, int, int]:
    """Open a connection from the raw peer (no timestamps) to A:80; A sends its FIN
    first (``send_eof``), the peer sends ``data`` and its FIN: A's end is in
    TIME-WAIT. Returns (A's flow, A's next seq, the peer's next seq)."""
    listener = await a.open_tcp_listener(80)
    await raw.send(packet(seg(1000, 0, SYN, mss=1440)))
    syn_ack = await next_tcp(raw)
    await raw.send(packet(seg(1001, syn_ack.seq + 1, ACK)))
    flow = await listener.accept()
    await listener.aclose()
    assert isinstance(flow, DirectFlow)
    await flow.send_eof()
    fin = await next_tcp(raw)
    assert fin.flags & FIN
    await raw.send(packet(seg(1001, fin.seq + 1, ACK | FIN, data)))
    last = await next_tcp(raw)
    peer_nxt = 1002 + len(data)
    assert last.flags == ACK and last.ack == peer_nxt
    assert flow.state is State.TIME_WAIT
    return flow, (fin.seq + 1) & MASK, peer_nxt


def raw_stack_config(**kw: object) -> tcp6.TCPConfig:
    return tcp6.TCPConfig(timestamps=False, delayed_ack=None, **kw)  # type: ignore[arg-type]


async def test_time_wait_moves_out_of_the_connection_table_and_its_tasks_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Entering TIME-WAIT, the connection leaves the flows (``flows_open``, what
    ``max_connections`` counts) for the table (``time_wait``), and the flow's task
    pair ends; a retransmitted FIN is still ACKed, by the table."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=raw_stack_config()) as a:
        assert isinstance(a, DirectStack)
        listening_tasks = trio.lowlevel.current_statistics().tasks_living
        flow, snd_nxt, peer_nxt = await into_time_wait(a, raw)
        await trio.testing.wait_all_tasks_blocked()
        stats = a.stats()
        assert stats["flows_open"] == 0 and stats["time_wait"] == 1
        assert a.flows == []
        assert trio.lowlevel.current_statistics().tasks_living == listening_tasks
        # The peer did not get our ACK of its FIN: it sends the FIN again.
        await raw.send(packet(seg(peer_nxt - 1, snd_nxt, ACK | FIN)))
        ack = await next_tcp(raw)
        assert ack.flags == ACK and ack.seq == snd_nxt and ack.ack == peer_nxt
        assert flow.state is State.TIME_WAIT
        assert a.stats()["time_wait"] == 1


async def test_a_retransmitted_fin_restarts_the_time_wait_timer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9293 §3.10.7.4 (FIN in TIME-WAIT): the 2*MSL timeout restarts, so the
    entry outlives its first deadline; it goes 2*MSL after the last FIN."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    config = raw_stack_config(time_wait=10.0)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        flow, snd_nxt, peer_nxt = await into_time_wait(a, raw)
        await trio.sleep(6)
        await raw.send(packet(seg(peer_nxt - 1, snd_nxt, ACK | FIN)))
        assert (await next_tcp(raw)).ack == peer_nxt
        await trio.sleep(6)  # 12 s after the first FIN, 6 s after the second
        assert flow.state is State.TIME_WAIT and a.stats()["time_wait"] == 1
        await trio.sleep(4.5)
        assert flow.state is State.CLOSED and a.stats()["time_wait"] == 0


async def test_time_wait_expiry_frees_the_entry_and_the_four_tuple(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After 2*MSL the entry is gone (nothing arrived meanwhile: the stack's timer
    expires it, not a lookup), the flow says CLOSED, the local port is no longer in
    use and a SYN that TIME-WAIT would have refused (an old sequence number) opens
    a new connection on the 4-tuple."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    config = raw_stack_config(time_wait=5.0)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        flow, _snd_nxt, peer_nxt = await into_time_wait(a, raw)
        await trio.sleep(4.9)
        assert a.stats()["time_wait"] == 1 and flow.state is State.TIME_WAIT
        await trio.sleep(0.2)
        assert a.stats()["time_wait"] == 0
        assert flow.state is State.CLOSED
        assert await flow.receive_some() == b""
        listener = await a.open_tcp_listener(80)
        await raw.send(packet(seg(peer_nxt - 500, 0, SYN, mss=1440)))
        syn_ack = await next_tcp(raw)
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == (peer_nxt - 499) & MASK
        assert a.stats()["flows_open"] == 1
        await listener.aclose()


async def test_rst_in_time_wait_closes_the_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9293 §3.10.7.4 (second, TIME-WAIT) with RFC 5961 §3: a RST exactly at
    RCV.NXT closes it (no reply); one elsewhere in the window draws a challenge ACK
    and leaves it; one outside the window is dropped."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=raw_stack_config()) as a:
        assert isinstance(a, DirectStack)
        flow, snd_nxt, peer_nxt = await into_time_wait(a, raw)
        await raw.send(packet(seg(peer_nxt + 2_000_000_000, 0, RST)))
        await nothing_arrives(raw)
        await raw.send(packet(seg(peer_nxt + 100, 0, RST)))
        challenge = await next_tcp(raw)
        assert challenge.flags == ACK and challenge.ack == peer_nxt
        assert a.stats()["time_wait"] == 1 and flow.state is State.TIME_WAIT
        await raw.send(packet(seg(peer_nxt, 0, RST)))
        await nothing_arrives(raw)
        assert a.stats()["time_wait"] == 0
        assert flow.state is State.CLOSED
        # The 4-tuple is nobody's now: a segment for it draws a RST.
        await raw.send(packet(seg(peer_nxt, snd_nxt, ACK)))
        assert (await next_tcp(raw)).flags & RST


async def test_a_newer_syn_reuses_the_time_wait_four_tuple(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 6191 through the table: an old SYN draws a challenge ACK and leaves the
    entry; a newer one replaces it with a new connection (counted against
    ``max_connections`` again) whose ISS lies above the old connection's."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A, config=raw_stack_config()) as a:
        assert isinstance(a, DirectStack)
        flow, snd_nxt, peer_nxt = await into_time_wait(a, raw)
        listener = await a.open_tcp_listener(80)
        await raw.send(packet(seg(peer_nxt - 500, 0, SYN, mss=1440)))
        reply = await next_tcp(raw)
        assert reply.flags == ACK and reply.ack == peer_nxt
        assert a.stats()["time_wait"] == 1
        await raw.send(packet(seg(peer_nxt + 100_000, 0, SYN, mss=1440)))
        reply = await next_tcp(raw)
        assert reply.flags == SYN | ACK and reply.ack == (peer_nxt + 100_001) & MASK
        assert 0 < (reply.seq - snd_nxt) & MASK < 1 << 31
        stats = a.stats()
        assert stats["time_wait"] == 0 and stats["time_wait_reused"] == 1
        assert stats["flows_open"] == 1
        assert flow.state is State.CLOSED
        await listener.aclose()


async def test_a_flow_in_time_wait_still_reads_its_data_and_eof(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What a user can do with a flow in TIME-WAIT is unchanged by the hand-over:
    read the data that came with the peer's FIN, then EOF; ``info()`` and ``state``;
    sending stays refused. After 2*MSL reads keep saying EOF."""
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    config = raw_stack_config(time_wait=5.0)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        assert isinstance(a, DirectStack)
        flow, _snd_nxt, _peer_nxt = await into_time_wait(a, raw, b"last words")
        await trio.testing.wait_all_tasks_blocked()
        assert a.stats()["time_wait"] == 1
        info = flow.info()
        assert info.state is State.TIME_WAIT and info.bytes_received == 10
        assert await flow.receive_some() == b"last words"
        assert await flow.receive_some() == b""
        with pytest.raises(trio.ClosedResourceError):
            await flow.send_all(b"more")
        await trio.sleep(5.1)
        assert flow.info().state is State.CLOSED
        assert await flow.receive_some() == b""
        await flow.aclose()


async def test_a_client_never_connects_from_a_four_tuple_in_time_wait(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The active closer's TIME-WAIT keeps its 4-tuple: with two ephemeral ports,
    the second connection to the same server takes the other one and a third finds
    none free (EADDRNOTAVAIL) while both wait; after 2*MSL a port is free again."""
    monkeypatch.setattr(
        stack_module,
        "EphemeralPorts",
        lambda secret=None: EphemeralPorts(secret, low=50000, high=50001),
    )
    async with two_stacks(tcp6.TCPConfig(time_wait=60.0)) as (_net, a, b):
        listener = await b.open_tcp_listener(80)

        async def connect_and_close_first() -> int:
            flow = await a.open_tcp_stream(B, 80)
            server = await listener.accept()
            await flow.aclose()  # the client closes first: its end goes to TIME-WAIT
            assert await server.receive_some() == b""
            await server.aclose()
            await trio.testing.wait_all_tasks_blocked()
            return flow.local_port

        assert {await connect_and_close_first(), await connect_and_close_first()} == {
            50000,
            50001,
        }
        assert a.stats()["time_wait"] == 2 and a.stats()["flows_open"] == 0
        with pytest.raises(OSError) as caught:
            await a.open_tcp_stream(B, 80)
        assert caught.value.errno == errno.EADDRNOTAVAIL
        await trio.sleep(60.1)
        assert a.stats()["time_wait"] == 0
        assert await connect_and_close_first() in (50000, 50001)
        await listener.aclose()
