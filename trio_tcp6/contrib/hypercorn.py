"""Serve an ASGI (or WSGI) app with hypercorn's trio worker from a trio_tcp6 listener.

``pip install 'trio-tcp6[hypercorn]'`` (hypercorn 0.18.x: this module drives
hypercorn's trio internals, ``TCPServer``, ``Lifespan`` and ``WorkerContext``, which
hypercorn does not promise to keep; hence the pin). HTTP/1.1, HTTP/2 (with TLS and
ALPN) and websockets all run as they do over hypercorn's own sockets::

    config = hypercorn.Config()
    listener = await stack.open_tcp_listener(8080)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio_tcp6.contrib.hypercorn.serve, app, config, listener)

Why an adapter: ``hypercorn.trio.serve`` binds its own sockets from
``config.bind``, and its connection handler reads ``stream.socket`` (family,
``getpeername``, ``getsockname``) for the ASGI scope's ``client`` and ``server``.
Here each accepted flow is handed over with a small socket-shaped object that
answers those from the flow. The config's bind, socket and worker options do not
apply; its TLS options do (``certfile``/``keyfile``: the listener then speaks TLS).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from functools import partial
from random import randint
from typing import Any, Literal, cast

import trio

try:
    from hypercorn.config import Config
    from hypercorn.trio.lifespan import Lifespan
    from hypercorn.trio.statsd import StatsdLogger
    from hypercorn.trio.tcp_server import TCPServer
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.typing import ConnectionState, Framework, LifespanState
    from hypercorn.utils import ShutdownError, raise_shutdown, wrap_app
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trio_tcp6.contrib.hypercorn needs hypercorn: pip install 'trio-tcp6[hypercorn]'"
    ) from exc

from ..runtime import Flow, Listener

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

__all__ = ["HypercornStream", "serve"]


class HypercornStream(trio.abc.HalfCloseableStream):
    """A flow as hypercorn's connection handler takes it: the flow's stream methods
    plus its ``.socket`` (a direct flow's :class:`~trio_tcp6.runtime.FlowSocket`, a
    kernel flow's trio socket: hypercorn reads ``family``, ``getpeername()`` and
    ``getsockname()``)."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.socket = flow.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.flow.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.flow.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.flow.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.flow.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.flow.aclose()


class _Listener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, listener: Listener, ssl_context: Any) -> None:
        self.listener = listener
        self.ssl_context = ssl_context

    async def accept(self) -> trio.abc.Stream:
        stream = HypercornStream(await self.listener.accept())
        if self.ssl_context is None:
            return stream
        return trio.SSLStream(stream, self.ssl_context, server_side=True, https_compatible=True)

    async def aclose(self) -> None:
        await self.listener.aclose()


async def serve(
    app: Framework,
    config: Config,
    listener: Listener,
    *,
    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
    mode: Literal["asgi", "wsgi"] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listener`` until cancelled or ``shutdown_trigger`` returns,
    as ``hypercorn.trio.serve`` does on its own sockets: lifespan startup first
    (``task_status.started`` reports ``["http://[::]:PORT"]``, or ``https``), one
    task per connection, then a graceful shutdown (``config.graceful_timeout``) and
    the lifespan shutdown. The listener is closed at the end. An app that returns
    from the lifespan scope at once is served without lifespan events (hypercorn's
    own ``serve`` fails on it)."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, mode)
    config.set_statsd_logger_class(StatsdLogger)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    max_requests = None
    if config.max_requests is not None:
        max_requests = config.max_requests + randint(0, config.max_requests_jitter)
    context = WorkerContext(max_requests)
    ssl_context = config.create_ssl_context() if config.ssl_enabled else None
    scheme = "https" if ssl_context is not None else "http"
    handler = partial(TCPServer, wrapped, config, context, ConnectionState(lifespan_state.copy()))

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await _lifespan_event(lifespan.wait_for_startup)
        async with trio.open_nursery() as server_nursery:
            task_status.started([f"{scheme}://[::]:{listener.port}"])
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    if shutdown_trigger is not None:
                        nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            cast(Callable[[trio.abc.Stream], Awaitable[object]], handler),
                            [_Listener(listener, ssl_context)],
                            handler_nursery=server_nursery,
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split(ShutdownError)
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = (
                    trio.current_time() + config.graceful_timeout
                )
                with trio.CancelScope(shield=True):
                    await listener.aclose()
        await _lifespan_event(lifespan.wait_for_shutdown)
        lifespan_nursery.cancel_scope.cancel()


async def _lifespan_event(wait: Callable[[], Awaitable[None]]) -> None:
    try:
        await wait()
    except trio.ClosedResourceError:
        # The app returned from its lifespan call without a word (many small apps
        # only look at "http" scopes): hypercorn closed the channel, no lifespan.
        pass
