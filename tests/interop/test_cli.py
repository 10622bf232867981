"""``python -m trio_tcp6 tun ...`` end to end: the command creates the TUN device in
the test's namespace, configures the kernel side itself, and serves (curl fetches)
or connects (netcat style, to a kernel-side server)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import trio

from tests.netns import NetNS, tun_name, ula_prefix

from .conftest import kernel_peer, needs_kernel, needs_tool, wait_line


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-u", "-m", "trio_tcp6", "tun", *args]


@needs_kernel
@needs_tool("curl")
async def test_cli_serve_http(netns: NetNS) -> None:
    prefix = ula_prefix()
    name = tun_name()
    ours, kernel = str(prefix[2]), str(prefix[1])
    argv = _cli(
        "--netns", netns.name, "--name", name, "--address", ours,
        "--kernel-address", f"{kernel}/64", "--stats", "serve-http", "--port", "8080",
    )  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = await trio.to_thread.run_sync(proc.stdout.readline)
        assert line == "LISTENING 8080\n", proc.stderr.read() if proc.stderr else ""
        netns.wait_address(name, kernel)
        base = f"http://[{ours}]:8080"
        curl = ["curl", "-g", "-sS", "--fail", "--max-time", "30"]
        page = netns.run(*curl, f"{base}/")
        assert "trio_tcp6" in page
        body = await trio.to_thread.run_sync(
            lambda: (
                subprocess.run(
                    ["ip", "netns", "exec", netns.name, *curl, f"{base}/bytes/3000000"],
                    capture_output=True,
                    check=True,
                ).stdout
            )
        )
        assert body == (bytes(range(256)) * (3000000 // 256 + 1))[:3000000]
        posted = netns.run(*curl, "--data-binary", "hello world", f"{base}/sha256")
        assert posted == hashlib.sha256(b"hello world").hexdigest()
        assert "passive_opens 4\n" in netns.run(*curl, f"{base}/stats")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = await trio.to_thread.run_sync(proc.communicate, None, 10)
    assert proc.returncode == 130, err
    assert "stats: " in err
    # The interface went away with the process.
    assert name not in netns.ip("link", "show")


@needs_kernel
async def test_cli_connect_like_netcat(netns: NetNS) -> None:
    prefix = ula_prefix()
    name = tun_name()
    ours, kernel = str(prefix[2]), str(prefix[1])
    # The kernel side listens on an address that exists once the CLI has made the
    # interface: ask for it with IPV6_FREEBIND-like ease by binding to :: instead.
    peer = kernel_peer(netns, "listen", "::", 5300, "halfclose")
    data = b"line\n" * 20000
    argv = _cli(
        "--netns", netns.name, "--name", name, "--address", ours,
        "--kernel-address", f"{kernel}/64", "connect", kernel, "5300",
    )  # fmt: skip
    done = await trio.run_process(
        argv, stdin=data, capture_stdout=True, capture_stderr=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"after-eof"
    assert await wait_line(peer, "EOF") == f"EOF {len(data)}"


@needs_kernel
@needs_tool("ping")
async def test_cli_serve_echo_with_offload_loss_and_pcap(netns: NetNS, tmp_path: Path) -> None:
    prefix = ula_prefix()
    name = tun_name()
    ours, kernel = str(prefix[2]), str(prefix[1])
    pcap = tmp_path / "cli.pcap"
    argv = _cli(
        "--netns", netns.name, "--name", name, "--address", ours,
        "--kernel-address", f"{kernel}/64", "--offload", "--loss", "0.01",
        "--pcap", str(pcap), "serve-echo", "--port", "7007",
    )  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = await trio.to_thread.run_sync(proc.stdout.readline)
        assert line == "LISTENING 7007\n", proc.stderr.read() if proc.stderr else ""
        netns.wait_address(name, kernel)
        out = netns.run_python(
            """
            import hashlib, socket, sys, threading
            s = socket.create_connection((sys.argv[1], 7007), timeout=60)
            data = hashlib.sha256(b"x").digest() * 40000
            t = threading.Thread(target=s.sendall, args=(data,))
            t.start()
            got = b""
            while len(got) < len(data):
                got += s.recv(65536)
            t.join()
            s.shutdown(socket.SHUT_WR)
            print("ECHO", got == data, s.recv(10) == b"", flush=True)
            """,
            ours,
            timeout=60,
        )
        assert out.strip() == "ECHO True True"
        ping = netns.run(
            "ping", "-6", "-n", "-c", "20", "-i", "0.01", "-W", "1", ours, check=False
        )
        assert " received" in ping and " 0 received" not in ping
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = await trio.to_thread.run_sync(proc.communicate, None, 10)
    assert proc.returncode == 130, err
    assert "offload on" in err
    assert pcap.stat().st_size > 100_000
