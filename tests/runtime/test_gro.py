"""Receive coalescing (:mod:`trio_tcp6.tcp.coalesce`): exact merge boundaries, the
ACKs a merged burst gets, RFC 7323 timestamps, and whole transfers (SACK,
reordering, loss; engine pairs and two stacks) with coalescing on and off."""

from __future__ import annotations

import heapq

import attrs
import pytest
import trio
import trio.testing

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp import coalesce
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.ipv6 import ECN_CE, ECN_ECT0
from trio_tcp6.wire.tcp import ACK, FIN, PSH, TCPSegment

from ..tcp.test_backtoback import Path, Sim, cfg, run_transfer
from .helpers import connect, receive_exactly, two_stacks

MSS = 1440
#: Full segments a merged super-segment holds at most (a 64 KiB packet).
PER_MERGE = coalesce.MAX_MERGED_BYTES // MSS
assert PER_MERGE == 45


def pair(**kw: object) -> tuple[Connection, Connection]:
    """An established pair: ``a`` sends, ``b`` receives (4 MiB buffers)."""
    config = TCPConfig(send_buffer=4 << 20, receive_buffer=4 << 20, **kw)  # type: ignore[arg-type]
    a = Connection.connect(config, local_port=1, remote_port=2, iss=0xFFFFFF00, mss=MSS, now=0.0)
    b = Connection.accept(config, a.take_segments()[0], iss=777, mss=MSS, now=0.0, ts_offset=5)
    for s in b.take_segments():
        a.on_segment(s, 0.0)
    for s in a.take_segments():
        b.on_segment(s, 0.0)
    # A first byte, ACKed when the delayed-ACK timer fires: b's ACK advertises
    # its whole (scaled) window.
    a.send(b"!", 0.0)
    for s in a.take_segments():
        b.on_segment(s, 0.0)
    b.on_timer(1.0)
    for s in b.take_segments():
        a.on_segment(s, 1.0)
    assert b.receive(10, 1.0) == b"!"
    a.take_events()
    b.take_events()
    return a, b


def burst(
    a: Connection, b: Connection, n: int, *, tsvals: list[int] | None = None
) -> list[TCPSegment]:
    """``n`` in-order full-sized segments from ``a`` to ``b``, as ``a`` would send
    them (TSvals ``tsvals`` if given)."""
    seq = b.rcv_nxt
    out = []
    for i in range(n):
        ts = None
        if b.opt.ts_ok:
            ts = (tsvals[i] if tsvals else 1000 + i, b.tsval(0.0))
        out.append(
            TCPSegment.data(
                1, 2, (seq + i * MSS) & 0xFFFFFFFF, b.snd_nxt, ACK, 65535,
                bytes([i % 251]) * MSS, 0, (), ts,
            )
        )  # fmt: skip
    return out


def merged_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the payload size of every merged super-segment the engine builds."""
    sizes: list[int] = []
    monkeypatch.setattr(coalesce, "OBSERVER", lambda seg: sizes.append(len(seg.payload)))
    return sizes


def acks(segs: list[TCPSegment]) -> list[TCPSegment]:
    return [s for s in segs if s.flags & ACK and not s.payload]


@pytest.mark.parametrize(
    ("n", "expected", "runs"),
    [
        (1, 0, []),
        (2, 1, [2]),
        (10, 1, [10]),
        (PER_MERGE, 1, [PER_MERGE]),
        (PER_MERGE + 1, 2, [PER_MERGE]),  # the last one alone, ACKed at the burst's end
        (PER_MERGE + 2, 2, [PER_MERGE, 2]),
        (2 * PER_MERGE, 2, [PER_MERGE, PER_MERGE]),
        (2 * PER_MERGE + 1, 3, [PER_MERGE, PER_MERGE]),
    ],
)
def test_ack_count_for_one_burst(
    monkeypatch: pytest.MonkeyPatch, n: int, expected: int, runs: list[int]
) -> None:
    """N in-order MSS segments in one burst: one ACK per super-segment of at most
    64 KiB, none left for later (a lone segment in a burst of one still waits for
    the delayed-ACK timer, as before)."""
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, n)
    b.on_segments(segs, 0.001)
    out = acks(b.take_segments())
    assert len(out) == expected
    assert sizes == [k * MSS for k in runs]
    assert all(size <= coalesce.MAX_MERGED_BYTES for size in sizes)
    if n > 1:
        # Everything is acknowledged by the end of the burst, and the last ACK says so.
        assert out[-1].ack == (segs[-1].seq + MSS) & 0xFFFFFFFF
        assert b.rcv.unacked == 0 and b.timers.delack is None
    assert b.rcv.mss == MSS  # the peer's MSS estimate is a segment, not a merge
    assert b.receive(1 << 30, 0.001) == b"".join(s.payload for s in segs)


def test_ack_count_without_coalescing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switched off, the same burst is ACKed every second segment (RFC 9293
    §3.8.6.3), as segment by segment."""
    monkeypatch.setattr(coalesce, "ENABLED", False)
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    b.on_segments(burst(a, b, 10), 0.001)
    assert len(acks(b.take_segments())) == 5
    assert sizes == []


