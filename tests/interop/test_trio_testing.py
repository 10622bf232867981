"""trio's own test helper against a direct listener: the kernel's TCP (a trio
SocketStream in the TUN's namespace) connects to ``listener.socket.getsockname()``,
as :func:`trio.testing.open_stream_to_socket_listener` does with a SocketListener."""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

import trio
import trio.testing

from tests.netns import NetNS

from .conftest import needs_kernel, receive_digest, tun_stack

CLONE_NEWNET = 0x40000000


@contextmanager
def thread_in_netns(name: str) -> Iterator[None]:
    """Sockets this thread creates meanwhile belong to namespace ``name`` (setns
    applies to the calling thread only; the TUN's descriptor is unaffected)."""
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if libc.setns(here, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(here)
        os.close(there)


@needs_kernel
async def test_open_stream_to_socket_listener_reaches_a_direct_listener(netns: NetNS) -> None:
    async with tun_stack(netns) as t:
        listener = await t.stack.open_tcp_listener(0)
        assert listener.socket.getsockname() == (t.ours, listener.port, 0, 0)
        with thread_in_netns(netns.name):
            kernel_side = await trio.testing.open_stream_to_socket_listener(
                listener  # type: ignore[arg-type]
            )
        ours = await listener.accept()
        assert ours.get_dest()[0].compressed == t.kernel
        await kernel_side.send_all(b"from the kernel")
        await kernel_side.send_eof()
        digest = hashlib.sha256(b"from the kernel").hexdigest()
        assert await receive_digest(ours) == (15, digest)
        await ours.send_all(b"from us")
        await ours.send_eof()
        assert await kernel_side.receive_some(100) == b"from us"
        await kernel_side.aclose()
        await ours.aclose()
