"""Helpers for the runtime tests: two direct stacks on one VirtualNetwork."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import trio_tcp6 as tcp6
from trio_tcp6.runtime import DirectFlow, DirectStack

A = "2001:db8::a"
B = "2001:db8::b"


@asynccontextmanager
async def two_stacks(
    config: tcp6.TCPConfig | None = None,
    config_b: tcp6.TCPConfig | None = None,
    **net_kwargs: Any,
) -> AsyncIterator[tuple[tcp6.VirtualNetwork, DirectStack, DirectStack]]:
    """A network with stacks at A and B (B uses ``config_b`` if given)."""
    net = tcp6.VirtualNetwork(**net_kwargs)
    async with (
        tcp6.open_stack(net.attach(A), A, config=config) as a,
        tcp6.open_stack(net.attach(B), B, config=config_b or config) as b,
    ):
        yield net, a, b
        # An engine bug is contained (the connection is aborted) but must not pass
        # unnoticed in tests.
        assert a.stats()["engine_errors"] == 0, "engine error in stack A (see the log)"
        assert b.stats()["engine_errors"] == 0, "engine error in stack B (see the log)"
    net.close()


async def connect(
    client: DirectStack, server: DirectStack, port: int = 80
) -> tuple[DirectFlow, DirectFlow]:
    """A connected (client flow, server flow) pair; the listener is closed again."""
    listener = await server.open_tcp_listener(port)
    try:
        flow = await client.open_tcp_stream(server.address, listener.port)
        accepted = await listener.accept()
    finally:
        await listener.aclose()
    assert isinstance(flow, DirectFlow) and isinstance(accepted, DirectFlow)
    return flow, accepted


async def receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


async def receive_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


def check_flow_info(info: tcp6.FlowInfo, *, sent: int) -> None:
    """Every field of ``info`` is present and plausible for an established flow that
    sent ``sent`` bytes, all acknowledged, and has nothing in flight."""
    import attrs

    from trio_tcp6.tcp.events import State

    fields = attrs.fields_dict(type(info))
    assert set(fields) == {
        "state", "srtt", "rttvar", "rto", "min_rtt", "cwnd", "ssthresh", "mss",
        "snd_wnd", "rcv_wnd", "retransmits", "bytes_acked", "bytes_received",
        "bytes_sent", "sack", "timestamps", "wscale", "in_flight", "lost", "sacked",
        "reordering", "ca_state", "unacked", "rcv_ooo", "rcv_held", "scoreboard_records",
        "ecn", "ce_received", "ece_received", "cwr_sent",
    }  # fmt: skip
    assert info.state is State.ESTABLISHED
    assert info.srtt is not None and info.srtt > 0
    assert info.rttvar is not None and info.rttvar >= 0
    assert info.min_rtt is not None and 0 < info.min_rtt <= info.srtt * 4
    assert info.rto >= info.srtt
    assert info.mss > 0 and info.cwnd >= info.mss
    assert info.ssthresh is None or info.ssthresh > 0
    assert info.snd_wnd > 0 and info.rcv_wnd > 0
    assert info.retransmits >= 0
    assert info.bytes_acked >= sent and info.bytes_sent >= sent
    assert info.bytes_received == 0
    assert info.sack and info.timestamps and info.wscale is not None
    assert info.in_flight == info.lost == info.sacked == info.unacked == 0
    assert info.reordering is False
    assert info.ca_state == "open"
    assert info.rcv_ooo in (None, 0) and info.rcv_held in (None, 0)  # (None: the kernel)
    assert info.scoreboard_records in (None, 0)  # nothing in flight
    assert info.ecn is False  # nobody asked for ECN
    assert {info.ce_received, info.ece_received, info.cwr_sent} <= {None, 0}
