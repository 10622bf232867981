"""Interop fixtures: our stack on a TUN device, the Linux kernel on the other side.

:func:`tun_stack` creates the TUN interface inside a fresh namespace (made by the
``netns`` fixture of ``tests/netns.py``, always deleted), gives the kernel side
``<prefix>::1/64`` and runs :func:`trio_tcp6.open_stack` on ``<prefix>::2``,
optionally through an :class:`~trio_tcp6.links.ImpairedLink` (loss) and a
:class:`CaptureLink` (our own pcap of every packet in both directions).

The examples directory is importable (``http_server``) as in ``tests/examples``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import trio_tcp6 as tcp6
from tests.netns import NetNS, tun_name, ula_prefix
from tests.netns import needs_kernel as needs_kernel  # re-exported for the test modules
from trio_tcp6.links import ImpairedLink, TunLink, impair_link, open_tun
from trio_tcp6.links.base import LinkCapabilities
from trio_tcp6.runtime import DirectStack
from trio_tcp6.wire.pcap import PcapWriter

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def needs_tool(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(name) is None, reason=f"{name} is not on PATH")


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that are not periodic at any TCP-relevant scale (SHA-256 chain)."""
    block = bytearray()
    counter = 0
    while len(block) < min(n, 1 << 20):
        block += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    one = bytes(block[: 1 << 20])
    reps, rest = divmod(n, len(one)) if one else (0, 0)
    # Vary each MiB by its index so that a misplaced MiB changes the digest.
    parts = [bytes([i & 0xFF]) + one[1:] for i in range(reps)]
    parts.append(one[:rest])
    return b"".join(parts)


class CaptureLink:
    """Wrap a link and write every packet in both directions to a pcap file (the
    stack's own capture; stamps are the wall clock)."""

    def __init__(self, link: Any, writer: PcapWriter) -> None:
        self.link = link
        self.writer = writer
        self.sent = 0

    @property
    def mtu(self) -> int:
        return int(self.link.mtu)

    @property
    def capabilities(self) -> LinkCapabilities:
        return LinkCapabilities(receive_batch=self.receive_batch, send_batch=self.send_batch)

    def _stamp(self) -> float:
        import time

        return time.time()

    async def send(self, packet: bytes | bytearray | memoryview) -> None:
        self.writer.write(packet, self._stamp())
        self.sent += 1
        await self.link.send(packet)

    async def send_batch(self, packets: Iterable[bytes | bytearray | memoryview]) -> None:
        packets = list(packets)
        now = self._stamp()
        for p in packets:
            self.writer.write(p, now)
        self.sent += len(packets)
        await self.link.send_batch(packets)

    async def receive(self) -> bytes:
        packet: bytes = await self.link.receive()
        self.writer.write(packet, self._stamp())
        return packet

    async def receive_batch(self) -> list[bytes]:
        packets: list[bytes] = await self.link.receive_batch()
        now = self._stamp()
        for p in packets:
            self.writer.write(p, now)
        return packets


@attrs.define
class TunSetup:
    """What :func:`tun_stack` made."""

    ns: NetNS
    tun: TunLink
    link: Any  # what the stack runs on (the TUN link, maybe wrapped)
    stack: DirectStack
    prefix: ipaddress.IPv6Network
    kernel: str  # the kernel's address on the TUN (prefix::1)
    ours: str  # the stack's address (prefix::2)
    impaired: ImpairedLink | None = None


@asynccontextmanager
async def tun_stack(
    ns: NetNS,
    *,
    offload: bool = False,
    mtu: int | None = None,
    config: tcp6.TCPConfig | None = None,
    loss: float = 0.0,
    seed: int = 1,
    pcap: Path | None = None,
) -> AsyncIterator[TunSetup]:
    """A TUN device in ``ns`` (kernel ``prefix::1``) and our stack on ``prefix::2``."""
    prefix = ula_prefix()
    kernel, ours = str(prefix[1]), str(prefix[2])
    async with AsyncExitStack() as stack:
        tun = await stack.enter_async_context(
            open_tun(tun_name(), netns=ns.name, offload=offload, mtu=mtu)
        )
        ns.configure_tun(tun.name, kernel)
        link: Any = tun
        impaired: ImpairedLink | None = None
        if loss:
            impaired = await stack.enter_async_context(impair_link(tun, seed=seed, loss=loss))
            link = impaired
        if pcap is not None:
            writer = stack.enter_context(PcapWriter(pcap))
            link = CaptureLink(link, writer)
        direct = await stack.enter_async_context(tcp6.open_stack(link, ours, config=config))
        yield TunSetup(ns, tun, link, direct, prefix, kernel, ours, impaired)


async def run_in_thread(fn: Callable[[], Any]) -> Any:
    """Run a blocking call (a subprocess wait) without blocking the stack's tasks."""
    return await trio.to_thread.run_sync(fn)


async def send_pattern(stream: trio.abc.SendStream, data: bytes, chunk: int = 1 << 18) -> None:
    view = memoryview(data)
    for i in range(0, len(data), chunk):
        await stream.send_all(view[i : i + chunk])


async def receive_digest(stream: trio.abc.ReceiveStream) -> tuple[int, str]:
    """Read to EOF; (byte count, SHA-256 hex)."""
    h = hashlib.sha256()
    total = 0
    while chunk := await stream.receive_some(1 << 18):
        h.update(chunk)
        total += len(chunk)
    return total, h.hexdigest()


PEER = Path(__file__).resolve().parent / "kernel_peer.py"


def kernel_peer(ns: NetNS, role: str, addr: str, port: int, mode: str, *args: str) -> Any:
    """Start ``kernel_peer.py`` in ``ns`` (a :class:`~tests.netns.BackgroundProcess`);
    for ``listen`` it returns once the socket listens."""
    proc = ns.start(sys.executable, "-u", str(PEER), role, addr, str(port), mode, *args)
    if role == "listen":
        proc.wait_for("LISTENING")
    return proc


async def wait_line(proc: Any, marker: str, timeout: float = 60.0) -> str:
    """The next output line of ``proc`` starting with ``marker``.

    Reads with a blocking ``readline`` in a thread: ``BackgroundProcess.readline``
    selects on the pipe first, which misses lines already in the text buffer."""
    stream = proc.proc.stdout

    def next_line() -> str:
        while True:
            line = stream.readline()
            if not line:
                raise EOFError(f"process ended: {proc.describe()}")
            if line.startswith(marker):
                return str(line.rstrip("\n"))

    with trio.fail_after(timeout):
        line: str = await trio.to_thread.run_sync(next_line, abandon_on_cancel=True)
    return line
