"""trio.SSLStream runs unchanged over a flow (the point of being a trio stream)."""

from __future__ import annotations

import ssl

import trio
import trio.testing
import trustme

import trio_tcp6 as tcp6

from .helpers import connect, two_stacks


async def test_tls_over_direct_flows(autojump_clock: trio.testing.MockClock) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("server.trio-tcp6.test").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    payload = bytes(range(256)) * 2000

    async with two_stacks(tcp6.TCPConfig(), seed=3, delay=0.005, loss=0.02, reorder=0.02) as (
        _net,
        a,
        b,
    ):
        client_flow, server_flow = await connect(a, b, 443)
        client = trio.SSLStream(client_flow, client_ctx, server_hostname="server.trio-tcp6.test")
        server = trio.SSLStream(server_flow, server_ctx, server_side=True)

        async def serve() -> None:
            received = bytearray()
            while len(received) < len(payload):
                received += await server.receive_some(65536)
            await server.send_all(b"got %d bytes" % len(received))
            assert bytes(received) == payload
            await server.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await client.send_all(payload)
            reply = await client.receive_some(100)
            assert reply == b"got %d bytes" % len(payload)
            assert client.selected_alpn_protocol() is None
            assert client.version() in ("TLSv1.3", "TLSv1.2")
        await client.aclose()


async def test_tls_over_kernel_flows() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with tcp6.open_kernel_stack() as stack:
        listener = await stack.open_tcp_listener(0)
        flow = await stack.open_tcp_stream("::1", listener.port)
        accepted = await listener.accept()
        client = trio.SSLStream(flow, client_ctx, server_hostname="localhost")
        server = trio.SSLStream(accepted, server_ctx, server_side=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            await client.send_all(b"ping over TLS")
            assert await server.receive_some(100) == b"ping over TLS"
        await client.aclose()
        await server.aclose()
        await listener.aclose()
