"""Helpers for the runtime tests: two direct stacks on one VirtualNetwork."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow, DirectStack

A = "2001:db8::a"
B = "2001:db8::b"


@asynccontextmanager
async def two_stacks(
    config: tcp6.TCPConfig | None = None,
    config_b: tcp6.TCPConfig | None = None,
    **net_kwargs: Any,
) -> AsyncIterator[tuple[tcp6.VirtualNetwork, DirectStack, DirectStack]]:
    """A network with stacks at A and B (B uses ``config_b`` if given)."""
    net = tcp6.VirtualNetwork(**net_kwargs)
    async with (
        tcp6.open_stack(net.attach(A), A, config=config) as a,
        tcp6.open_stack(net.attach(B), B, config=config_b or config) as b,
    ):
        yield net, a, b
        # An engine bug is contained (the connection is aborted) but must not pass
        # unnoticed in tests.
        assert a.stats()["engine_errors"] == 0, "engine error in stack A (see the log)"
        assert b.stats()["engine_errors"] == 0, "engine error in stack B (see the log)"
    net.close()


async def connect(
    client: DirectStack, server: DirectStack, port: int = 80
) -> tuple[DirectFlow, DirectFlow]:
    """A connected (client flow, server flow) pair; the listener is closed again."""
    listener = await server.open_tcp_listener(port)
    try:
        flow = await client.open_tcp_stream(server.address, listener.port)
        accepted = await listener.accept()
    finally:
        await listener.aclose()
    assert isinstance(flow, DirectFlow) and isinstance(accepted, DirectFlow)
    return flow, accepted


async def receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


async def receive_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)
