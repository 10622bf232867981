"""TUN link tests against the real kernel, at link level (hand-made packets).

Each test creates its own network namespace (``tests/netns.py``), creates the TUN
interface inside it, gives the kernel side ``<prefix>::1`` and talks from
``<prefix>::2``. Tests needing the kernel skip, with the reason, unless root with
``/dev/net/tun`` and iproute2. The pure functions (virtio header, checksums) and the
error paths that need no privilege run everywhere.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from tests.netns import (
    NetNS,
    needs_kernel,
    tun_name,
    ula_prefix,
)
from trio_tcp6.links import tun as tun_module
from trio_tcp6.links.tun import (
    IFF_VNET_HDR,
    TUNSETIFF,
    TUNSETOFFLOAD,
    TunLink,
    open_tun,
    partial_tcp_checksum,
)
from trio_tcp6.wire import (
    ACK,
    FIN,
    PROTO_ICMPV6,
    PROTO_TCP,
    PSH,
    RST,
    SYN,
    EchoReply,
    EchoRequest,
    PacketTooBig,
    TCPSegment,
    build_icmpv6,
    build_ipv6,
    build_tcp,
    parse_icmpv6,
    parse_ipv6,
    parse_tcp,
)
from trio_tcp6.wire import tcp as wire_tcp
from trio_tcp6.wire import virtio as wire_virtio
from trio_tcp6.wire.checksum import complete_checksum
from trio_tcp6.wire.tcp import verify_tcp_checksum

SRC = ipaddress.IPv6Address("fd00:7463:70:ff::2").packed
DST = ipaddress.IPv6Address("fd00:7463:70:ff::1").packed


def tcp_packet(
    src: bytes, dst: bytes, *, payload: bytes = b"", flags: int = ACK, **fields: Any
) -> bytes:
    seg = TCPSegment(
        fields.pop("src_port", 40000),
        fields.pop("dst_port", 5000),
        fields.pop("seq", 1000),
        fields.pop("ack", 0),
        flags,
        fields.pop("window", 65535),
        payload=payload,
        **fields,
    )
    return build_ipv6(src, dst, PROTO_TCP, build_tcp(seg, src, dst))


# =====================================================================================
# Constants and the codecs the link uses (no privileges)
# =====================================================================================


def test_codecs_are_the_wire_ones() -> None:
    """The virtio-net header codec and the checksum helpers live in wire/ (tested in
    tests/wire); the link's names for them are the same objects, not copies."""
    assert tun_module.VirtioNetHdr is wire_virtio.VirtioNetHdr
    assert tun_module.pack_vnet_hdr is wire_virtio.pack_vnet_hdr
    assert tun_module.unpack_vnet_hdr is wire_virtio.unpack_vnet_hdr
    assert tun_module.gso_header_for is wire_virtio.gso_header_for
    assert tun_module.VNET_HDR_LEN == wire_virtio.VNET_HDR_LEN == 10
    assert tun_module.partial_tcp_checksum is wire_tcp.partial_tcp_checksum
    assert tun_module.complete_checksum is complete_checksum


def test_ioctl_numbers_match_if_tun_h() -> None:
    # _IOW('T', 202, int) etc. from linux/if_tun.h (x86/arm layout of _IOC).
    assert TUNSETIFF == 0x400454CA
    assert TUNSETOFFLOAD == 0x400454D0
    assert tun_module.TUNGETFEATURES == 0x800454CF
    assert tun_module.TUNSETVNETHDRSZ == 0x400454D8
    assert tun_module.TUNGETVNETHDRSZ == 0x800454D7
    assert tun_module.TUNSETVNETLE == 0x400454DC


# =====================================================================================
# Errors without the kernel
# =====================================================================================


async def test_missing_device_is_a_clear_error(tmp_path: Any) -> None:
    missing = str(tmp_path / "no-such-tun")
    with pytest.raises(FileNotFoundError, match="modprobe tun") as info:
        async with open_tun("tt-missing", device=missing):
            pass  # pragma: no cover
    assert info.value.errno == errno.ENOENT
    assert missing in str(info.value)