def test_exact_64k_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments filling a 64 KiB packet exactly (65464 bytes after the IPv6 and TCP
    headers) merge into one; one more byte does not fit."""
    assert coalesce.MAX_MERGED_BYTES == 65536 - 40 - 32 == 8 * 8183
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    seq = b.rcv_nxt
    segs = [
        attrs.evolve(s, seq=(seq + i * 8183) & 0xFFFFFFFF, payload=b"x" * 8183)
        for i, s in enumerate(burst(a, b, 8))
    ]
    segs.append(attrs.evolve(segs[-1], seq=(seq + 8 * 8183) & 0xFFFFFFFF, payload=b"y"))
    b.on_segments(segs, 0.001)
    assert sizes == [65464]
    assert b.rcv_nxt == (seq + 65465) & 0xFFFFFFFF


@pytest.mark.parametrize("where", [1, 5, 9])
def test_fin_ends_the_merge(monkeypatch: pytest.MonkeyPatch, where: int) -> None:
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, 10)
    segs[where] = attrs.evolve(segs[where], flags=ACK | FIN)
    b.on_segments(segs[: where + 1], 0.001)
    assert sizes == ([where * MSS] if where > 1 else [])
    assert b.rcv.fin_rcvd


def test_psh_ends_the_merge_and_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, 10)
    segs[3] = attrs.evolve(segs[3], flags=ACK | PSH)
    b.on_segments(segs, 0.001)
    assert sizes == [4 * MSS, 6 * MSS]


def test_hole_ends_the_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing segment ends the run; what follows the hole is out of order, goes
    through one by one and is SACKed."""
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, 10)
    del segs[6]
    b.on_segments(segs, 0.001)
    assert sizes == [6 * MSS]
    out = acks(b.take_segments())
    assert out[0].ack == segs[6].seq - MSS and out[0].sack_blocks == ()
    assert out[-1].sack_blocks == ((segs[6].seq, (segs[-1].seq + MSS) & 0xFFFFFFFF),)
    assert b.rcv.buf.ooo_bytes == 3 * MSS


def test_decreasing_tsval_ends_the_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, 6, tsvals=[100, 100, 101, 99, 99, 102])
    b.on_segments(segs, 0.001)
    # 100,100,101 | 99 is older than 101: a new run, which starts below TS.Recent
    # (PAWS: each of 99, 99 is dropped on its own), then 102 alone.
    assert sizes == [3 * MSS]
    assert b.stats["drop_paws"] == 2


def test_timestamps_of_a_merged_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    """TS.Recent comes from the segment at Last.ACK.sent (the first, RFC 7323
    §4.3) and the one ACK echoes it; the merged TSecr is the last segment's."""
    seen: list[TCPSegment] = []
    monkeypatch.setattr(coalesce, "OBSERVER", seen.append)
    a, b = pair()
    segs = burst(a, b, 8, tsvals=[500, 501, 502, 503, 504, 505, 506, 507])
    segs[-1] = attrs.evolve(segs[-1], timestamps=(507, 42))
    b.on_segments(segs, 0.001)
    assert seen[0].timestamps == (500, 42)
    assert b.opt.ts_recent == 500
    (ack,) = acks(b.take_segments())
    assert ack.timestamps is not None and ack.timestamps[1] == 500
    # Segment by segment the ACKs would echo 500, 502, 504, 506: the first one's
    # echo is the merged ACK's (the delayed ACK covering them all).
    monkeypatch.setattr(coalesce, "ENABLED", False)
    a, b = pair()
    b.on_segments(burst(a, b, 8, tsvals=[500, 501, 502, 503, 504, 505, 506, 507]), 0.001)
    assert [s.timestamps[1] for s in acks(b.take_segments())] == [500, 502, 504, 506]  # type: ignore[index]


