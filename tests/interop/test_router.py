"""The kernel as a router between our stack and a second namespace: real ICMPv6
errors from Linux.

    our stack ── TUN ── namespace A (forwarding) ── veth, MTU 1280 ── namespace B

* Packet Too Big: our 1500-byte packets towards B make A answer PTB(1280); our
  sender shrinks its segments (for every connection to B, also later ones) and the
  transfers complete intact.
* Destination Unreachable: a connect towards an ``unreachable`` / ``prohibit`` route
  in A fails at once with Linux's errno; on an established connection the error is
  only recorded (soft error) and the transfer completes once the route is back.
* Parameter Problem: a packet with an unknown next header from A gets our Parameter
  Problem (code 1, pointer 6), rate-limited.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import random
from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import pytest
import trio

import trio_tcp6 as tcp6
from tests.netns import NetNS, NetNSFactory, ula_prefix

from .conftest import (
    kernel_peer,
    needs_kernel,
    needs_tool,
    receive_digest,
    send_pattern,
    tun_stack,
    wait_line,
)


@attrs.define
class Routed:
    a: NetNS
    b: NetNS
    b_address: str
    far: ipaddress.IPv6Network  # a prefix A has no route for until a test adds one


@contextmanager
def routed(a: NetNS, b: NetNS, tun_prefix: ipaddress.IPv6Network) -> Iterator[Routed]:
    """veth A<->B with MTU 1280, forwarding in A, B's route back to the TUN prefix
    (announcing MSS 1440)."""
    link = ula_prefix()
    va, vb = f"va{a.name[-9:]}"[:15], f"vb{b.name[-9:]}"[:15]
    a.ip("link", "add", va, "mtu", "1280", "type", "veth", "peer", "name", vb, "netns", b.name)
    a.ip("link", "set", vb, "netns", b.name, check=False)  # already there on new iproute2
    a.configure_tun(va, link[1])
    b.configure_tun(vb, link[2])
    b.ip("link", "set", vb, "mtu", "1280")
    # B announces MSS 1440 although its link carries 1280-byte packets: our stack
    # sends full 1500-byte packets and router A answers with Packet Too Big.
    b.ip("-6", "route", "add", str(tun_prefix), "via", str(link[1]), "advmss", "1440")
    a.sysctl("net.ipv6.conf.all.forwarding", 1)
    a.run("ping", "-6", "-n", "-c", "1", "-W", "2", str(link[2]))  # neighbour resolved
    yield Routed(a, b, str(link[2]), ula_prefix())


@needs_kernel
@needs_tool("ping")  # routed() resolves the router's neighbour with ping
async def test_packet_too_big_from_a_kernel_router(netns_factory: NetNSFactory) -> None:
    a, b = netns_factory(), netns_factory()
    async with tun_stack(a) as t:
        with routed(a, b, t.prefix) as r:
            size = 10_000_000
            # us -> B: A answers our full-size segments with PTB(1280).
            peer = kernel_peer(b, "listen", r.b_address, 6001, "sink")
            flow = await t.stack.open_tcp_stream(r.b_address, 6001)
            assert flow.info().mss > 1220
            data = random.Random(51).randbytes(size)
            await send_pattern(flow, data)
            await flow.send_eof()
            line = await wait_line(peer, "RECEIVED")
            assert line == f"RECEIVED {size} {hashlib.sha256(data).hexdigest()}"
            assert flow.info().mss <= 1280 - 60
            stats = t.stack.stats()
            assert stats["icmp_packet_too_big"] >= 1
            assert t.stack.path_mtu(r.b_address, trio.current_time()) == 1280
            await flow.aclose()
            # A new connection to B starts with the remembered path MTU: no PTB.
            before = stats["icmp_packet_too_big"]
            peer = kernel_peer(b, "listen", r.b_address, 6002, "source", str(size), "52")
            flow = await t.stack.open_tcp_stream(r.b_address, 6002)
            assert flow.info().mss <= 1280 - 60
            await flow.send_all(b"x" * 100_000)  # full segments: would draw a PTB
            expected = hashlib.sha256(random.Random(52).randbytes(size)).hexdigest()
            assert await receive_digest(flow) == (size, expected)
            await flow.send_eof()
            assert await wait_line(peer, "PEER_EOF") == "PEER_EOF 100000"
            assert t.stack.stats()["icmp_packet_too_big"] == before
            await flow.aclose()
            # The kernel's own address on the TUN is not behind the small link.
            assert t.stack.path_mtu(t.kernel, trio.current_time()) == 1500


@needs_kernel
@needs_tool("ping")  # routed() resolves the router's neighbour with ping
@pytest.mark.parametrize(
    ("route", "err"), [("unreachable", errno.ENETUNREACH), ("prohibit", errno.EACCES)]
)
async def test_connect_fails_on_destination_unreachable(
    netns_factory: NetNSFactory, route: str, err: int
) -> None:
    """Linux's router answers our SYN with Destination Unreachable: the attempt fails
    at once (as a Linux client's would), not after the SYN retries."""
    a, b = netns_factory(), netns_factory()
    async with tun_stack(a) as t:
        with routed(a, b, t.prefix) as r:
            a.ip("-6", "route", "add", route, str(r.far))
            target = str(r.far[5])
            with trio.fail_after(5):
                with pytest.raises(tcp6.Unknown) as excinfo:
                    await t.stack.open_tcp_stream(target, 80)
            assert excinfo.value.errno == err
            assert t.stack.stats()["icmp_unreachable_aborts"] == 1
            assert t.stack.stats()["flows_open"] == 0


@needs_kernel
@needs_tool("ping")  # routed() resolves the router's neighbour with ping
async def test_unreachable_is_a_soft_error_on_an_established_connection(
    netns_factory: NetNSFactory,
) -> None:
    """While A rejects the path (``prohibit``), our retransmissions draw ICMPv6
    errors: recorded, the connection lives on, and completes once the route is back."""
    a, b = netns_factory(), netns_factory()
    async with tun_stack(a) as t:
        with routed(a, b, t.prefix) as r:
            peer = kernel_peer(b, "listen", r.b_address, 6003, "sink")
            flow = await t.stack.open_tcp_stream(r.b_address, 6003)
            a.ip("-6", "route", "add", "prohibit", f"{r.b_address}/128")
            data = random.Random(53).randbytes(1_000_000)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_pattern, flow, data)
                with trio.fail_after(10):
                    while t.stack.soft_error(flow) is None:
                        await trio.sleep(0.05)
                error = t.stack.soft_error(flow)
                assert isinstance(error, tcp6.Unknown) and error.errno == errno.EACCES
                assert t.stack.stats()["icmp_soft_errors"] >= 1
                assert flow.info().state.name == "ESTABLISHED"
                a.ip("-6", "route", "del", "prohibit", f"{r.b_address}/128")
            await flow.send_eof()
            line = await wait_line(peer, "RECEIVED", 60)
            assert line == f"RECEIVED {len(data)} {hashlib.sha256(data).hexdigest()}"
            await flow.aclose()


