"""Our stack against differently configured kernels and harder paths: the kernel's
TCP options switched off (per-namespace sysctls), ECN and TCP Fast Open requests
from a kernel client, zero windows both ways, many connections at once, and a TUN
path that reorders, duplicates and corrupts."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
import trio

import trio_tcp6 as tcp6
from tests.netns import NetNS

from .conftest import (
    kernel_peer,
    needs_kernel,
    needs_tool,
    receive_digest,
    send_pattern,
    tun_stack,
    wait_line,
)


def _digest(n: int, seed: int) -> str:
    return hashlib.sha256(random.Random(seed).randbytes(n)).hexdigest()


async def _both_ways(ns: NetNS, stack: tcp6.Stack, kernel: str, port: int, size: int) -> None:
    """``size`` bytes each way at once on one connection (we connect)."""
    peer = kernel_peer(ns, "listen", kernel, port, "both", str(size), "71")
    flow = await stack.open_tcp_stream(kernel, port)
    data = random.Random(72).randbytes(size)
    result: list[tuple[int, str]] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            result.append(await receive_digest(flow))

        nursery.start_soon(reader)
        await send_pattern(flow, data)
        await flow.send_eof()
    assert result == [(size, _digest(size, 71))]
    assert await wait_line(peer, "RECEIVED") == f"RECEIVED {size} {_digest(size, 72)}"
    await flow.aclose()


@needs_kernel
@pytest.mark.parametrize(
    ("sysctls", "negotiated"),
    [
        ({"net.ipv4.tcp_timestamps": 0}, {"timestamps": False, "sack": True}),
        ({"net.ipv4.tcp_sack": 0}, {"timestamps": True, "sack": False}),
        ({"net.ipv4.tcp_window_scaling": 0}, {"wscale": None}),
        (
            {
                "net.ipv4.tcp_timestamps": 0,
                "net.ipv4.tcp_sack": 0,
                "net.ipv4.tcp_window_scaling": 0,
            },
            {"timestamps": False, "sack": False, "wscale": None},
        ),
    ],
    ids=["no-timestamps", "no-sack", "no-wscale", "none"],
)
async def test_kernel_without_options(
    netns: NetNS, sysctls: dict[str, int], negotiated: dict[str, object]
) -> None:
    """Options the kernel does not offer are not used; 5 MB each way with 1% loss
    (recovery without SACK or timestamps too)."""
    for key, value in sysctls.items():
        netns.sysctl(key, value)
    async with tun_stack(netns, loss=0.01, seed=3) as t:
        peer = kernel_peer(netns, "listen", t.kernel, 5200, "sink")
        flow = await t.stack.open_tcp_stream(t.kernel, 5200)
        info = flow.info()
        for name, expected in negotiated.items():
            assert getattr(info, name) == expected, info
        await flow.send_eof()
        await wait_line(peer, "RECEIVED")
        await flow.aclose()
        await _both_ways(netns, t.stack, t.kernel, 5201, 5_000_000)


@needs_kernel
@needs_tool("tshark")
@pytest.mark.parametrize(
    "sysctl", ["net.ipv4.tcp_ecn=1", "net.ipv4.tcp_fastopen=1"], ids=["ecn", "fastopen"]
)
async def test_kernel_client_asking_for_ecn_or_fast_open(
    netns: NetNS, sysctl: str, tmp_path: Path
) -> None:
    """A kernel client asking for ECN (SYN with ECE|CWR) or a Fast Open cookie (option
    34, data in the SYN with MSG_FASTOPEN): our listener agrees to ECN (SYN-ACK with
    ECE alone, the default ``ecn_accept``) and gives no cookie, and every byte
    arrives."""
    key, value = sysctl.split("=")
    netns.sysctl(key, value)
    pcap = tmp_path / "syn.pcap"
    async with tun_stack(netns, pcap=pcap) as t:
        listener = await t.stack.open_tcp_listener(7100)
        client = netns.python(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            data = b"syn-data" + bytes(100_000)
            if sys.argv[2] == "fastopen":
                sent = s.sendto(data, socket.MSG_FASTOPEN, (sys.argv[1], 7100))
                s.sendall(data[sent:])
            else:
                s.connect((sys.argv[1], 7100))
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
            print("REPLY", reply.decode(), flush=True)
            """,
            t.ours,
            "fastopen" if "fastopen" in key else "ecn",
        )
        flow = await listener.accept()
        got = b""
        while chunk := await flow.receive_some():
            got += chunk
        assert got == b"syn-data" + bytes(100_000)
        await flow.send_all(b"ok")
        await flow.send_eof()
        assert await wait_line(client, "REPLY") == "REPLY ok"
        await flow.aclose()
        await listener.aclose()
    argv = ["tshark", "-n", "-r", str(pcap), "-Y", "tcp.flags.syn == 1", "-T", "fields"]
    for field in ("tcp.flags.ack", "tcp.flags.ece", "tcp.flags.cwr", "tcp.option_kind"):
        argv += ["-e", field]
    done = await trio.run_process(argv, capture_stdout=True)
    syn, syn_ack = (line.split("\t") for line in done.stdout.decode().splitlines())
    if "ecn" in key:
        assert syn[:3] == ["0", "1", "1"]  # the kernel asked for ECN
        assert syn_ack[:3] == ["1", "1", "0"]  # ECN accepted (RFC 3168 §6.1.1)
    else:
        assert "34" in syn[3].split(",")  # the kernel asked for a Fast Open cookie
        assert syn_ack[:3] == ["1", "0", "0"]
    assert "34" not in syn_ack[3].split(",")  # no cookie