async def test_name_too_long() -> None:
    with pytest.raises(ValueError, match="longer than 15"):
        async with open_tun("x" * 16):
            pass  # pragma: no cover


async def test_unknown_netns_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="ip netns add"):
        async with open_tun("tt-nons", netns=f"no-such-ns-{os.getpid()}"):
            pass  # pragma: no cover


@needs_kernel
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing")
def test_without_cap_net_admin_is_a_permission_error() -> None:
    code = (
        "import trio\n"
        "from trio_tcp6.links.tun import open_tun\n"
        "async def main():\n"
        "    async with open_tun('ttnocap'):\n"
        "        pass\n"
        "try:\n"
        "    trio.run(main)\n"
        "except PermissionError as exc:\n"
        "    print('PERMISSION', exc)\n"
    )
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-net_admin",
            "--inh-caps=-net_admin",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.startswith("PERMISSION"), out.stderr
    assert "CAP_NET_ADMIN" in out.stdout


# =====================================================================================
# The namespace helpers themselves
# =====================================================================================


@needs_kernel
def test_netns_helpers_clean_up(netns_factory: Callable[[], NetNS]) -> None:
    a, b = netns_factory(), netns_factory()
    assert a.name != b.name
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert a.name in names and b.name in names
    assert "LOOPBACK,UP" in a.ip("link", "show", "lo")
    assert a.run_python("print(6 * 7)").strip() == "42"
    sleeper = a.python("import time; print('UP', flush=True); time.sleep(60)")
    assert sleeper.wait_for("UP") == "UP"
    a.close()
    assert sleeper.proc.poll() is not None  # killed before the namespace went
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert a.name not in names and b.name in names
    assert ula_prefix() != ula_prefix()
    assert len(tun_name()) <= 15


# =====================================================================================
# With the kernel: one namespace per test
# =====================================================================================


@attrs.define
class Env:
    link: TunLink
    ns: NetNS
    kernel: ipaddress.IPv6Address
    us: ipaddress.IPv6Address

    @property
    def k(self) -> bytes:
        return self.kernel.packed

    @property
    def u(self) -> bytes:
        return self.us.packed

    async def next_matching(
        self, pred: Callable[[bytes], bool], timeout: float = 5.0, link: TunLink | None = None
    ) -> bytes:
        """The next received packet for which ``pred`` holds (others are skipped:
        the kernel also sends router solicitations and MLD reports)."""
        link = link or self.link
        seen: list[str] = []
        with trio.move_on_after(timeout):
            while True:
                packet = await link.receive()
                if pred(packet):
                    return packet
                ip = parse_ipv6(packet)
                seen.append(
                    f"{ipaddress.IPv6Address(ip.src)}>{ipaddress.IPv6Address(ip.dst)}"
                    f" nh={ip.next_header} len={len(packet)}"
                )
        counters = self.ns.run("nstat", "-az", check=False)
        counters = "\n".join(line for line in counters.splitlines() if line.split()[1:2] != ["0"])
        raise AssertionError(
            f"no matching packet within {timeout}s; skipped: {seen}; link: {link.stats()}\n"
            f"{self.ns.ip('-s', 'link', 'show', link.name, check=False)}\n{counters}"
        )

    async def next_tcp(self, timeout: float = 5.0) -> tuple[bytes, TCPSegment]:
        def is_tcp(p: bytes) -> bool:
            return parse_ipv6(p).next_header == PROTO_TCP

        packet = await self.next_matching(is_tcp, timeout)
        ip = parse_ipv6(packet)
        assert verify_tcp_checksum(ip.payload, ip.src, ip.dst), "bad TCP checksum from kernel"
        return packet, parse_tcp(ip.payload)

    async def send_tcp(self, **kw: Any) -> None:
        await self.link.send(tcp_packet(self.u, self.k, **kw))


@asynccontextmanager
async def tun_env(
    ns: NetNS, *, offload: bool = False, mtu: int | None = None
) -> AsyncIterator[Env]:
    prefix = ula_prefix()
    async with open_tun(tun_name(), netns=ns.name, offload=offload, mtu=mtu) as link:
        ns.configure_tun(link.name, prefix[1])
        yield Env(link, ns, prefix[1], prefix[2])


