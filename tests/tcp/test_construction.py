"""What opening a connection builds: each per-connection part once, with the values
the handshake fixes (connections/s is mostly construction and teardown)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.cc import CongestionControlBase
from trio_tcp6.tcp.cc.base import initial_window_bytes
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import State
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment


@pytest.fixture
def controllers_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every congestion controller constructed while the test runs. Counting patches
    the class's ``__init__``, which a compiled class does not allow; the pure run
    checks the same source."""
    module = sys.modules[CongestionControlBase.__module__]
    if not str(module.__file__).endswith(".py"):
        pytest.skip("patches a class's __init__; this build compiled tcp/cc")
    built: list[object] = []
    original = CongestionControlBase.__init__

    def counting(self: CongestionControlBase, **kw: object) -> None:
        built.append(self)
        original(self, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(CongestionControlBase, "__init__", counting)
    yield built


def syn(mss: int | None = 1440) -> TCPSegment:
    return TCPSegment.handshake(
        1111, 80, 7000, 65535, mss=mss, wscale=7, sack_permitted=True, timestamps=(1, 0)
    )


@pytest.mark.parametrize("congestion", ["cubic", "newreno"])
def test_passive_open_builds_one_congestion_controller(
    controllers_built: list[object], congestion: str
) -> None:
    """The SYN fixes the send MSS before anything uses the controller: a passive
    open builds only the one it keeps, sized for the MSS the SYN announced."""
    config = TCPConfig(congestion=congestion)  # type: ignore[arg-type]
    c = Connection.accept(config, syn(mss=1000), iss=5, mss=1440, now=0.0)
    assert controllers_built == [c.cc]
    assert c.cc.mss == c.opt.mss == 1000 - 12  # (the timestamps option's 12 bytes)
    assert c.cc.cwnd == initial_window_bytes(c.opt.mss, 10)
    assert c.congestion == congestion


def test_cookie_open_builds_one_congestion_controller(controllers_built: list[object]) -> None:
    ack = TCPSegment(1111, 80, 7001, 6, ACK, 512, b"", timestamps=(2, 1))
    c = Connection.accept_cookie(
        TCPConfig(),
        ack,
        iss=5,
        peer_mss=1220,
        peer_wscale=7,
        sack_permitted=True,
        timestamps=True,
        mss=1440,
        now=0.0,
    )
    assert controllers_built == [c.cc]
    assert c.state is State.ESTABLISHED
    assert c.cc.mss == c.opt.mss == 1220 - 12


def test_active_open_rebuilds_its_controller_for_the_peer_mss(
    controllers_built: list[object],
) -> None:
    """SYN-SENT has a provisional controller (info(), TCP_CONGESTION); the SYN-ACK's
    MSS replaces it with a fresh one."""
    c = Connection.connect(TCPConfig(), local_port=1111, remote_port=80, iss=5, mss=1440, now=0.0)
    assert controllers_built == [c.cc]
    (our_syn,) = c.take_segments()
    syn_ack = TCPSegment.handshake(
        80, 1111, 7000, 65535, ack=our_syn.seq + 1, mss=1400, wscale=7,
        sack_permitted=True, timestamps=(1, our_syn.timestamps[0] if our_syn.timestamps else 0),
    )  # fmt: skip
    c.on_segment(syn_ack, 0.01)
    assert c.state is State.ESTABLISHED
    assert len(controllers_built) == 2 and controllers_built[1] is c.cc
    assert c.cc.mss == c.opt.mss == 1400 - 12
    assert c.cc.cwnd == initial_window_bytes(c.opt.mss, 10)


def test_syn_sent_receive_buffer_size_survives_the_syn_ack() -> None:
    """SO_RCVBUF set while connecting is the size of the buffer the data lands in."""
    c = Connection.connect(TCPConfig(), local_port=1111, remote_port=80, iss=5, mss=1440, now=0.0)
    buf = c.rcv.buf
    c.set_receive_buffer(1 << 16)
    (our_syn,) = c.take_segments()
    syn_ack = TCPSegment(80, 1111, 7000, our_syn.seq + 1, SYN | ACK, 65535, b"", mss=1440)
    c.on_segment(syn_ack, 0.01)
    assert c.state is State.ESTABLISHED
    assert c.rcv.buf is buf  # (the empty buffer is kept, not rebuilt)
    assert c.rcv.buf.cap == c.rcv.cap == 1 << 16
    assert c.rcv.buf.nxt == 1