def test_ack_advance_and_window_from_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data from a peer that is also acknowledging our data: the merged ACK is the
    highest, the window the last; an older ACK ends the run."""
    seen: list[TCPSegment] = []
    monkeypatch.setattr(coalesce, "OBSERVER", seen.append)
    a, b = pair()
    b.send(b"z" * 3000, 0.0)
    sent = b.take_segments()
    assert sum(len(s.payload) for s in sent) == 3000
    segs = burst(a, b, 5)
    base = b.snd_una
    segs = [
        attrs.evolve(s, ack=(base + k) & 0xFFFFFFFF, window=65535 - i)
        for i, (s, k) in enumerate(zip(segs, [0, 1000, 2000, 1500, 3000], strict=True))
    ]
    b.on_segments(segs, 0.001)
    assert [(s.ack - base) & 0xFFFFFFFF for s in seen] == [2000, 3000]
    assert [s.window for s in seen] == [65533, 65531]
    assert b.snd_una == (base + 3000) & 0xFFFFFFFF


def test_urgent_sack_and_non_established_are_not_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, 4)
    segs[1] = attrs.evolve(segs[1], sack_blocks=((1, 2),))
    segs[2] = attrs.evolve(segs[2], urgent=5, flags=ACK | 0x20)
    b.on_segments(segs, 0.001)
    assert sizes == []
    assert b.rcv_nxt == (segs[0].seq + 4 * MSS) & 0xFFFFFFFF


def test_window_limits_the_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run never grows past the receive window: the segments beyond it go on
    their own and meet the same fate as without coalescing."""
    sizes = merged_sizes(monkeypatch)
    outcome = []
    for on in (True, False):
        monkeypatch.setattr(coalesce, "ENABLED", on)
        config = TCPConfig(receive_buffer=4 * MSS, window_scale=False)
        a = Connection.connect(config, local_port=1, remote_port=2, iss=1, mss=MSS, now=0.0)
        b = Connection.accept(config, a.take_segments()[0], iss=777, mss=MSS, now=0.0)
        for s in b.take_segments():
            a.on_segment(s, 0.0)
        for s in a.take_segments():
            b.on_segment(s, 0.0)
        b.take_segments()
        b.on_segments(burst(a, b, 6), 0.001)
        outcome.append((b.rcv_nxt, b.stats["drop_unacceptable"], b.stats["trimmed_beyond_window"]))
    assert sizes == [4 * MSS]
    assert outcome[0] == outcome[1]
    assert outcome[0][1:] == (1, 1)


# -- whole transfers -----------------------------------------------------------------------
class BurstSim(Sim):
    """The back-to-back simulator, delivering every segment that arrives at one
    instant to an endpoint as one burst (``on_segments``), as the runtime does."""

    tick = 0.002

    def run(self, limit: float = 3600.0, max_steps: int = 5_000_000) -> None:
        steps = 0
        while steps < max_steps:
            steps += 1
            t: float | None = self.heap[0][0] if self.heap else None
            for ep in self.ends:
                if ep is None or ep.closed:
                    continue
                d = ep.conn.next_deadline
                if d is not None and (t is None or d < t):
                    t = d
            if t is None:
                return
            # What arrived within one tick is one burst (one wake-up of the reader).
            self.now = max(self.now, t + self.tick if self.heap and t == self.heap[0][0] else t)
            assert self.now <= limit
            while self.heap and self.heap[0][0] <= self.now:
                due: list[tuple[int, TCPSegment]] = []
                while self.heap and self.heap[0][0] <= self.now:
                    _, _, dst, seg = heapq.heappop(self.heap)
                    due.append((dst, seg))
                self.deliver_burst(due)
            for i, ep in enumerate(self.ends):
                if ep is None or ep.closed:
                    continue
                d = ep.conn.next_deadline
                if d is not None and d <= self.now:
                    ep.conn.on_timer(self.now)
                self.pump(i)
        raise AssertionError("too many steps")

    def deliver_burst(self, due: list[tuple[int, TCPSegment]]) -> None:
        for dst in (0, 1):
            segs = [s for d, s in due if d == dst]
            ep = self.ends[dst] if segs else None
            if ep is None or ep.closed:
                for seg in segs:
                    self.deliver(dst, seg)
                continue
            ep.conn.on_segments(segs, self.now)
            self.pump(dst)
        for dst, seg in due:
            if dst < 0:
                self.deliver(dst, seg)


