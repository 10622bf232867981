"""CoDel (RFC 8289) and FQ-CoDel (RFC 8290), driven by hand-fed time."""

from __future__ import annotations

import ipaddress
import math
import struct

import pytest

from trio_tcp6.sim.aqm import CE, ECT_0, ECT_1, NOT_ECT, CoDel, FQCoDel, ecn_codepoint, set_ce

TARGET = 0.005
INTERVAL = 0.100


def packet(
    size: int = 100,
    *,
    ecn: int = NOT_ECT,
    src: str = "2001:db8:1::a",
    dst: str = "2001:db8:2::b",
    sport: int = 40000,
    dport: int = 80,
    seq: int = 0,
) -> bytes:
    """An IPv6+TCP-shaped packet of ``size`` bytes; ``seq`` tells packets apart."""
    traffic_class = 0x28 << 2 | ecn  # a DSCP too, to see that marking keeps it
    flow_label = 0x12345
    first = 6 << 28 | traffic_class << 20 | flow_label
    header = struct.pack("!IHBB", first, size - 40, 6, 64)
    header += ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    body = struct.pack("!HHI", sport, dport, seq)
    return header + body + bytes(size - len(header) - len(body))


def seq_of(p: bytes) -> int:
    return int(struct.unpack_from("!I", p, 44)[0])


def drops_during(q: CoDel, now: float) -> tuple[int, bytes | None]:
    before = q.stats()["drops"]
    out = q.dequeue(now)
    return int(q.stats()["drops"] - before), out


# -- ECN bits ----------------------------------------------------------------------


def test_ecn_codepoint_and_set_ce_touch_only_the_ecn_bits() -> None:
    for codepoint in (NOT_ECT, ECT_1, ECT_0, CE):
        assert ecn_codepoint(packet(ecn=codepoint)) == codepoint
    original = packet(ecn=ECT_0)
    marked = set_ce(original)
    assert ecn_codepoint(marked) == CE
    assert len(marked) == len(original)
    diff = [i for i in range(len(original)) if original[i] != marked[i]]
    assert diff == [1]
    # Version, DSCP and flow label unchanged.
    assert marked[0] == original[0]
    assert marked[1] & 0xCF == original[1] & 0xCF
    assert ecn_codepoint(b"\x60") == NOT_ECT


# -- CoDel -------------------------------------------------------------------------


def test_codel_never_drops_while_sojourn_below_target() -> None:
    """A standing queue whose every packet waits just under 5 ms for 2 s: no drop."""
    q = CoDel()
    wait = TARGET - 1e-6
    step = 0.0005
    n = 4000
    for i in range(20):  # keep more than one MTU queued behind the head
        q.enqueue(packet(seq=i), i * step)
    for i in range(20, n):
        q.enqueue(packet(seq=i), i * step)
        out = q.dequeue((i - 20) * step + wait)
        assert out is not None and seq_of(out) == i - 20
    s = q.stats()
    assert s["drops"] == 0 and s["marks"] == 0
    assert s["sojourn_max"] == pytest.approx(wait)


def test_codel_drop_times_follow_the_control_law_exactly() -> None:
    """Above target from t1 on: first drop at t1 + interval, then + interval/sqrt(1),
    then + interval/sqrt(2), + interval/sqrt(3) (RFC 8289 §5.6)."""
    q = CoDel(limit=5000)
    for i in range(3000):
        q.enqueue(packet(seq=i), 0.0)
    t1 = 0.010  # first dequeue, sojourn 10 ms > target: first_above_time = t1 + interval
    assert drops_during(q, t1)[0] == 0
    first_above = t1 + INTERVAL
    assert drops_during(q, math.nextafter(first_above, 0))[0] == 0
    dropped, out = drops_during(q, first_above)
    assert dropped == 1 and q.dropping
    assert out is not None
    drop_next = first_above + INTERVAL / math.sqrt(1)
    for count in (2, 3, 4):
        assert drops_during(q, math.nextafter(drop_next, 0))[0] == 0
        assert drops_during(q, drop_next)[0] == 1
        assert q.stats()["count"] == count
        drop_next = drop_next + INTERVAL / math.sqrt(count)
    # interval/sqrt(2) after the second drop came the third, exactly (checked above
    # with nextafter on either side); the gaps shrink as 1/sqrt(count).


@pytest.mark.parametrize(("below", "expect_drops"), [(0.0, True), (2.0**-20, False)])
def test_codel_sojourn_exactly_at_target_counts_as_above(below: float, expect_drops: bool) -> None:
    """RFC 8289: "below target" is strict. Binary-exact times so that the sojourn is
    exactly the target (2**-8 s) or just under it."""
    target, step = 2.0**-8, 2.0**-10
    q = CoDel(target=target, interval=2.0**-3, limit=5000)
    for i in range(1000):
        q.enqueue(packet(seq=i), i * step)
    for i in range(900):
        q.dequeue(i * step + target - below)
    assert (q.stats()["drops"] > 0) is expect_drops


