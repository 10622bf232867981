"""ECN (RFC 3168) against the Linux kernel over TUN: ``net.ipv4.tcp_ecn`` set in the
test's namespace (the sysctl is per namespace and governs IPv6 TCP too).

Both directions are checked: Linux connects to us (tcp_ecn=1: it asks) and we
connect to Linux (tcp_ecn=1, and Linux's default 2: it agrees when asked; 0: it
refuses). Our stack runs on a thin wrapper of the TUN link that records the ECN
field and flags of every packet both ways and, like a router's AQM on the path,
marks every ``n``-th ECT data packet CE in each direction: Linux must echo our
marked data with ECE (we reduce, send CWR) and we must echo its marked data (Linux
reduces, sends CWR). Linux's own view comes from ``TCP_INFO`` (``tcpi_options``:
``TCPI_OPT_ECN`` negotiated, ``TCPI_OPT_ECN_SEEN`` an ECT packet arrived).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

import trio_tcp6 as tcp6
from tests.netns import NetNS, tun_name, ula_prefix
from trio_tcp6.links import open_tun
from trio_tcp6.links.base import Link, Packet
from trio_tcp6.runtime import DirectStack
from trio_tcp6.wire.ipv6 import ECN_CE, ECN_ECT0, ECN_NOT_ECT, IPV6_HEADER_LEN, ecn_of
from trio_tcp6.wire.tcp import CWR, ECE, SYN, parse_tcp

from .conftest import needs_kernel, wait_line

TCPI_OPT_ECN = 8
TCPI_OPT_ECN_SEEN = 16
SIZE = 2_000_000
MARK_EVERY = 40

# The kernel side: connect or accept, send SIZE bytes while reading to EOF, then
# print tcpi_options (byte 5 of struct tcp_info) and what it received.
KERNEL_PEER = """
import socket, sys, threading
role, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if role == "listen":
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    print("LISTENING", flush=True)
    c, _ = s.accept()
else:
    c = socket.create_connection((addr, port), timeout=30)
    c.settimeout(None)
print("CONNECTED", c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5], flush=True)
got = [0]
def reader():
    while True:
        b = c.recv(1 << 16)
        if not b:
            return
        got[0] += len(b)