def is_echo_reply(ident: int) -> Callable[[bytes], bool]:
    def pred(p: bytes) -> bool:
        ip = parse_ipv6(p)
        if ip.next_header != PROTO_ICMPV6:
            return False
        msg = parse_icmpv6(ip.payload, ip.src, ip.dst)
        return isinstance(msg, EchoReply) and msg.identifier == ident

    return pred


@needs_kernel
async def test_echo_request_gets_kernel_reply(netns: NetNS) -> None:
    async with tun_env(netns) as env:
        assert env.link.mtu == 1500
        assert not env.link.offload and env.link.gso_max == 1500
        request = EchoRequest(0x7463, 1, b"hello kernel")
        await env.link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(request, env.u, env.k))
        )
        packet = await env.next_matching(is_echo_reply(0x7463))
        ip = parse_ipv6(packet)
        assert (ip.src, ip.dst) == (env.k, env.u)
        reply = parse_icmpv6(ip.payload, ip.src, ip.dst)  # checksum verified
        assert reply == EchoReply(0x7463, 1, b"hello kernel")
        # No neighbour discovery on a TUN device (NOARP): the kernel answered at once
        # and has no neighbour entry for us.
        assert "link/none" in netns.ip("link", "show", env.link.name)
        assert "NOARP" in netns.ip("link", "show", env.link.name)
        assert netns.ip("-6", "neigh", "show", "dev", env.link.name).strip() == ""
        stats = env.link.stats()
        assert stats["tx_packets"] == 1 and stats["rx_packets"] >= 1


PINGER = """
import socket, sys, time
dst, ident = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(5)
# Echo request; the kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket.
s.sendto(bytes([128, 0, 0, 0]) + ident.to_bytes(2, "big") + b"\\x00\\x07from-kernel", (dst, 0))
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    data, addr = s.recvfrom(2048)
    if data[0] == 129 and data[4:6] == ident.to_bytes(2, "big"):
        print("REPLY", addr[0], data[8:].decode(), flush=True)
        break
else:
    print("TIMEOUT", flush=True)
"""


@needs_kernel
async def test_kernel_ping_is_received_and_answered(netns: NetNS) -> None:
    """The kernel sends an echo request to our address; we answer by hand."""
    async with tun_env(netns) as env:
        pinger = netns.python(PINGER, str(env.us), "4242")

        def is_request(p: bytes) -> bool:
            ip = parse_ipv6(p)
            return ip.next_header == PROTO_ICMPV6 and isinstance(
                parse_icmpv6(ip.payload, ip.src, ip.dst), EchoRequest
            )

        packet = await env.next_matching(is_request)
        ip = parse_ipv6(packet)
        assert (ip.src, ip.dst) == (env.k, env.u)
        request = parse_icmpv6(ip.payload, ip.src, ip.dst)
        assert isinstance(request, EchoRequest)
        assert request.identifier == 4242 and request.data == b"from-kernel"
        reply = EchoReply(request.identifier, request.sequence, request.data)
        await env.link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(reply, env.u, env.k))
        )
        line = await trio.to_thread.run_sync(pinger.wait_for, "REPLY")
        assert line == f"REPLY {env.us} from-kernel"


@needs_kernel
async def test_syn_gets_syn_ack_from_kernel_listener(netns: NetNS) -> None:
    async with tun_env(netns) as env:
        netns.tcp_server(env.kernel, 5000, "echo")
        await env.send_tcp(flags=SYN, seq=1000, mss=1440, sack_permitted=True, wscale=7)
        _, synack = await env.next_tcp()
        assert synack.flags == SYN | ACK
        assert (synack.src_port, synack.dst_port) == (5000, 40000)
        assert synack.ack == 1001
        assert synack.mss == 1440  # its MTU-derived MSS (1500 - 60)
        assert synack.sack_permitted and synack.wscale is not None
        # And a closed port answers RST.
        await env.send_tcp(flags=SYN, seq=7, dst_port=5001)
        _, rst = await env.next_tcp()
        assert rst.flags & RST and rst.ack == 8


