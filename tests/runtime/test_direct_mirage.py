"""The mirage-style calls of direct-stack flows and stacks, in virtual time."""

from __future__ import annotations

import errno
import ipaddress
import socket

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.tcp.events import State
from trio_tcp6.tcp.seq import seq_ge

from .helpers import A, B, connect, receive_exactly, two_stacks


async def test_read_ok_then_eof(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        assert await client.write(b"hello") == tcp6.Ok(None)
        assert await server.read() == tcp6.Ok(b"hello")
        await client.send_eof()
        assert await server.read() == tcp6.EOF
        assert await server.read() == tcp6.EOF  # EOF stays EOF


async def test_read_error_on_reset(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        await server.write(b"unread")
        await trio.testing.wait_all_tasks_blocked()
        assert client.state is State.ESTABLISHED
        # Closing with unread data resets the connection (RFC 9293 §3.10.4).
        await client.aclose()
        match await server.read():
            case tcp6.Error(err):
                assert isinstance(err, tcp6.Unknown)
                assert err.errno == errno.ECONNRESET
                assert tcp6.error_message(err) == "Unknown error: connection reset by peer"
            case other:
                pytest.fail(f"read after reset gave {other!r}")
        written = await server.write(b"more")
        assert isinstance(written, tcp6.Error)
        assert written.error.errno == errno.ECONNRESET
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"x")
        assert a.stats()["resets_sent"] == 1


async def test_read_after_local_close_is_an_error(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, _server = await connect(a, b)
        await client.aclose()
        match await client.read():
            case tcp6.Error(err):
                assert isinstance(err, tcp6.Unknown)
            case other:
                pytest.fail(f"read after aclose gave {other!r}")
        assert await client.write(b"x") == tcp6.EOF


async def test_write_blocks_on_full_send_buffer_and_resumes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    small = tcp6.TCPConfig(send_buffer=16384, receive_buffer=16384)
    async with two_stacks(small, delay=0.005) as (_net, a, b):
        client, server = await connect(a, b)
        payload = bytes(range(256)) * 256  # 64 KiB: 4x the send buffer + the peer window
        done = trio.Event()

        async def writer() -> None:
            assert await client.write(payload) == tcp6.Ok(None)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.sleep(10)  # nobody reads: the write must still be blocked
            assert not done.is_set()
            assert client._conn.send_space == 0
            got = await receive_exactly(server, len(payload))
            await done.wait()
        assert got == payload


async def test_write_returns_once_queued(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(delay=0.05) as (_net, a, b):
        client, server = await connect(a, b)
        start = trio.current_time()
        assert await client.write(b"x" * 1000) == tcp6.Ok(None)
        assert trio.current_time() == start  # queued, not acknowledged
        assert await server.read() == tcp6.Ok(b"x" * 1000)


async def test_writev_keeps_order(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        bufs: list[bytes | bytearray | memoryview] = [
            b"one,",
            bytearray(b"two,"),
            memoryview(b"three"),
        ]
        assert await client.writev(bufs) == tcp6.Ok(None)
        assert await receive_exactly(server, 13) == b"one,two,three"


async def test_write_nodelay_returns_after_the_ack(autojump_clock: trio.testing.MockClock) -> None:
    # 50 ms each way: the ACK for the data comes back after one 100 ms round trip.
    config = tcp6.TCPConfig(nagle=True, delayed_ack=0.2)
    async with two_stacks(config, delay=0.05) as (_net, a, b):
        client, server = await connect(a, b)
        # A first small segment is in flight: Nagle would hold the next one back.
        assert await client.write(b"a") == tcp6.Ok(None)
        start = trio.current_time()
        assert await client.write_nodelay(b"bcd") == tcp6.Ok(None)
        elapsed = trio.current_time() - start
        assert elapsed >= 0.1 - 1e-9  # at least one round trip
        conn = client._conn
        assert seq_ge(conn.snd_una, conn.send_queue_end)
        assert await receive_exactly(server, 4) == b"abcd"
        start = trio.current_time()
        assert await client.writev_nodelay([b"e", b"f"]) == tcp6.Ok(None)
        assert trio.current_time() - start >= 0.1 - 1e-9
        assert await receive_exactly(server, 2) == b"ef"


async def test_write_nodelay_waits_for_the_last_byte(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The server's 4096-byte buffer takes all but the last byte of a 4097-byte write
    # and is then full: everything but that byte is acknowledged (SND.UNA is one
    # short of the end) while the window stays closed. write_nodelay must keep
    # waiting until the reader makes room and the last byte is acknowledged too.
    small = tcp6.TCPConfig(receive_buffer=4096)
    async with two_stacks(tcp6.TCPConfig(), small) as (_net, a, b):
        client, server = await connect(a, b)
        results: list[object] = []

        async def writer() -> None:
            results.append(await client.write_nodelay(b"w" * 4097))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.sleep(5.0)
            assert results == []  # 4096 of 4097 bytes acknowledged: not done yet
            assert await receive_exactly(server, 4096) == b"w" * 4096
        assert results == [tcp6.Ok(None)]
        assert await receive_exactly(server, 1) == b"w"


async def test_write_nodelay_error_when_path_dies(autojump_clock: trio.testing.MockClock) -> None:
    config = tcp6.TCPConfig(user_timeout=5.0)
    async with two_stacks(config) as (net, a, b):
        client, _server = await connect(a, b)
        net.impair(loss=1.0)
        start = trio.current_time()
        match await client.write_nodelay(b"lost"):
            case tcp6.Error(err):
                assert isinstance(err, tcp6.Timeout)
            case other:
                pytest.fail(f"write_nodelay over a dead path gave {other!r}")
        assert 5.0 <= trio.current_time() - start < 30.0


async def test_close_waits_for_the_peer_and_reads_still_work(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        log: list[str] = []

        async def close_client() -> None:
            await client.close()
            log.append("client close returned")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_client)
            assert await server.read() == tcp6.EOF
            await trio.sleep(1)
            assert log == []  # the server has not closed yet
            # Half-closed: the server still sends, the client still reads.
            await server.write(b"reply")
            assert await client.read() == tcp6.Ok(b"reply")
            assert log == []
            await server.close()
            log.append("server close returned")
        assert set(log) == {"client close returned", "server close returned"}
        assert await client.read() == tcp6.EOF
        assert client.state in (State.TIME_WAIT, State.CLOSED)
        assert server.state is State.CLOSED


async def test_close_flushes_pending_writes(autojump_clock: trio.testing.MockClock) -> None:
    small = tcp6.TCPConfig(send_buffer=8192)
    async with two_stacks(small, delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        payload = b"z" * 50_000

        async def producer() -> None:
            assert await client.write(payload) == tcp6.Ok(None)
            await client.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            data = bytearray()
            while True:
                match await server.read():
                    case tcp6.Ok(chunk):
                        data += chunk
                    case tcp6.Eof():
                        break
                    case other:
                        pytest.fail(f"unexpected {other!r}")
            await server.close()
        assert data == payload


async def test_get_dest(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b, port=8080)
        assert client.get_dest() == (ipaddress.IPv6Address(B), 8080)
        addr, port = server.get_dest()
        assert addr == ipaddress.IPv6Address(A)
        assert port == client.local_port
        assert 49152 <= port <= 65535  # RFC 6056 / RFC 6335 ephemeral range


async def test_create_connection_ok(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        listener = await b.open_tcp_listener(7)
        match await a.create_connection((B, 7)):
            case tcp6.Ok(flow):
                server = await listener.accept()
                await flow.write(b"ping")
                assert await server.read() == tcp6.Ok(b"ping")
            case other:
                pytest.fail(f"create_connection gave {other!r}")


async def test_create_connection_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        start = trio.current_time()
        result = await a.create_connection((ipaddress.IPv6Address(B), 9))
        assert result == tcp6.Error(tcp6.Refused())
        assert trio.current_time() - start < 0.5  # answered by RST, not a timeout
        assert tcp6.error_message(result.error) == "Refused: connection refused"
        with pytest.raises(tcp6.Refused) as excinfo:
            await a.open_tcp_stream(B, 9)
        assert excinfo.value.errno == errno.ECONNREFUSED
        assert b.stats()["drop_no_listener"] == 2
        assert b.stats()["resets_sent"] == 2
        assert a.stats()["attempt_fails"] == 2
        assert a.stats()["flows_open"] == 0


async def test_create_connection_timeout(autojump_clock: trio.testing.MockClock) -> None:
    config = tcp6.TCPConfig(syn_retries=3, initial_rto=1.0)
    async with two_stacks(config) as (net, a, _b):
        net.impair(loss=1.0)
        start = trio.current_time()
        result = await a.create_connection((B, 80))
        elapsed = trio.current_time() - start
        assert result == tcp6.Error(tcp6.Timeout())
        assert tcp6.error_message(result.error) == "Timeout: connection timed out"
        # SYN at 0, retransmissions at 1, 3, 7, give up at 15 (exponential backoff).
        assert 7.0 < elapsed <= 16.0
        assert a.stats()["syn_retransmits"] == 3
        assert a.stats()["flows_open"] == 0


async def test_listen_and_unlisten(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        served: list[tuple[ipaddress.IPv6Address, int]] = []

        async def upper(flow: tcp6.Flow) -> None:
            served.append(flow.get_dest())
            while True:
                match await flow.read():
                    case tcp6.Ok(data):
                        await flow.write(data.upper())
                    case _:
                        return

        b.listen(25, upper)
        with pytest.raises(OSError):
            b.listen(25, upper)
        for word in (b"abc", b"xyz"):
            flow = await a.open_tcp_stream(B, 25)
            await flow.write(word)
            assert await flow.read() == tcp6.Ok(word.upper())
            await flow.send_eof()
            # The callback returns at EOF and the stack closes the flow: we see EOF.
            assert await flow.read() == tcp6.EOF
            await flow.aclose()
        assert [addr for addr, _port in served] == [ipaddress.IPv6Address(A)] * 2
        b.unlisten(25)
        b.unlisten(25)
        with pytest.raises(tcp6.Refused):
            await a.open_tcp_stream(B, 25)


async def test_listen_callback_errors_from_the_network_do_not_crash_the_stack(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (_net, a, b):
        outcome: list[str] = []

        async def greeter(flow: tcp6.Flow) -> None:
            await flow.send_all(b"hello")
            try:
                while await flow.receive_some():
                    pass
            except trio.BrokenResourceError:
                outcome.append("broken")
                raise  # the stack absorbs network failures of callbacks

        b.listen(26, greeter)
        flow = await a.open_tcp_stream(B, 26)
        await trio.sleep(1)
        assert flow._conn.readable == 5
        await flow.aclose()  # unread data: RST
        await trio.sleep(1)
        assert outcome == ["broken"]
        # The stack still works.
        again = await a.open_tcp_stream(B, 26)
        assert await receive_exactly(again, 5) == b"hello"
        await again.aclose()


async def test_aclose_is_prompt_and_finishes_in_the_background(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(delay=1.0) as (_net, a, b):
        client, server = await connect(a, b)
        await client.send_all(b"last words")
        start = trio.current_time()
        await client.aclose()
        assert trio.current_time() == start  # no waiting for the FIN's ACK
        # The data and the FIN still arrive: a graceful close, not a reset.
        assert await receive_exactly(server, 10) == b"last words"
        assert await server.read() == tcp6.EOF
        await server.aclose()
        await trio.sleep(5)
        assert client.state in (State.TIME_WAIT, State.CLOSED)
        assert a.stats()["resets_sent"] == 0


async def test_concurrent_mirage_writes_queue_in_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    small = tcp6.TCPConfig(send_buffer=4096, receive_buffer=4096)
    async with two_stacks(small, delay=0.01) as (_net, a, b):
        client, server = await connect(a, b)
        chunks = [bytes([65 + i]) * 10_000 for i in range(4)]

        async def write(i: int) -> None:
            await trio.sleep(i * 0.001)  # start in order; each blocks on the full buffer
            assert await client.write(chunks[i]) == tcp6.Ok(None)

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(write, i)
            data = await receive_exactly(server, 40_000)
        # Each write went out whole, in the order the writers arrived.
        assert data == b"".join(chunks)


async def test_flows_of_both_stacks_are_flows(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        assert isinstance(client, tcp6.Flow) and isinstance(server, tcp6.Flow)
        assert isinstance(client, trio.abc.HalfCloseableStream)
        listener = await b.open_tcp_listener(0)
        assert isinstance(listener, tcp6.Listener)
        assert isinstance(a, tcp6.Stack)
        # Hosts: literals (bracketed too) or address objects; unknown names are
        # refused as trio refuses them (socket.gaierror).
        flow = await a.open_tcp_stream(f"[{B}]", listener.port)
        await flow.aclose()
        with pytest.raises(socket.gaierror):
            await a.open_tcp_stream("no-such-host", listener.port)
