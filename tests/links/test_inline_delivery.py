"""VirtualNetwork's inline delivery, at the link: a registered input runs in the
sender's call, never nested, never ahead of a queued packet, only on unimpaired paths."""

from __future__ import annotations

import io

import pytest
import trio
import trio.testing

from trio_tcp6.links import LinkCapabilities, VirtualNetwork

from .test_virtual import A, B, number, numbered


def recorder(log: list[int]) -> object:
    def handler(packet: bytes, partial: bool) -> None:
        log.append(number(packet))

    return handler


async def test_the_input_runs_in_the_senders_call(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    seen: list[int] = []
    inline = b.capabilities.inline_input
    assert inline is not None
    inline(recorder(seen))  # type: ignore[arg-type]
    a.send_nowait(numbered(A, B, 7))
    # No checkpoint since: the packet was processed before send_nowait returned.
    assert seen == [7]
    assert b.pending() == 0
    assert b.received == 1
    assert net.stats()["delivered"] == 1
    inline(None)
    a.send_nowait(numbered(A, B, 8))
    assert seen == [7]
    assert b.pending() == 1


async def test_inputs_never_nest(autojump_clock: trio.testing.MockClock) -> None:
    """Two hosts that answer every packet: the answer sent from inside an input is
    queued, so one send costs one input, not a recursion."""
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    calls: list[str] = []

    def answer_from(link: object, name: str, dst: str) -> object:
        def handler(packet: bytes, partial: bool) -> None:
            calls.append(name)
            link.send_nowait(numbered(name, dst, number(packet) + 1))  # type: ignore[attr-defined]

        return handler

    a.set_inline_input(answer_from(a, A, B))  # type: ignore[arg-type]
    b.set_inline_input(answer_from(b, B, A))  # type: ignore[arg-type]
    a.send_nowait(numbered(A, B, 1))
    assert calls == [B]
    assert a.pending() == 1  # B's answer waits for A's reader
    assert number(a.receive_nowait() or b"") == 2
    # Once the input has returned, the next packet is inline again.
    b.send_nowait(numbered(B, A, 5))
    assert calls == [B, A]
    assert b.pending() == 1


async def test_a_packet_never_overtakes_a_queued_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    a.send_nowait(numbered(A, B, 1))  # queued: no input registered yet
    seen: list[int] = []
    b.set_inline_input(recorder(seen))  # type: ignore[arg-type]
    a.send_nowait(numbered(A, B, 2))
    assert seen == []
    assert [number(p) for p in await b.receive_batch()] == [1, 2]
    a.send_nowait(numbered(A, B, 3))  # the queue is empty again
    assert seen == [3]


@pytest.mark.parametrize("kind", ["delay", "loss", "deterministic"])
async def test_impaired_and_deterministic_paths_always_queue(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    if kind == "delay":
        net = VirtualNetwork(delay=0.01)
    elif kind == "loss":
        net = VirtualNetwork(loss=1e-9, seed=1)  # (a path with a random draw)
    else:
        net = VirtualNetwork(deterministic=True)
    a, b = net.attach(A), net.attach(B)
    seen: list[int] = []
    b.set_inline_input(recorder(seen))  # type: ignore[arg-type]
    a.send_nowait(numbered(A, B, 1))
    with trio.fail_after(1):
        (got,) = await b.receive_batch()
    assert number(got) == 1
    assert seen == []


async def test_captures_include_inline_packets(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualNetwork()
    a, b = net.attach(A), net.attach(B)
    b.set_inline_input(recorder([]))  # type: ignore[arg-type]
    out = io.BytesIO()
    with net.capture(out):
        a.send_nowait(numbered(A, B, 1))
    data = out.getvalue()
    assert len(data) == 24 + 16 + 100  # the pcap header, one record header, the packet
    assert number(data[40:]) == 1


def test_the_capability_follows_the_network_option() -> None:
    assert VirtualNetwork().attach(A).capabilities.inline_input is not None
    assert VirtualNetwork(inline_delivery=False).attach(A).capabilities.inline_input is None


def test_inline_input_needs_send_nowait() -> None:
    with pytest.raises(ValueError, match="send_nowait"):
        LinkCapabilities(inline_input=lambda handler: None)