@needs_kernel
async def test_echo_over_hand_made_connection(netns: NetNS) -> None:
    """A whole (tiny) TCP exchange by hand: handshake, data, echo, FIN."""
    async with tun_env(netns) as env:
        server = netns.tcp_server(env.kernel, 5000, "echo")
        await env.send_tcp(flags=SYN, seq=1000, mss=1440)
        _, synack = await env.next_tcp()
        rcv = synack.seq + 1
        await env.send_tcp(seq=1001, ack=rcv)
        await env.send_tcp(seq=1001, ack=rcv, flags=ACK | PSH, payload=b"ping")
        got = b""
        while len(got) < 4:
            _, seg = await env.next_tcp()
            if seg.payload:
                got += seg.payload
                rcv = seg.seq + len(seg.payload)
                await env.send_tcp(seq=1005, ack=rcv)
        assert got == b"ping"
        await env.send_tcp(seq=1005, ack=rcv, flags=ACK | FIN)
        while True:
            _, seg = await env.next_tcp()
            if seg.fin:
                break
        await env.send_tcp(seq=1006, ack=seg.seq + 1)
        assert await trio.to_thread.run_sync(server.wait_for, "DONE")


@needs_kernel
async def test_receive_batch_drains_a_burst(netns: NetNS) -> None:
    async with tun_env(netns) as env:
        requests = [
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(99, i), env.u, env.k))
            for i in range(20)
        ]
        await env.link.send_batch(requests)
        await trio.sleep(0.1)
        batches = []
        replies: list[bytes] = []
        with trio.fail_after(5):
            while len(replies) < 20:
                batch = await env.link.receive_batch()
                batches.append(batch)
                replies += [p for p in batch if is_echo_reply(99)(p)]
        # The kernel answered while we slept: one wait, one batch (normally).
        assert sum(map(is_echo_reply(99), batches[0])) > 1
        sequences = [parse_icmpv6(parse_ipv6(p).payload).sequence for p in replies]  # type: ignore[union-attr]
        assert sequences == list(range(20))


@needs_kernel
async def test_non_ipv6_packets_are_dropped_and_counted(netns: NetNS) -> None:
    async with tun_env(netns) as env:
        # Give the kernel side an IPv4 address too and make it send IPv4 into the TUN
        # (192.0.2.0/24 exists only inside this namespace).
        netns.ip("addr", "add", "192.0.2.1/24", "dev", env.link.name)
        netns.run_python(
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.sendto(b'v4', ('192.0.2.2', 9))\n"
        )
        await env.link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(5, 5), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(5))
        assert env.link.stats()["rx_not_ipv6"] >= 1


@needs_kernel
async def test_mtu_set_and_read_back(netns: NetNS) -> None:
    async with tun_env(netns, mtu=9000) as env:
        assert env.link.mtu == 9000
        assert "mtu 9000" in netns.ip("link", "show", env.link.name)
        env.link.set_mtu(1280)
        assert env.link.mtu == 1280
        netns.ip("link", "set", env.link.name, "mtu", "1400")
        assert env.link.mtu == 1280  # cached
        assert env.link.read_mtu() == 1400 == env.link.mtu
        with pytest.raises(OSError, match="cannot set MTU"):
            env.link.set_mtu(10)
        # A large echo fits the 1400 MTU path (no fragmentation involved).
        data = bytes(1400 - 48)
        await env.link.send(
            build_ipv6(
                env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(7, 1, data), env.u, env.k)
            )
        )
        reply = await env.next_matching(is_echo_reply(7))
        assert len(reply) == 1400


@needs_kernel
async def test_kernel_side_configured_by_the_link_itself(netns: NetNS) -> None:
    """``add_kernel_address`` + ``set_up`` (ioctls, no iproute2) instead of ``ip``."""
    prefix = ula_prefix()
    async with open_tun(tun_name(), netns=netns.name) as link:
        link.add_kernel_address(prefix[1], 64)
        link.set_up()
        shown = netns.ip("-6", "addr", "show", "dev", link.name)
        assert f"{prefix[1]}/64" in shown and "tentative" not in shown  # NOARP: no DAD
        assert f"{prefix.network_address}/64" in netns.ip("-6", "route", "show", "dev", link.name)
        env = Env(link, netns, prefix[1], prefix[2])
        await link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(4, 4), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(4))
        link.remove_kernel_address(prefix[1], 64)
        assert str(prefix[1]) not in netns.ip("-6", "addr", "show", "dev", link.name)
        link.set_up(False)
        assert ",UP" not in netns.ip("link", "show", link.name)