@needs_kernel
async def test_zero_windows_both_ways(netns: NetNS) -> None:
    """The kernel stops reading for a while (its window closes: our persist timer
    probes it), then we stop reading (our window closes: the kernel probes us)."""
    async with tun_stack(netns) as t:
        slow = netns.python(
            """
            import hashlib, socket, sys, time
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((sys.argv[1], 7200))
            s.listen(1)
            print("LISTENING", flush=True)
            c, _ = s.accept()
            time.sleep(1.5)  # our sender fills the window, then probes
            h, n = hashlib.sha256(), 0
            while b := c.recv(65536):
                h.update(b)
                n += len(b)
            print("RECEIVED", n, h.hexdigest(), flush=True)
            """,
            t.kernel,
        )
        await wait_line(slow, "LISTENING")
        data = random.Random(81).randbytes(2_000_000)
        flow = await t.stack.open_tcp_stream(t.kernel, 7200)
        await send_pattern(flow, data)
        await flow.send_eof()
        line = await wait_line(slow, "RECEIVED")
        assert line == f"RECEIVED {len(data)} {hashlib.sha256(data).hexdigest()}"
        stats = t.stack.stats()
        assert any(k.startswith(("persist", "zero_window")) and v for k, v in stats.items()), stats
        await flow.aclose()
        # Now our window: a small receive buffer and a reader that waits.
    config = tcp6.TCPConfig(receive_buffer=16384)
    async with tun_stack(netns, config=config) as t:
        size = 3_000_000
        peer = kernel_peer(netns, "listen", t.kernel, 7201, "source", str(size), "82")
        flow = await t.stack.open_tcp_stream(t.kernel, 7201)
        await trio.sleep(1.5)  # the kernel fills our window and probes it
        assert flow.info().rcv_wnd < 1500
        assert await receive_digest(flow) == (size, _digest(size, 82))
        await flow.send_eof()
        await wait_line(peer, "PEER_EOF")
        await flow.aclose()


@needs_kernel
async def test_many_connections_at_once(netns: NetNS) -> None:
    """50 kernel clients against our echo listener and 50 of our clients against a
    kernel echo server, concurrently; every byte echoed intact."""
    n = 50
    async with tun_stack(netns) as t, trio.open_nursery() as nursery:

        async def echo(flow: tcp6.Flow) -> None:
            while data := await flow.receive_some():
                await flow.send_all(data)
            await flow.send_eof()

        await nursery.start(t.stack.serve_tcp, echo, 7300)
        clients = netns.python(
            """
            import concurrent.futures, hashlib, socket, sys
            def one(i):
                s = socket.create_connection((sys.argv[1], 7300), timeout=30)
                data = hashlib.sha256(str(i).encode()).digest() * 2000
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := s.recv(65536):
                    got += chunk
                s.close()
                return got == data
            with concurrent.futures.ThreadPoolExecutor(int(sys.argv[2])) as ex:
                print("OK", sum(ex.map(one, range(int(sys.argv[2])))), flush=True)
            """,
            t.ours,
            str(n),
        )
        server = netns.python(
            """
            import socket, sys, threading
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.bind((sys.argv[1], 7301))
            s.listen(128)
            print("LISTENING", flush=True)
            def serve(c):
                while b := c.recv(65536):
                    c.sendall(b)
                c.close()
            while True:
                c, _ = s.accept()
                threading.Thread(target=serve, args=(c,), daemon=True).start()
            """,
            t.kernel,
        )
        await wait_line(server, "LISTENING")
        results: list[bool] = []

        async def ours(i: int) -> None:
            data = random.Random(i).randbytes(64_000)
            flow = await t.stack.open_tcp_stream(t.kernel, 7301)
            async with trio.open_nursery() as inner:
                got = bytearray()

                async def reader() -> None:
                    while chunk := await flow.receive_some():
                        got.extend(chunk)

                inner.start_soon(reader)
                await flow.send_all(data)
                await flow.send_eof()
            results.append(bytes(got) == data)
            await flow.aclose()

        async with trio.open_nursery() as ours_nursery:
            for i in range(n):
                ours_nursery.start_soon(ours, i)
        assert results == [True] * n
        assert await wait_line(clients, "OK", 60) == f"OK {n}"
        nursery.cancel_scope.cancel()


