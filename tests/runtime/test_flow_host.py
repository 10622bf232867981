"""A DirectFlow and a DirectListener driven against fake hosts, with no DirectStack:
what they need from a stack is exactly :class:`~trio_tcp6.runtime.flowhost.FlowHost` and
:class:`~trio_tcp6.runtime.listener.ListenerHost`. The test plays the peer by putting
segments into ``flow.inbox`` and reading what the flow hands its host.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections import Counter

import pytest
import trio
import trio.testing

from trio_tcp6.config import TCPConfig
from trio_tcp6.errors import Unknown
from trio_tcp6.runtime.flow import (
    INBOX_SIZE,
    RECEIVER_TASK_NAME,
    SENDER_TASK_NAME,
    DirectFlow,
    UnsentPackets,
)
from trio_tcp6.runtime.listener import DirectListener
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import State
from trio_tcp6.wire.tcp import ACK, RST, SYN, TCPSegment

PEER = ipaddress.IPv6Address("2001:db8::b")
LPORT, RPORT = 40000, 80
ISS, PEER_ISS = 1000, 5000


class FakeHost:
    """A FlowHost that records what it is asked to send (as segments: it builds no
    packets) and a ListenerHost."""

    def __init__(self, *, nowait: bool = True) -> None:
        self.counters: Counter[str] = Counter()
        self.config = TCPConfig()
        self.sends_nowait = nowait
        self.sent: list[TCPSegment] = []
        self.sent_by_task: list[TCPSegment] = []
        self.unregistered: list[DirectFlow] = []
        self.time_waits: list[DirectFlow] = []
        self.removed: list[DirectListener] = []
        self.shut_down = False

    def clock(self) -> float:
        return trio.current_time()

    def _record(self, segs: list[TCPSegment]) -> None:
        self.sent += segs
        if trio.lowlevel.current_task().name in (RECEIVER_TASK_NAME, SENDER_TASK_NAME):
            self.sent_by_task += segs  # (not by a user's call)

    async def transmit(self, dst: bytes, segs: list[TCPSegment]) -> None:
        assert dst == PEER.packed
        self._record(segs)
        await trio.lowlevel.checkpoint()

    def transmit_nowait(self, dst: bytes, segs: list[TCPSegment]) -> UnsentPackets | None:
        assert dst == PEER.packed
        self._record(segs)
        return None

    async def send_unsent(self, unsent: UnsentPackets) -> None:
        raise AssertionError("transmit_nowait never leaves anything")

    def unregister(self, flow: DirectFlow) -> None:
        self.unregistered.append(flow)

    def time_wait_entered(self, flow: DirectFlow) -> None:
        self.time_waits.append(flow)

    def remove_listener(self, listener: DirectListener) -> None:
        self.removed.append(listener)

    def take(self) -> list[TCPSegment]:
        sent, self.sent = self.sent, []
        return sent


def active_flow(host: FakeHost) -> DirectFlow:
    conn = Connection.connect(
        host.config, local_port=LPORT, remote_port=RPORT, iss=ISS, mss=1440, now=host.clock()
    )
    return DirectFlow(host, conn, PEER, RPORT, LPORT)


def peer(flags: int, seq: int, ack: int, payload: bytes = b"", **options: object) -> TCPSegment:
    return TCPSegment(RPORT, LPORT, seq, ack, flags, 65535, payload, **options)  # type: ignore[arg-type]


async def handshake(host: FakeHost, flow: DirectFlow) -> None:
    """The flow's SYN goes out through its sender task; the peer's SYN-ACK in."""
    await trio.testing.wait_all_tasks_blocked()
    (syn,) = host.take()
    assert syn.flags == SYN and syn.seq == ISS and syn.dst_port == RPORT
    assert host.sent_by_task == [syn]  # nobody but the sender task could send it
    flow.inbox.send_nowait(peer(SYN | ACK, PEER_ISS, ISS + 1, mss=1440))
    await flow.wait_connected()
    await trio.testing.wait_all_tasks_blocked()
    (ack,) = host.take()
    assert ack.flags == ACK and ack.ack == PEER_ISS + 1


async def test_flow_runs_against_a_fake_host(autojump_clock: trio.testing.MockClock) -> None:
    host = FakeHost()
    async with trio.open_nursery() as nursery:
        flow = active_flow(host)
        flow.start(nursery)
        await handshake(host, flow)
        assert flow.state is State.ESTABLISHED

        # A user's write goes out within the call (the host sends without waiting).
        before = len(host.sent_by_task)
        await flow.send_all(b"hello")
        (data,) = host.take()
        assert data.payload == b"hello" and data.seq == ISS + 1
        assert len(host.sent_by_task) == before

        # The peer's data and FIN arrive through the inbox.
        flow.inbox.send_nowait(peer(ACK, PEER_ISS + 1, ISS + 6, b"world"))
        assert await flow.receive_some() == b"world"
        flow.inbox.send_nowait(peer(ACK | 0x01, PEER_ISS + 6, ISS + 6))
        assert await flow.receive_some() == b""

        # Our close: FIN, the peer's ACK; CLOSED frees the flow at its host.
        await flow.aclose()
        await trio.testing.wait_all_tasks_blocked()
        fin = [s for s in host.take() if s.flags & 0x01]
        assert fin and fin[-1].seq == ISS + 6
        flow.inbox.send_nowait(peer(ACK, PEER_ISS + 7, ISS + 7))
        await trio.testing.wait_all_tasks_blocked()
        assert flow.state is State.CLOSED
        assert host.unregistered == [flow]
        # CLOSED closes the inbox: what the reader still hands over is refused.
        with pytest.raises(trio.ClosedResourceError):
            flow.inbox.send_nowait(peer(ACK, PEER_ISS + 7, ISS + 7))
        assert host.counters["engine_errors"] == 0


async def test_time_wait_hands_the_engine_to_the_host(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Our FIN first, then the peer's: entering TIME-WAIT the flow sends the ACK of
    the peer's FIN, hands its engine to the host (``time_wait_entered``, not
    ``unregister``: the 4-tuple is still in use), closes its inbox and its task pair
    ends; the user still reads EOF and sees the state."""
    host = FakeHost()
    async with trio.open_nursery() as nursery:
        flow = active_flow(host)
        flow.start(nursery)
        await handshake(host, flow)
        tasks = trio.lowlevel.current_statistics().tasks_living
        await flow.send_eof()
        (fin,) = host.take()
        assert fin.flags & 0x01 and fin.seq == ISS + 1
        flow.inbox.send_nowait(peer(ACK | 0x01, PEER_ISS + 1, ISS + 2))
        await trio.testing.wait_all_tasks_blocked()
        (ack,) = host.take()
        assert ack.flags == ACK and ack.ack == PEER_ISS + 2
        assert host.time_waits == [flow] and host.unregistered == []
        assert flow.state is State.TIME_WAIT
        assert trio.lowlevel.current_statistics().tasks_living == tasks - 2
        with pytest.raises(trio.ClosedResourceError):
            flow.inbox.send_nowait(peer(ACK, PEER_ISS + 2, ISS + 2))
        assert await flow.receive_some() == b""