@needs_kernel
async def test_fd_keeps_working_after_moving_into_a_namespace(netns: NetNS) -> None:
    """Created in our namespace, then ``ip link set NAME netns NS``."""
    prefix = ula_prefix()
    name = tun_name()
    async with open_tun(name) as link:
        assert link.netns is None
        assert (
            name
            in subprocess.run(["ip", "link", "show", name], capture_output=True, text=True).stdout
        )
        await link.move_to_netns(netns.name)
        assert link.netns == netns.name
        gone = subprocess.run(["ip", "link", "show", name], capture_output=True, text=True)
        assert gone.returncode != 0  # no longer here
        netns.configure_tun(name, prefix[1])
        assert link.read_mtu() == 1500  # the control socket followed the device
        env = Env(link, netns, prefix[1], prefix[2])
        await link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(3, 3), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(3))


@needs_kernel
async def test_close_wakes_receiver_and_removes_interface(netns: NetNS) -> None:
    async with tun_env(netns) as env:
        link = env.link
        errors: list[BaseException] = []

        async def receiver() -> None:
            try:
                while True:
                    await link.receive()
            except trio.ClosedResourceError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.sleep(0.05)
            with pytest.raises(trio.BusyResourceError):
                await link.receive()
            await link.aclose()
        assert len(errors) == 1
        assert link.closed
        with pytest.raises(trio.ClosedResourceError):
            await link.send(b"\x60" + bytes(39))
        with pytest.raises(trio.ClosedResourceError):
            await link.receive()
        assert netns.ip("link", "show", link.name, check=False) == ""


@needs_kernel
async def test_deleted_interface_breaks_the_link(netns: NetNS) -> None:
    async with tun_env(netns) as env:

        async def delete_soon() -> None:
            await trio.sleep(0.05)
            netns.ip("link", "del", env.link.name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(delete_soon)
            with trio.fail_after(5), pytest.raises(trio.BrokenResourceError, match="gone"):
                while True:
                    await env.link.receive()
        with pytest.raises(trio.BrokenResourceError, match="gone"):
            await env.link.send(b"\x60" + bytes(39))


@needs_kernel
async def test_receive_is_cancellable(netns: NetNS) -> None:
    async with tun_env(netns) as env:
        with trio.move_on_after(0.05) as scope:
            while True:
                await env.link.receive()  # only kernel noise, then silence
        assert scope.cancelled_caught
        # Still usable afterwards.
        await env.link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(8, 8), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(8))


# =====================================================================================
# Offloads: virtio header, checksum offload, TCP segmentation offload
# =====================================================================================


async def hand_handshake(env: Env, *, mss: int = 1440) -> int:
    """SYN / SYN-ACK / ACK from our side; returns the kernel's next sequence number."""
    await env.send_tcp(flags=SYN, seq=1000, mss=mss)
    _, synack = await env.next_tcp()
    assert synack.flags == SYN | ACK
    await env.send_tcp(seq=1001, ack=synack.seq + 1)
    return synack.seq + 1