t = threading.Thread(target=reader)
t.start()
c.sendall(b"k" * n)
c.shutdown(socket.SHUT_WR)
t.join()
print("OPTIONS", c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5], flush=True)
print("RECEIVED", got[0], flush=True)
c.close()
print("DONE", flush=True)
"""


@attrs.define
class Seen:
    """ECN field and TCP flags of each packet, per direction, and CE marks made."""

    rx: list[tuple[int, int, int]] = attrs.Factory(list)  # (ecn, flags, payload length)
    tx: list[tuple[int, int, int]] = attrs.Factory(list)
    marked_rx: int = 0
    marked_tx: int = 0


def _with_ce(packet: bytes) -> bytes:
    b = bytearray(packet)
    b[1] = (b[1] & 0xCF) | (ECN_CE << 4)
    return bytes(b)


class ECNTap:
    """The TUN link as the stack sees it: records each packet's ECN field and
    flags as sent/received (before marking) and marks every ``every``-th ECT data
    packet CE in each direction (0: never). The TCP checksum does not cover the
    Traffic Class, so nothing else changes."""

    def __init__(self, inner: Link, seen: Seen, every: int) -> None:
        self.inner = inner
        self.seen = seen
        self.every = every
        self.ect = [0, 0]

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    def _look(self, packet: bytes, log: list[tuple[int, int, int]], way: int) -> bool:
        """Record ``packet``; True if it is to be marked CE."""
        if len(packet) < IPV6_HEADER_LEN + 20 or packet[6] != 6:
            return False
        seg = parse_tcp(packet[IPV6_HEADER_LEN:])
        ecn = ecn_of(packet)
        log.append((ecn, seg.flags, len(seg.payload)))
        if self.every and ecn == ECN_ECT0 and seg.payload:
            self.ect[way] += 1
            return self.ect[way] % self.every == 0
        return False

    async def send(self, packet: Packet) -> None:
        data = bytes(packet)
        if self._look(data, self.seen.tx, 0):
            self.seen.marked_tx += 1
            data = _with_ce(data)
        await self.inner.send(data)

    async def receive(self) -> bytes:
        data = await self.inner.receive()
        if self._look(data, self.seen.rx, 1):
            self.seen.marked_rx += 1
            data = _with_ce(data)
        return data


@contextlib.asynccontextmanager
async def ecn_tun_stack(
    ns: NetNS, tcp_ecn: int, config: tcp6.TCPConfig, every: int
) -> AsyncIterator[tuple[DirectStack, str, str, Seen]]:
    """Our stack on ``prefix::2`` behind an :class:`ECNTap` of a TUN device in ``ns``
    (the kernel on ``prefix::1``, ``net.ipv4.tcp_ecn = tcp_ecn`` there)."""
    ns.sysctl("net.ipv4.tcp_ecn", tcp_ecn)
    prefix = ula_prefix()
    kernel, ours = str(prefix[1]), str(prefix[2])
    seen = Seen()
    async with open_tun(tun_name(), netns=ns.name, offload=False) as tun:
        ns.configure_tun(tun.name, kernel)
        async with tcp6.open_stack(ECNTap(tun, seen, every), ours, config=config) as stack:
            yield stack, kernel, ours, seen


async def _exchange(flow: tcp6.Flow) -> int:
    """Send SIZE bytes to the kernel while reading its SIZE to EOF; bytes read."""
    received = 0

    async def reader() -> None:
        nonlocal received
        while chunk := await flow.receive_some(1 << 16):
            received += len(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await flow.send_all(b"u" * SIZE)
        await flow.send_eof()
    return received


def _check_ecn_exchange(
    info: tcp6.FlowInfo, stats: dict[str, int], seen: Seen, options: int, linux_first: bool
) -> None:
    assert info.ecn is True
    assert options & TCPI_OPT_ECN, f"Linux did not negotiate ECN (tcpi_options={options:#x})"
    assert options & TCPI_OPT_ECN_SEEN, "Linux saw no ECT packet from us"
    syns = [(ecn, f) for ecn, f, _n in (seen.rx if linux_first else seen.tx) if f & SYN]
    answers = [(ecn, f) for ecn, f, _n in (seen.tx if linux_first else seen.rx) if f & SYN]
    # The ECN-setup SYN (ECE, CWR) and SYN-ACK (ECE alone), neither ECT.
    assert syns[0] == (ECN_NOT_ECT, SYN | ECE | CWR)
    assert answers[0][0] == ECN_NOT_ECT and answers[0][1] & (ECE | CWR) == ECE
    # Linux's new data is ECT(0); its pure ACKs are not ECT.
    linux_data = {ecn for ecn, f, n in seen.rx if n and not f & SYN}
    linux_acks = {ecn for ecn, f, n in seen.rx if not n and not f & SYN}
    assert linux_data <= {ECN_ECT0, ECN_NOT_ECT} and ECN_ECT0 in linux_data
    assert linux_acks == {ECN_NOT_ECT}
    # Ours likewise.
    our_data = {ecn for ecn, f, n in seen.tx if n and not f & SYN}
    assert ECN_ECT0 in our_data and our_data <= {ECN_ECT0, ECN_NOT_ECT}
    assert {ecn for ecn, f, n in seen.tx if not n} == {ECN_NOT_ECT}
    # CE on Linux's data (marked as it reached us) was echoed; Linux answered with CWR.
    assert seen.marked_rx >= 2 and info.ce_received == seen.marked_rx
    assert any(f & ECE for _e, f, _n in seen.tx if not f & SYN), "we never echoed ECE"
    assert any(f & CWR for _e, f, _n in seen.rx if not f & SYN), "Linux never sent CWR"
    # CE on our data (marked on its way to Linux) came back as ECE; we reduced and
    # sent CWR.
    assert seen.marked_tx >= 2
    assert info.ece_received is not None and info.ece_received >= 1
    assert stats["ecn_reductions"] >= 1
    assert info.cwr_sent is not None and info.cwr_sent >= 1
    assert any(f & CWR for _e, f, _n in seen.tx if not f & SYN)


@needs_kernel
async def test_linux_connects_with_ecn(netns: NetNS) -> None:
    # Our default configuration agrees to ECN when asked (as Linux's tcp_ecn=2).
    async with ecn_tun_stack(netns, 1, tcp6.TCPConfig(), MARK_EVERY) as (stack, _k, ours, seen):
        listener = await stack.open_tcp_listener(5201)
        peer = netns.python(KERNEL_PEER, "connect", ours, "5201", str(SIZE))
        with trio.fail_after(60):
            flow = await listener.accept()
            assert await _exchange(flow) == SIZE
            options = int((await wait_line(peer, "OPTIONS")).split()[1])
            assert await wait_line(peer, "RECEIVED") == f"RECEIVED {SIZE}"
        info = flow.info()
        await flow.aclose()
        _check_ecn_exchange(info, stack.stats(), seen, options, linux_first=True)


@needs_kernel
@pytest.mark.parametrize("tcp_ecn", [1, 2])
async def test_we_connect_to_linux_with_ecn(netns: NetNS, tcp_ecn: int) -> None:
    config = tcp6.TCPConfig(ecn=True)
    async with ecn_tun_stack(netns, tcp_ecn, config, MARK_EVERY) as (stack, kernel, _o, seen):
        peer = netns.python(KERNEL_PEER, "listen", kernel, "5202", str(SIZE))
        peer.wait_for("LISTENING")
        with trio.fail_after(60):
            flow = await stack.open_tcp_stream(kernel, 5202)
            assert await _exchange(flow) == SIZE
            options = int((await wait_line(peer, "OPTIONS")).split()[1])
            assert await wait_line(peer, "RECEIVED") == f"RECEIVED {SIZE}"
        info = flow.info()
        await flow.aclose()
        _check_ecn_exchange(info, stack.stats(), seen, options, linux_first=False)


@needs_kernel
async def test_linux_with_ecn_off_refuses(netns: NetNS) -> None:
    config = tcp6.TCPConfig(ecn=True)
    async with ecn_tun_stack(netns, 0, config, MARK_EVERY) as (stack, kernel, _o, seen):
        peer = netns.python(KERNEL_PEER, "listen", kernel, "5203", str(200_000))
        peer.wait_for("LISTENING")
        with trio.fail_after(60):
            flow = await stack.open_tcp_stream(kernel, 5203)
            assert await _exchange(flow) == 200_000
            options = int((await wait_line(peer, "OPTIONS")).split()[1])
        info = flow.info()
        await flow.aclose()
    assert info.ecn is False and not options & TCPI_OPT_ECN
    assert seen.tx[0][1] & (ECE | CWR) == ECE | CWR  # we asked
    assert not seen.rx[0][1] & ECE  # Linux did not agree
    assert {ecn for ecn, _f, _n in seen.tx + seen.rx} == {ECN_NOT_ECT}
