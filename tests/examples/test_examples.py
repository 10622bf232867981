"""Every example runs as a script, and its reusable parts do what they say over both stacks."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import echo_client
import echo_server
import h11
import http_client
import http_server
import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6

from .conftest import EXAMPLES


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo_server.py", "client got back: b'hello, echo'"),
        ("echo_client.py", "echoed: hello, echo"),
        ("http_server.py", "GET /bytes/1000000 -> 200, 1000000 bytes"),
        ("http_client.py", "GET /missing -> 404, 10 bytes"),
    ],
)
def test_example_runs_as_a_script(script: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout


async def test_echo_over_virtual_network(autojump_clock: trio.testing.MockClock) -> None:
    message = bytes(range(256)) * 1000
    assert await echo_server.run_virtual(message) == message


def test_pattern_is_byte_index_mod_256() -> None:
    assert http_server.pattern(0, 300) == bytes(i % 256 for i in range(300))
    assert http_server.pattern(250, 10) == bytes(i % 256 for i in range(250, 260))
    big = http_server.pattern(7, 200_000)
    assert len(big) == 200_000 and big[-1] == (7 + 199_999) % 256


async def test_http_keepalive_over_virtual_network(autojump_clock: trio.testing.MockClock) -> None:
    net = tcp6.VirtualNetwork(seed=1, delay=0.002)
    body = bytes(range(256)) * 4096  # 1 MiB upload
    async with (
        tcp6.open_stack(net.attach(http_server.SERVER), http_server.SERVER) as server,
        tcp6.open_stack(net.attach(http_server.CLIENT), http_server.CLIENT) as client,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(server.serve_tcp, http_server.http_handler, 80)
        stream = await client.open_tcp_stream(http_server.SERVER, 80)
        conn = h11.Connection(h11.CLIENT)
        host = f"[{http_server.SERVER}]"
        status, _, page = await http_client.request(stream, conn, host, "GET", "/")
        assert (status, page) == (200, http_server.PAGE)
        conn.start_next_cycle()
        status, _, data = await http_client.request(stream, conn, host, "GET", "/bytes/300000")
        assert status == 200 and data == http_server.pattern(0, 300_000)
        conn.start_next_cycle()
        status, _, digest = await http_client.request(stream, conn, host, "POST", "/sha256", body)
        assert status == 200 and digest.decode() == hashlib.sha256(body).hexdigest()
        conn.start_next_cycle()
        status, _, _ = await http_client.request(stream, conn, host, "GET", "/nope")
        assert status == 404
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_echo_client_against_kernel_stack() -> None:
    async with tcp6.open_kernel_stack() as stack, trio.open_nursery() as nursery:
        listeners = await nursery.start(stack.serve_tcp, echo_server.echo_handler, 0)
        reply = await echo_client.echo_once(stack, "::1", listeners[0].port, b"kernel echo")
        assert reply == b"kernel echo"
        nursery.cancel_scope.cancel()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_fetches_from_the_example_server_on_the_kernel_stack() -> None:
    """A real HTTP client (curl) against the example's h11 handler."""
    async with tcp6.open_kernel_stack() as stack, trio.open_nursery() as nursery:
        listeners = await nursery.start(stack.serve_tcp, http_server.http_handler, 0)
        url = f"http://[::1]:{listeners[0].port}"
        proc = await trio.run_process(
            ["curl", "-sSg", "--max-time", "30", f"{url}/bytes/2000000", f"{url}/"],
            capture_stdout=True,
        )
        assert proc.stdout == http_server.pattern(0, 2_000_000) + http_server.PAGE
        nursery.cancel_scope.cancel()
