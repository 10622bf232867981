"""anyio's stream wrappers (TLS, buffered, text) over flows of both stacks, through
trio_tcp6.contrib.anyio, under anyio's trio backend."""

from __future__ import annotations

import ssl

import anyio
import pytest
import trio
import trustme
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.stapled import StapledByteStream
from anyio.streams.text import TextStream
from anyio.streams.tls import TLSStream

from trio_tcp6.contrib.anyio import FlowByteStream

from .helpers import KERNEL_PATIENCE, KINDS, stack_pair

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("kind", KINDS)
async def test_tls_buffered_and_text_streams(kind: str) -> None:
    ca = trustme.CA()
    async with stack_pair(kind) as pair:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(pair.host).configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        listener = await pair.server.open_tcp_listener(0)
        big = "é" * 200_000

        async def server() -> None:
            raw = FlowByteStream(await listener.accept())
            tls = await TLSStream.wrap(raw, server_side=True, ssl_context=server_ctx)
            buffered = BufferedByteReceiveStream(tls)
            line = await buffered.receive_until(b"\r\n", 1024)
            await tls.send(b"you said " + line + b"\r\n")
            text = TextStream(StapledByteStream(tls, buffered))
            await text.send(big)
            await tls.aclose()

        with trio.fail_after(KERNEL_PATIENCE if kind == "kernel" else 600.0):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server)
                raw = FlowByteStream(await pair.client.open_tcp_stream(pair.host, listener.port))
                assert raw.extra(SocketAttribute.remote_address) == (pair.host, listener.port)
                assert raw.extra(SocketAttribute.remote_port) == listener.port
                assert raw.extra(SocketAttribute.local_port) > 0
                tls = await TLSStream.wrap(raw, hostname=pair.host, ssl_context=client_ctx)
                assert tls.extra(SocketAttribute.remote_port) == listener.port  # passed through
                await tls.send(b"hi\r\n")
                buffered = BufferedByteReceiveStream(tls)
                assert await buffered.receive_until(b"\r\n", 1024) == b"you said hi"
                text = TextStream(buffered)
                received = ""
                with pytest.raises(anyio.EndOfStream):
                    while True:
                        received += await text.receive()
                assert received == big
                await tls.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_errors_are_anyio_errors(kind: str) -> None:
    async with stack_pair(kind) as pair:
        listener = await pair.server.open_tcp_listener(0)
        with trio.fail_after(KERNEL_PATIENCE if kind == "kernel" else 600.0):
            client = FlowByteStream(await pair.client.open_tcp_stream(pair.host, listener.port))
            peer = await listener.accept()
            await client.send_eof()
            assert await peer.receive_some() == b""
            await peer.send_all(b"x")
            await peer.aclose()
            assert await client.receive() == b"x"
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            await client.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await client.send(b"y")


@pytest.mark.parametrize("kind", KINDS)
async def test_reset_is_anyio_broken_resource(kind: str) -> None:
    async with stack_pair(kind) as pair:
        listener = await pair.server.open_tcp_listener(0)
        with trio.fail_after(KERNEL_PATIENCE if kind == "kernel" else 600.0):
            client = FlowByteStream(await pair.client.open_tcp_stream(pair.host, listener.port))
            peer = await listener.accept()
            await client.send(b"unread")
            while not peer.info().bytes_received:
                await trio.sleep(0.01)
            await peer.aclose()  # with unread data: a reset (RFC 9293 §3.10.4)
            with pytest.raises(anyio.BrokenResourceError) as info:
                await client.receive()
            assert isinstance(info.value.__cause__, trio.BrokenResourceError)
            await client.aclose()
