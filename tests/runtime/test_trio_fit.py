"""trio's defaults and shapes on both stacks: TCP_NODELAY for the trio-style API,
per-flow socket options, socket-shaped flows and listeners, host names, trio's
exception types, ICMPv6 unreachable on a VirtualNetwork, port validation, reprs."""

from __future__ import annotations

import errno
import ipaddress
import socket
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow, KernelFlow
from trio_tcp6.tcp.cc import NewReno

from .helpers import A, B, connect, receive_exactly, two_stacks

TCP, SOL = socket.IPPROTO_TCP, socket.SOL_SOCKET
needs_ipv6 = pytest.mark.skipif(not socket.has_ipv6, reason="needs IPv6 on loopback")
STACKS = ["direct", pytest.param("kernel", marks=needs_ipv6)]


@asynccontextmanager
async def stack_pair(kind: str) -> AsyncIterator[tuple[tcp6.Stack, tcp6.Stack, str]]:
    """(client stack, server stack, the server's address) of either kind."""
    if kind == "direct":
        async with two_stacks() as (_net, a, b):
            yield a, b, B
    else:
        async with tcp6.open_kernel_stack() as k:
            yield k, k, "::1"


@asynccontextmanager
async def flow_pair(kind: str) -> AsyncIterator[tuple[tcp6.Flow, tcp6.Flow]]:
    """A connected (client, server) pair made with the trio-style calls."""
    async with stack_pair(kind) as (client_stack, server_stack, addr):
        listener = await server_stack.open_tcp_listener(0)
        client = await client_stack.open_tcp_stream(addr, listener.port)
        server = await listener.accept()
        await listener.aclose()
        yield client, server
        await client.aclose()
        await server.aclose()


async def request_times(client: trio.abc.Stream, server: trio.abc.Stream, n: int) -> list[float]:
    """Seconds per write-write-read round trip (a header and a body written
    separately, the reply read), as an HTTP client does; the server answers once it
    has the whole request."""

    async def serve() -> None:
        for _ in range(n):
            await receive_exactly(server, 200)
            await server.send_all(b"r" * 100)

    times = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for _ in range(n):
            start = trio.current_time()
            await client.send_all(b"h" * 100)
            await client.send_all(b"b" * 100)
            await receive_exactly(client, 100)
            times.append(trio.current_time() - start)
    return times


