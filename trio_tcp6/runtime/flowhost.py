"""What a flow needs from its stack, and what its stack hands it.

A :class:`~trio_tcp6.runtime.flow.DirectFlow` knows no stack and no listener: what it
needs from the stack that made it is :class:`FlowHost` (counters, config, address,
clock, transmit, unregister, time_wait_entered) and what it tells the listener that
accepted its SYN is :class:`FlowListener`. Both are protocols over the flow's type
(``FlowHost[DirectFlow]``) so that this module need not import the flow: a test drives
a flow against a fake host (``tests/runtime/test_flow_host.py``).

The host puts each inbound segment into the flow's :class:`Inbox` (the sending end of
the trio memory channel that carries segments to the flow's receiver task, and that
task's wake-up alarm); :func:`engine_error` is the public error a host or a flow
reports for an engine ``ERROR`` event.
"""

from __future__ import annotations

import errno
import ipaddress
from collections import Counter
from typing import Protocol, TypeVar

import trio

from ..alarm import Alarm
from ..config import TCPConfig
from ..errors import Refused, TCPError, Timeout, Unknown
from ..wire.tcp import TCPSegment

__all__ = [
    "INBOX_SIZE",
    "FlowHost",
    "FlowListener",
    "Inbox",
    "UnsentPackets",
    "engine_error",
]

#: Segments queued towards one connection before the stack drops (and counts) more.
INBOX_SIZE = 4096

#: The flow type a host or a listener is told about (only ever passed in).
FlowT_contra = TypeVar("FlowT_contra", contravariant=True)


class Inbox(Alarm):
    """The sending end of a flow's inbox channel, as its host uses it:
    :meth:`send_nowait` puts a segment into the trio memory channel (raising what the
    channel raises: ``trio.WouldBlock`` when full, ``trio.ClosedResourceError`` once
    closed) and wakes the receiver task, which takes segments from the channel's other
    end with ``receive_nowait`` and otherwise sleeps on this object, an
    :class:`~trio_tcp6.alarm.Alarm` (one object per connection, not two).

    Why not ``await receive()``: a task parked in a memory channel's ``receive``
    holds that coroutine, its abort closure and an entry in the channel's table of
    waiting tasks, ~0.7 KiB that every idle connection kept; a sleep on an alarm
    holds a third of that.
    """

    __slots__ = ("_channel",)

    def __init__(self, channel: trio.MemorySendChannel[TCPSegment]) -> None:
        super().__init__("a flow has one receiver task")
        self._channel = channel

    def send_nowait(self, seg: TCPSegment) -> None:
        """Queue ``seg`` for the receiver task and wake it."""
        self._channel.send_nowait(seg)
        self.wake()

    def close(self) -> None:
        """No more segments: the receiver ends once it has taken what is queued."""
        self._channel.close()
        self.wake()


#: Packets a host could not hand to its link without waiting, with their
#: ``partial_checksum`` flag (see :meth:`FlowHost.transmit_nowait`).
UnsentPackets = tuple[list[bytes], bool]


class FlowHost(Protocol[FlowT_contra]):
    """What a :class:`~trio_tcp6.runtime.flow.DirectFlow` needs from the stack it belongs to.

    :class:`~trio_tcp6.runtime.stack.DirectStack` is one; a test may pass a fake.
    Segments are handed over per destination (``dst``: the peer's packed 16-byte
    address) as the engine produced them; the host builds and sends the packets.
    """

    @property
    def counters(self) -> Counter[str]:
        """The stack's counters (``stats()``): the flow counts ``engine_errors``,
        ``resets_sent``, ``drop_flow_queue_full``, ``orphan_timeouts``, ..."""
        ...

    @property
    def config(self) -> TCPConfig:
        """The stack's configuration (the flow reads ``time_wait_duration``)."""
        ...

    @property
    def address(self) -> ipaddress.IPv6Address:
        """The stack's own address (the flow's local address)."""
        ...

    @property
    def sends_nowait(self) -> bool:
        """True when :meth:`transmit_nowait` can hand packets to the link without
        waiting (the link declares ``send_nowait``): user calls then transmit at
        once instead of waking the sender task."""
        ...

    def clock(self) -> float:
        """The current time, in the trio clock's seconds (the sender's sleeps use
        trio deadlines, so a host's clock is ``trio.current_time``)."""
        ...

    async def transmit(self, dst: bytes, segs: list[TCPSegment]) -> None:
        """Send ``segs`` to ``dst``, waiting for the link if it is busy."""
        ...

    def transmit_nowait(self, dst: bytes, segs: list[TCPSegment]) -> UnsentPackets | None:
        """Send ``segs`` to ``dst`` without waiting. None when everything went; else
        the packets the link would not take now, for :meth:`send_unsent`."""
        ...

    async def send_unsent(self, unsent: UnsentPackets) -> None:
        """Send what :meth:`transmit_nowait` left, waiting for the link."""
        ...

    def unregister(self, flow: FlowT_contra) -> None:
        """The flow reached CLOSED: forget it (its 4-tuple and port are free)."""
        ...

    def time_wait_entered(self, flow: FlowT_contra) -> None:
        """The flow's connection entered TIME-WAIT: from now on the host drives
        ``flow.engine`` (segments for its 4-tuple, the 2*MSL expiry); the flow's
        task pair ends."""
        ...


class FlowListener(Protocol[FlowT_contra]):
    """What a passive :class:`~trio_tcp6.runtime.flow.DirectFlow` tells the listener
    that accepted its SYN (:class:`~trio_tcp6.runtime.listener.DirectListener` is one)."""

    def handshake_done(self, flow: FlowT_contra) -> None:
        """The flow reached ESTABLISHED: queue it for ``accept()``."""
        ...

    def flow_closed(self, flow: FlowT_contra) -> None:
        """The flow reached CLOSED (maybe before its handshake completed)."""
        ...


def engine_error(kind: str | None) -> TCPError:
    """The public error for an engine ``ERROR`` event."""
    if kind == "refused":
        return Refused()
    if kind == "timeout":
        return Timeout()
    if kind == "reset":
        return Unknown("connection reset by peer", errno.ECONNRESET)
    if kind == "aborted":
        return Unknown("connection aborted", errno.ECONNABORTED)
    return Unknown(f"connection failed ({kind})")