def expected_source(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@needs_kernel
async def test_offload_receives_kernel_super_segments(netns: NetNS) -> None:
    """With TSO6 the kernel hands up TCP segments far beyond the MTU (one per burst),
    with partial checksums that the link completes."""
    async with tun_env(netns, offload=True) as env:
        assert env.link.offload and env.link.vnet_hdr
        assert env.link.gso_max == 65535
        size = 300_000
        server = netns.tcp_server(env.kernel, 5000, "source", data=size)
        rcv = await hand_handshake(env)
        received = bytearray()
        biggest = 0
        while True:
            packet, seg = await env.next_tcp()  # checksums verified
            if seg.payload and seg.seq == rcv:
                received += seg.payload
                rcv += len(seg.payload)
                biggest = max(biggest, len(packet))
            if seg.fin:
                rcv += 1
                await env.send_tcp(seq=1001, ack=rcv, flags=ACK | FIN)
                break
            await env.send_tcp(seq=1001, ack=rcv)
        assert received == expected_source(size)
        assert biggest > env.link.mtu  # a super-segment
        stats = env.link.stats()
        assert stats["rx_gso"] >= 1
        assert stats["rx_csum_completed"] >= 1
        assert stats["rx_packets"] < size // 1440  # far fewer packets than segments
        assert await trio.to_thread.run_sync(server.wait_for, "DONE")


@needs_kernel
@pytest.mark.parametrize("partial", [False, True])
async def test_offload_sends_super_segment_to_local_listener(netns: NetNS, partial: bool) -> None:
    async with tun_env(netns, offload=True) as env:
        server = netns.tcp_server(env.kernel, 5000, "sink")
        rcv = await hand_handshake(env)
        data = os.urandom(40000)
        packet = bytearray(
            tcp_packet(env.u, env.k, seq=1001, ack=rcv, flags=ACK | PSH, payload=data)
        )
        if partial:
            packet[56:58] = partial_tcp_checksum(packet).to_bytes(2, "big")
        await env.link.send(packet, partial_checksum=partial)
        while True:
            _, seg = await env.next_tcp()
            if seg.ack == 1001 + len(data):
                break
        await env.send_tcp(seq=1001 + len(data), ack=rcv, flags=ACK | FIN)
        line = await trio.to_thread.run_sync(server.wait_for, "RECEIVED")
        assert line == f"RECEIVED {len(data)} {hashlib.sha256(data).hexdigest()}"
        assert env.link.stats()["tx_gso"] == 1


@needs_kernel
@pytest.mark.parametrize("offload", [True, False])
async def test_forwarded_super_segment_is_segmented_to_the_wire_mtu(
    netns: NetNS, offload: bool
) -> None:
    """The kernel forwards our super-segment to a second TUN (the "wire", MTU 1500):
    with a virtio header it arrives as MTU-sized segments with correct checksums; a
    plain oversized packet draws an ICMPv6 Packet Too Big instead."""
    netns.sysctl("net.ipv6.conf.all.forwarding", 1)
    a, b = ula_prefix(), ula_prefix()
    async with (
        open_tun(tun_name(), netns=netns.name, offload=offload) as l1,
        open_tun(tun_name(), netns=netns.name, offload=False) as wire,
    ):
        netns.configure_tun(l1.name, a[1])
        netns.configure_tun(wire.name, b[1])
        src, dst = a[2].packed, b[2].packed
        data = os.urandom(30000)
        big = tcp_packet(
            src, dst, seq=5000, ack=1, flags=ACK | PSH, payload=data, timestamps=(1, 2)
        )
        await l1.send(big)
        env = Env(l1, netns, a[1], a[2])
        if offload:
            got = bytearray()
            flags = []
            with trio.fail_after(5):
                while len(got) < len(data):
                    for packet in await wire.receive_batch():
                        ip = parse_ipv6(packet)
                        if ip.next_header != PROTO_TCP:
                            continue
                        assert len(packet) <= 1500
                        assert ip.hop_limit == 63  # forwarded
                        assert verify_tcp_checksum(ip.payload, ip.src, ip.dst)
                        seg = parse_tcp(ip.payload)
                        assert seg.seq == 5000 + len(got)
                        assert seg.timestamps == (1, 2)
                        got += seg.payload
                        flags.append(seg.flags)
            assert got == data
            assert len(flags) == -(-len(data) // (1500 - 40 - 32))
            assert flags[:-1] == [ACK] * (len(flags) - 1) and flags[-1] == ACK | PSH
        else:

            def is_ptb(p: bytes) -> bool:
                ip = parse_ipv6(p)
                return ip.next_header == PROTO_ICMPV6 and isinstance(
                    parse_icmpv6(ip.payload, ip.src, ip.dst), PacketTooBig
                )

            ip = parse_ipv6(await env.next_matching(is_ptb))
            ptb = parse_icmpv6(ip.payload)
            assert isinstance(ptb, PacketTooBig) and ptb.mtu == 1500


@needs_kernel
async def test_offload_refused_falls_back(netns: NetNS, monkeypatch: pytest.MonkeyPatch) -> None:
    real_ioctl = fcntl.ioctl

    def refusing_ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == TUNSETOFFLOAD and arg:
            raise OSError(errno.EINVAL, "refused for the test")
        return real_ioctl(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", refusing_ioctl)
    async with tun_env(netns, offload=True) as env:
        assert env.link.vnet_hdr and not env.link.offload
        await env.link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(9, 9), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(9))
        # No TSO from the kernel now: a kernel sender's segments fit the MTU.
        netns.tcp_server(env.kernel, 5000, "source", data=20000)
        rcv = await hand_handshake(env)
        total = 0
        while total < 20000:
            packet, seg = await env.next_tcp()
            assert len(packet) <= env.link.mtu
            if seg.seq == rcv and seg.payload:
                rcv += len(seg.payload)
                total += len(seg.payload)
            await env.send_tcp(seq=1001, ack=rcv)
        assert env.link.stats()["rx_gso"] == 0


@needs_kernel
async def test_open_tun_asks_for_offload_by_default(netns: NetNS) -> None:
    prefix = ula_prefix()
    async with open_tun(tun_name(), netns=netns.name) as link:
        netns.configure_tun(link.name, prefix[1])
        assert link.vnet_hdr and link.offload and link.checksum_offload
        assert link.gso_max > link.mtu
        env = Env(link, netns, prefix[1], prefix[2])
        await link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(5, 5), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(5))


@needs_kernel
async def test_default_open_tun_works_when_both_offload_ioctls_fail(
    netns: NetNS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``open_tun()`` as a user calls it, on a kernel that refuses both the virtio
    header (TUNSETIFF with IFF_VNET_HDR) and TUNSETOFFLOAD: a plain link, silently,
    that carries ICMPv6 and a kernel's TCP stream in MTU-sized packets."""
    real_ioctl = fcntl.ioctl
    refused: list[int] = []

    def refusing_ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if (request == TUNSETIFF and struct.unpack_from("16sH", arg)[1] & IFF_VNET_HDR) or (
            request == TUNSETOFFLOAD and arg
        ):
            refused.append(request)
            raise OSError(errno.EINVAL, "refused for the test")
        return real_ioctl(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", refusing_ioctl)
    prefix = ula_prefix()
    async with open_tun(tun_name(), netns=netns.name) as link:
        netns.configure_tun(link.name, prefix[1])
        env = Env(link, netns, prefix[1], prefix[2])
        assert refused == [TUNSETIFF]  # asked, refused, and nothing raised
        assert not link.vnet_hdr and not link.offload and not link.checksum_offload
        assert link.gso_max == link.mtu
        await link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(8, 8), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(8))
        netns.tcp_server(env.kernel, 5000, "source", data=20000)
        rcv = await hand_handshake(env)
        total = 0
        while total < 20000:
            packet, seg = await env.next_tcp()
            assert len(packet) <= link.mtu
            if seg.seq == rcv and seg.payload:
                rcv += len(seg.payload)
                total += len(seg.payload)
            await env.send_tcp(seq=1001, ack=rcv)
        assert link.stats()["rx_gso"] == 0


@needs_kernel
async def test_vnet_header_refused_falls_back_to_plain(
    netns: NetNS, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ioctl = fcntl.ioctl

    def refusing_ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == TUNSETIFF and struct.unpack_from("16sH", arg)[1] & IFF_VNET_HDR:
            raise OSError(errno.EINVAL, "refused for the test")
        return real_ioctl(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", refusing_ioctl)
    async with tun_env(netns, offload=True) as env:
        assert not env.link.vnet_hdr and not env.link.offload
        assert env.link.gso_max == env.link.mtu
        await env.link.send(
            build_ipv6(env.u, env.k, PROTO_ICMPV6, build_icmpv6(EchoRequest(6, 6), env.u, env.k))
        )
        await env.next_matching(is_echo_reply(6))