@pytest.mark.parametrize(
    ("name", "path", "opts"),
    [
        ("clean", Path(delay=0.01, rate=50e6), {}),
        ("sack_loss", Path(delay=0.01, loss=0.02, rate=20e6), {}),
        ("reordering", Path(delay=0.01, reorder=0.05, rate=20e6), {}),
        ("no_sack_loss", Path(delay=0.01, loss=0.02, rate=20e6), {"sack": False}),
        ("no_timestamps", Path(delay=0.01, loss=0.01, duplicate=0.01, rate=20e6),
         {"timestamps": False}),
    ],
)  # fmt: skip
def test_transfer_on_and_off(
    monkeypatch: pytest.MonkeyPatch, name: str, path: Path, opts: dict[str, object]
) -> None:
    """Whole transfers delivered in bursts: the data arrives intact, both ways,
    with coalescing on and off; on, segments were merged."""
    sizes = merged_sizes(monkeypatch)
    results = {}
    for on in (False, True):
        monkeypatch.setattr(coalesce, "ENABLED", on)
        sizes.clear()
        monkeypatch.setattr("tests.tcp.test_backtoback.Sim", BurstSim)
        sim = run_transfer(
            600_000, 100_000, seed=11, cfg_a=cfg(**opts), cfg_b=cfg(**opts), path=path
        )
        results[on] = (sim.now, sim.sent_segments, len(sizes))
        assert sim.stats_a["engine_errors"] == sim.stats_b["engine_errors"] == 0
    assert results[False][2] == 0
    assert results[True][2] > 10, results
    # Coalesced, the receiver sends fewer ACKs (one per super-segment), and the
    # transfer still completes within twice the time: the sender's slow start
    # grows by at most 2 MSS per ACK (RFC 3465's L), so fewer ACKs slow it.
    assert results[True][1][1] < results[False][1][1]
    assert results[True][0] < 2 * results[False][0], results


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("loss", [0.0, 0.02])
async def test_two_stacks_bulk(
    monkeypatch: pytest.MonkeyPatch, enabled: bool, loss: float
) -> None:
    """Through the runtime (link reader, inbox channel, receiver burst): a bulk
    transfer over a VirtualNetwork, clean and lossy, in virtual time."""
    monkeypatch.setattr(coalesce, "ENABLED", enabled)
    sizes = merged_sizes(monkeypatch)
    data = bytes(range(256)) * 2000
    async with two_stacks(delay=0.005, loss=loss, seed=3) as (_net, a, b):
        client, server = await connect(a, b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, data)
            got = await receive_exactly(server, len(data))
        assert got == data
        await client.aclose()
        await server.aclose()
    assert (len(sizes) > 0) == enabled
    assert all(size <= coalesce.MAX_MERGED_BYTES for size in sizes)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def test_unknown_segment_fields_must_be_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field the merge rule does not name (a later layer's, such as the IPv6
    traffic class) ends a run where it changes."""
    monkeypatch.setattr(coalesce, "OTHER_FIELDS", ("window",))
    sizes = merged_sizes(monkeypatch)
    a, b = pair()
    segs = burst(a, b, 6)
    segs[3:] = [attrs.evolve(s, window=1000) for s in segs[3:]]
    b.on_segments(segs, 0.001)
    assert sizes == [3 * MSS, 3 * MSS]


def test_ecn_bits_must_be_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The IPv6 ECN bits are part of the merge rule: a CE-marked segment in a run
    of ECT(0) ones ends it and starts its own, so its mark is seen once, on the
    segment that carried it, and the merged segments keep their ECT(0)."""
    seen: list[TCPSegment] = []
    monkeypatch.setattr(coalesce, "OBSERVER", seen.append)
    a, b = pair()
    segs = [attrs.evolve(s, ecn=ECN_ECT0) for s in burst(a, b, 6)]
    segs[3:] = [attrs.evolve(s, ecn=ECN_CE) for s in segs[3:]]
    b.on_segments(segs, 0.001)
    assert [(len(s.payload), s.ecn) for s in seen] == [(3 * MSS, ECN_ECT0), (3 * MSS, ECN_CE)]


def test_ecn_marked_segments_are_not_predicted() -> None:
    """Header prediction takes an in-order Not-ECT segment and declines the next,
    the same but carrying ECT(0) (ecn.on_input on the full path must see it)."""
    a, b = pair()
    first, second, third = burst(a, b, 3)
    b.on_segment(first, 0.001)
    before = b.stats["rcv_header_predicted"]
    b.on_segment(second, 0.001)
    assert b.stats["rcv_header_predicted"] == before + 1
    b.on_segment(attrs.evolve(third, ecn=ECN_ECT0), 0.001)
    assert b.stats["rcv_header_predicted"] == before + 1
    assert b.rcv_nxt == (third.seq + MSS) & 0xFFFFFFFF  # (taken, by the full path)
