"""The kernel-socket stack: trio's stream contract and the mirage calls, on ::1."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime.kernel import KernelStack, parse_tcp_info

from .helpers import check_flow_info

LOCALHOST = ipaddress.IPv6Address("::1")

pytestmark = pytest.mark.skipif(not socket.has_ipv6, reason="needs IPv6 on loopback")


@pytest.fixture
async def stack() -> AsyncIterator[KernelStack]:
    async with tcp6.open_kernel_stack() as s:
        yield s


async def _pair(stack: KernelStack) -> tuple[tcp6.Flow, tcp6.Flow]:
    listener = await stack.open_tcp_listener(0)
    try:
        client = await stack.open_tcp_stream("::1", listener.port)
        server = await listener.accept()
    finally:
        await listener.aclose()
    return client, server


async def _fill(flow: tcp6.Flow) -> None:
    """Write until the kernel takes no single byte more, and stays so.

    Loopback TCP still finds room a while after the first EAGAIN (after the delayed-ACK
    timer, memory accounting shifts), so fill with ever smaller writes until 0.1 s
    passes in which not one byte was accepted.
    """
    assert isinstance(flow, tcp6.runtime.KernelFlow)
    raw = socket.socket(fileno=os.dup(flow.socket.fileno()))
    try:
        raw.setblocking(False)
        quiet_rounds = 0
        while quiet_rounds < 4:
            sent = 0
            for size in (65536, 4096, 256, 16, 1):
                while True:
                    try:
                        sent += raw.send(b"x" * size)
                    except BlockingIOError:
                        break
            quiet_rounds = quiet_rounds + 1 if sent == 0 else 0
            await trio.sleep(0.025)
    finally:
        raw.close()  # closes only our duplicate descriptor


async def test_half_closeable_stream_contract() -> None:
    small = tcp6.TCPConfig(send_buffer=4096, receive_buffer=4096)
    async with tcp6.open_kernel_stack() as stack, tcp6.open_kernel_stack(config=small) as clog:

        async def stream_maker() -> tuple[tcp6.Flow, tcp6.Flow]:
            return await _pair(stack)

        async def clogged_stream_maker() -> tuple[tcp6.Flow, tcp6.Flow]:
            left, right = await _pair(clog)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_fill, left)
                nursery.start_soon(_fill, right)
            return left, right

        await trio.testing.check_half_closeable_stream(stream_maker, clogged_stream_maker)


async def test_read_write_and_eof(stack: KernelStack) -> None:
    client, server = await _pair(stack)
    assert isinstance(client, tcp6.Flow)
    assert await client.write(b"hello ") == tcp6.Ok(None)
    assert await client.writev([b"wor", bytearray(b"l"), memoryview(b"d")]) == tcp6.Ok(None)
    got = b""
    while len(got) < 11:
        match await server.read():
            case tcp6.Ok(data):
                got += data
            case other:
                pytest.fail(f"unexpected {other!r}")
    assert got == b"hello world"
    await client.send_eof()
    assert await server.read() == tcp6.EOF
    assert await server.read() == tcp6.EOF
    # Our side is closed for writing: write says EOF.
    assert await client.write(b"more") == tcp6.EOF
    # The other direction still works.
    assert await server.write(b"back") == tcp6.Ok(None)
    assert await client.read() == tcp6.Ok(b"back")
    await client.aclose()
    await server.aclose()
    match await client.read():
        case tcp6.Error(err):
            assert isinstance(err, tcp6.Unknown)
        case other:
            pytest.fail(f"read after aclose gave {other!r}")


async def test_write_nodelay_returns_after_ack(stack: KernelStack) -> None:
    client, server = await _pair(stack)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # Nagle on, as mirage
    assert await client.write_nodelay(b"ping") == tcp6.Ok(None)
    # Everything is acknowledged once write_nodelay returns.
    from trio_tcp6.runtime.sockopts import unacked_bytes

    assert isinstance(client, tcp6.runtime.KernelFlow)
    assert unacked_bytes(client.socket) == 0
    assert await server.read() == tcp6.Ok(b"ping")
    assert await server.writev_nodelay([b"po", b"ng"]) == tcp6.Ok(None)
    assert await client.read() == tcp6.Ok(b"pong")
    # Nagle is back to the flow's own setting afterwards.
    assert client.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    await client.aclose()
    await server.aclose()


async def test_close_waits_for_peer_and_reads_still_work(stack: KernelStack) -> None:
    client, server = await _pair(stack)
    record: list[str] = []

    async def closer() -> None:
        await client.close()
        record.append("client closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(closer)
        assert await server.read() == tcp6.EOF
        await trio.sleep(0.05)
        assert record == []  # still waiting for the server's FIN
        await server.write(b"late data")
        await server.close()
        record.append("server closed")
    assert record[-1] in ("client closed", "server closed")
    assert set(record) == {"client closed", "server closed"}
    # Data that arrived while close() waited is still readable afterwards.
    assert await client.read() == tcp6.Ok(b"late data")
    assert await client.read() == tcp6.EOF
    await client.aclose()
    await server.aclose()


async def test_get_dest_and_info(stack: KernelStack) -> None:
    client, server = await _pair(stack)
    listener_port = client.get_dest()[1]
    assert client.get_dest() == (LOCALHOST, listener_port)
    addr, port = server.get_dest()
    assert addr == LOCALHOST
    assert port != listener_port
    await client.write_nodelay(b"x" * 1000)
    info = client.info()
    assert isinstance(info, tcp6.FlowInfo)
    assert info.state.name == "ESTABLISHED"
    assert info.mss > 0
    assert info.cwnd >= info.mss
    assert info.bytes_acked >= 1000
    assert info.rto > 0
    assert info.sack and info.timestamps  # Linux defaults on loopback
    assert server.info().bytes_received >= 1000
    await client.aclose()
    await server.aclose()


async def test_info_fills_every_field_from_tcp_info(stack: KernelStack) -> None:
    client, server = await _pair(stack)
    await client.write_nodelay(b"k" * 5000)
    assert len(await server.receive_some(10_000)) > 0
    with trio.fail_after(5):
        while client.info().unacked:
            await trio.sleep(0.01)
    check_flow_info(client.info(), sent=5000)
    await client.aclose()
    await server.aclose()


async def test_refused_on_closed_port(stack: KernelStack) -> None:
    # Find a port nobody listens on.
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(tcp6.Refused) as excinfo:
        await stack.open_tcp_stream("::1", port)
    assert excinfo.value.errno == errno.ECONNREFUSED
    result = await stack.create_connection((LOCALHOST, port))
    assert result == tcp6.Error(tcp6.Refused())
    assert tcp6.error_message(result.error).startswith("Refused")
    assert stack.stats()["attempt_fails"] == 2


async def test_create_connection_ok(stack: KernelStack) -> None:
    listener = await stack.open_tcp_listener(0)
    result = await stack.create_connection(("::1", listener.port))
    match result:
        case tcp6.Ok(flow):
            server = await listener.accept()
            await flow.write(b"hi")
            assert await server.read() == tcp6.Ok(b"hi")
            await flow.aclose()
            await server.aclose()
        case _:
            pytest.fail(f"create_connection gave {result!r}")
    await listener.aclose()


async def test_listen_callback_and_unlisten(stack: KernelStack) -> None:
    listener = await stack.open_tcp_listener(0)
    port = listener.port
    await listener.aclose()
    seen: list[tuple[ipaddress.IPv6Address, int]] = []

    async def echo(flow: tcp6.Flow) -> None:
        seen.append(flow.get_dest())
        while True:
            match await flow.read():
                case tcp6.Ok(data):
                    await flow.write(data)
                case _:
                    return

    stack.listen(port, echo)
    with pytest.raises(OSError):
        stack.listen(port, echo)
    for _ in range(2):
        flow = await stack.open_tcp_stream(LOCALHOST, port)
        await flow.write(b"echo me")
        assert await flow.read() == tcp6.Ok(b"echo me")
        await flow.send_eof()
        # The callback returned on EOF, and the stack closed the flow.
        assert await flow.read() == tcp6.EOF
        await flow.aclose()
    assert len(seen) == 2
    stack.unlisten(port)
    stack.unlisten(port)  # harmless
    with pytest.raises(tcp6.Refused):
        await stack.open_tcp_stream(LOCALHOST, port)


async def test_serve_tcp(stack: KernelStack) -> None:
    async def handler(flow: tcp6.Flow) -> None:
        await flow.send_all(b"banner")

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(stack.serve_tcp, handler, 0)
        assert len(listeners) == 1
        flow = await stack.open_tcp_stream("::1", listeners[0].port)
        data = b""
        while chunk := await flow.receive_some():
            data += chunk
        assert data == b"banner"
        await flow.aclose()
        nursery.cancel_scope.cancel()


async def test_leaving_the_stack_aborts_flows() -> None:
    async with tcp6.open_kernel_stack() as outer:
        listener = await outer.open_tcp_listener(0)
        async with tcp6.open_kernel_stack() as inner:
            flow = await inner.open_tcp_stream("::1", listener.port)
            server = await listener.accept()
        # The flow was reset when its stack went away.
        with pytest.raises(trio.BrokenResourceError):
            await flow.send_all(b"x")
        with pytest.raises((trio.BrokenResourceError,)):
            while await server.receive_some():
                pass
        await server.aclose()
        await listener.aclose()


async def test_stats_counts(stack: KernelStack) -> None:
    client, server = await _pair(stack)
    await client.write_nodelay(b"x" * 5000)
    stats = stack.stats()
    assert stats["active_opens"] == 1
    assert stats["passive_opens"] == 1
    assert stats["flows_open"] == 2
    assert stats["segments_out"] > 0
    assert stats["bytes_acked"] >= 5000
    await client.aclose()
    await server.aclose()
    after = stack.stats()
    assert after["flows_open"] == 0
    assert after["bytes_acked"] >= 5000  # closed flows keep counting


async def test_input_is_a_noop(stack: KernelStack) -> None:
    # The kernel does its own IP input: a packet handed in opens nothing, counts nothing.
    before = stack.stats()
    assert await stack.input("::1", "::1", b"\0" * 20) is None
    assert stack.stats() == before
    assert before["flows_open"] == 0


def test_parse_tcp_info_short_answer() -> None:
    info = parse_tcp_info(bytes([1, 0, 0, 0, 0, 7, 0x97, 0]) + b"\0" * 20)
    assert info["state"] == 1
    assert info["options"] == 7
    assert info["wscale"] == 0x97
    assert "rcv_wnd" not in info