def test_codel_leaves_dropping_state_when_the_queue_drains() -> None:
    q = CoDel(limit=5000)
    for i in range(1000):
        q.enqueue(packet(seq=i), 0.0)
    q.dequeue(0.010)
    q.dequeue(0.110)
    assert q.dropping
    # Drain at one instant (no drop is due before drop_next).
    while q.dequeue(0.150) is not None:
        pass
    assert not q.dropping
    assert q.stats()["drops"] == 1
    # A fresh packet that waited less than target passes, and no drop state returns.
    q.enqueue(packet(seq=9999), 0.2)
    assert drops_during(q, 0.201)[0] == 0
    assert not q.dropping


def _reentry(gap: float) -> tuple[CoDel, int, float, float]:
    """Drive CoDel to count 4, let it leave the dropping state, re-enter ``gap``
    seconds later; return (queue, count at re-entry, re-entry time, next drop)."""
    q = CoDel(limit=5000)
    for i in range(2000):
        q.enqueue(packet(seq=i), 0.0)
    q.dequeue(0.010)
    t = 0.110
    q.dequeue(t)  # count 1
    for count in (2, 3, 4):
        t = t + INTERVAL / math.sqrt(count - 1)
        q.dequeue(t)
        assert q.stats()["count"] == count
    # Empty the queue right after the 4th drop: dequeue returns None, dropping ends.
    while q.dequeue(t) is not None:
        pass
    assert not q.dropping
    start = t + gap
    for i in range(2000):
        q.enqueue(packet(seq=i), start)
    q.dequeue(start + 0.010)
    reentry = start + 0.010 + INTERVAL
    assert drops_during(q, reentry)[0] == 1
    count = int(q.stats()["count"])
    return q, count, reentry, reentry + INTERVAL / math.sqrt(count)


def test_codel_reentry_resumes_the_drop_rate_of_the_last_cycle() -> None:
    """RFC 8289 §5.5: re-entering soon after leaving, count = count - lastcount
    (4 - 1 = 3 here), and the next drop comes exactly interval/sqrt(3) later."""
    q, count, _, following = _reentry(gap=0.5)
    assert count == 3
    assert drops_during(q, math.nextafter(following, 0))[0] == 0
    assert drops_during(q, following)[0] == 1
    assert q.stats()["count"] == 4


def test_codel_reentry_long_after_starts_again_from_one() -> None:
    """16 intervals or more since the last drop_next: count starts at 1."""
    _, count, _, _ = _reentry(gap=16 * INTERVAL + 0.2)
    assert count == 1


@pytest.mark.parametrize("codepoint", [ECT_0, ECT_1, CE])
def test_codel_marks_ecn_capable_packets_instead_of_dropping(codepoint: int) -> None:
    q = CoDel(limit=5000)
    for i in range(3000):
        q.enqueue(packet(seq=i, ecn=codepoint), 0.0)
    delivered = []
    t = 0.010
    while t < 1.0:
        out = q.dequeue(t)
        assert out is not None
        delivered.append(out)
        t += 0.001
    s = q.stats()
    assert s["drops"] == 0
    assert s["marks"] >= 5
    assert [seq_of(p) for p in delivered] == list(range(len(delivered)))
    marked = [p for p in delivered if ecn_codepoint(p) == CE]
    if codepoint != CE:
        assert len(marked) == s["marks"]
        # The marked copy differs from the original only in the ECN bits.
        original = packet(seq=seq_of(marked[0]), ecn=codepoint)
        assert set_ce(original) == marked[0]


def test_codel_marks_at_the_same_times_it_would_drop() -> None:
    def signal_times(ecn: int) -> list[float]:
        q = CoDel(limit=5000)
        for i in range(3000):
            q.enqueue(packet(seq=i, ecn=ecn), 0.0)
        times = []
        t = 0.010
        signals = 0.0
        while t < 1.0:
            q.dequeue(t)
            s = q.stats()
            if s["drops"] + s["marks"] > signals:
                times.append(t)
                signals = s["drops"] + s["marks"]
            t += 0.001
        return times

    assert signal_times(ECT_0) == signal_times(NOT_ECT)
    assert len(signal_times(NOT_ECT)) >= 5


def test_codel_with_ecn_off_drops_ect_packets() -> None:
    q = CoDel(ecn=False, limit=5000)
    for i in range(3000):
        q.enqueue(packet(seq=i, ecn=ECT_0), 0.0)
    for k in range(100):
        q.dequeue(0.010 + k * 0.005)
    assert q.stats()["drops"] >= 1 and q.stats()["marks"] == 0