# -- §1 trio's defaults: TCP_NODELAY ------------------------------------------------------
async def test_write_write_read_costs_one_round_trip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With Nagle the body waits for the ACK of the header, which the server delays
    by 40 ms (it has nothing to send yet): 60 ms per request on a 10 ms RTT. trio's
    SocketStream sets TCP_NODELAY, so must open_tcp_stream and accept."""
    async with two_stacks(delay=0.005) as (_net, a, b):
        client, server = await connect(a, b)
        times = await request_times(client, server, 5)
        assert max(times) == pytest.approx(0.010, abs=0.0005)


async def test_serve_tcp_flows_have_nodelay(autojump_clock: trio.testing.MockClock) -> None:
    """The server side too: a handler writing its answer in two parts answers in one
    RTT (the client's delayed ACK would hold the second part 40 ms)."""
    async with two_stacks(delay=0.005) as (_net, a, b), trio.open_nursery() as nursery:

        async def handler(flow: tcp6.Flow) -> None:
            assert flow.getsockopt(TCP, socket.TCP_NODELAY) == 1
            while await receive_exactly(flow, 1):
                await flow.send_all(b"head")
                await flow.send_all(b"body")

        listeners = await nursery.start(b.serve_tcp, handler, 0)
        client = await a.open_tcp_stream(B, listeners[0].port)
        for _ in range(3):
            start = trio.current_time()
            await client.send_all(b"?")
            assert await receive_exactly(client, 8) == b"headbody"
            assert trio.current_time() - start == pytest.approx(0.010, abs=0.0005)
        nursery.cancel_scope.cancel()


async def test_mirage_calls_keep_nagle(autojump_clock: trio.testing.MockClock) -> None:
    """create_connection and listen keep TCPConfig.nagle: small writes coalesce."""
    async with two_stacks(delay=0.005) as (_net, a, b):
        accepted: list[tcp6.Flow] = []
        done = trio.Event()

        async def callback(flow: tcp6.Flow) -> None:
            accepted.append(flow)
            await done.wait()

        b.listen(80, callback)
        result = await a.create_connection((B, 80))
        assert isinstance(result, tcp6.Ok)
        flow = result.value
        await trio.sleep(0.1)
        assert flow.getsockopt(TCP, socket.TCP_NODELAY) == 0
        assert accepted[0].getsockopt(TCP, socket.TCP_NODELAY) == 0
        times = await request_times(flow, accepted[0], 3)
        assert min(times[1:]) > 0.045  # the delayed ACK of the header paces the body
        done.set()


@needs_ipv6
async def test_kernel_trio_style_flows_have_nodelay_and_mirage_ones_not() -> None:
    async with tcp6.open_kernel_stack() as k:
        listener = await k.open_tcp_listener(0)
        client = await k.open_tcp_stream("::1", listener.port)
        server = await listener.accept()
        assert isinstance(client, KernelFlow) and isinstance(server, KernelFlow)
        for flow in (client, server):
            assert flow.socket.getsockopt(TCP, socket.TCP_NODELAY) == 1
        times = await request_times(client, server, 10)
        assert statistics.median(times) < 0.02  # 40 ms with Nagle (delayed ACK)
        result = await k.create_connection(("::1", listener.port))
        assert isinstance(result, tcp6.Ok)
        mirage = result.value
        assert isinstance(mirage, KernelFlow)
        assert mirage.socket.getsockopt(TCP, socket.TCP_NODELAY) == 0
        # write_nodelay restores the flow's own setting.
        peer = await listener.accept()
        assert await mirage.write_nodelay(b"x") == tcp6.Ok(None)
        assert mirage.socket.getsockopt(TCP, socket.TCP_NODELAY) == 0
        assert await client.write_nodelay(b"y") == tcp6.Ok(None)
        assert client.socket.getsockopt(TCP, socket.TCP_NODELAY) == 1
        for flow in (client, server, mirage, peer):
            await flow.aclose()


# -- §1 per-flow options --------------------------------------------------------------------
@pytest.mark.parametrize("kind", STACKS)
async def test_socket_options_round_trip(kind: str) -> None:
    async with flow_pair(kind) as (client, _server):
        for flow in (client, client.socket):
            flow.setsockopt(TCP, socket.TCP_NODELAY, 0)
            assert flow.getsockopt(TCP, socket.TCP_NODELAY) == 0
            flow.setsockopt(TCP, socket.TCP_NODELAY, True)
            assert flow.getsockopt(TCP, socket.TCP_NODELAY) == 1
        assert client.getsockopt(SOL, socket.SO_KEEPALIVE) == 0
        client.setsockopt(TCP, socket.TCP_KEEPIDLE, 30)
        client.setsockopt(TCP, socket.TCP_KEEPINTVL, 5)
        client.setsockopt(TCP, socket.TCP_KEEPCNT, 3)
        client.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        assert client.getsockopt(SOL, socket.SO_KEEPALIVE) == 1
        assert client.getsockopt(TCP, socket.TCP_KEEPIDLE) == 30
        assert client.getsockopt(TCP, socket.TCP_KEEPINTVL) == 5
        assert client.getsockopt(TCP, socket.TCP_KEEPCNT) == 3
        client.setsockopt(TCP, socket.TCP_USER_TIMEOUT, 5000)
        assert client.getsockopt(TCP, socket.TCP_USER_TIMEOUT) == 5000
        client.setsockopt(TCP, socket.TCP_USER_TIMEOUT, 0)
        assert client.getsockopt(TCP, socket.TCP_USER_TIMEOUT) == 0
        client.setsockopt(SOL, socket.SO_SNDBUF, 65536)
        client.setsockopt(SOL, socket.SO_RCVBUF, 65536)
        # (Linux reports twice what was asked, for its bookkeeping.)
        assert client.getsockopt(SOL, socket.SO_SNDBUF) in (65536, 131072)
        assert client.getsockopt(SOL, socket.SO_RCVBUF) in (65536, 131072)
        assert client.getsockopt(TCP, socket.TCP_NODELAY, 4) == (1).to_bytes(4, "little")


@pytest.mark.parametrize("kind", STACKS)
async def test_congestion_control_by_name(kind: str) -> None:
    async with flow_pair(kind) as (client, server):
        client.setsockopt(TCP, socket.TCP_CONGESTION, b"reno")
        assert client.getsockopt(TCP, socket.TCP_CONGESTION) == b"reno"
        assert client.getsockopt(TCP, socket.TCP_CONGESTION, 16) == b"reno".ljust(16, b"\0")
        client.setsockopt(TCP, socket.TCP_CONGESTION, "cubic")
        assert client.getsockopt(TCP, socket.TCP_CONGESTION) == b"cubic"
        client.setsockopt(TCP, socket.TCP_CONGESTION, "newreno")
        assert client.getsockopt(TCP, socket.TCP_CONGESTION) == b"reno"
        if isinstance(client, DirectFlow):
            assert isinstance(client.engine.cc, NewReno)
        with pytest.raises(OSError) as info:
            client.setsockopt(TCP, socket.TCP_CONGESTION, b"no-such-cc")
        assert info.value.errno == errno.ENOENT
        await client.send_all(b"data")
        await receive_exactly(server, 4)
        with pytest.raises(OSError) as info:
            client.setsockopt(TCP, socket.TCP_CONGESTION, b"cubic")
        assert info.value.errno == errno.EBUSY
        client.setsockopt(TCP, socket.TCP_CONGESTION, b"reno")  # (no change: fine)


@pytest.mark.parametrize("kind", STACKS)
async def test_unsupported_options_and_bad_values(kind: str) -> None:
    async with flow_pair(kind) as (client, _server):
        for level, opt in [(TCP, socket.TCP_MAXSEG), (SOL, socket.SO_REUSEADDR), (99, 1)]:
            with pytest.raises(OSError) as info:
                client.setsockopt(level, opt, 1)
            assert info.value.errno == errno.ENOPROTOOPT
            with pytest.raises(OSError) as info:
                client.getsockopt(level, opt)
            assert info.value.errno == errno.ENOPROTOOPT
        for opt, bad in [(socket.TCP_KEEPCNT, 0), (socket.TCP_KEEPIDLE, 40000)]:
            with pytest.raises(OSError) as info:
                client.setsockopt(TCP, opt, bad)
            assert info.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            client.setsockopt(TCP, socket.TCP_NODELAY, "yes")


async def test_keepalive_set_on_a_flow_detects_a_dead_peer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (net, a, b):
        client, _server = await connect(a, b)
        client.setsockopt(TCP, socket.TCP_KEEPIDLE, 10)
        client.setsockopt(TCP, socket.TCP_KEEPINTVL, 2)
        client.setsockopt(TCP, socket.TCP_KEEPCNT, 3)
        client.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        start = trio.current_time()
        net.impair(loss=1.0)
        with pytest.raises(trio.BrokenResourceError) as info:
            await client.receive_some()
        assert isinstance(info.value.__cause__, tcp6.Timeout)
        # Idle 10 s, then 3 probes 2 s apart, and giving up 2 s after the last.
        assert trio.current_time() - start == pytest.approx(16.0, abs=0.01)


async def test_user_timeout_set_on_a_flow(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (net, a, b):
        client, _server = await connect(a, b)
        client.setsockopt(TCP, socket.TCP_USER_TIMEOUT, 3000)
        net.impair(loss=1.0)
        start = trio.current_time()
        await client.send_all(b"lost")
        with pytest.raises(trio.BrokenResourceError):
            await client.receive_some()
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)


async def test_send_buffer_set_on_a_flow_bounds_queued_data(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (net, a, b):
        client, _server = await connect(a, b)
        client.setsockopt(SOL, socket.SO_SNDBUF, 4096)
        net.impair(loss=1.0)
        with trio.move_on_after(1):
            await client.send_all(b"x" * 10000)
        assert client.engine.send_queued == 4096
        assert client.getsockopt(SOL, socket.SO_SNDBUF) == 4096


async def test_nodelay_on_sends_what_nagle_holds(autojump_clock: trio.testing.MockClock) -> None:
    """As on Linux, setting TCP_NODELAY pushes the small segment Nagle holds back."""
    async with two_stacks(delay=0.005) as (_net, a, b):
        client, server = await connect(a, b)
        client.setsockopt(TCP, socket.TCP_NODELAY, 0)
        await client.send_all(b"a")
        await client.send_all(b"b")  # held: "a" is unacknowledged
        await trio.sleep(0.001)
        start = trio.current_time()
        client.setsockopt(TCP, socket.TCP_NODELAY, 1)
        assert await receive_exactly(server, 2) == b"ab"
        assert trio.current_time() - start < 0.006  # one-way delay, no delayed ACK


# -- §2 socket-shaped flows and listeners ----------------------------------------------------
@pytest.mark.parametrize("kind", STACKS)
async def test_flows_and_listeners_are_socket_shaped(kind: str) -> None:
    async with stack_pair(kind) as (client_stack, server_stack, addr):
        listener = await server_stack.open_tcp_listener(0)
        lsock = listener.socket
        assert lsock.family == socket.AF_INET6 and lsock.type == socket.SOCK_STREAM
        name = lsock.getsockname()
        assert name[1] == listener.port
        client = await client_stack.open_tcp_stream(addr, listener.port)
        server = await listener.accept()
        for flow, peer in ((client, server), (server, client)):
            sock = flow.socket
            assert sock.family == socket.AF_INET6
            assert sock.type == socket.SOCK_STREAM
            assert sock.proto in (0, socket.IPPROTO_TCP)
            local, port = flow.get_local()
            assert sock.getsockname()[:2] == (str(local), port)
            assert sock.getpeername()[:2] == (str(peer.get_local()[0]), peer.get_local()[1])
            assert flow.get_dest() == peer.get_local()
            assert sock.getsockopt(TCP, socket.TCP_NODELAY) == 1
        if kind == "direct":
            assert name == (B, listener.port, 0, 0)
            assert client.socket.getsockname() == (A, client.get_local()[1], 0, 0)
            assert not hasattr(client.socket, "fileno")  # no kernel descriptor behind it
            assert not hasattr(lsock, "fileno")
            with pytest.raises(OSError) as info:
                lsock.getpeername()
            assert info.value.errno == errno.ENOTCONN
        else:
            assert listener.get_local() == (ipaddress.IPv6Address("::"), listener.port)
        await listener.aclose()
        await client.aclose()
        await server.aclose()


async def test_listener_nodelay_is_inherited(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, a, b):
        listener = await b.open_tcp_listener(0)
        listener.socket.setsockopt(TCP, socket.TCP_NODELAY, 0)
        assert listener.socket.getsockopt(TCP, socket.TCP_NODELAY) == 0
        await a.open_tcp_stream(B, listener.port)
        server = await listener.accept()
        assert server.getsockopt(TCP, socket.TCP_NODELAY) == 0
        with pytest.raises(OSError) as info:
            listener.socket.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        assert info.value.errno == errno.ENOPROTOOPT


@pytest.mark.parametrize("kind", STACKS)
async def test_open_tcp_listeners_returns_a_list_for_serve_listeners(kind: str) -> None:
    async with stack_pair(kind) as (client_stack, server_stack, addr):

        async def echo(flow: tcp6.Flow) -> None:
            await flow.send_all(await flow.receive_some())

        listeners = await server_stack.open_tcp_listeners(0, host=addr)
        assert isinstance(listeners, list) and len(listeners) == 1
        assert listeners[0].get_local() == (ipaddress.IPv6Address(addr), listeners[0].port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, echo, listeners)
            flow = await client_stack.open_tcp_stream(addr, listeners[0].port)
            await flow.send_all(b"echo")
            assert await receive_exactly(flow, 4) == b"echo"
            await flow.aclose()
            nursery.cancel_scope.cancel()


async def test_direct_listen_and_connect_only_on_own_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (_net, a, b):
        for bad in ("2001:db8::99", A):
            with pytest.raises(OSError) as info:
                await b.open_tcp_listeners(0, host=bad)
            assert info.value.errno == errno.EADDRNOTAVAIL
        listener = await b.open_tcp_listener(0, host="::")
        with pytest.raises(OSError) as info:
            await a.open_tcp_stream(B, listener.port, local_address=B)
        assert info.value.errno == errno.EADDRNOTAVAIL
        flow = await a.open_tcp_stream(B, listener.port, local_address=A)
        assert flow.get_local()[0] == ipaddress.IPv6Address(A)


@needs_ipv6
async def test_kernel_local_address() -> None:
    async with tcp6.open_kernel_stack() as k:
        listener = await k.open_tcp_listener(0, host="::1")
        assert listener.get_local() == (ipaddress.IPv6Address("::1"), listener.port)
        flow = await k.open_tcp_stream("::1", listener.port, local_address="::1")
        assert flow.get_local()[0] == ipaddress.IPv6Address("::1")
        await flow.aclose()


@pytest.mark.parametrize("kind", STACKS)
async def test_trio_stream_conformance(kind: str) -> None:
    async with stack_pair(kind) as (client_stack, server_stack, addr):
        listener = await server_stack.open_tcp_listener(0)

        async def make() -> tuple[tcp6.Flow, tcp6.Flow]:
            client = await client_stack.open_tcp_stream(addr, listener.port)
            return client, await listener.accept()

        async def make_reversed() -> tuple[tcp6.Flow, tcp6.Flow]:
            client, server = await make()
            return server, client

        await trio.testing.check_half_closeable_stream(make, None)
        await trio.testing.check_two_way_stream(make_reversed, None)


# -- §4 names -------------------------------------------------------------------------------
async def test_names_on_a_virtual_network(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork()
    async with (
        tcp6.open_stack(net.attach(A, name="client"), A) as a,
        tcp6.open_stack(net.attach(B, name="Server"), B, hosts={"db": B}) as b,
    ):
        listener = await b.open_tcp_listener(80)
        for host in ("server", "SERVER.", "Server"):
            flow = await a.open_tcp_stream(host, 80)
            assert flow.get_dest() == (ipaddress.IPv6Address(B), 80)
            await flow.aclose()
            await listener.accept()
        assert b.resolve("client") == ipaddress.IPv6Address(A)
        assert b.resolve("db") == ipaddress.IPv6Address(B)
        # localhost: the stack's own address (the network carries it back).
        own = await a.open_tcp_listener(81)
        flow = await a.open_tcp_stream("localhost", 81)
        assert flow.get_dest() == (ipaddress.IPv6Address(A), 81)
        back = await own.accept()
        await flow.send_all(b"self")
        assert await receive_exactly(back, 4) == b"self"
        with pytest.raises(socket.gaierror) as info:
            await a.open_tcp_stream("db", 80)  # (only b has that entry)
        assert info.value.errno == socket.EAI_NONAME
        assert isinstance(info.value, OSError)
    with pytest.raises(ValueError):
        net.attach("2001:db8::c", name="server")


async def test_hosts_mapping_for_a_stack_without_a_network_resolver() -> None:
    """A link that knows no names (a TUN link): only ``hosts`` and localhost."""

    class PlainLink:
        mtu = 1500

        async def send(self, packet: bytes) -> None:
            await trio.lowlevel.checkpoint()

        async def receive(self) -> bytes:
            await trio.sleep_forever()
            raise AssertionError

    async with tcp6.open_stack(PlainLink(), A, hosts={"Peer.example": B}) as s:
        assert s.resolve("peer.example") == ipaddress.IPv6Address(B)
        assert s.resolve("localhost") == ipaddress.IPv6Address(A)
        with pytest.raises(socket.gaierror):
            s.resolve("server")


@needs_ipv6
async def test_kernel_names() -> None:
    async with tcp6.open_kernel_stack(hosts={"db": "::1"}) as k:
        listener = await k.open_tcp_listener(0)
        for host in ("localhost", "db"):
            flow = await k.open_tcp_stream(host, listener.port)
            assert flow.get_dest()[0] == ipaddress.IPv6Address("::1")
            await flow.aclose()
            await (await listener.accept()).aclose()
        with pytest.raises(socket.gaierror):
            await k.open_tcp_stream("no-such-host", listener.port)


# -- §4 errors ------------------------------------------------------------------------------
def test_error_types_are_the_builtin_ones_too() -> None:
    refused, timeout = tcp6.Refused(), tcp6.Timeout()
    assert isinstance(refused, ConnectionRefusedError) and isinstance(refused, tcp6.TCPError)
    assert isinstance(timeout, TimeoutError) and isinstance(timeout, tcp6.TCPError)
    assert refused.errno == errno.ECONNREFUSED and timeout.errno == errno.ETIMEDOUT


@pytest.mark.parametrize("kind", STACKS)
async def test_refused_is_caught_as_trio_code_catches_it(kind: str) -> None:
    async with stack_pair(kind) as (client_stack, server_stack, addr):
        listener = await server_stack.open_tcp_listener(0)
        port = listener.port
        await listener.aclose()
        with pytest.raises(ConnectionRefusedError) as info:
            await client_stack.open_tcp_stream(addr, port)
        assert isinstance(info.value, tcp6.Refused)


async def test_timeout_is_a_timeout_error(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(tcp6.TCPConfig(syn_retries=1)) as (net, a, _b):
        net.impair(dst=B, loss=1.0)
        with pytest.raises(TimeoutError) as info:
            await a.open_tcp_stream(B, 80)
        assert isinstance(info.value, tcp6.Timeout)


async def test_unattached_address_fails_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """The network answers like a router (ICMPv6 address unreachable); SYN-SENT
    aborts on it, as Linux does, instead of retrying the SYN for 247 s."""
    async with two_stacks() as (net, a, _b):
        start = trio.current_time()
        with pytest.raises(OSError) as info:
            await a.open_tcp_stream("2001:db8::99", 80)
        assert trio.current_time() - start < 0.001
        assert info.value.errno == errno.EHOSTUNREACH
        assert "unreachable" in str(info.value)
        assert net.stats()["icmp_unreachable_sent"] == 1
        assert a.stats()["icmp_unreachable_aborts"] == 1


async def test_unreachable_off_keeps_the_black_hole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks(tcp6.TCPConfig(syn_retries=1), unreachable=False) as (net, a, _b):
        with pytest.raises(tcp6.Timeout):
            await a.open_tcp_stream("2001:db8::99", 80)
        assert trio.current_time() >= 3.0
        assert net.stats()["icmp_unreachable_sent"] == 0


# -- §4 ports, reprs, State, close() --------------------------------------------------------
@pytest.mark.parametrize("kind", STACKS)
async def test_ports_are_validated_alike(kind: str) -> None:
    async with stack_pair(kind) as (client_stack, server_stack, addr):
        with pytest.raises(ValueError):
            await client_stack.open_tcp_stream(addr, 0)
        for bad in (70000, -1):
            with pytest.raises(OverflowError):
                await client_stack.open_tcp_stream(addr, bad)
            with pytest.raises(ValueError):
                await server_stack.open_tcp_listener(bad)
            with pytest.raises(OverflowError):
                server_stack.listen(bad, lambda flow: trio.lowlevel.checkpoint())
        for text in ("80", b"80", 80.0):
            with pytest.raises(TypeError):
                await client_stack.open_tcp_stream(addr, text)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await server_stack.open_tcp_listener(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", STACKS)
async def test_reprs(kind: str) -> None:
    async with flow_pair(kind) as (client, server):
        local, port = client.get_local()
        dest, dport = client.get_dest()
        text = repr(client)
        assert f"[{local}]:{port} -> [{dest}]:{dport} ESTABLISHED" in text
        assert f"[{dest}]:{dport} -> [{local}]:{port}" in repr(server)
        assert repr(client.socket)


async def test_direct_listener_and_stack_reprs(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as (_net, _a, b):
        listener = await b.open_tcp_listener(8080)
        assert repr(listener) == f"<DirectListener [{B}]:8080>"
        assert repr(b) == f"<DirectStack [{B}] flows=0>"
        await listener.aclose()
        assert repr(listener) == f"<DirectListener [{B}]:8080 closed>"


@needs_ipv6
async def test_kernel_listener_and_stack_reprs() -> None:
    async with tcp6.open_kernel_stack() as k:
        listener = await k.open_tcp_listener(0)
        assert repr(listener) == f"<KernelListener [::]:{listener.port}>"
        assert repr(k) == "<KernelStack flows=0>"
        await listener.aclose()


async def test_state_is_exported(autojump_clock: trio.testing.MockClock) -> None:
    from trio_tcp6.tcp.events import State

    assert tcp6.State is State and "State" in tcp6.__all__
    async with two_stacks() as (_net, a, b):
        client, _server = await connect(a, b)
        assert client.state is tcp6.State.ESTABLISHED


async def test_close_without_await_does_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """The documented trap: ``flow.close()`` is the mirage coroutine, not
    ``socket.close()``; not awaited, it does nothing."""
    assert tcp6.Flow.close.__doc__ is not None and "await" in tcp6.Flow.close.__doc__
    assert tcp6.Flow.__doc__ is not None and "never awaited" in tcp6.Flow.__doc__
    async with two_stacks() as (_net, a, b):
        client, server = await connect(a, b)
        coro = client.close()
        coro.close()  # what an un-awaited coroutine amounts to
        await trio.sleep(1)
        assert client.state is tcp6.State.ESTABLISHED
        await client.send_all(b"still open")
        assert await receive_exactly(server, 10) == b"still open"
