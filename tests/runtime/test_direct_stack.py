"""The direct stack's input path (demux, RSTs, ICMPv6, SYN cookies, ``input``) and its
structured-concurrency guarantees, in virtual time."""

from __future__ import annotations

import errno
import ipaddress
import struct

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectStack
from trio_tcp6.tcp.events import State
from trio_tcp6.wire.checksum import transport_checksum
from trio_tcp6.wire.icmpv6 import (
    DestinationUnreachable,
    EchoReply,
    EchoRequest,
    PacketTooBig,
    build_icmpv6,
    parse_icmpv6,
)
from trio_tcp6.wire.ipv6 import PROTO_ICMPV6, PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import ACK, RST, SYN, TCPSegment, build_tcp, parse_tcp

from .helpers import A, B, check_flow_info, connect, receive_all, receive_exactly, two_stacks

C = "2001:db8::c"
PA = ipaddress.IPv6Address(A).packed
PC = ipaddress.IPv6Address(C).packed


def tcp_packet(seg: TCPSegment, src: bytes = PC, dst: bytes = PA) -> bytes:
    body = build_tcp(seg, src, dst)
    return build_ipv6_header(src, dst, PROTO_TCP, len(body)) + body


async def next_tcp(link: tcp6.Link, timeout: float = 5.0) -> TCPSegment:
    with trio.fail_after(timeout):
        pkt = parse_ipv6(await link.receive())
    assert pkt.next_header == PROTO_TCP
    return parse_tcp(pkt.payload)


async def nothing_arrives(link: tcp6.Link, wait: float = 5.0) -> None:
    with trio.move_on_after(wait):
        packet = await link.receive()
        pytest.fail(f"unexpected packet {packet!r}")


