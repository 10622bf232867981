"""Both stacks for the adapter tests: direct ones over a VirtualNetwork in virtual
time, and the kernel stack over ``::1`` in real time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest

import trio_tcp6 as tcp6
from trio_tcp6.testing import open_hosts, virtual_run

#: Parametrize a test over both stacks: ``@pytest.mark.parametrize("kind", KINDS)``.
KINDS = [pytest.param("direct", marks=pytest.mark.trio(run=virtual_run)), "kernel"]

#: How long the kernel cases may wait for anything (real time, shared machine).
KERNEL_PATIENCE = 30.0


@attrs.define
class Pair:
    """A client stack, a server stack, and the server's address as a URL host."""

    client: tcp6.Stack
    server: tcp6.Stack
    host: str
    net: tcp6.VirtualNetwork | None = None

    def url(self, port: int, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://[{self.host}]:{port}{path}"


@asynccontextmanager
async def stack_pair(kind: str) -> AsyncIterator[Pair]:
    if kind == "direct":
        net = tcp6.VirtualNetwork(seed=1)
        async with open_hosts(net, 2) as (client, server):
            yield Pair(client, server, "fd00::2", net)
    else:
        async with tcp6.open_kernel_stack() as stack:
            yield Pair(stack, stack, "::1")
