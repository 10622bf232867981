"""A listening port of the direct stack.

What a listener needs from its stack is :class:`ListenerHost`; this module does not
import the stack, so a listener can be driven against a fake host in a test. Its
flows talk to it through :class:`~trio_tcp6.runtime.flowhost.FlowListener`.
"""

from __future__ import annotations

import errno
import ipaddress
from collections import Counter, deque
from typing import Protocol

import trio

from ..config import TCPConfig
from ..errors import Unknown
from .base import Listener
from .flow import DirectFlow

__all__ = ["DirectListener", "ListenerHost"]


class ListenerHost(Protocol):
    """What a :class:`DirectListener` needs from the stack it listens on
    (:class:`~trio_tcp6.runtime.stack.DirectStack` is one)."""

    @property
    def shut_down(self) -> bool:
        """True once the stack is closing (``accept()`` then raises
        ``trio.BrokenResourceError`` rather than ``ClosedResourceError``)."""
        ...

    def remove_listener(self, listener: DirectListener) -> None:
        """The listener was closed: free its port."""
        ...

    @property
    def counters(self) -> Counter[str]:
        """The stack's counters (``stack.stats()``)."""
        ...

    @property
    def address(self) -> ipaddress.IPv6Address:
        """The stack's own address (where the listener listens)."""
        ...

    @property
    def config(self) -> TCPConfig:
        """The stack's configuration (``accept()`` reads its ``nagle``)."""
        ...


class DirectListener(Listener):
    """``trio.abc.Listener[Flow]`` on one port of a direct stack.

    ``backlog`` bounds the accept queue (handshakes completed, not yet accepted): while
    it is full, SYNs and the ACKs that would complete a handshake are dropped (the
    client retries), as Linux does. The stack's ``config.syn_backlog`` bounds the
    half-open (SYN-RECEIVED) connections, beyond which SYN cookies answer (if
    enabled) or SYNs are dropped.
    """

    def __init__(self, host: ListenerHost, port: int, backlog: int) -> None:
        self._host = host
        self._port = port
        self.backlog = max(1, backlog)
        self._queue: deque[DirectFlow] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        #: Passive flows of this listener still in SYN-RECEIVED.
        self._half_open: set[DirectFlow] = set()
        #: Half-open flows given an ACK that may complete the handshake: each holds
        #: a place in the accept queue.
        self._completing: set[DirectFlow] = set()
        self._closed = False
        self._accepting = False
        #: Record a :class:`~trio_tcp6.tcp.trace.FlowTrace` of every connection this
        #: listener accepts from its SYN on (``flow.trace()`` returns it).
        self.trace_accepted = False

    @property
    def port(self) -> int:
        return self._port

    def get_local(self) -> tuple[ipaddress.IPv6Address, int]:
        return (self._host.address, self._port)

    @property
    def half_open(self) -> int:
        """Connections in SYN-RECEIVED."""
        return len(self._half_open)

    @property
    def queued(self) -> int:
        """Established connections waiting for ``accept()``."""
        return len(self._queue)

    @property
    def accept_queue_full(self) -> bool:
        """True when ``backlog`` places of the accept queue are taken (connections
        waiting for ``accept()`` and handshakes completing into a held place): the
        stack takes no new SYN (nor SYN-cookie ACK) for this port until one is
        accepted."""
        return len(self._queue) + len(self._completing) >= self.backlog

    def may_complete(self, flow: DirectFlow) -> bool:
        """May an ACK go to the half-open ``flow`` (it may complete the handshake)?
        Yes if it holds a place in the accept queue or one is free (it takes it);
        no while the queue is full: the stack drops the ACK."""
        if flow in self._completing:
            return True
        if self.accept_queue_full:
            return False
        self._completing.add(flow)
        return True

    # -- called by the stack --------------------------------------------------------------
    def add_half_open(self, flow: DirectFlow) -> None:
        """A passive flow in SYN-RECEIVED, made for a SYN to this port."""
        self._half_open.add(flow)
        if self.trace_accepted:
            flow.trace()

    def close_nowait(self) -> None:
        """Close now (synchronously): free the port, reset every connection nobody
        accepted or that is still half-open, wake a task in ``accept()``."""
        if self._closed:
            return
        self._closed = True
        self._host.remove_listener(self)
        error = Unknown("listener closed", errno.ECONNABORTED)
        # Like Linux: connections nobody accepted (or that are still half-open) are reset.
        while self._queue:
            self._queue.popleft().abort(error)
        for flow in list(self._half_open):
            flow.abort(error)
        self._half_open.clear()
        self._completing.clear()
        self._lot.unpark_all()

    # -- called by flows (FlowListener) ---------------------------------------------------
    def handshake_done(self, flow: DirectFlow) -> None:
        """``flow`` reached ESTABLISHED: queue it for ``accept()`` (reset it if the
        listener is closed)."""
        if self.trace_accepted:
            flow.trace()  # (a SYN-cookie handshake had no half-open flow)
        self._half_open.discard(flow)
        self._completing.discard(flow)
        if self._closed:
            flow.abort(Unknown("listener closed", errno.ECONNABORTED))
            return
        if len(self._queue) >= self.backlog:
            # The stack holds back a handshake's ACK while the queue is full, so
            # this is a handshake completed without one (never expected): reset
            # it (Linux tcp_abort_on_overflow) rather than overfill the queue.
            self._host.counters["accept_queue_overflow_resets"] += 1
            flow.abort(Unknown("accept queue full", errno.ECONNABORTED))
            return
        self._queue.append(flow)
        self._lot.unpark()

    def flow_closed(self, flow: DirectFlow) -> None:
        """``flow`` reached CLOSED: it no longer counts as half-open."""
        self._half_open.discard(flow)
        self._completing.discard(flow)

    # -- Listener API -------------------------------------------------------------------
    async def accept(self) -> DirectFlow:
        if self._accepting:
            raise trio.BusyResourceError("another task is accepting on this listener")
        self._accepting = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            parked = False
            while True:
                if self._closed:
                    if self._host.shut_down:
                        raise trio.BrokenResourceError("the stack was closed")
                    raise trio.ClosedResourceError("listener was closed")
                if self._queue:
                    flow = self._queue.popleft()
                    # The stack builds a connection with TCP_NODELAY when its SYN
                    # comes to a nodelay listener (nothing is sent before accept()
                    # but ACKs, which Nagle does not hold): set here only what
                    # changed since, the listener's option or the stack's default.
                    nodelay = self.nodelay or not self._host.config.nagle
                    if flow.engine.nodelay != nodelay:
                        try:
                            flow.set_nodelay(nodelay)
                        except OSError:
                            pass  # (a broken flow says so later)
                    break
                await self._lot.park()
                parked = True
            if not parked:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return flow
        finally:
            self._accepting = False

    def _close_nowait(self) -> None:
        self.close_nowait()

    async def aclose(self) -> None:
        self.close_nowait()
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        address = getattr(self._host, "address", "?")
        closed = " closed" if self._closed else ""
        return f"<DirectListener [{address}]:{self._port}{closed}>"