# -- RST for closed ports (RFC 9293 §3.10.7.1) ------------------------------------------------
async def test_rst_for_segment_to_closed_port(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        # A SYN (no ACK): RST|ACK with ack = seq + SEG.LEN, seq 0.
        await raw.send(tcp_packet(TCPSegment(40000, 81, 1000, 0, SYN, 65535)))
        rst = await next_tcp(raw)
        assert (rst.src_port, rst.dst_port) == (81, 40000)
        assert rst.flags == RST | ACK
        assert (rst.seq, rst.ack) == (0, 1001)
        # Data with an ACK: RST with seq = SEG.ACK.
        await raw.send(tcp_packet(TCPSegment(40000, 81, 5, 777, ACK, 65535, b"abc")))
        rst = await next_tcp(raw)
        assert rst.flags == RST
        assert rst.seq == 777
        # Never a RST for a RST.
        await raw.send(tcp_packet(TCPSegment(40000, 81, 5, 777, RST | ACK, 0)))
        await nothing_arrives(raw)
        stats = a.stats()
        assert stats["resets_sent"] == 2
        assert stats["drop_no_listener"] == 3


async def test_rst_rate_limit(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    config = tcp6.TCPConfig(rst_rate_limit=3)
    async with tcp6.open_stack(net.attach(A), A, config=config) as a:
        for i in range(10):
            await raw.send(tcp_packet(TCPSegment(40000 + i, 81, 1, 0, SYN, 65535)))
        await trio.sleep(0.1)
        replies = [raw.receive_nowait() for _ in range(raw.pending())]
        assert len(replies) == 3
        assert a.stats()["resets_rate_limited"] == 7
        await trio.sleep(1)  # a new second: RSTs again
        await raw.send(tcp_packet(TCPSegment(40000, 81, 1, 0, SYN, 65535)))
        assert (await next_tcp(raw)).rst


async def test_bad_checksum_and_malformed_are_dropped_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        good = bytearray(tcp_packet(TCPSegment(40000, 81, 1, 0, SYN, 65535)))
        bad = bytearray(good)
        bad[-1] ^= 0xFF  # corrupt the TCP header: checksum fails
        await raw.send(bad)
        # A TCP header whose data offset is 4 words, with a valid checksum.
        header = bytearray(struct.pack("!HHIIBBHHH", 40000, 81, 1, 0, 4 << 4, SYN, 1, 0, 0))
        header[16:18] = transport_checksum(PC, PA, PROTO_TCP, header).to_bytes(2, "big")
        await raw.send(build_ipv6_header(PC, PA, PROTO_TCP, 20) + header)
        not_v6 = bytearray(build_ipv6_header(PC, PA, PROTO_TCP, 0))
        not_v6[0] = 0x40  # the version nibble says 4
        await raw.send(not_v6)
        await nothing_arrives(raw, 1.0)
        stats = a.stats()
        assert stats["drop_bad_checksum"] == 1
        assert stats["drop_malformed"] == 2
        assert stats["drop_malformed_ipv6_bad_version"] == 1
        assert stats["drop_malformed_tcp_bad_data_offset"] == 1
        assert stats["segments_in"] == 0
        # The good one is answered.
        await raw.send(good)
        assert (await next_tcp(raw)).rst


async def test_input_processes_one_segment(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        seg = build_tcp(TCPSegment(40000, 81, 1000, 0, SYN, 65535), PC, PA)
        await a.input(C, ipaddress.IPv6Address(A), seg)
        rst = await next_tcp(raw)
        assert rst.flags == RST | ACK and rst.ack == 1001
        # Bad checksum through input() too.
        await a.input(C, A, seg[:-1] + bytes([seg[-1] ^ 1]))
        assert a.stats()["drop_bad_checksum"] == 1
        # Not our address: dropped.
        await a.input(C, B, seg)
        assert a.stats()["drop_not_for_us"] == 1


async def test_input_can_open_a_connection(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        listener = await a.open_tcp_listener(80)
        syn = TCPSegment(40000, 80, 1000, 0, SYN, 65535, mss=1440)
        await a.input(C, A, build_tcp(syn, PC, PA))
        syn_ack = await next_tcp(raw)
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == 1001
        ack = TCPSegment(40000, 80, 1001, syn_ack.seq + 1, ACK, 65535, b"hi")
        await a.input(C, A, build_tcp(ack, PC, PA))
        flow = await listener.accept()
        assert flow.get_dest() == (ipaddress.IPv6Address(C), 40000)
        assert await flow.receive_some() == b"hi"


# -- ICMPv6 ------------------------------------------------------------------------------------
async def test_echo_request_is_answered(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    raw = net.attach(C)
    async with tcp6.open_stack(net.attach(A), A) as a:
        body = build_icmpv6(EchoRequest(0x1234, 7, b"ping data"), PC, PA)
        await raw.send(build_ipv6_header(PC, PA, PROTO_ICMPV6, len(body)) + body)
        with trio.fail_after(1):
            pkt = parse_ipv6(await raw.receive())
        assert (pkt.src, pkt.dst, pkt.next_header) == (PA, PC, PROTO_ICMPV6)
        reply = parse_icmpv6(pkt.payload, pkt.src, pkt.dst)  # checksum verified
        assert reply == EchoReply(0x1234, 7, b"ping data")
        assert a.stats()["icmp_echo_replies"] == 1
        # A corrupted request is dropped.
        bad = bytearray(build_ipv6_header(PC, PA, PROTO_ICMPV6, len(body)) + body)
        bad[-1] ^= 1
        await raw.send(bad)
        await nothing_arrives(raw, 1.0)
        assert a.stats()["drop_bad_checksum"] == 1


async def test_packet_too_big_lowers_the_mss(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(delay=0.01) as (net, a, b):
        client, server = await connect(a, b)
        mss_before = client.info().mss
        assert mss_before > 1300
        raw = net.attach(C)
        conn = client._conn

        def ptb(seq: int, mtu: int = 1280) -> bytes:
            # The quote: our own packet to B with the given sequence number.
            seg = TCPSegment(client.local_port, 80, seq, conn.rcv_nxt, ACK, 1000, b"q" * 64)
            quoted = build_ipv6_header(PA, b.address.packed, PROTO_TCP, 84) + build_tcp(
                seg, PA, b.address.packed
            )
            body = build_icmpv6(PacketTooBig(mtu, quoted), PC, PA)
            return build_ipv6_header(PC, PA, PROTO_ICMPV6, len(body)) + body

        # RFC 5927: a quote whose sequence number is not in flight is ignored.
        await raw.send(ptb((conn.snd_una + 100_000) & 0xFFFFFFFF))
        await trio.sleep(0.1)
        assert client.info().mss == mss_before
        assert a.stats()["drop_icmp_bad_seq"] == 1
        await raw.send(ptb(conn.snd_una))
        await trio.sleep(0.1)
        assert client.info().mss <= 1280 - 60
        assert a.stats()["icmp_packet_too_big"] == 1
        # Data still flows, now in smaller segments.
        payload = bytes(range(256)) * 40
        await client.send_all(payload)
        assert await receive_exactly(server, len(payload)) == payload


# -- listeners, backlog and SYN cookies -----------------------------------------------------------
async def test_listener_port_zero_and_duplicates(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        first = await b.open_tcp_listener(0)
        second = await b.open_tcp_listener(0)
        assert first.port != second.port
        assert first.port >= 49152
        with pytest.raises(OSError):
            await b.open_tcp_listener(first.port)
        flow = await a.open_tcp_stream(B, second.port)
        accepted = await second.accept()
        # Each end sees the other's address and port.
        assert flow.get_dest() == (ipaddress.IPv6Address(B), second.port)
        assert accepted.get_dest() == (ipaddress.IPv6Address(A), flow.local_port)
        assert accepted.local_port == second.port
        await first.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await first.accept()
        again = await b.open_tcp_listener(first.port)  # the port is free again
        assert again.port == first.port


async def test_serve_tcp(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):

        async def handler(flow: tcp6.Flow) -> None:
            data = await receive_all(flow)
            await flow.send_all(data[::-1])

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(b.serve_tcp, handler, 0)
            assert len(listeners) == 1 and isinstance(listeners[0], tcp6.Listener)
            port = listeners[0].port
            for text in (b"stressed", b"drawer"):
                flow = await a.open_tcp_stream(B, port)
                await flow.send_all(text)
                await flow.send_eof()
                assert await receive_all(flow) == text[::-1]
                await flow.aclose()
            nursery.cancel_scope.cancel()


async def test_syn_cookies_when_the_backlog_is_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = tcp6.TCPConfig(syn_backlog=1)
    async with two_stacks(config) as (net, a, b):
        listener = await b.open_tcp_listener(80)
        raw = net.attach(C)
        # A half-open connection that never completes fills the SYN backlog.
        pb = b.address.packed
        await raw.send(tcp_packet(TCPSegment(40000, 80, 1, 0, SYN, 65535), PC, pb))
        assert (await next_tcp(raw)).flags == SYN | ACK
        # The next client gets a cookie and completes the handshake statelessly.
        flow = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        stats = b.stats()
        assert stats["syn_cookies_sent"] == 1
        assert stats["syn_cookies_validated"] == 1
        # Options survived through the timestamp echo.
        info = server.info()
        assert info.sack and info.timestamps and info.wscale is not None
        assert flow.info().wscale == (info.wscale[1], info.wscale[0])
        payload = bytes(range(256)) * 1000
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flow.send_all, payload)
            assert await receive_exactly(server, len(payload)) == payload
        # A forged cookie ACK is answered with RST and makes no connection.
        await raw.send(tcp_packet(TCPSegment(40001, 80, 5, 12345, ACK, 65535), PC, pb))
        assert (await next_tcp(raw)).rst
        assert b.stats()["syn_cookies_failed"] == 1


async def test_syn_dropped_without_cookies(autojump_clock: trio.testing.MockClock) -> None:
    config = tcp6.TCPConfig(syn_backlog=1, syn_cookies=False, syn_retries=1)
    async with two_stacks(config) as (net, a, b):
        await b.open_tcp_listener(80)
        raw = net.attach(C)
        pb = b.address.packed
        await raw.send(tcp_packet(TCPSegment(40000, 80, 1, 0, SYN, 65535), PC, pb))
        with pytest.raises(tcp6.Timeout):
            await a.open_tcp_stream(B, 80)
        assert b.stats()["drop_syn_backlog_full"] >= 1


# -- structured concurrency ---------------------------------------------------------------------
def _all_tasks() -> set[trio.lowlevel.Task]:
    tasks = set()
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        if task.name.startswith("trio_tcp6.VirtualNetwork"):
            continue
        tasks.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return tasks


async def test_leaving_open_stack_aborts_flows_and_leaks_no_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = _all_tasks()
    net = tcp6.VirtualNetwork(delay=0.01)
    outcomes: list[object] = []
    async with tcp6.open_stack(net.attach(B), B) as b:
        listener = await b.open_tcp_listener(80)
        async with trio.open_nursery() as users, tcp6.open_stack(net.attach(A), A) as a:
            flows = [await a.open_tcp_stream(B, 80) for _ in range(3)]
            servers = [await listener.accept() for _ in range(3)]
            a.listen(99, lambda flow: trio.sleep_forever())

            async def blocked_reader() -> None:
                try:
                    await flows[0].receive_some()
                except trio.BrokenResourceError as exc:
                    outcomes.append(exc)

            users.start_soon(blocked_reader)
            await trio.testing.wait_all_tasks_blocked()
            assert len(_all_tasks()) > len(before)
            # The user task blocked in receive_some was woken with BrokenResourceError.
        assert len(outcomes) == 1
        assert isinstance(outcomes[0], trio.BrokenResourceError)
        match await flows[1].read():
            case tcp6.Error(err):
                assert isinstance(err, tcp6.Unknown)
            case other:
                pytest.fail(f"read on a flow of a closed stack gave {other!r}")
        with pytest.raises(trio.BrokenResourceError):
            await flows[2].send_all(b"x")
        # The peer saw the RSTs.
        for server in servers:
            with pytest.raises(trio.BrokenResourceError):
                await server.receive_some()
        await listener.aclose()
    assert _all_tasks() == before


async def test_cancelled_receive_leaves_the_flow_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        with trio.move_on_after(1) as scope:
            await client.receive_some()
        assert scope.cancelled_caught
        await server.send_all(b"after the cancel")
        assert await receive_exactly(client, 16) == b"after the cancel"
        assert client.state is State.ESTABLISHED


async def test_cancelled_send_leaves_the_flow_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    small = tcp6.TCPConfig(send_buffer=8192, receive_buffer=8192)
    async with two_stacks(small, delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        first = b"A" * 100_000
        with trio.move_on_after(1) as scope:
            await client.send_all(first)  # the peer does not read: blocks
        assert scope.cancelled_caught
        await trio.sleep(1)

        async def rest() -> None:
            await client.send_all(b"B" * 1000)
            await client.send_eof()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(rest)
            data = await receive_all(server)
        # Whatever part of the first write was taken, then the whole second one.
        assert data.endswith(b"B" * 1000)
        head = data[:-1000]
        assert 8192 <= len(head) < len(first)
        assert head == first[: len(head)]


async def test_cancelled_connect_frees_everything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(delay=1.0) as (_net, a, b):
        listener = await b.open_tcp_listener(80)
        with trio.move_on_after(0.5):
            await a.open_tcp_stream(B, 80)
        assert a.stats()["flows_open"] == 0
        assert a.stats()["attempt_fails"] == 1
        await trio.sleep(10)
        # The server's half-open connection was reset by our RST (or timed out).
        assert b.stats()["flows_open"] == 0
        assert listener.queued == 0


async def test_cancelled_accept_leaves_the_listener_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (_net, a, b):
        listener = await b.open_tcp_listener(80)
        with trio.move_on_after(1):
            await listener.accept()
        flow = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        await flow.send_all(b"ok")
        assert await receive_exactly(server, 2) == b"ok"


async def test_flow_info(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(delay=0.02) as (_net, a, b):
        client, server = await connect(a, b)
        payload = b"i" * 200_000
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.write_nodelay, payload)
            await receive_exactly(server, len(payload))
        info = client.info()
        assert isinstance(info, tcp6.FlowInfo)
        assert info.state is State.ESTABLISHED
        assert info.srtt is not None and 0.04 <= info.srtt < 0.2
        assert info.rto >= 0.2
        assert info.bytes_acked >= len(payload)
        assert info.cwnd > info.mss
        assert info.sack and info.timestamps and info.wscale is not None
        assert server.info().bytes_received >= len(payload)
        check_flow_info(info, sent=len(payload))


async def test_many_connections_and_ports(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        listener = await b.open_tcp_listener(80)
        clients = [await a.open_tcp_stream(B, 80) for _ in range(20)]
        servers = [await listener.accept() for _ in range(20)]
        assert len({c.get_dest()[1] for c in servers}) == 20
        for i, flow in enumerate(clients):
            await flow.send_all(b"%d" % i)
        for i, server in enumerate(servers):
            assert await server.receive_some() == b"%d" % i
        assert a.stats()["flows_open"] == 20


async def test_stack_stats_keys(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        await client.send_all(b"x" * 10_000)
        await receive_exactly(server, 10_000)
        stats = a.stats()
        for key in (
            "segments_in",
            "segments_out",
            "retransmits",
            "resets_sent",
            "challenge_acks",
            "syn_cookies_sent",
            "syn_cookies_validated",
            "drop_bad_checksum",
            "drop_malformed",
            "drop_no_listener",
            "icmp_echo_replies",
        ):
            assert isinstance(stats[key], int)
        assert stats["segments_out"] >= 8
        assert b.stats()["segments_in"] >= 8


def _stack_type_check(stack: DirectStack) -> tcp6.Stack:
    return stack


async def test_orphaned_fin_wait_gives_up(autojump_clock: trio.testing.MockClock) -> None:
    config = tcp6.TCPConfig(time_wait=10.0)
    async with two_stacks(config) as (_net, a, b):
        client, server = await connect(a, b)
        await client.aclose()  # FIN; the server never closes its side
        await trio.sleep(1)
        assert client.state is State.FIN_WAIT_2
        assert server.state is State.CLOSE_WAIT
        await trio.sleep(10)
        assert a.stats()["orphan_timeouts"] == 1
        assert a.stats()["flows_open"] == 0
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"anyone there?")


async def test_time_wait_holds_then_frees_the_four_tuple(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = tcp6.TCPConfig(time_wait=5.0)
    async with two_stacks(config, delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.close)  # the active close
            assert await server.read() == tcp6.EOF
            await server.close()
        assert client.state is State.TIME_WAIT
        assert server.state is State.CLOSED
        # TIME-WAIT is in its own table, outside max_connections (flows_open).
        assert a.stats()["flows_open"] == 0 and a.stats()["time_wait"] == 1
        assert b.stats()["flows_open"] == 0
        await trio.sleep(5)
        assert client.info().state is State.CLOSED
        assert a.stats()["flows_open"] == 0 and a.stats()["time_wait"] == 0
        # Reads on a flow that closed normally keep saying EOF.
        assert await client.read() == tcp6.EOF


async def test_destination_unreachable_fails_a_connect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = tcp6.VirtualNetwork()
    router = net.attach(C)  # plays a router that answers our SYN with an ICMPv6 error
    async with tcp6.open_stack(net.attach(A), A) as a:
        target = "2001:db8::dead"
        pt = ipaddress.IPv6Address(target).packed
        net.attach(target)  # the SYN needs somewhere to go; nobody answers there

        async def connect_and_fail() -> None:
            with pytest.raises(tcp6.Unknown) as excinfo:
                await a.open_tcp_stream(target, 80)
            assert excinfo.value.errno == errno.EHOSTUNREACH

        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect_and_fail)
            await trio.testing.wait_all_tasks_blocked()
            (flow,) = a.flows
            syn = TCPSegment(flow.local_port, 80, flow._conn.iss, 0, SYN, 65535)
            quoted = build_ipv6_header(PA, pt, PROTO_TCP, 20) + build_tcp(syn, PA, pt)
            body = build_icmpv6(DestinationUnreachable(3, quoted), PC, PA)
            await router.send(build_ipv6_header(PC, PA, PROTO_ICMPV6, len(body)) + body)
        assert a.stats()["icmp_unreachable_aborts"] == 1
        assert a.stats()["flows_open"] == 0


async def test_max_connections(autojump_clock: trio.testing.MockClock) -> None:
    config = tcp6.TCPConfig(max_connections=3, syn_retries=1)
    async with two_stacks(tcp6.TCPConfig(syn_retries=1), config) as (_net, a, b):
        listener = await b.open_tcp_listener(80)
        flows = [await a.open_tcp_stream(B, 80) for _ in range(3)]
        with pytest.raises(tcp6.Timeout):  # SYNs beyond the limit are dropped
            await a.open_tcp_stream(B, 80)
        assert b.stats()["drop_max_connections"] >= 1
        assert listener.queued == 3
        for flow in flows:
            await flow.aclose()


async def test_packets_never_exceed_the_link_mtu(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork(mtu=1500)
    async with tcp6.open_stack(net.attach(A), A) as a:
        # A full-sized segment (timestamps leave 1428 bytes) that also carries SACK
        # blocks would not fit: the advisory blocks are shed, the data is not.
        seg = TCPSegment(
            80,
            40000,
            1,
            1,
            ACK,
            1000,
            b"d" * 1428,
            sack_blocks=((100, 200), (300, 400), (500, 600)),
            timestamps=(1, 2),
        )
        packet = a._output.packet(PC, seg)
        assert len(packet) == 1500
        assert parse_tcp(parse_ipv6(packet).payload).payload == seg.payload
        assert a.stats()["sack_blocks_trimmed"] == 1
        small = TCPSegment(80, 40000, 1, 1, ACK, 1000, b"d" * 100, sack_blocks=((1, 2),))
        assert parse_tcp(parse_ipv6(a._output.packet(PC, small)).payload).sack_blocks == ((1, 2),)


class MinimalLink:
    """Only the Link protocol's three members: no batch forms."""

    def __init__(self, inner: tcp6.Link) -> None:
        self._inner = inner
        self.sent = 0

    @property
    def mtu(self) -> int:
        return self._inner.mtu

    async def send(self, packet: bytes | bytearray | memoryview) -> None:
        self.sent += 1
        await self._inner.send(packet)

    async def receive(self) -> bytes:
        return await self._inner.receive()


async def test_a_user_link_without_batch_forms(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork(delay=0.001)
    link_a = MinimalLink(net.attach(A))
    assert isinstance(link_a, tcp6.Link)
    async with (
        tcp6.open_stack(link_a, A) as a,
        tcp6.open_stack(net.attach(B), B) as b,
    ):
        client, server = await connect(a, b)
        payload = bytes(range(256)) * 400
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, payload)
            assert await receive_exactly(server, len(payload)) == payload
        assert link_a.sent == a.stats()["segments_out"]


async def test_state_trace_hook_sees_every_transition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        seen: list[tuple[State, State, str, float]] = []
        client.trace_states(lambda old, new, reason, now: seen.append((old, new, reason, now)))
        await client.send_eof()
        assert await server.receive_some() == b""
        await server.aclose()
        with trio.fail_after(5):
            while client.state is not State.TIME_WAIT:
                await trio.sleep(0.01)
        await client.aclose()
        assert [(old, new) for old, new, _, _ in seen] == [
            (State.ESTABLISHED, State.FIN_WAIT_1),
            (State.FIN_WAIT_1, State.FIN_WAIT_2),
            (State.FIN_WAIT_2, State.TIME_WAIT),
        ]
        assert [reason for _, _, reason, _ in seen] == [
            "close",
            "fin acked",
            "both fins acknowledged",
        ]
        times = [now for _, _, _, now in seen]
        assert times == sorted(times) and times[0] < times[1]
        client.trace_states(None)
