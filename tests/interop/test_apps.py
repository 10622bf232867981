"""Applications across the TUN link: curl (HTTP/1.1 keep-alive) against the h11
example server on our stack, trio.SSLStream on our flow against the kernel's Python
``ssl`` server, and the kernel's ``ping -6`` to our address."""

from __future__ import annotations

import hashlib
import random
import re
import ssl
from pathlib import Path

import pytest
import trio
import trustme

from tests.netns import NetNS

from .conftest import kernel_peer, needs_kernel, needs_tool, tun_stack, wait_line

BODY = 20_000_000


def _expected_body_digest(size: int) -> str:
    from http_server import pattern  # type: ignore[import-not-found]

    h = hashlib.sha256()
    for offset in range(0, size, 1 << 16):
        h.update(pattern(offset, min(1 << 16, size - offset)))
    return h.hexdigest()


@needs_kernel
@needs_tool("curl")
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
async def test_curl_keep_alive_against_h11_server(
    netns: NetNS, tmp_path: Path, offload: bool
) -> None:
    """curl in the namespace fetches three 20 MB bodies (and the index page) from the
    h11 example server on our stack over one keep-alive connection."""
    from http_server import http_handler

    async with tun_stack(netns, offload=offload) as t, trio.open_nursery() as nursery:
        await nursery.start(t.stack.serve_tcp, http_handler, 8080)
        base = f"http://[{t.ours}]:8080"
        urls = [f"{base}/", *[f"{base}/bytes/{BODY}"] * 3]
        outputs = [tmp_path / f"body{i}" for i in range(len(urls))]
        argv = ["ip", "netns", "exec", netns.name, "curl", "-g", "-sS", "--fail"]
        argv += ["--max-time", "120", "-w", "%{http_code} %{num_connects} %{size_download}\\n"]
        for url, out in zip(urls, outputs, strict=True):
            argv += [url, "-o", str(out)]
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.decode().split()
        results = [lines[i : i + 3] for i in range(0, len(lines), 3)]
        # One connection made for the first URL, then reused (num_connects 0).
        assert [r[1] for r in results] == ["1", "0", "0", "0"], results
        assert all(r[0] == "200" for r in results), results
        assert b"trio_tcp6" in outputs[0].read_bytes()
        expected = _expected_body_digest(BODY)
        for out in outputs[1:]:
            assert out.stat().st_size == BODY
            assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
        assert t.stack.stats()["passive_opens"] == 1
        nursery.cancel_scope.cancel()


@needs_kernel
async def test_tls_client_against_kernel_ssl_server(netns: NetNS, tmp_path: Path) -> None:
    """trio.SSLStream over our flow, the kernel side a Python ``ssl`` server with a
    trustme certificate for its IPv6 address: 5 MB up, 5 MB down, clean close."""
    async with tun_stack(netns) as t:
        ca = trustme.CA()
        cert = ca.issue_cert(t.kernel)
        cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        size = 5_000_000
        peer = kernel_peer(
            netns, "listen", t.kernel, 8443, "tls", str(cert_file), str(key_file), str(size), "41"
        )
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        flow = await t.stack.open_tcp_stream(t.kernel, 8443)
        tls = trio.SSLStream(flow, ctx, server_hostname=t.kernel)
        data = random.Random(42).randbytes(size)
        await tls.send_all(len(data).to_bytes(8, "big") + data)
        reply = bytearray()
        while len(reply) < 64 + size:
            chunk = await tls.receive_some(1 << 18)
            assert chunk, f"EOF after {len(reply)} bytes"
            reply += chunk
        assert bytes(reply[:64]).decode() == hashlib.sha256(data).hexdigest()
        assert bytes(reply[64:]) == random.Random(41).randbytes(size)
        assert tls.selected_alpn_protocol() is None
        assert (await wait_line(peer, "RECEIVED")).split()[1] == str(size)
        await tls.aclose()  # close_notify, then our FIN
        assert await wait_line(peer, "CLOSE") == "CLOSED"


@needs_kernel
@needs_tool("ping")
async def test_kernel_ping_gets_replies(netns: NetNS) -> None:
    """``ping -6`` from the kernel side: every echo request answered, small and
    large (a 1452-byte payload fills the 1500-byte MTU)."""
    async with tun_stack(netns) as t:
        for size in (56, 1452):
            argv = ["ip", "netns", "exec", netns.name, "ping", "-6", "-n", "-c", "5"]
            argv += ["-i", "0.05", "-W", "2", "-s", str(size), t.ours]
            done = await trio.run_process(argv, capture_stdout=True, check=False)
            out = done.stdout.decode()
            assert done.returncode == 0, out
            assert re.search(r"5 packets transmitted, 5 received, 0% packet loss", out), out
            assert f"{size + 8} bytes from {t.ours}" in out
        assert t.stack.stats()["icmp_echo_replies"] == 10