@needs_kernel
async def test_reordering_duplicating_corrupting_path(netns: NetNS) -> None:
    """5 MB each way through a TUN path with 1% reordering, 1% duplication and 0.5%
    corruption each way: both checksums (ours and the kernel's) catch the damage."""
    async with tun_stack(netns, loss=1e-9, seed=11) as t:
        assert t.impaired is not None
        t.impaired.impair(reorder=0.01, duplicate=0.01, corrupt=0.005, delay=0.001)
        await _both_ways(netns, t.stack, t.kernel, 7400, 5_000_000)
        stats = t.impaired.stats()
        assert stats["send"]["corrupted"] > 0 and stats["receive"]["corrupted"] > 0
        assert t.stack.stats()["drop_bad_checksum"] > 0
        # The kernel dropped what reached it corrupted (its own counter).
        tcp = [
            line.split()[1:]
            for line in netns.run("cat", "/proc/net/snmp").splitlines()
            if line.startswith("Tcp:")
        ]
        assert int(dict(zip(tcp[0], tcp[1], strict=True))["InCsumErrors"]) > 0


@needs_kernel
async def test_keepalive_both_ways(netns: NetNS) -> None:
    """The kernel's keepalive probes (idle 1 s, 1 s apart, 2 allowed) get answers from
    our stack, so its connection survives 4 idle seconds; ours get answers from the
    kernel, and when the path is cut our keepalive gives up with Timeout."""
    config = tcp6.TCPConfig(keepalive=tcp6.Keepalive(idle=0.5, interval=0.2, probes=3))
    async with tun_stack(netns, config=config, loss=1e-9) as t:
        listener = await t.stack.open_tcp_listener(7500)
        client = netns.python(
            """
            import socket, sys, time
            s = socket.create_connection((sys.argv[1], 7500))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
            time.sleep(4)
            s.sendall(b"alive")
            print("REPLY", s.recv(100).decode(), flush=True)
            """,
            t.ours,
        )
        flow = await listener.accept()
        assert await flow.receive_some() == b"alive"  # after 4 s of kernel probes
        await flow.send_all(b"yes")
        assert await wait_line(client, "REPLY") == "REPLY yes"
        # Our probes: the kernel answers them while the path works ...
        peer = kernel_peer(netns, "listen", t.kernel, 7501, "sink")
        ours = await t.stack.open_tcp_stream(t.kernel, 7501)
        await trio.sleep(1.5)
        assert ours.info().state.name == "ESTABLISHED"
        # ... and once it is cut, the connection fails as a Timeout.
        assert t.impaired is not None
        t.impaired.impair(loss=1.0)
        with trio.fail_after(5):
            match await ours.read():
                case tcp6.Error(tcp6.Timeout()):
                    pass
                case other:
                    pytest.fail(f"expected a keepalive timeout, got {other}")
        del peer
        await flow.aclose()
        await listener.aclose()


@needs_kernel
async def test_time_wait_reused_by_a_kernel_client(netns: NetNS) -> None:
    """We close first (our side goes to TIME-WAIT); the kernel client at once
    connects again from the same port: its newer SYN (timestamps, RFC 6191) reopens
    the 4-tuple, three times in a row."""
    async with tun_stack(netns) as t:
        listener = await t.stack.open_tcp_listener(7600)
        client = netns.python(
            """
            import socket, sys, time
            for i in range(3):
                s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((sys.argv[2], 40000))
                for _ in range(100):  # until the last one has left LAST-ACK
                    try:
                        s.connect((sys.argv[1], 7600))
                        break
                    except OSError:
                        time.sleep(0.02)
                s.sendall(b"round %d" % i)
                while s.recv(100):
                    pass
                s.close()
                print("ROUND", i, flush=True)
            """,
            t.ours,
            t.kernel,
        )
        for i in range(3):
            with trio.fail_after(10):
                flow = await listener.accept()
            assert flow.get_dest()[1] == 40000
            assert await flow.receive_some() == b"round %d" % i
            await flow.aclose()  # our FIN first: we end in TIME-WAIT
            assert await wait_line(client, "ROUND") == f"ROUND {i}"
        assert t.stack.stats()["time_wait_reused"] == 2
        await listener.aclose()
