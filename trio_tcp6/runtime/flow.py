"""A connection of the direct (userspace) stack: the engine plus its task pair.

Each :class:`DirectFlow` owns one sans-I/O :class:`~trio_tcp6.tcp.connection.Connection`
and two tasks in its stack's nursery:

* the **receiver** takes inbound segments from a trio memory channel (the stack's
  link reader puts each segment into :attr:`DirectFlow.inbox` with ``send_nowait``,
  which also wakes the receiver), drains everything queued with ``receive_nowait``
  (a burst costs one wake-up and one batch of engine work; while the channel is
  empty the receiver sleeps on an :class:`~trio_tcp6.alarm.Alarm`), feeds the burst to
  ``engine.on_segments`` (which merges runs of in-order data segments, GRO-like,
  :mod:`trio_tcp6.tcp.coalesce`), and transmits what that produced (ACKs, data released by the
  ACKs) at once, without a hop to the sender;
* the **sender** owns the timers: it sleeps on an :class:`~trio_tcp6.alarm.Alarm`
  until ``engine.next_deadline`` or until woken (the user queued data, read data that
  opens the window, closed...), runs ``engine.on_timer`` and transmits.

The user's calls (``send_all``, ``receive_some``, ...) touch the engine synchronously
and never wait for link I/O: segments they produce go to an outbox. On a link that
never blocks a sender (it declares ``send_nowait``, as a VirtualNetwork link does) the
call hands them to the link at once -- no task hop per write; otherwise the sender (or
the receiver, whichever runs first) transmits them. Engine events wake the parked
user tasks through :class:`~trio_tcp6.alarm.Waiters` (a lean parking lot).

When the connection enters TIME-WAIT the flow hands its engine to the host
(:meth:`~trio_tcp6.runtime.flowhost.FlowHost.time_wait_entered`) and the task pair
ends: the host answers what still arrives until 2*MSL are over. The user keeps what
TIME-WAIT allows: reading the data that came before the peer's FIN, then EOF,
``state`` and ``info()``; sending was refused since the user closed.

What a flow needs from its stack is :class:`~trio_tcp6.runtime.flowhost.FlowHost`
and from its listener :class:`~trio_tcp6.runtime.flowhost.FlowListener` (both in
:mod:`~trio_tcp6.runtime.flowhost`, re-exported here); this module imports neither
the stack nor the listener, so a flow can be driven against a fake host in a test.
The socket-like calls that are not per packet (options, addresses, ``state``,
``info()``, ``trace()``) are its base class,
:class:`~trio_tcp6.runtime.endpoint.FlowEndpoint`.

Cost (see ``docs/performance.md``): the inbox channel costs a wake-up per burst but
nothing per segment beyond ``send_nowait``/``receive_nowait``; the sender's timer is
an Alarm deadline that is only ever moved *earlier* while it sleeps (a later engine
deadline just costs one spurious wake-up, as Linux's lazy timers do).

Containment: an unexpected exception from the engine while processing peer input or
a timer aborts only this connection (RST if synchronized; the user gets
``BrokenResourceError`` / ``Error(Unknown("internal error: ..."))``), is counted in
``stack.stats()["engine_errors"]`` and logged with its traceback (logger
``"trio_tcp6"``).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
from collections.abc import Sequence

import trio

from ..alarm import Alarm, Waiters
from ..errors import TCPError, Unknown
from ..tcp.connection import Connection
from ..tcp.events import EventKind, State
from ..tcp.seq import seq_ge
from ..tcp.states import RESET_ON_ABORT
from ..wire.tcp import TCPSegment
from ._util import check_max_bytes
from .base import Buffer
from .endpoint import FlowEndpoint
from .flowhost import INBOX_SIZE, FlowHost, FlowListener, Inbox, UnsentPackets, engine_error

# The host's side (flowhost.py) is re-exported: it was first defined here.
__all__ = [
    "INBOX_SIZE",
    "DirectFlow",
    "FlowHost",
    "FlowListener",
    "Inbox",
    "UnsentPackets",
    "engine_error",
]

# The task pair's names, given to trio so that it does not format a new string for
# every task it starts.
RECEIVER_TASK_NAME = "trio_tcp6.runtime.flow.DirectFlow._receiver"
SENDER_TASK_NAME = "trio_tcp6.runtime.flow.DirectFlow._sender"

logger = logging.getLogger("trio_tcp6")

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint

# The sender's "no timer fired yet": one shared float (``-math.inf`` evaluated in the
# task would be a new float object that every idle sender keeps).
_NEVER = -math.inf

# An empty outbox: shared and never added to (an idle flow keeps no list of its own).
# The outbox adopts the list of segments the engine hands over (:meth:`_drain`), and
# the one place that appends (a failed engine's RST) first gives it a list of its own.
_NO_SEGMENTS: list[TCPSegment] = []


class DirectFlow(FlowEndpoint):
    """One connection of :func:`~trio_tcp6.open_stack` (see the module docstring).

    Made by its host (the stack) around an engine, with the listener that accepted
    its SYN for a passive open; the host then calls :meth:`start`. The members the
    host uses are documented below; a user needs none of them.
    """

    # Slots (and a weak reference for the host's soft-error table): an idle
    # connection's flow is one of the objects every connection costs.
    __slots__ = (
        "__weakref__",
        "_alarm",
        "_closed",
        "_connected",
        "_dead",
        "_eof_sent",
        "_error",
        "_fin_acked",
        "_fin_received",
        "_inbox_out",
        "_listener",
        "_orphan_at",
        "_outbox",
        "_receiving",
        "_recv_lot",
        "_send_lot",
        "_sending",
        "_state_lot",
        "_tx_busy",
        "_unsent",
        "inbox",
        "key",
        "remote_packed",
    )

    def __init__(
        self,
        host: FlowHost[DirectFlow],
        conn: Connection,
        remote: ipaddress.IPv6Address,
        remote_port: int,
        local_port: int,
        listener: FlowListener[DirectFlow] | None = None,
    ) -> None:
        super().__init__(host, conn, remote, remote_port, local_port)
        # The endpoint holds the host; this flow also tells it about itself.
        self._host: FlowHost[DirectFlow]
        #: The peer's packed 16-byte address (the ``dst`` of every transmit).
        self.remote_packed = remote.packed
        #: ``(remote_packed, remote_port, local_port)``: the host's demux key.
        self.key = (self.remote_packed, remote_port, local_port)
        self._listener = listener
        #: Where the host's reader puts this connection's segments, with
        #: ``send_nowait`` (``trio.WouldBlock``: the inbox is full; closed once the
        #: flow reached CLOSED), for the receiver task (an :class:`Inbox`).
        # The design card: segments travel to the receiver task through a trio
        # memory channel (its state and endpoints cost ~1.6 KiB per connection).
        channel, self._inbox_out = trio.open_memory_channel[TCPSegment](INBOX_SIZE)
        self.inbox = Inbox(channel)  # also the receiver's sleep while it is empty
        self._outbox: list[TCPSegment] = _NO_SEGMENTS
        # Packets a synchronous flush could not hand to the link (sent by a task),
        # and whether a task is transmitting (waiting for a blocking link) now.
        self._unsent: UnsentPackets | None = None
        self._tx_busy = False
        # Two tasks sending (or receiving) at once is a usage error, as on trio's
        # streams; plain flags rather than a detector object each (memory per flow).
        self._sending = False
        self._receiving = False
        # The user tasks waiting for data, for send space, for a state change: each
        # lot is made when a task first waits on it (most idle connections have none
        # waiting, and three empty lots were 120 B per flow).
        self._recv_lot: Waiters | None = None
        self._send_lot: Waiters | None = None
        self._state_lot: Waiters | None = None
        # What the user did.
        self._closed = False  # aclose() was called
        self._eof_sent = False  # send_eof()/close() queued our FIN
        # What the engine told us.
        self._connected = False
        self._fin_received = False
        self._fin_acked = False
        self._error: TCPError | None = None
        # CLOSED, or TIME-WAIT handed to the host: the task pair ends, the engine is
        # no longer driven by this flow.
        self._dead = False
        # The sender's sleep (until the engine's next deadline, or woken).
        self._alarm = Alarm("a flow has one sender task")
        #: When an orphaned flow (closed by the user) stuck in FIN-WAIT gives up.
        self._orphan_at: float | None = None

    # -- the host's side ------------------------------------------------------------------
    @property
    def handshake_complete(self) -> bool:
        """True once the engine reported the connection ESTABLISHED."""
        return self._connected

    @property
    def listener(self) -> FlowListener[DirectFlow] | None:
        """The listener a passive flow was made for (None for an active open)."""
        return self._listener

    def start(self, nursery: trio.Nursery) -> None:
        """Start the task pair (receiver and sender) in ``nursery``."""
        nursery.start_soon(self._receiver, name=RECEIVER_TASK_NAME)
        nursery.start_soon(self._sender, name=SENDER_TASK_NAME)

    def flush(self) -> None:
        """Act on what the engine produced since the flow last looked (the host
        changed it from outside, e.g. ``set_path_mtu``; every user call ends with
        this): events wake the users, segments go out -- at once when the host
        sends without waiting, else through the sender task."""
        self._drain()
        if self._outbox and not self._flush_nowait():
            self._alarm.wake()  # the sender task transmits what the link did not take
        elif self._alarm.sleeping:
            self._alarm.wake_by(self._deadline())  # (_rearm, inline: every user call)

    def take_output(self) -> list[TCPSegment]:
        """Remove and return the segments waiting to be transmitted (the host sends
        them itself when it shuts down)."""
        segs = self._outbox
        self._outbox = _NO_SEGMENTS
        return segs if segs is not _NO_SEGMENTS else []

    async def wait_connected(self) -> None:
        """Wait until the handshake completes; raise the connection's error (or
        ``Unknown(ECONNABORTED)``) if it fails first."""
        while not self._connected:
            if self._error is not None:
                raise self._error
            if self._dead:
                raise Unknown("connection closed during the handshake", errno.ECONNABORTED)
            await self._state_waiters().park()

    def abort(self, error: TCPError | None = None) -> None:
        """Reset the connection now (RST if synchronized); blocked users get ``error``."""
        if self._error is None and error is not None:
            self._error = error
        if not self._dead:
            try:
                self._conn.abort(self._clock())
                self._drain()
            except Exception as exc:
                self.engine_failed(exc)
            self._alarm.wake()
        self._wake_all()

    def engine_failed(self, exc: Exception) -> None:
        """An unexpected exception from the engine: abort this connection only (RST
        if synchronized), count it in ``engine_errors`` and log it."""
        counters = self._host.counters
        counters["engine_errors"] += 1
        logger.error("trio_tcp6: internal error in %r; aborting it", self, exc_info=exc)
        if self._error is None:
            self._error = Unknown(f"internal error: {exc!r}", errno.ECONNABORTED)
        self._outbox = []
        conn = self._conn
        try:
            synchronized = conn.state in RESET_ON_ABORT
            seq = conn.snd_nxt
        except Exception:  # the engine is beyond inspection: no RST
            synchronized = False
            seq = 0
        try:
            conn.take_segments()
            conn.take_events()
        except Exception:
            pass
        if synchronized and not self._dead:
            # Built here, not by the engine: it may fail again.
            self._outbox.append(TCPSegment.reset(self._local_port, self._remote_port, seq))
            counters["resets_sent"] += 1
        self._on_closed()

    def _user_call_failed(self, exc: Exception) -> trio.BrokenResourceError:
        """The engine raised during a user's call: contained as for peer input; the
        caller raises what this returns."""
        self.engine_failed(exc)
        assert self._error is not None
        broken = trio.BrokenResourceError(str(self._error))
        broken.__cause__ = self._error
        return broken

    # -- engine plumbing --------------------------------------------------------------------
    def _drain(self) -> None:
        """Collect the engine's segments into the outbox and act on its events."""
        conn = self._conn
        segs = conn.take_segments()
        if segs:
            if self._outbox:
                self._outbox.extend(segs)
            else:
                self._outbox = segs  # (the engine gave this list away: ours now)
        fin_event = False
        for ev in conn.take_events():
            kind = ev.kind
            if kind is EventKind.READABLE:
                if self._recv_lot:  # (skips a call when nobody waits)
                    self._recv_lot.unpark_all()
            elif kind is EventKind.WRITABLE:
                if self._send_lot:
                    self._send_lot.unpark_all()
                if self._state_lot:
                    self._state_lot.unpark_all()
            elif kind is EventKind.EOF:
                self._fin_received = True
                fin_event = True
                if self._recv_lot:
                    self._recv_lot.unpark_all()
                if self._state_lot:
                    self._state_lot.unpark_all()
            elif kind is EventKind.CONNECTED:
                self._connected = True
                if self._state_lot:
                    self._state_lot.unpark_all()
                if self._listener is not None:
                    self._listener.handshake_done(self)
            elif kind is EventKind.FIN_ACKED:
                self._fin_acked = True
                fin_event = True
                if self._state_lot:
                    self._state_lot.unpark_all()
            elif kind is EventKind.ERROR:
                if self._error is None:
                    self._error = engine_error(ev.error)
                self._wake_all()
            elif kind is EventKind.CLOSED:
                self._on_closed()
        if fin_event and conn.state is State.TIME_WAIT:
            self._on_time_wait()

    def _wake_all(self) -> None:
        if self._recv_lot:
            self._recv_lot.unpark_all()
        if self._send_lot:
            self._send_lot.unpark_all()
        if self._state_lot:
            self._state_lot.unpark_all()

    def _recv_waiters(self) -> Waiters:
        lot = self._recv_lot
        if lot is None:
            lot = self._recv_lot = Waiters()
        return lot

    def _send_waiters(self) -> Waiters:
        lot = self._send_lot
        if lot is None:
            lot = self._send_lot = Waiters()
        return lot

    def _state_waiters(self) -> Waiters:
        lot = self._state_lot
        if lot is None:
            lot = self._state_lot = Waiters()
        return lot

    def _on_closed(self) -> None:
        if self._dead:
            return
        self._dead = True
        self._host.unregister(self)
        if self._listener is not None:
            self._listener.flow_closed(self)
        self.inbox.close()  # the receiver ends once it has taken what is queued
        self._wake_all()
        self._alarm.wake()

    def _on_time_wait(self) -> None:
        """Only TIME-WAIT is left: the host takes the engine over (outside its
        connection limit) and the task pair ends once the outbox (the ACK of the
        peer's FIN) is sent."""
        if self._dead:
            return
        self._dead = True
        self._orphan_at = None
        self._host.time_wait_entered(self)
        self.inbox.close()
        self._wake_all()
        self._alarm.wake()

    def _deadline(self) -> float:
        deadline = self._conn.next_deadline
        if deadline is None:
            deadline = math.inf
        orphan = self._orphan_at
        return deadline if orphan is None or deadline < orphan else orphan

    def _rearm(self) -> None:
        """Let a sleeping sender know the engine's next deadline if it is *earlier*
        than the one it sleeps until (a later one costs a spurious wake-up only)."""
        if self._alarm.sleeping:
            self._alarm.wake_by(self._deadline())

    def _flush_nowait(self) -> bool:
        """Transmit the outbox now if the host sends without waiting: no task hop
        for segments a user call produced. False if something is left for the
        sender task."""
        host = self._host
        if not host.sends_nowait or self._tx_busy or self._unsent is not None:
            return False  # (never overtake packets a task is still sending)
        segs = self._outbox
        self._outbox = _NO_SEGMENTS
        rest = host.transmit_nowait(self.remote_packed, segs)
        if rest is None:
            return True
        self._unsent = rest
        return False

    async def _send_outbox(self) -> None:
        """Transmit what is queued, in order. One task at a time: while a task waits
        for a blocking link, others leave their segments to it (it loops until the
        outbox is empty)."""
        if self._tx_busy:
            return
        self._tx_busy = True
        try:
            while True:
                rest = self._unsent
                if rest is not None:
                    self._unsent = None
                    await self._host.send_unsent(rest)
                    continue
                segs = self._outbox
                if not segs:
                    return
                self._outbox = _NO_SEGMENTS
                await self._host.transmit(self.remote_packed, segs)
        finally:
            self._tx_busy = False

    # -- the task pair ------------------------------------------------------------------------
    def _discard_inbox(self) -> None:
        receive_nowait = self._inbox_out.receive_nowait
        while True:
            try:
                receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return

    async def _receiver(self) -> None:
        conn = self._conn
        # The channel, not its bound methods: those would be two more objects every
        # idle connection keeps.
        inbox = self._inbox_out
        alarm = self.inbox
        clock = self._clock
        while True:
            try:
                seg = inbox.receive_nowait()
            except trio.WouldBlock:
                seg = None
            except trio.EndOfChannel:
                return  # CLOSED, and everything queued was taken
            if seg is None:
                # Outside the except clause: a task sleeping inside it would keep the
                # WouldBlock being handled, with its traceback (~0.3 KiB per flow).
                await alarm.wait_until()  # until the inbox has more (or is closed)
                continue
            now = clock()
            try:
                # One wake-up per burst: take what else is queued without waiting,
                # and hand the burst to the engine at once (it merges in-order runs).
                burst = [seg]
                while True:
                    try:
                        burst.append(inbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                conn.on_segments(burst, now)
                # Not kept alive while the task waits for the next burst.
                del seg, burst
                if self._closed and conn.readable and not self._dead:
                    # Data for a flow the user closed: nobody will ever read it (RST).
                    conn.abort(now)
                self._drain()
            except Exception as exc:
                self._discard_inbox()
                self.engine_failed(exc)
            if self._state_lot:
                # write_nodelay()/close() waiters re-check snd_una after every batch.
                self._state_lot.unpark_all()
            if (self._outbox or self._unsent is not None) and not self._flush_nowait():
                await self._send_outbox()  # (a link that may block: wait for it)
            self._rearm()

    async def _sender(self) -> None:
        conn = self._conn
        alarm = self._alarm
        clock = self._clock
        fired_at = _NEVER
        while True:
            alarm.clear()  # what follows does the work of any wake-up so far
            try:
                deadline = conn.next_deadline
                if deadline is not None or self._orphan_at is not None:
                    now = clock()
                    if deadline is not None and deadline <= now:
                        conn.on_timer(now)
                        fired_at = now
                    if self._orphan_at is not None and self._orphan_at <= now:
                        self._orphan_timeout(now)
                self._drain()
            except Exception as exc:
                self.engine_failed(exc)
            if (self._outbox or self._unsent is not None) and not self._flush_nowait():
                await self._send_outbox()
            if self._dead:
                return
            if alarm.pending:
                continue
            deadline = self._deadline()
            if deadline <= fired_at:
                # The engine left a timer due that on_timer() did not clear: do not
                # spin (that would also freeze a virtual clock); look again shortly.
                self._host.counters["timer_stuck"] += 1
                deadline = fired_at + 0.001
            await alarm.wait_until(deadline)

    def _orphan_timeout(self, now: float) -> None:
        """A flow the user closed waited too long for the peer's FIN (like Linux's
        ``tcp_fin_timeout``): give up on it."""
        self._orphan_at = None
        if self._conn.state in (State.FIN_WAIT_1, State.FIN_WAIT_2):
            self._host.counters["orphan_timeouts"] += 1
            self._conn.abort(now)

    # -- trio stream -------------------------------------------------------------------
    def _begin_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this flow")
        self._sending = True

    def _begin_recv(self) -> None:
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this flow")
        self._receiving = True

    def _check_send(self) -> None:
        if self._closed or self._eof_sent:
            raise trio.ClosedResourceError("flow was closed for sending")
        if self._error is not None:
            raise trio.BrokenResourceError(str(self._error)) from self._error
        if self._dead:
            raise trio.BrokenResourceError("connection is closed") from Unknown(
                "connection is closed", errno.EPIPE
            )

    async def send_all(self, data: Buffer) -> None:
        self._begin_send()
        try:
            await _checkpoint_if_cancelled()
            await self._send(data, nodelay=False)
        finally:
            self._sending = False

    async def _send(self, data: Buffer, *, nodelay: bool) -> None:
        self._check_send()
        view: Buffer
        if type(data) is bytes:
            view = data  # (the engine takes bytes as they are: no view to make)
        else:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
        conn = self._conn
        total = len(view)
        offset = 0
        parked = False
        while offset < total:
            if conn.send_space > 0:
                try:
                    offset += conn.send(
                        view if offset == 0 else memoryview(view)[offset:],
                        self._clock(),
                        nodelay=nodelay,
                    )
                except Exception as exc:
                    raise self._user_call_failed(exc) from self._error
                self.flush()
            else:
                await self._send_waiters().park()
                parked = True
            if offset < total:
                self._check_send()  # (the flow may have failed or closed meanwhile)
        if not parked:
            await _cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        self._begin_send()
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            parked = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("flow was closed")
                if self._conn.send_space > 0 or self._eof_sent or self._error or self._dead:
                    break
                await self._send_waiters().park()
                parked = True
            if not parked:
                await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        self._begin_send()
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._closed:
                raise trio.ClosedResourceError("flow was closed")
            if not self._eof_sent:
                self._eof_sent = True
                if self._error is None and not self._dead:
                    try:
                        self._conn.shutdown(self._clock())
                    except Exception as exc:
                        raise self._user_call_failed(exc) from self._error
                    self.flush()
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        max_bytes = check_max_bytes(max_bytes)
        self._begin_recv()
        try:
            await _checkpoint_if_cancelled()
            conn = self._conn
            parked = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("flow was closed")
                if self._error is not None:
                    raise trio.BrokenResourceError(str(self._error)) from self._error
                if conn.readable:
                    try:
                        data = conn.receive(max_bytes, self._clock())
                    except Exception as exc:
                        raise self._user_call_failed(exc) from self._error
                    self.flush()
                    break
                if conn.at_eof or self._dead:
                    data = b""
                    break
                await self._recv_waiters().park()
                parked = True
            if not parked:
                await _cancel_shielded_checkpoint()
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if not self._dead and self._error is None:
                now = self._clock()
                try:
                    if self._conn.readable:
                        # Unread data would be lost: tell the peer (RFC 9293 §3.10.4).
                        self._conn.abort(now)
                    else:
                        if not self._eof_sent:
                            self._eof_sent = True
                            self._conn.shutdown(now)  # the FIN handshake goes on
                        self._orphan_at = now + self._host.config.time_wait_duration
                except Exception as exc:
                    self.engine_failed(exc)
                self.flush()
            self._wake_all()
        await trio.lowlevel.checkpoint()

    # -- mirage hooks ------------------------------------------------------------------
    async def _write_nodelay(self, bufs: Sequence[Buffer]) -> None:
        self._begin_send()
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            for buf in bufs:
                await self._send(buf, nodelay=True)
            target = self._conn.send_queue_end
            while not seq_ge(self._conn.snd_una, target):
                self._check_ack_wait()
                await self._state_waiters().park()
        finally:
            self._sending = False

    def _check_ack_wait(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("flow was closed")
        if self._error is not None:
            raise trio.BrokenResourceError(str(self._error)) from self._error
        if self._dead:
            raise trio.BrokenResourceError("connection is closed") from Unknown(
                "connection closed before the data was acknowledged", errno.EPIPE
            )

    async def _close_gracefully(self) -> None:
        if not self._eof_sent:
            await self.send_eof()
        else:
            await trio.lowlevel.checkpoint()
        while not (self._fin_received and (self._fin_acked or self._dead)):
            self._check_ack_wait()
            await self._state_waiters().park()

    def __repr__(self) -> str:
        local = getattr(self._host, "address", "?")
        return (
            f"<DirectFlow [{local}]:{self._local_port} -> [{self._remote}]:{self._remote_port}"
            f" {self._conn.state.value}>"
        )
