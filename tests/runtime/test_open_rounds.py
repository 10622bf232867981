"""A handshake segment leaves in the call that made the connection: the connecting
task sends its SYN, the task that delivered a SYN to a listener sends the SYN-ACK.
Left to the new flow's sender task, each would wait for one more scheduling round
(two per connection: connections/s is mostly such rounds)."""

from __future__ import annotations

import ipaddress
import socket

import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.links.base import LinkCapabilities
from trio_tcp6.tcp.connection import shared_config
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment, build_tcp, parse_tcp

US = ipaddress.IPv6Address("2001:db8::1")
PEER = ipaddress.IPv6Address("2001:db8::2")


class RecordingLink:
    """A link that never blocks a sender and records which task sent each packet;
    nothing ever arrives on it."""

    mtu = 1500

    def __init__(self) -> None:
        self.sent: list[tuple[str, TCPSegment]] = []

    @property
    def capabilities(self) -> LinkCapabilities:
        return LinkCapabilities(send_nowait=self.send_nowait)

    def send_nowait(self, packet: bytes) -> None:
        task = trio.lowlevel.current_task().name
        self.sent.append((task, parse_tcp(bytes(packet)[40:])))

    async def send(self, packet: bytes) -> None:
        self.send_nowait(packet)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_the_connecting_task_sends_the_syn(autojump_clock: trio.testing.MockClock) -> None:
    link = RecordingLink()
    async with tcp6.open_stack(link, US) as stack, trio.open_nursery() as nursery:
        nursery.start_soon(stack.open_tcp_stream, PEER, 80, name="connecting task")
        await trio.testing.wait_all_tasks_blocked()
        ((task, syn),) = link.sent
        assert syn.flags == SYN and syn.dst_port == 80
        assert task == "connecting task"
        nursery.cancel_scope.cancel()


async def test_the_task_delivering_a_syn_sends_the_syn_ack(
    autojump_clock: trio.testing.MockClock,
) -> None:
    link = RecordingLink()
    async with tcp6.open_stack(link, US) as stack:
        listener = await stack.open_tcp_listener(80)
        syn = TCPSegment.handshake(40000, 80, 5000, 65535, mss=1440)
        # stack.input() hands a segment to TCP input in the calling task, as the
        # stack's link reader does for every packet it reads.
        await stack.input(PEER, US, build_tcp(syn, PEER.packed, US.packed))
        ((task, syn_ack),) = link.sent
        assert syn_ack.flags == SYN | ACK and syn_ack.ack == 5001
        assert task == trio.lowlevel.current_task().name
        await listener.aclose()


async def test_a_connecting_flow_has_nodelay_from_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """open_tcp_stream's flows have TCP_NODELAY (trio's default) already while
    connecting: the option is part of the connection it builds, not a call after."""
    link = RecordingLink()
    async with tcp6.open_stack(link, US) as stack, trio.open_nursery() as nursery:
        nursery.start_soon(stack.open_tcp_stream, PEER, 80)
        await trio.testing.wait_all_tasks_blocked()
        (flow,) = stack.flows
        assert flow.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert flow.engine.config is shared_config(stack.config, nagle=False)
        nursery.cancel_scope.cancel()


async def accepted_flow(listener_nodelay_at_syn: bool, at_accept: bool) -> tuple[int, int]:
    """TCP_NODELAY of a flow accepted from a listener whose option was
    ``listener_nodelay_at_syn`` when the SYN came and ``at_accept`` at accept(),
    while connecting and once accepted."""
    link = RecordingLink()
    async with tcp6.open_stack(link, US) as stack:
        listener = await stack.open_tcp_listener(80)
        listener.nodelay = listener_nodelay_at_syn
        syn = TCPSegment.handshake(40000, 80, 5000, 65535, mss=1440)
        await stack.input(PEER, US, build_tcp(syn, PEER.packed, US.packed))
        (flow,) = stack.flows
        connecting = flow.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        ((_, syn_ack),) = link.sent
        ack = TCPSegment(40000, 80, 5001, syn_ack.seq + 1, ACK, 65535)
        await stack.input(PEER, US, build_tcp(ack, PEER.packed, US.packed))
        listener.nodelay = at_accept
        accepted = await listener.accept()
        assert accepted is flow
        nodelay = flow.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await listener.aclose()
        return int(connecting), int(nodelay)


async def test_a_nodelay_listeners_flows_have_nodelay_from_the_syn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await accepted_flow(True, True) == (1, 1)
    # What accept() sees decides, as when the option was set only there.
    assert await accepted_flow(False, True) == (0, 1)
    assert await accepted_flow(True, False) == (1, 0)
    assert await accepted_flow(False, False) == (0, 0)
