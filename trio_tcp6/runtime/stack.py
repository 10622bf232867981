"""The direct, userspace TCP/IPv6 stack: :func:`open_stack`.

A :class:`DirectStack` owns the tables every part of it reads -- its connections by
4-tuple, its listeners by port, the local ports in use, the TIME-WAIT table, the
stack-wide memory account, the counters -- and the secrets drawn from its seed, and
it offers the :class:`~trio_tcp6.runtime.base.Stack` API: the active open
(``open_tcp_stream``, with the RFC 6056 choice of an ephemeral port), listening,
``stats()``. The work per packet is done by its parts, each in its own module:

- :class:`~trio_tcp6.runtime.ipinput.IPv6Input` (``ipinput.py``), the link reader:
  IPv6 input, the demultiplexer that hands each TCP segment to its connection by
  4-tuple, to the TIME-WAIT table or to a listener, or answers it with a RST;
- :class:`~trio_tcp6.runtime.passive.PassiveOpen` (``passive.py``), what a
  listening port does with a segment: new connections and SYN cookies;
- :class:`~trio_tcp6.runtime.icmp.ICMPv6Handler` (``icmp.py``): echo, errors about
  our segments, path MTU discovery;
- :class:`~trio_tcp6.runtime.ipoutput.IPv6Output` (``ipoutput.py``): the packets of
  the engines' segments (software GSO included) and of the reader's answers, on the
  link.

Every connection is a :class:`~trio_tcp6.runtime.flow.DirectFlow` with a task pair in
this stack's nursery; the stack is its :class:`~trio_tcp6.runtime.flowhost.FlowHost` and
each listener's :class:`~trio_tcp6.runtime.listener.ListenerHost`. A connection that
enters TIME-WAIT leaves its flow for the stack's
:class:`~trio_tcp6.runtime.timewait.TimeWaitTable` (outside ``max_connections``), where
the reader answers for it until 2*MSL are over. Leaving
``open_stack`` resets every flow still open, closes every listener and cancels every
task.
"""

from __future__ import annotations

import errno
import ipaddress
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from ..config import TCPConfig
from ..errors import TCPError, Unknown
from ..links.base import Link, LinkCapabilities, capabilities_of
from ..links.replay import derive_seed
from ..tcp.connection import Connection, shared_config
from ..tcp.isn import ISNGenerator, SynCookies
from ..tcp.memory import MemoryAccount
from ..tcp.ports import EphemeralPorts
from ..wire.tcp import IPV6_TCP_HEADERS_LEN, TCPSegment
from .base import Buffer, Stack, check_port, parse_host
from .flow import DirectFlow

# The ICMPv6 and PMTU constants stay importable from here, where they always were.
from .icmp import ICMP_ERROR_BURST as ICMP_ERROR_BURST
from .icmp import ICMP_ERROR_RATE as ICMP_ERROR_RATE
from .icmp import PMTU_CACHE_SIZE as PMTU_CACHE_SIZE
from .icmp import PMTU_TIMEOUT as PMTU_TIMEOUT
from .ipinput import IPv6Input
from .ipoutput import IPv6Output
from .listener import DirectListener
from .passive import PassiveOpen
from .timewait import FlowKey, TimeWaitTable

__all__ = ["DirectStack", "open_stack"]