_RAW_SENDER = """
import select, socket, struct, sys, time
target, count = sys.argv[1], int(sys.argv[2])
icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 253)  # RFC 3692 experimental
for i in range(count):
    raw.sendto(b"experiment" + bytes([i]), (target, 0))
got = []
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    if select.select([icmp], [], [], 0.05)[0]:
        data, src = icmp.recvfrom(2048)
        if data[0] == 4:  # Parameter Problem
            got.append((data[1], struct.unpack("!I", data[4:8])[0], data[8 + 6], src[0]))
print("GOT", len(got), *{f"{c}/{p}/{nh}/{s}" for c, p, nh, s in got}, flush=True)
"""


@needs_kernel
async def test_parameter_problem_for_an_unknown_next_header(netns: NetNS) -> None:
    """RFC 8200 §4 / RFC 4443 §3.4: code 1, pointer 6 (the Next Header field of the
    quoted packet), from our address; 50 offending packets draw only a burst's worth
    (RFC 4443 §2.4 (f) rate limit)."""
    from trio_tcp6.runtime.stack import ICMP_ERROR_BURST

    async with tun_stack(netns) as t:
        proc = netns.python(_RAW_SENDER, t.ours, "50")
        line = (await wait_line(proc, "GOT", 10)).split()
        count = int(line[1])
        assert line[2:] == [f"1/6/253/{t.ours}"]
        assert ICMP_ERROR_BURST <= count <= ICMP_ERROR_BURST + 5  # + refill while busy
        stats = t.stack.stats()
        assert stats["drop_unknown_protocol"] == 50
        assert stats["icmp_errors_sent"] == count
        assert stats["icmp_errors_rate_limited"] == 50 - count