async def test_a_burst_is_one_batch(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments queued while the receiver sleeps are processed in one wake-up: the
    whole burst goes to one on_segments call before the single look at the
    engine's output, all at one time."""
    host = FakeHost()
    async with trio.open_nursery() as nursery:
        flow = active_flow(host)
        flow.start(nursery)
        await handshake(host, flow)
        conn = flow.engine
        log: list[object] = []
        on_segments, take_segments = Connection.on_segments, Connection.take_segments

        # (Patched on the class: a Connection has slots. This test has one.)
        def logged_on_segments(self: Connection, segs: list[TCPSegment], now: float) -> None:
            log.append((len(segs), now))
            on_segments(self, segs, now)

        def logged_take_segments(self: Connection) -> list[TCPSegment]:
            log.append("take")
            return take_segments(self)

        monkeypatch.setattr(Connection, "on_segments", logged_on_segments)
        monkeypatch.setattr(Connection, "take_segments", logged_take_segments)
        seq = PEER_ISS + 1
        for i in range(5):
            flow.inbox.send_nowait(peer(ACK, seq + 100 * i, ISS + 1, bytes(100)))
        await trio.testing.wait_all_tasks_blocked()
        assert log[:2] == [(5, trio.current_time()), "take"]
        assert conn.readable == 500
        nursery.cancel_scope.cancel()


async def test_full_inbox_refuses(autojump_clock: trio.testing.MockClock) -> None:
    """The inbox holds INBOX_SIZE segments; the next ``send_nowait`` raises
    ``trio.WouldBlock`` (the stack counts it as ``drop_flow_queue_full``)."""
    host = FakeHost()
    flow = active_flow(host)  # not started: nobody drains the inbox
    seg = peer(ACK, PEER_ISS + 1, ISS + 1)
    for _ in range(INBOX_SIZE):
        flow.inbox.send_nowait(seg)
    with pytest.raises(trio.WouldBlock):
        flow.inbox.send_nowait(seg)


async def test_engine_failure_is_contained_at_the_host(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = FakeHost()
    async with trio.open_nursery() as nursery:
        flow = active_flow(host)
        flow.start(nursery)
        await handshake(host, flow)

        def broken(self: Connection, segs: list[TCPSegment], now: float) -> None:
            raise ZeroDivisionError("bug")

        monkeypatch.setattr(Connection, "on_segments", broken)  # (slots: on the class)
        with caplog.at_level(logging.ERROR, logger="trio_tcp6"):
            flow.inbox.send_nowait(peer(ACK, PEER_ISS + 1, ISS + 1, b"x"))
            flow.inbox.send_nowait(peer(ACK, PEER_ISS + 2, ISS + 1, b"y"))  # discarded
            await trio.testing.wait_all_tasks_blocked()
        assert host.counters["engine_errors"] == 1
        assert host.counters["resets_sent"] == 1
        (rst,) = host.take()
        assert rst.flags == RST and rst.seq == ISS + 1
        assert host.unregistered == [flow]
        assert "ZeroDivisionError" in caplog.text
        with pytest.raises(trio.BrokenResourceError, match="internal error"):
            await flow.receive_some()


async def test_blocking_host_sends_through_the_sender_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A host that cannot send without waiting (``sends_nowait`` False): a user's
    write wakes the sender task, which transmits."""
    host = FakeHost(nowait=False)
    async with trio.open_nursery() as nursery:
        flow = active_flow(host)
        flow.start(nursery)
        await handshake(host, flow)
        before = len(host.sent_by_task)
        await flow.send_all(b"abc")
        await trio.testing.wait_all_tasks_blocked()
        (data,) = host.take()
        assert data.payload == b"abc"
        assert host.sent_by_task[before:] == [data]
        nursery.cancel_scope.cancel()


def passive_flow(host: FakeHost, listener: DirectListener, port: int) -> DirectFlow:
    syn = TCPSegment(port, LPORT, PEER_ISS, 0, SYN, 65535, mss=1440)
    conn = Connection.accept(host.config, syn, iss=ISS, mss=1440, now=host.clock())
    flow = DirectFlow(host, conn, PEER, port, LPORT, listener)
    listener.add_half_open(flow)
    return flow


async def test_listener_against_a_fake_host(autojump_clock: trio.testing.MockClock) -> None:
    host = FakeHost()
    listener = DirectListener(host, LPORT, backlog=2)
    async with trio.open_nursery() as nursery:
        first = passive_flow(host, listener, 1001)
        second = passive_flow(host, listener, 1002)
        assert listener.half_open == 2 and not listener.accept_queue_full
        for flow, rport in ((first, 1001), (second, 1002)):
            flow.start(nursery)
            await trio.testing.wait_all_tasks_blocked()
            flow.inbox.send_nowait(TCPSegment(rport, LPORT, PEER_ISS + 1, ISS + 1, ACK, 65535))
            await trio.testing.wait_all_tasks_blocked()
        # Both completed their handshake: queued for accept, filling the backlog.
        assert listener.half_open == 0 and listener.queued == 2
        assert listener.accept_queue_full
        assert host.counters["accept_queue_overflow_resets"] == 0
        assert await listener.accept() is first
        assert listener.queued == 1

        # Closing resets what nobody accepted, frees the port at the host.
        host.take()
        await listener.aclose()
        assert host.removed == [listener]
        await trio.testing.wait_all_tasks_blocked()
        assert second.state is State.CLOSED
        assert [s.flags & RST for s in host.take() if s.dst_port == 1002] == [RST]
        assert first.state is State.ESTABLISHED
        with pytest.raises(trio.ClosedResourceError):
            await listener.accept()
        host.shut_down = True
        with pytest.raises(trio.BrokenResourceError):
            await listener.accept()

        # A handshake completing after the listener closed is reset at once.
        late = DirectListener(host, LPORT + 1, backlog=1)
        flow = passive_flow(host, late, 1003)
        late.close_nowait()
        assert late.half_open == 0  # (close reset it already)
        assert flow.state is State.CLOSED
        await first.aclose()
        nursery.cancel_scope.cancel()


async def test_abort_error_reaches_the_user(autojump_clock: trio.testing.MockClock) -> None:
    host = FakeHost()
    flow = active_flow(host)
    flow.abort(Unknown("gone", errno.ECONNABORTED))
    with pytest.raises(Unknown, match="gone"):
        await flow.wait_connected()
    assert flow.state is State.CLOSED
    assert host.unregistered == [flow]