def test_codel_no_drop_with_at_most_one_mtu_left_behind() -> None:
    """RFC 8289 §5.3: with no more than a packet (an MTU) behind the head, the
    queue is not a standing queue, however long the head waited."""
    q = CoDel(mtu=1500)
    t = 0.0
    for i in range(300):
        q.enqueue(packet(1000, seq=2 * i), t)
        q.enqueue(packet(500, seq=2 * i + 1), t)
        t += 0.010
        q.dequeue(t + 0.5)  # waited 500 ms, leaves 500 bytes behind
        q.dequeue(t + 0.5)  # leaves nothing
    assert q.stats()["drops"] == 0


def test_codel_limit_is_an_overflow_drop() -> None:
    q = CoDel(limit=3)
    assert all(q.enqueue(packet(seq=i), 0.0) for i in range(3))
    assert not q.enqueue(packet(seq=3), 0.0)
    s = q.stats()
    assert (s["drops"], s["overflow_drops"], s["codel_drops"], len(q)) == (1, 1, 0, 3)
    assert q.bytes == 300


def test_codel_counts_and_sojourn_stats() -> None:
    q = CoDel()
    q.enqueue(packet(seq=0), 1.0)
    q.enqueue(packet(seq=1), 1.0)
    assert q.dequeue(1.002) is not None
    assert q.dequeue(1.004) is not None
    assert q.dequeue(1.005) is None
    s = q.stats()
    assert (s["enqueued"], s["dequeued"], len(q), q.bytes) == (2, 2, 0, 0)
    assert s["sojourn_last"] == pytest.approx(0.004)
    assert s["sojourn_max"] == pytest.approx(0.004)
    assert s["sojourn_mean"] == pytest.approx(0.003)


def test_hostile_short_packets_do_not_crash() -> None:
    for q in (CoDel(), FQCoDel()):
        for i, junk in enumerate([b"", b"\x60", b"\x60\x00\x00", bytes(39), bytes(41)]):
            q.enqueue(junk, i * 0.5)
        got = []
        for i in range(10):
            out = q.dequeue(3.0 + i)
            if out is not None:
                got.append(out)
        assert len(q) == 0 and q.bytes == 0
        assert len(got) + q.stats()["drops"] == 5


# -- FQ-CoDel ----------------------------------------------------------------------

FAT = {"sport": 40000}
SPARSE = {"sport": 40001}


def test_fq_hash_uses_the_five_tuple_and_the_seed() -> None:
    q = FQCoDel(seed=1)
    a = packet(**FAT)
    assert q.flow_index(a) == q.flow_index(packet(**FAT, seq=7, size=900))
    assert q.flow_index(a) == FQCoDel(seed=1).flow_index(a)
    ports = [packet(sport=40000 + i) for i in range(64)]
    assert len({q.flow_index(p) for p in ports}) > 50
    other = FQCoDel(seed=2)
    assert [q.flow_index(p) for p in ports] != [other.flow_index(p) for p in ports]
    # ECN bits and flow label are not part of the flow.
    assert q.flow_index(packet(**FAT, ecn=CE)) == q.flow_index(a)


def test_fq_sparse_flow_is_served_before_the_fat_backlog() -> None:
    q = FQCoDel(seed=1)
    assert q.flow_index(packet(**FAT)) != q.flow_index(packet(**SPARSE))
    for i in range(50):
        q.enqueue(packet(1000, **FAT, seq=i), 0.0)
    # The fat flow spends its quantum (1514 bytes: two 1000-byte packets), moves to
    # the old list and gets a new quantum.
    served = [q.dequeue(0.001) for _ in range(3)]
    assert [seq_of(p) for p in served if p is not None] == [0, 1, 2]
    q.enqueue(packet(100, **SPARSE, seq=1000), 0.002)
    first = q.dequeue(0.002)
    assert first is not None and seq_of(first) == 1000
    nxt = q.dequeue(0.003)
    assert nxt is not None and seq_of(nxt) == 3
    assert q.stats()["drops"] == 0


def test_fq_emptied_new_flow_goes_once_to_the_old_list() -> None:
    """RFC 8290 §4.2: a new flow that empties moves to the old list (if that is not
    empty), so its next packet waits for its turn in the old flows' round."""
    q = FQCoDel(seed=1)
    for i in range(50):
        q.enqueue(packet(500, **FAT, seq=i), 0.0)
    # Quantum 1514: seq 0-3 spend it (-486), then +1514 and seq 4 (deficit 528).
    assert [seq_of(q.dequeue(0.001) or b"") for _ in range(5)] == [0, 1, 2, 3, 4]
    q.enqueue(packet(100, **SPARSE, seq=1000), 0.002)
    assert seq_of(q.dequeue(0.002) or b"") == 1000
    # The sparse flow is empty: it moves to the old list, fat serves seq 5 (28 left).
    assert seq_of(q.dequeue(0.003) or b"") == 5
    assert (q.stats()["new_flows"], q.stats()["old_flows"]) == (0, 2)
    q.enqueue(packet(100, **SPARSE, seq=1001), 0.004)
    assert q.stats()["new_flows"] == 0
    # Not new any more: the fat flow's remaining deficit is served first.
    assert seq_of(q.dequeue(0.004) or b"") == 6
    assert seq_of(q.dequeue(0.004) or b"") == 1001


