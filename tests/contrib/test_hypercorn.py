"""hypercorn's trio worker serving an ASGI app from a trio_tcp6 listener, over both
stacks: HTTP through httpx, websockets through trio-websocket on the same stack."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
import trustme
from hypercorn.config import Config

from trio_tcp6.contrib.httpx import Tcp6Transport
from trio_tcp6.contrib.hypercorn import serve
from trio_tcp6.testing import virtual_run

from .helpers import KERNEL_PATIENCE, KINDS, stack_pair

pytestmark = pytest.mark.timeout(120)

Scope = dict[str, Any]


class App:
    """``GET /`` says hello with the client's address; ``/echo`` echoes websocket
    messages; the lifespan events are recorded."""

    def __init__(self) -> None:
        self.lifespan: list[str] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.lifespan.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            body = f"hello {scope['client'][0]} over {scope['scheme']}".encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                await send({"type": "websocket.send", "text": "echo " + message["text"]})


def _config() -> Config:
    config = Config()
    config.graceful_timeout = 1.0
    return config


def _patience(kind: str) -> trio.CancelScope:
    return trio.fail_after(KERNEL_PATIENCE if kind == "kernel" else 600.0)


@pytest.mark.parametrize("kind", KINDS)
async def test_get_and_websocket_echo(kind: str) -> None:
    app = App()
    async with stack_pair(kind) as pair, trio.open_nursery() as nursery:
        listener = await pair.server.open_tcp_listener(0)
        binds = await nursery.start(serve, app, _config(), listener)
        assert binds == [f"http://[::]:{listener.port}"]
        assert app.lifespan == ["lifespan.startup"]
        with _patience(kind):
            async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:
                r = await client.get(pair.url(listener.port))
            assert r.status_code == 200
            assert r.headers["server"] == "hypercorn-h11"
            client_host = "fd00::1" if kind == "direct" else "::1"
            assert r.text == f"hello {client_host} over http"

            flow = await pair.client.open_tcp_stream(pair.host, listener.port)
            ws = await trio_websocket.wrap_client_stream(
                nursery, flow, f"[{pair.host}]:{listener.port}", "/echo"
            )
            for text in ("one", "two" * 10000):
                await ws.send_message(text)
                assert await ws.get_message() == "echo " + text
            await ws.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", KINDS)
async def test_tls_and_graceful_shutdown(kind: str) -> None:
    app = App()
    ca = trustme.CA()
    shutdown = trio.Event()
    async with stack_pair(kind) as pair, trio.open_nursery() as nursery:
        config = _config()
        cert = ca.issue_cert(pair.host)
        pems = cert.cert_chain_pems[0], cert.private_key_pem
        with pems[0].tempfile() as certfile, pems[1].tempfile() as keyfile:
            config.certfile, config.keyfile = certfile, keyfile
            listener = await pair.server.open_tcp_listener(0)
            binds = await nursery.start(
                lambda task_status: serve(
                    app, config, listener, shutdown_trigger=shutdown.wait, task_status=task_status
                )
            )
        assert binds == [f"https://[::]:{listener.port}"]
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        with _patience(kind):
            transport = Tcp6Transport(pair.client, verify=client_ctx)
            async with httpx.AsyncClient(transport=transport) as client:
                r = await client.get(pair.url(listener.port, scheme="https"))
            assert r.text.endswith("over https")
            shutdown.set()
            while app.lifespan != ["lifespan.startup", "lifespan.shutdown"]:
                await trio.sleep(0.01)
        # The listener is closed: a new connection is refused.
        with _patience(kind), pytest.raises(OSError):
            await pair.client.open_tcp_stream(pair.host, listener.port)


@pytest.mark.trio(run=virtual_run)
async def test_an_app_ignoring_lifespan_is_served() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async with stack_pair("direct") as pair, trio.open_nursery() as nursery:
        listener = await pair.server.open_tcp_listener(0)
        await nursery.start(serve, app, _config(), listener)
        async with httpx.AsyncClient(transport=Tcp6Transport(pair.client)) as client:
            assert (await client.get(pair.url(listener.port))).status_code == 204
        nursery.cancel_scope.cancel()
