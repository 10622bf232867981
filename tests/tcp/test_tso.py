"""TCP segmentation offload in the engine (``Connection.tso_max_bytes``).

With TSO on, the engine sends new data in *super-segments* (several MSS under one TCP
header) that the link cuts into MSS-sized wire packets, as a TUN device with a virtio
header (or a NIC) does. These tests put that cut into the simulated path of
``test_backtoback`` and drop, reorder and duplicate single wire packets: transfers
stay intact, every retransmission is at most one MSS, and a SACK that covers part of
a super-segment leads to retransmitting only the holes.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import State
from trio_tcp6.tcp.seq import MASK, seq_diff
from trio_tcp6.wire.tcp import ACK, FIN, PSH, URG, TCPSegment

from . import test_backtoback as b2b
from .test_backtoback import Path, Sim, cfg, run_transfer

TSO = 65535 - 100  # what the runtime sets for a TUN link (gso_max - 40 - 60)


def options_len(seg: TCPSegment) -> int:
    return (12 if seg.timestamps else 0) + (4 + 8 * len(seg.sack_blocks) if seg.sack_blocks else 0)


def cut(seg: TCPSegment, mss: int) -> list[TCPSegment]:
    """What the link does with a super-segment: ``mss`` payload bytes a packet (the
    path MSS minus this header's options, i.e. gso_size = MTU - 40 - TCP header),
    each with a copy of the header; FIN and PSH only on the last one."""
    size = mss - options_len(seg)
    payload = seg.payload
    if len(payload) <= size:
        return [seg]
    out = []
    for off in range(0, len(payload), size):
        last = off + size >= len(payload)
        flags = seg.flags if last else seg.flags & ~(FIN | PSH)
        out.append(
            attrs.evolve(
                seg,
                seq=(seg.seq + off) & MASK,
                flags=flags,
                payload=bytes(payload[off : off + size]),
            )
        )
    return out


class TSOSim(Sim):
    """The back-to-back simulator with TSO on both engines and the link's cut in
    the path (each wire packet is lost, reordered, duplicated on its own)."""

    tso = TSO

    def __init__(self, *args: object, **kw: object) -> None:
        self.super_segments = [0, 0]
        self.wire_from_super = [0, 0]
        self.retransmissions: list[list[tuple[int, int]]] = [[], []]
        self.highest = [-1, -1]  # highest data end sent (sequence offset from ISS)
        super().__init__(*args, **kw)  # type: ignore[arg-type]

    def pump(self, i: int) -> None:
        ep = self.ends[i]
        assert ep is not None
        if ep.conn.tso_max_bytes != self.tso:
            ep.conn.tso_max_bytes = self.tso
        super().pump(i)

    def transmit(self, src: int, seg: TCPSegment) -> None:
        ep = self.ends[src]
        if ep is None or seg.syn or not seg.payload:
            super().transmit(src, seg)
            return
        conn = ep.conn
        start = seq_diff(seg.seq, conn.iss)
        end = start + len(seg.payload)
        if start < self.highest[src]:
            # A retransmission: never more than one MSS (options subtracted).
            assert len(seg.payload) <= conn.mss, (len(seg.payload), conn.mss)
            self.retransmissions[src].append((start, end))
        self.highest[src] = max(self.highest[src], end)
        limit = self.mss_a if src == 0 else self.mss_b
        pieces = cut(seg, limit)
        if len(pieces) > 1:
            self.super_segments[src] += 1
            self.wire_from_super[src] += len(pieces)
        for piece in pieces:
            super().transmit(src, piece)


def tso_transfer(size_a: int, size_b: int, **kw: object) -> TSOSim:
    orig = b2b.Sim
    b2b.Sim = TSOSim  # type: ignore[misc]
    try:
        sim = run_transfer(size_a, size_b, **kw)  # type: ignore[arg-type]
    finally:
        b2b.Sim = orig  # type: ignore[misc]
    assert isinstance(sim, TSOSim)
    return sim


def test_clean_bulk_uses_super_segments() -> None:
    sim = tso_transfer(4_000_000, 200_000)
    assert sim.super_segments[0] > 20
    # Several wire packets per engine segment (ACK-clocked: one ACK frees two), and
    # nearly all of the transfer goes out in super-segments.
    assert sim.wire_from_super[0] >= 2 * sim.super_segments[0]
    assert sim.wire_from_super[0] > 0.9 * 4_000_000 / 1428
    assert sim.retransmissions == [[], []]
    assert sim.now < 20


def test_off_by_default() -> None:
    sim = run_transfer(1_000_000, 0)
    a, b = sim.ends
    assert a is not None and b is not None
    assert a.conn.tso_max_bytes == 0 and b.conn.tso_max_bytes == 0


def test_no_super_segments_below_our_mss() -> None:
    """A peer announcing a smaller MSS than our link's: the link would cut at our
    MTU, so the engine sends plain segments."""

    class SmallPeer(TSOSim):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, **kw)
            self.mss_b = 1220

    orig = b2b.Sim
    b2b.Sim = SmallPeer  # type: ignore[misc]
    try:
        sim = run_transfer(1_000_000, 0)
    finally:
        b2b.Sim = orig  # type: ignore[misc]
    assert isinstance(sim, SmallPeer)
    assert sim.super_segments[0] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"rack": False},
        {"sack": False},
        {"timestamps": False},
        {"congestion": "newreno"},
        {"nagle": False},
    ],
)
def test_lossy_back_to_back(seed: int, opts: dict[str, object]) -> None:
    sim = tso_transfer(
        1_500_000,
        300_000,
        seed=seed,
        cfg_a=cfg(**opts),
        cfg_b=cfg(**opts),
        path=Path(delay=0.01, loss=0.02, reorder=0.02, duplicate=0.01, jitter=0.002),
    )
    assert sim.super_segments[0] > 0
    assert sim.retransmissions[0]  # there was repair work
    assert sim.now < 300


def test_rate_limited_queue_drops() -> None:
    """Bursts of whole super-segments into a drop-tail queue."""
    sim = tso_transfer(
        3_000_000, 0, path=Path(delay=0.02, rate=2_000_000, queue=64_000), limit=600
    )
    assert sim.super_segments[0] > 0
    assert sim.dropped[0] > 0


def test_path_mtu_drop_turns_tso_off() -> None:
    sim = tso_transfer(
        2_000_000, 100_000, mss=8960, path=Path(delay=0.01, mtu=1500), path_ba=Path(delay=0.01)
    )
    a, _ = sim.ends
    assert a is not None
    assert sim.ptb_sent > 0 and a.conn.mss == 1440 - 12
    assert sim.stats_a["pmtu_reductions"] == 1


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.01, 0.05, 0.1]),
    reorder=st.sampled_from([0.0, 0.05]),
    dup=st.sampled_from([0.0, 0.02]),
    sack=st.booleans(),
    ts=st.booleans(),
    cc=st.sampled_from(["cubic", "newreno"]),
    wrap=st.booleans(),
)
def test_random_paths(
    seed: int, loss: float, reorder: float, dup: float, sack: bool, ts: bool, cc: str, wrap: bool
) -> None:
    c = cfg(sack=sack, timestamps=ts, congestion=cc)
    sim = tso_transfer(
        800_000,
        200_000,
        seed=seed,
        cfg_a=c,
        cfg_b=c,
        path=Path(delay=0.01, loss=loss, reorder=reorder, duplicate=dup, jitter=0.002),
        iss_a=0xFFFFFFF0 if wrap else seed & 0xFFFFFFFF,
        iss_b=(seed * 7) & 0xFFFFFFFF,
    )
    assert sim.now < 300, sim.now


# -- a partial SACK of one super-segment ------------------------------------------------


def handshake(**opts: object) -> tuple[Connection, Connection, float]:
    c = cfg(**opts)
    now = 0.0
    a = Connection.connect(c, local_port=1, remote_port=2, iss=0xFFFFF000, mss=1440, now=now)
    a.tso_max_bytes = TSO
    b: Connection | None = None
    for _ in range(5):
        now += 0.01
        for s in a.take_segments():
            if b is None:
                b = Connection.accept(c, s, iss=77, mss=1440, now=now)
            else:
                b.on_segment(s, now)
        assert b is not None
        for s in b.take_segments():
            a.on_segment(s, now)
    assert b is not None
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED
    a.take_events()
    b.take_events()
    return a, b, now


@pytest.mark.parametrize("rack", [True, False])
def test_partial_sack_retransmits_only_the_holes(rack: bool) -> None:
    a, b, now = handshake(rack=rack)
    mss = a.mss
    data = bytes(range(256)) * 40  # 10240 bytes: 7.2 MSS, within the initial window
    assert a.send(data, now) == len(data)
    (big,) = a.take_segments()
    assert len(big.payload) == len(data)  # one super-segment, with the short tail
    wire = cut(big, 1440)
    assert len(wire) == 8
    lost = {2, 5}
    now += 0.01
    for i, piece in enumerate(wire):
        if i not in lost:
            b.on_segment(piece, now)
    acks = b.take_segments()
    assert acks and acks[-1].sack_blocks  # the receiver reports the holes
    retransmitted: list[tuple[int, int]] = []
    for _ in range(50):
        now += 0.01
        for ack in acks:
            a.on_segment(ack, now)
        acks = []
        d = a.next_deadline
        if d is not None and d <= now:
            a.on_timer(now)
        for s in a.take_segments():
            if s.payload:
                start = seq_diff(s.seq, a.iss)
                retransmitted.append((start, start + len(s.payload)))
                assert len(s.payload) <= mss
            b.on_segment(s, now)
        acks = b.take_segments()
        if b.readable == len(data):
            break
    holes = [(1 + i * mss, 1 + min((i + 1) * mss, len(data))) for i in sorted(lost)]
    assert retransmitted == holes
    assert b.receive(len(data), now) == data
    assert a.retransmits == 2


def test_super_segment_stays_in_window_and_cwnd() -> None:
    a, _, now = handshake()
    mss = a.mss
    a.send(bytes(200_000), now)
    segs = a.take_segments()
    sent = sum(len(s.payload) for s in segs)
    assert sent <= a.cc.cwnd
    assert all(len(s.payload) % mss == 0 for s in segs)  # whole segments (more follows)
    assert max(len(s.payload) for s in segs) > mss
    assert all(s.flags & ACK for s in segs)


def test_urgent_data_is_not_in_a_super_segment() -> None:
    a, _, now = handshake()
    mss = a.mss
    a.send(bytes(8 * mss), now, urgent=True)
    a.send(bytes(100_000), now)
    segs = a.take_segments()
    urgent = [s for s in segs if s.flags & URG]
    assert urgent and all(len(s.payload) <= mss for s in urgent)
    # Once past the urgent data, super-segments again.
    assert max(len(s.payload) for s in segs) > mss


def test_tail_loss_probe_resends_the_last_wire_segment() -> None:
    """The probe of a tail loss after a super-segment is its last wire segment (the
    short tail here), what the probe would be segment by segment; Linux's
    tcp_send_loss_probe cuts the skb at (pcount - 1) * mss for the same reason."""
    a, b, now = handshake()
    mss = a.mss
    data = bytes(range(256)) * 40  # 10240 bytes: 7 MSS and a 160-byte tail
    assert a.send(data, now) == len(data)
    (big,) = a.take_segments()
    wire = cut(big, 1440)
    assert len(wire) == 8 and len(wire[-1].payload) == len(data) - 7 * mss
    now += 0.01
    for piece in wire[:-1]:  # the tail is lost
        b.on_segment(piece, now)
    for ack in b.take_segments():
        a.on_segment(ack, now)
    probe: list[TCPSegment] = []
    while not probe:
        d = a.next_deadline
        assert d is not None
        now = d
        a.on_timer(now)
        probe = [s for s in a.take_segments() if s.payload]
    assert a.stats["tlp"] == 1
    assert [(s.seq, s.payload) for s in probe] == [(wire[-1].seq, wire[-1].payload)]