def test_fq_drr_shares_bytes_by_quantum() -> None:
    q = FQCoDel(seed=1, quantum=1500)
    big, small = {"sport": 1}, {"sport": 2}
    assert q.flow_index(packet(**big)) != q.flow_index(packet(**small))
    for i in range(200):
        q.enqueue(packet(1500, **big, seq=i), 0.0)
        q.enqueue(packet(300, **small, seq=10000 + i), 0.0)
    served = {1: 0, 2: 0}
    for _ in range(120):
        p = q.dequeue(0.001)
        assert p is not None
        served[struct.unpack_from("!H", p, 40)[0]] += len(p)
    assert abs(served[1] - served[2]) <= 1500


def test_fq_overflow_drops_from_the_fattest_flow() -> None:
    q = FQCoDel(seed=1, limit=10)
    fat, thin = {"sport": 1}, {"sport": 2}
    assert q.flow_index(packet(**fat)) != q.flow_index(packet(**thin))
    for i in range(8):
        assert q.enqueue(packet(200, **fat, seq=i), 0.0)
    assert q.enqueue(packet(1000, **thin, seq=100), 0.0)
    assert q.enqueue(packet(1000, **thin, seq=101), 0.0)
    # 10 held; the thin flow holds 2000 bytes, the fat one 1600: thin is fattest.
    assert q.enqueue(packet(200, **fat, seq=8), 0.0)
    s = q.stats()
    assert (s["overflow_drops"], s["drops"], len(q)) == (1, 1, 10)
    assert q.bytes == 9 * 200 + 1000
    # Now fat holds 1800 + 200 bytes > thin's 1000: this overflow takes fat's head.
    assert q.enqueue(packet(200, **fat, seq=9), 0.0)
    out = []
    while (p := q.dequeue(0.001)) is not None:
        out.append(seq_of(p))
    assert sorted(out) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 101]
    assert q.stats()["overflow_drops"] == 2


def test_fq_overflow_of_the_arriving_packets_own_flow_returns_false() -> None:
    q = FQCoDel(seed=1, limit=1)
    assert q.enqueue(packet(100, sport=1), 0.0)
    # Arrival of a 1500-byte packet on an empty flow: that flow is fattest, and its
    # head is the arriving packet itself.
    assert not q.enqueue(packet(1500, sport=2), 0.0)
    assert len(q) == 1 and q.bytes == 100


def test_fq_codel_acts_per_flow() -> None:
    """A fat flow with a standing queue is dropped; a sparse flow beside it loses
    nothing and waits less than target."""
    q = FQCoDel(seed=1, ecn=False)
    fat_seq = 0
    for _ in range(100):  # prefill: a 100-packet standing queue for the fat flow
        q.enqueue(packet(1000, **FAT, seq=fat_seq), 0.0)
        fat_seq += 1
    sparse_sent: dict[int, float] = {}
    sparse_delivered = []
    for step in range(2000):
        t = step * 0.001
        q.enqueue(packet(1000, **FAT, seq=fat_seq), t)
        fat_seq += 1
        if step % 20 == 0:
            sparse_sent[100000 + step] = t
            q.enqueue(packet(100, **SPARSE, seq=100000 + step), t)
        p = q.dequeue(t)
        if p is not None and seq_of(p) >= 100000:
            sparse_delivered.append(seq_of(p))
            assert t - sparse_sent[seq_of(p)] < TARGET
    s = q.stats()
    assert s["codel_drops"] >= 5
    assert sparse_delivered == sorted(sparse_sent)
    assert len(q) + s["dequeued"] + s["drops"] == s["enqueued"]


def test_fq_ecn_marks_instead_of_dropping() -> None:
    q = FQCoDel(seed=1)
    for i in range(3000):
        q.enqueue(packet(**FAT, ecn=ECT_0, seq=i), 0.0)
    t = 0.010
    while t < 1.0:
        q.dequeue(t)
        t += 0.001
    s = q.stats()
    assert s["drops"] == 0 and s["marks"] >= 5


def test_both_are_queues_for_a_simulated_link() -> None:
    from trio_tcp6.sim import Queue

    assert isinstance(CoDel(), Queue)
    assert isinstance(FQCoDel(), Queue)
