"""Property tests of the SACK scoreboard against a slow per-byte reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_tcp6.tcp.rack import Rack
from trio_tcp6.tcp.sack import EVER_RETRANS, LOST, RETRANS, SACKED, Scoreboard, SentSeg

MSS = 100


def build(n_segs: int, base: int) -> Scoreboard:
    sb = Scoreboard(base)
    for i in range(n_segs):
        sb.add(base + i * MSS, base + (i + 1) * MSS, float(i))
    return sb


ops = st.lists(
    st.one_of(
        st.tuples(st.just("sack"), st.integers(0, 3000), st.integers(1, 800)),
        st.tuples(st.just("ack"), st.integers(0, 3000), st.just(0)),
        st.tuples(st.just("dupthresh"), st.just(0), st.just(0)),
        st.tuples(st.just("retx"), st.just(0), st.just(0)),
        st.tuples(st.just("rto"), st.just(0), st.just(0)),
        st.tuples(st.just("lose"), st.integers(0, 40), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 30), ops, st.integers(0, 2**33))
def test_scoreboard_model(n_segs: int, operations: list[tuple[str, int, int]], base: int) -> None:
    sb = build(n_segs, base)
    nxt = base + n_segs * MSS
    una = base
    sacked: set[int] = set()  # reference: SACKed byte offsets
    for op, a, b in operations:
        if op == "sack":
            s = base + a
            e = min(s + b, nxt)
            if s < una or e <= s:
                continue
            sb.on_sack([(s, e)])
            sacked |= set(range(s, e))
        elif op == "ack":
            new = min(base + a, nxt)
            if new <= una:
                continue
            sb.on_ack(new)
            una = new
            sacked = {x for x in sacked if x >= una}
        elif op == "dupthresh":
            before = {id(r) for r in sb.segs if r.flags & LOST}
            sb.mark_lost_dupthresh(MSS)
            # Reference IsLost: more than 2*MSS SACKed bytes above, or 3 SACKed records.
            for r in sb.segs:
                if r.flags & LOST and id(r) not in before:
                    assert not r.flags & SACKED
                    above_bytes = sum(1 for x in sacked if x >= r.end)
                    above_recs = sum(1 for q in sb.segs if q.start >= r.end and q.flags & SACKED)
                    assert above_bytes > 2 * MSS or above_recs >= 3
        elif op == "retx":
            i = sb.next_lost()
            if i >= 0:
                sb.mark_retransmitted(i, 99.0)
        elif op == "rto":
            sb.mark_all_lost()
        elif op == "lose" and sb.segs:
            sb.mark_lost(a % len(sb.segs))
        sb.check()
        assert sb.una == una and sb.nxt == nxt
        # SACKed bytes never exceed what was sent and match the reference.
        assert sb.sacked == len(sacked) <= nxt - una
        for r in sb.segs:
            inside = all(x in sacked for x in range(r.start, r.end))
            assert bool(r.flags & SACKED) == inside
            if not r.flags & SACKED:
                assert not any(x in sacked for x in range(r.start, r.end))
        # pipe per RFC 6675 SetPipe, per byte.
        pipe = 0
        for r in sb.segs:
            n = r.end - r.start
            if r.flags & SACKED:
                continue
            if not r.flags & LOST:
                pipe += n
            if r.flags & RETRANS:
                pipe += n
        assert sb.pipe == pipe
        assert 0 <= sb.pipe <= 2 * (nxt - una)
        i = sb.next_lost()
        if i >= 0:
            r = sb.segs[i]
            assert r.flags & LOST and not r.flags & (RETRANS | SACKED)
            assert all(
                not (q.flags & LOST and not q.flags & (RETRANS | SACKED)) for q in sb.segs[:i]
            )
        else:
            assert sb.lost_pending == 0


def test_dupthresh_marks_head() -> None:
    sb = build(10, 0)
    sb.on_sack([(100, 400)])
    assert sb.mark_lost_dupthresh(MSS)
    assert sb.segs[0].flags & LOST
    assert sb.next_lost() == 0
    assert sb.pipe == 1000 - 300 - 100
    sb.mark_retransmitted(0, 5.0)
    assert sb.pipe == 1000 - 300
    last, _newest = sb.on_ack(400)
    assert last is None  # the hole was retransmitted: no RTT sample (Karn)
    assert sb.sacked == 0 and sb.lost == 0 and sb.retrans == 0
    sb.check()


def test_partial_sack_splits() -> None:
    sb = build(3, 0)
    sb.on_sack([(150, 250)])
    sb.check()
    assert sb.sacked == 100
    assert [(r.start, r.end) for r in sb.segs] == [
        (0, 100),
        (100, 150),
        (150, 200),
        (200, 250),
        (250, 300),
    ]


# -- whole-segment SACKs, coalesced retransmissions, RACK over the in-flight list ----
rack_ops = st.lists(
    st.one_of(
        st.tuples(st.just("sack"), st.integers(0, 3000), st.integers(1, 800)),
        st.tuples(st.just("ack"), st.integers(0, 3000), st.just(0)),
        st.tuples(st.just("retx"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("probe"), st.just(0), st.just(0)),
        st.tuples(st.just("rto"), st.just(0), st.just(0)),
        st.tuples(st.just("undo"), st.just(0), st.just(0)),
        st.tuples(st.just("lose"), st.integers(0, 40), st.just(0)),
        st.tuples(st.just("send"), st.integers(1, 250), st.just(0)),
        st.tuples(st.just("rack"), st.integers(0, 60), st.integers(0, 3)),
    ),
    max_size=40,
)


def in_flight(r: SentSeg) -> bool:
    return not r.flags & SACKED and (not r.flags & LOST or bool(r.flags & RETRANS))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 30), rack_ops, st.integers(0, 2**33))
def test_rack_and_whole_segment_sacks_model(
    n_segs: int, operations: list[tuple[str, int, int]], base: int
) -> None:
    """Against slow references: SACKs mark only whole segments and never bytes
    outside the blocks; retransmissions are at most one MSS and shorter only where
    the lost run ends; RACK marks exactly the in-flight records sent before its
    newest delivered one whose deadline passed, and times the latest of the rest."""
    sb = build(n_segs, base)
    rack = Rack()
    now = float(n_segs)
    reported: set[int] = set()  # bytes the peer SACKed
    sent = n_segs
    for op, a, b in operations:
        now += 0.5
        nxt = sb.nxt
        if op == "sack":
            s = base + a
            e = min(s + b, nxt)
            if s < sb.una or e <= s:
                continue
            before = {id(r) for r in sb.segs if r.flags & SACKED}
            newest, _, _ = sb.on_sack([(s, e)], MSS)
            reported |= set(range(s, e))
            for r in sb.segs:
                if s <= r.start and r.end <= e:
                    assert r.flags & SACKED  # whole records inside the block
                if r.flags & SACKED and id(r) not in before:
                    assert s <= r.start and r.end <= e  # never beyond the block
            if newest is not None:
                rack.update(newest, now, None)
        elif op == "ack":
            new = min(base + a, nxt)
            if new <= sb.una:
                continue
            _, newest = sb.on_ack(new)
            if newest is not None:
                rack.update(newest, now, None)
        elif op == "retx":
            i = sb.next_lost()
            if i >= 0:
                r = sb.coalesce(i, MSS)
                assert r.end - r.start <= MSS
                if r.end - r.start < MSS and r.end < sb.nxt:
                    # Only where the next record is no lost one that would fit.
                    q = sb.segs[i + 1]
                    fits = q.end - r.start <= MSS
                    assert q.flags & (SACKED | RETRANS) or not q.flags & LOST or not fits
                sb.mark_retransmitted(i, now)
        elif op == "probe" and sb.segs:
            sb.mark_resent(len(sb.segs) - 1, now)
        elif op == "rto":
            sb.mark_all_lost()
        elif op == "undo":
            sb.clear_marks()
            reported.clear()
        elif op == "lose" and sb.segs:
            sb.mark_lost(a % len(sb.segs))
        elif op == "send":
            sb.add(nxt, nxt + a, now)
            sent += 1
        elif op == "rack":
            reo = b * 0.25
            rack.rtt = a * 0.1
            key = (rack.order, rack.end_seq)
            cands = [r for r in sb.segs if in_flight(r) and (r.order, r.end) < key]
            budget = rack.rtt + reo - now
            expect_lost = {id(r) for r in cands if r.xmit + budget <= 1e-6}
            rest = [r.xmit + budget for r in cands if id(r) not in expect_lost]
            marked, timeout = rack.detect_loss(sb, now, reo)
            got_lost = {id(r) for r in cands if r.flags & LOST and not r.flags & RETRANS}
            assert got_lost == expect_lost
            assert marked == bool(expect_lost)
            assert timeout == (max(rest) if rest else 0.0)
        sb.check()
        sacked_bytes = {x for r in sb.segs if r.flags & SACKED for x in range(r.start, r.end)}
        assert sacked_bytes <= reported
    # Records stay bounded by what was sent: splits only where segments were cut.
    assert len(sb.segs) <= 2 * sent + len(operations)


def test_partly_acked_super_segment_gives_the_rtt_sample() -> None:
    """A TSO super-segment of which the ACK covers at least one whole segment is
    the record to take the RTT sample from (Linux's tcp_clean_rtx_queue takes one
    from a partly acknowledged TSO packet); a record of one segment, partly
    acknowledged, is not, and neither is a super-segment with less than a segment
    acknowledged or one that was retransmitted (Karn)."""
    sb = Scoreboard(0)
    sb.add(0, 5 * MSS, 1.0)  # a super-segment of five
    sb.add(5 * MSS, 6 * MSS, 2.0)  # one segment
    last, newest = sb.on_ack(MSS - 1, MSS)
    assert last is None and newest is sb.segs[0]
    last, newest = sb.on_ack(2 * MSS, MSS)
    assert last is sb.segs[0] and last.xmit == 1.0 and newest is last
    assert sb.segs[0].start == 2 * MSS
    sb.check()
    last, _ = sb.on_ack(5 * MSS + 50, MSS)
    assert last is not None and last.xmit == 1.0  # the super-segment, fully acked now
    assert sb.segs[0].start == 5 * MSS + 50
    sb.check()
    # Without the MSS (or with a record of one segment), as before: no sample.
    sb = Scoreboard(0)
    sb.add(0, 5 * MSS, 1.0)
    assert sb.on_ack(3 * MSS) == (None, sb.segs[0])
    sb = Scoreboard(0)
    sb.add(0, 5 * MSS, 1.0)
    sb.segs[0].flags = EVER_RETRANS  # (a mark that no counter follows)
    assert sb.on_ack(3 * MSS, MSS)[0] is None