class DirectStack(Stack):
    """A userspace TCP/IPv6 stack on one link and one address (see :func:`open_stack`)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        link: Link,
        address: str | ipaddress.IPv6Address,
        config: TCPConfig,
        hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
        seed: int | bytes | None = None,
    ) -> None:
        super().__init__(nursery, hosts)
        self.link = link
        self.address = parse_host(address)
        self.config = config
        self._addr = self.address.packed
        #: What the link offers beyond send/receive (read once).
        self.capabilities: LinkCapabilities = capabilities_of(link)
        mtu = int(link.mtu)
        #: Largest payload our link carries; the engine caps it with ``config.mss``.
        self._link_mss = max(64, mtu - IPV6_TCP_HEADERS_LEN)
        our_mss = min(self._link_mss, config.mss) if config.mss else self._link_mss
        self._flows: dict[FlowKey, DirectFlow] = {}
        self._listeners: dict[int, DirectListener] = {}
        self._local_ports: Counter[int] = Counter()
        self._counters: Counter[str] = Counter()
        #: Connections in TIME-WAIT (not in ``_flows``; their local ports stay counted).
        self.time_wait = TimeWaitTable(
            config.max_time_wait, self._counters, self._time_wait_released
        )
        # Every secret from the seed (ours, or the link's for a simulated network),
        # else from the OS.
        if seed is None:
            seed = self.capabilities.seed

        def secret(label: str) -> bytes | None:
            return None if seed is None else derive_seed(seed, label)

        self._isn = ISNGenerator(secret("isn"))
        # An independent secret: TSval must not leak F.
        self._ts_offsets = ISNGenerator(secret("ts-offset"))
        self._ports = EphemeralPorts(secret("ports"))
        self._shut_down = False
        #: What all connections buffer, against ``config.memory_limit`` (tcp_mem).
        self.memory = MemoryAccount(config.memory_limit, self._counters)
        output = self._output = IPv6Output(
            link,
            self.capabilities,
            self._addr,
            mtu,
            self._link_mss,
            our_mss,
            self._counters,
            config.rst_rate_limit,
        )
        # FlowHost: a flow calls these per batch; bound here, they cost no extra
        # frame over methods of the stack's own.
        self.transmit = output.transmit
        self.transmit_nowait = output.transmit_nowait
        self.send_unsent = output.send_unsent
        self._sends_nowait = output.send_nowait is not None
        passive = PassiveOpen(
            self,
            self._register,
            self._flows,
            output,
            isn=self._isn,
            ts_offsets=self._ts_offsets,
            cookies=SynCookies(secret("syncookie")),
            link_mss=self._link_mss,
            our_mss=our_mss,
            memory=self.memory,
        )
        self._input = IPv6Input(
            link,
            self.capabilities,
            self._addr,
            mtu,
            self._counters,
            self._flows,
            self._listeners,
            self.time_wait,
            self.memory,
            output,
            passive,
        )
        self._icmp = self._input.icmp

    # -- bookkeeping --------------------------------------------------------------------------
    def _register(self, flow: DirectFlow) -> None:
        self._flows[flow.key] = flow
        self._local_ports[flow.local_port] += 1
        flow.engine.tso_max_bytes = self._output.tso_max
        flow.start(self._nursery)
        self._icmp.apply_path_mtu(flow, trio.current_time())
        # The SYN (or SYN-ACK) leaves now, on a link that never blocks: not one
        # scheduling round later with the sender task's first step, which would
        # add a round to every handshake (two per connection).
        flow.flush()

    def unregister(self, flow: DirectFlow) -> None:
        """(:class:`~trio_tcp6.runtime.flowhost.FlowHost`) ``flow`` reached CLOSED: its
        4-tuple and local port are free."""
        if self._flows.get(flow.key) is flow:
            del self._flows[flow.key]
            self._release_port(flow.local_port)

    def time_wait_entered(self, flow: DirectFlow) -> None:
        """(:class:`~trio_tcp6.runtime.flowhost.FlowHost`) ``flow``'s connection entered
        TIME-WAIT: it no longer counts against ``max_connections``; the TIME-WAIT
        table keeps its engine (and its local port in use) until 2*MSL are over."""
        key = flow.key
        if self._flows.get(key) is flow:
            del self._flows[key]
            self.time_wait.add(key, flow.engine, trio.current_time())

    def _time_wait_released(self, key: FlowKey) -> None:
        self._release_port(key[2])

    def _release_port(self, port: int) -> None:
        self._local_ports[port] -= 1
        if self._local_ports[port] <= 0:
            del self._local_ports[port]

    def remove_listener(self, listener: DirectListener) -> None:
        """(:class:`~trio_tcp6.runtime.listener.ListenerHost`) ``listener`` was
        closed: its port is free."""
        if self._listeners.get(listener.port) is listener:
            del self._listeners[listener.port]

    @property
    def counters(self) -> Counter[str]:
        """The live counters behind :meth:`stats` (flows and engines add to them)."""
        return self._counters

    @property
    def shut_down(self) -> bool:
        """True once the ``open_stack`` block is being left."""
        return self._shut_down

    @property
    def sends_nowait(self) -> bool:
        """True when the link declares ``send_nowait``: :meth:`transmit_nowait`
        can send without waiting."""
        return self._sends_nowait

    #: The stack's time: the trio clock, ``trio.current_time`` itself (a flow reads
    #: it in every call and every batch; a method around it would add a frame).
    clock = staticmethod(trio.current_time)

    def _ts_offset(self, local_port: int, remote: bytes, remote_port: int) -> int:
        return self._ts_offsets.offset(self._addr, local_port, remote, remote_port)

    @property
    def flows(self) -> list[DirectFlow]:
        """The connections the stack holds (every state but CLOSED and TIME-WAIT)."""
        return list(self._flows.values())

    # -- ICMPv6 (runtime/icmp.py) -------------------------------------------------------------
    def path_mtu(self, destination: bytes | str | ipaddress.IPv6Address, now: float) -> int:
        """The path MTU we use towards ``destination``: the link MTU unless a Packet
        Too Big lowered it less than :data:`~trio_tcp6.runtime.icmp.PMTU_TIMEOUT`
        seconds before ``now``."""
        return self._icmp.path_mtu(destination, now)

    def soft_error(self, flow: DirectFlow) -> TCPError | None:
        """The last ICMPv6 error reported for ``flow`` that did not abort it (Linux's
        ``sk_err_soft``), or None."""
        return self._icmp.soft_error(flow)

    # -- Stack API ----------------------------------------------------------------------------
    @property
    def localhost(self) -> ipaddress.IPv6Address:
        """``"localhost"`` is the stack's own address (the link carries the
        packets: a VirtualNetwork delivers them back to us)."""
        return self.address

    def lookup(self, name: str) -> ipaddress.IPv6Address | None:
        """A name the link knows (``VirtualNetwork.attach(addr, name=...)``)."""
        resolve = self.capabilities.resolve
        return resolve(name) if resolve is not None else None

    def _own_address(self, host: str | ipaddress.IPv6Address) -> None:
        addr = self.resolve(host)
        if addr != self.address and not addr.is_unspecified:
            raise OSError(errno.EADDRNOTAVAIL, f"{addr} is not this stack's address")

    async def open_tcp_stream(
        self,
        host: str | ipaddress.IPv6Address,
        port: int,
        *,
        local_address: str | ipaddress.IPv6Address | None = None,
    ) -> DirectFlow:
        port = check_port(port, connect=True)
        remote = self.resolve(host)
        if local_address is not None:
            self._own_address(local_address)
        if self._shut_down:
            raise trio.ClosedResourceError("the stack was closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        c = self._counters
        cfg = self.config
        if len(self._flows) >= cfg.max_connections:
            c["attempt_fails"] += 1
            raise Unknown("too many connections", errno.ENOBUFS)
        rp = remote.packed
        flows, listeners, time_wait = self._flows, self._listeners, self.time_wait
        lport = self._ports.choose(
            self._addr,
            rp,
            port,
            lambda p: p in listeners or (rp, port, p) in flows or (rp, port, p) in time_wait,
        )
        if lport is None:
            c["attempt_fails"] += 1
            raise Unknown("no free local port", errno.EADDRNOTAVAIL)
        now = trio.current_time()
        conn = Connection.connect(
            # trio's default, TCP_NODELAY, from the start: nothing is sent before the
            # handshake completes, and a set_nodelay() call per connection is saved.
            shared_config(cfg, nagle=False) if cfg.nagle else cfg,
            local_port=lport,
            remote_port=port,
            iss=self._isn.isn(self._addr, lport, rp, port, now),
            mss=self._link_mss,
            now=now,
            stats=c,
            ts_offset=self._ts_offset(lport, rp, port),
            memory=self.memory,
        )
        flow = DirectFlow(self, conn, remote, port, lport)
        c["active_opens"] += 1
        self._register(flow)
        try:
            await flow.wait_connected()
        except TCPError:
            c["attempt_fails"] += 1
            flow.abort()
            raise
        except BaseException:
            c["attempt_fails"] += 1
            flow.abort(Unknown("connection attempt cancelled", errno.ECANCELED))
            raise
        return flow

    async def open_tcp_listener(
        self,
        port: int,
        *,
        host: str | ipaddress.IPv6Address | None = None,
        backlog: int | None = None,
    ) -> DirectListener:
        """Listen on ``port`` (0 picks a free one; see ``listener.port``); accepted
        flows get ``TCP_NODELAY``. ``host`` must be the stack's address (or ``::``)."""
        await trio.lowlevel.checkpoint()
        listener = self._listen_nowait(port, backlog, None if host is None else self.resolve(host))
        listener.nodelay = True
        return listener

    def _listen_nowait(
        self, port: int, backlog: int | None, host: ipaddress.IPv6Address | None = None
    ) -> DirectListener:
        if self._shut_down:
            raise trio.ClosedResourceError("the stack was closed")
        port = check_port(port, connect=False)
        if host is not None:
            self._own_address(host)
        if port == 0:
            chosen = self._ports.choose(
                self._addr,
                b"",
                0,
                lambda p: p in self._listeners or p in self._local_ports,
            )
            if chosen is None:
                raise OSError(errno.EADDRINUSE, "no free port to listen on")
            port = chosen
        elif port in self._listeners:
            raise OSError(errno.EADDRINUSE, f"port {port} is already listening")
        listener = DirectListener(
            self, port, backlog if backlog is not None else self.config.syn_backlog
        )
        self._listeners[port] = listener
        return listener

    async def input(
        self,
        src: str | ipaddress.IPv6Address,
        dst: str | ipaddress.IPv6Address,
        payload: Buffer,
    ) -> None:
        """Process one TCP segment (an IPv6 payload) from ``src`` to ``dst``."""
        src_b, dst_b = parse_host(src).packed, parse_host(dst).packed
        if dst_b != self._addr:
            self._input.drop("not_for_us")
        else:
            self._input.tcp_input(src_b, payload, trio.current_time())
        if self._output.pending:
            await self._output.flush_pending()
        else:
            await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        """Counters: ``segments_in``/``segments_out``, ``retransmits``, ``resets_sent``,
        ``challenge_acks``, ``syn_cookies_sent``/``syn_cookies_validated``,
        ``icmp_echo_replies``, ``gso_cut`` (super-segments cut into packets by the
        stack, :data:`SOFTWARE_GSO`), every ``drop_<reason>`` (``drop_bad_checksum``,
        ``drop_malformed`` and ``drop_malformed_<ParseError.reason>``,
        ``drop_no_listener``, ...), ``engine_errors`` (internal errors contained: each
        aborted one connection or dropped one packet), the engine's own counters;
        ``flows_open`` (connections counted against ``max_connections``: all but
        TIME-WAIT), ``time_wait`` (connections in the TIME-WAIT table) and
        ``time_wait_recycled`` (entries closed early because the table was full);
        and the stack-wide memory account (``TCPConfig.memory_limit``):
        ``memory_held`` (bytes all connections buffer now), ``memory_held_peak``,
        ``memory_limit`` (0: unlimited), ``memory_pressure`` (1 while under
        pressure), ``memory_pressure_episodes``, ``memory_relief_walks`` (prunes
        across connections), ``memory_ofo_pruned`` (out-of-order ranges discarded
        for it) and ``drop_memory_pressure`` (segments whose data it dropped)."""
        d = dict.fromkeys(_ALWAYS, 0)
        d.update(self._counters)
        d.update(self.memory.gauges())
        d["flows_open"] = len(self._flows)
        d["time_wait"] = len(self.time_wait)
        d["listeners_open"] = len(self._listeners)
        return d

    # -- shutdown ---------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        self._shut_down = True
        self._close_mirage_listeners()
        for listener in list(self._listeners.values()):
            listener.close_nowait()
        error = Unknown("connection aborted: the stack was closed", errno.ECONNABORTED)
        final: list[tuple[bytes, list[TCPSegment]]] = []
        for flow in list(self._flows.values()):
            flow.abort(error)
            segs = flow.take_output()
            if segs:
                final.append((flow.remote_packed, segs))
        self.time_wait.close_all(trio.current_time())
        self._nursery.cancel_scope.cancel()
        if final or self._output.pending:
            # Tell the peers (RST), but never hang on a stuck link.
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                await self._output.flush_pending()
                for dst, segs in final:
                    await self.transmit(dst, segs)

    def __repr__(self) -> str:
        return f"<DirectStack [{self.address}] flows={len(self._flows)}>"


_ALWAYS = (
    "segments_in",
    "segments_out",
    "retransmits",
    "resets_sent",
    "challenge_acks",
    "syn_cookies_sent",
    "syn_cookies_validated",
    "icmp_echo_replies",
    "drop_bad_checksum",
    "drop_malformed",
    "drop_no_listener",
    "engine_errors",
    "time_wait_recycled",
)


@asynccontextmanager
async def open_stack(
    link: Link,
    address: str | ipaddress.IPv6Address,
    *,
    config: TCPConfig | None = None,
    hosts: Mapping[str, str | ipaddress.IPv6Address] | None = None,
    seed: int | bytes | None = None,
) -> AsyncIterator[DirectStack]:
    """The direct, userspace TCP/IPv6 stack on ``link`` with ``address``.

    ``hosts`` maps names to addresses for ``open_tcp_stream`` and friends (a TUN
    setup has no resolver; ``"localhost"`` and the names a VirtualNetwork knows
    need no entry).

    Its tasks (the link reader, each connection's task pair, mirage ``listen``
    callbacks) live in a nursery scoped to this block; leaving the block resets
    what is still open (users get ``BrokenResourceError`` / ``Error(Unknown)``),
    frees every port and cancels every task.

    Everything its connections buffer is bounded together by
    ``config.memory_limit`` (default 64 MiB; see :class:`~trio_tcp6.TCPConfig`):
    under pressure windows and send buffers stop growing and out-of-order data is
    pruned, never data accepted in order; ``stack.stats()`` shows it
    (``memory_held``, ``memory_pressure``, ...).

    ``seed`` (int or bytes): every secret the stack draws -- the RFC 6528 ISN and
    timestamp-offset secrets, the ephemeral-port secret (RFC 6056), the SYN-cookie
    secret -- is derived from it (BLAKE2, one label per purpose), so a simulated run
    repeats exactly. Without one, a link that declares a ``seed`` (a seeded
    VirtualNetwork: from its seed and the address) provides it; on other links the
    secrets are random (``os.urandom``), as they must be on a real network.
    """
    async with trio.open_nursery() as nursery:
        stack = DirectStack(
            nursery, link, address, config if config is not None else TCPConfig(), hosts, seed
        )
        nursery.start_soon(stack._input.run)
        nursery.start_soon(stack.time_wait.run)
        try:
            yield stack
        finally:
            await stack._shutdown()
