"""Unit tests of single RFC rules, driving one Connection with hand-made segments."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from trio_tcp6.config import Keepalive, TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import EventKind, State
from trio_tcp6.wire.tcp import ACK, FIN, PSH, RST, SYN, TCPSegment

M = 0xFFFFFFFF
PEER_ISS = 7000


def cfg(**kw: object) -> TCPConfig:
    base: dict[str, object] = {"time_wait": 10.0, "delayed_ack": None}
    base.update(kw)
    return TCPConfig(**base)  # type: ignore[arg-type]


def pseg(
    seq: int,
    ack: int,
    flags: int = ACK,
    payload: bytes = b"",
    window: int = 65535,
    **kw: object,
) -> TCPSegment:
    return TCPSegment(80, 1111, seq & M, ack & M, flags, window, payload, **kw)  # type: ignore[arg-type]


def kinds(c: Connection) -> list[EventKind]:
    return [e.kind for e in c.take_events()]


def active(
    config: TCPConfig | None = None,
    *,
    iss: int = 1000,
    peer_iss: int = PEER_ISS,
    mss: int = 1440,
    peer_mss: int | None = 1440,
    wscale: int | None = 7,
    sack: bool = True,
    ts: bool = True,
    window: int = 65535,
) -> tuple[Connection, Counter[str]]:
    stats: Counter[str] = Counter()
    c = Connection.connect(
        config or cfg(),
        local_port=1111,
        remote_port=80,
        iss=iss,
        mss=mss,
        now=0.0,
        stats=stats,
    )
    (syn,) = c.take_segments()
    assert syn.flags == SYN and syn.seq == iss
    synack = pseg(
        peer_iss,
        iss + 1,
        SYN | ACK,
        window=window,
        mss=peer_mss,
        wscale=wscale,
        sack_permitted=sack,
        timestamps=(500, syn.timestamps[0]) if ts and syn.timestamps else None,
    )
    c.on_segment(synack, 0.01)
    assert c.state is State.ESTABLISHED
    (ack,) = c.take_segments()
    assert ack.flags == ACK and ack.seq == (iss + 1) & M and ack.ack == (peer_iss + 1) & M
    assert kinds(c)[0] is EventKind.CONNECTED
    return c, stats


def tsopt(c: Connection, val: int = 600) -> dict[str, object]:
    return {"timestamps": (val, 0)} if c.ts_ok else {}


# -- handshake and options --------------------------------------------------------------
def test_syn_options() -> None:
    c = Connection.connect(cfg(), local_port=1, remote_port=2, iss=5, mss=1440, now=0.0)
    (syn,) = c.take_segments()
    assert syn.mss == 1440 and syn.sack_permitted and syn.timestamps is not None
    assert syn.wscale == 5  # 1 MiB buffer
    assert syn.window == 65535
    assert c.next_deadline == pytest.approx(1.0)


def test_no_peer_options_defaults_to_1220() -> None:
    c, _ = active(peer_mss=None, wscale=None, sack=False, ts=False)
    assert c.mss == 1220
    assert not c.ts_ok and not c.sack_ok and not c.ws_ok
    assert c.info().wscale is None


def test_timestamps_reduce_mss_and_wscale_clamped() -> None:
    c, _ = active(wscale=15)
    assert c.mss == 1440 - 12
    assert c.snd_shift == 14
    assert c.ts_ok and c.sack_ok


def test_syn_sent_bad_ack_gets_rst() -> None:
    stats: Counter[str] = Counter()
    c = Connection.connect(
        cfg(), local_port=1111, remote_port=80, iss=1000, mss=1440, now=0.0, stats=stats
    )
    c.take_segments()
    c.on_segment(pseg(PEER_ISS, 5000, SYN | ACK), 0.1)
    (rst,) = c.take_segments()
    assert rst.flags == RST and rst.seq == 5000
    assert c.state is State.SYN_SENT
    # RST without ACK: ignored; RST acking our SYN: refused.
    c.on_segment(pseg(0, 0, RST), 0.1)
    assert c.state is State.SYN_SENT
    c.on_segment(pseg(0, 1001, RST | ACK), 0.2)
    assert c.state is State.CLOSED
    ev = c.take_events()
    assert ev[0].kind is EventKind.ERROR and ev[0].error == "refused"
    assert ev[-1].kind is EventKind.CLOSED


def test_syn_retries_timeout() -> None:
    c = Connection.connect(
        cfg(syn_retries=3), local_port=1, remote_port=2, iss=5, mss=1440, now=0.0
    )
    c.take_segments()
    deadlines = []
    while c.state is State.SYN_SENT:
        d = c.next_deadline
        assert d is not None
        deadlines.append(d)
        c.on_timer(d)
        segs = c.take_segments()
        assert all(s.flags == SYN for s in segs)
    assert deadlines == pytest.approx([1.0, 3.0, 7.0, 15.0])
    ev = c.take_events()
    assert ev[0].kind is EventKind.ERROR and ev[0].error == "timeout"


def test_simultaneous_open() -> None:
    c = Connection.connect(cfg(), local_port=1111, remote_port=80, iss=1000, mss=1440, now=0.0)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS, 0, SYN, mss=1440), 0.1)
    assert c.state is State.SYN_RECEIVED
    (sa,) = c.take_segments()
    assert sa.flags == SYN | ACK and sa.seq == 1000 and sa.ack == PEER_ISS + 1
    c.on_segment(pseg(PEER_ISS, 1001, SYN | ACK, mss=1440), 0.2)
    # The peer's SYN-ACK acknowledges our SYN: established without a challenge ACK.
    assert c.state is State.ESTABLISHED
    assert EventKind.CONNECTED in kinds(c)


def passive(config: TCPConfig | None = None, **kw: object) -> tuple[Connection, TCPSegment]:
    syn = TCPSegment(
        80, 1111, PEER_ISS, 0, SYN, 65535, mss=1440, sack_permitted=True, wscale=2, **kw
    )  # type: ignore[arg-type]
    c = Connection.accept(config or cfg(), syn, iss=3000, mss=1440, now=0.0)
    (sa,) = c.take_segments()
    return c, sa


def test_passive_open_and_rst_in_syn_received() -> None:
    c, sa = passive()
    assert sa.flags == SYN | ACK and sa.ack == PEER_ISS + 1 and sa.sack_permitted
    assert sa.timestamps is None  # peer did not offer them
    assert sa.wscale is not None
    c.on_segment(pseg(PEER_ISS + 1, 0, RST), 0.1)
    assert c.state is State.CLOSED
    assert kinds(c) == [EventKind.CLOSED]


def test_syn_received_bad_ack_rst_and_dup_syn() -> None:
    c, _ = passive()
    c.on_segment(pseg(PEER_ISS + 1, 9999, ACK), 0.1)
    (rst,) = c.take_segments()
    assert rst.flags == RST and rst.seq == 9999
    c.on_segment(TCPSegment(80, 1111, PEER_ISS, 0, SYN, 65535, mss=1440), 0.2)
    (sa,) = c.take_segments()
    assert sa.flags == SYN | ACK
    c.on_segment(pseg(PEER_ISS + 1, 3001, ACK, b"hello"), 0.3)
    assert c.state is State.ESTABLISHED
    assert c.receive(100, 0.3) == b"hello"
    assert c.snd_shift == 2


def test_synack_retransmission_then_timeout() -> None:
    c, _ = passive(cfg(synack_retries=2))
    while c.state is State.SYN_RECEIVED:
        d = c.next_deadline
        assert d is not None
        c.on_timer(d)
    ev = c.take_events()
    assert ev[-1].kind is EventKind.CLOSED


# -- RST / SYN / ACK checks (RFC 9293 §3.10.7.4, RFC 5961) ----------------------------------
def test_rst_exact_resets() -> None:
    c, _stats = active()
    c.on_segment(pseg(PEER_ISS + 1, 0, RST), 1.0)
    ev = c.take_events()
    assert ev[0].kind is EventKind.ERROR and ev[0].error == "reset"
    assert c.state is State.CLOSED


def test_rst_in_window_challenge_and_out_of_window_ignored() -> None:
    c, stats = active()
    c.on_segment(pseg(PEER_ISS + 100, 0, RST), 1.0)
    assert c.state is State.ESTABLISHED
    (ch,) = c.take_segments()
    assert ch.flags == ACK and ch.ack == PEER_ISS + 1
    assert stats["challenge_acks"] == 1
    c.on_segment(pseg(PEER_ISS + 10_000_000, 0, RST), 1.0)
    assert c.take_segments() == []
    assert c.state is State.ESTABLISHED


def test_syn_in_established_challenge_rate_limited() -> None:
    c, stats = active(cfg(challenge_ack_limit=5))
    for i in range(20):
        c.on_segment(pseg(PEER_ISS + 1 + i, 0, SYN, **tsopt(c)), 1.0)
    assert len(c.take_segments()) == 5
    assert stats["challenge_acks"] == 5
    assert c.state is State.ESTABLISHED
    c.on_segment(pseg(PEER_ISS + 1, 0, SYN, **tsopt(c)), 2.5)
    assert len(c.take_segments()) == 1


def test_ack_of_unsent_data_dropped_with_ack() -> None:
    c, stats = active()
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 500, ACK, b"data", **tsopt(c)), 1.0)
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 1  # the data was not accepted
    assert stats["drop_ack_unsent"] == 1
    assert c.readable == 0


def test_unacceptable_segment_gets_ack_and_trim() -> None:
    c, stats = active(cfg(receive_buffer=4000, window_scale=False))
    assert c.rcv_wnd == 4000
    c.on_segment(pseg(PEER_ISS + 1 + 5000, 1001, ACK, b"x" * 10, **tsopt(c)), 1.0)
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 1 and stats["drop_unacceptable"] == 1
    # Data overrunning the window is trimmed to it.
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK | FIN, b"y" * 5000, **tsopt(c)), 1.1)
    assert c.readable == 4000
    assert not c.at_eof and c.state is State.ESTABLISHED
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 1 + 4000 and a.window == 0
    # Old duplicate: ACKed, counted as duplicate.
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, b"y" * 100, **tsopt(c)), 1.2)
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 1 + 4000


def test_paws() -> None:
    c, stats = active()
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, b"a", timestamps=(1000, 0)), 1.0)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS + 2, 1001, ACK, b"b", timestamps=(900, 0)), 1.1)
    assert stats["drop_paws"] == 1
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 2
    assert c.receive(10, 1.2) == b"a"
    assert a.timestamps is not None and a.timestamps[1] == 1000


# -- data, ACKs and SACK -----------------------------------------------------------------
def test_delayed_ack_every_second_segment() -> None:
    c, _ = active(cfg(delayed_ack=0.04))
    p = PEER_ISS + 1
    c.on_segment(pseg(p, 1001, ACK, b"x" * 1428, **tsopt(c)), 1.0)
    assert c.take_segments() == []
    assert c.next_deadline == pytest.approx(1.04)
    c.on_segment(pseg(p + 1428, 1001, ACK, b"x" * 1428, **tsopt(c)), 1.01)
    (a,) = c.take_segments()
    assert a.ack == p + 2856
    c.on_segment(pseg(p + 2856, 1001, ACK, b"x" * 100, **tsopt(c)), 1.02)
    assert c.take_segments() == []
    c.on_timer(1.06)
    (a,) = c.take_segments()
    assert a.ack == p + 2956


def test_sack_blocks_most_recent_first() -> None:
    c, _ = active()
    p = PEER_ISS + 1
    for off in (1000, 3000, 5000, 7000, 2000):
        c.on_segment(pseg(p + off, 1001, ACK, b"z" * 100, **tsopt(c)), 1.0)
    segs = c.take_segments()
    last = segs[-1]
    assert last.ack == p
    # 2000 is the newest; with timestamps at most 3 blocks
    assert last.sack_blocks[0] == (p + 2000, p + 2100)
    assert len(last.sack_blocks) == 3
    assert last.sack_blocks[1] == (p + 7000, p + 7100)
    # Fill the hole before 1000: the block at 1000 is consumed.
    c.on_segment(pseg(p, 1001, ACK, b"a" * 1000, **tsopt(c)), 1.1)
    (a,) = c.take_segments()
    assert a.ack == p + 1100
    assert (p + 1000, p + 1100) not in a.sack_blocks
    assert c.readable == 1100


def test_out_of_order_fin() -> None:
    c, _ = active()
    p = PEER_ISS + 1
    c.on_segment(pseg(p + 5, 1001, ACK | FIN, b"world", **tsopt(c)), 1.0)
    assert c.state is State.ESTABLISHED
    c.on_segment(pseg(p, 1001, ACK, b"hello", **tsopt(c)), 1.1)
    assert c.state is State.CLOSE_WAIT
    assert c.receive(100, 1.2) == b"helloworld"
    assert c.at_eof
    ev = kinds(c)
    assert EventKind.EOF in ev


def send_and_collect(c: Connection, data: bytes, now: float, **kw: bool) -> list[TCPSegment]:
    assert c.send(data, now, **kw) == len(data)
    return c.take_segments()


def test_initial_window_and_ack_clocking() -> None:
    c, _ = active(ts=False)
    segs = send_and_collect(c, b"q" * 100_000, 1.0)
    assert len(segs) == 10 and all(len(s.payload) == 1440 for s in segs)
    assert segs[0].seq == 1001
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 2880, ACK), 1.1)
    more = c.take_segments()
    assert len(more) >= 2
    assert c.info().bytes_acked == 2880


def test_nagle_and_nodelay() -> None:
    c, _ = active(ts=False)
    (_s1,) = send_and_collect(c, b"a", 1.0)
    assert send_and_collect(c, b"b", 1.0) == []  # Nagle: held while "a" is unacked
    (s2,) = send_and_collect(c, b"c", 1.0, nodelay=True)
    assert s2.payload == b"bc" and s2.flags & PSH
    c2, _ = active(cfg(nagle=False), ts=False)
    send_and_collect(c2, b"a", 1.0)
    assert len(send_and_collect(c2, b"b", 1.0)) == 1


def test_fast_retransmit_newreno() -> None:
    c, stats = active(sack=False, ts=False)
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK), 0.5)  # sets the scaled window
    segs = send_and_collect(c, b"q" * 14400, 1.0)
    assert len(segs) == 10
    for _ in range(3):
        c.on_segment(pseg(PEER_ISS + 1, 1001, ACK), 1.1)
    rtx = c.take_segments()
    assert rtx and rtx[0].seq == 1001 and len(rtx[0].payload) == 1440
    assert stats["fast_recovery"] == 1
    # Partial ACK: the next hole is retransmitted at once.
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 2880, ACK), 1.2)
    segs = c.take_segments()
    assert segs[0].seq == 1001 + 2880
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 14400, ACK), 1.3)
    assert c.info().ca_state == "open"
    assert c.info().cwnd == c.info().ssthresh


def test_sack_recovery_retransmits_hole() -> None:
    c, stats = active(cfg(rack=False), ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    p = PEER_ISS + 1
    for k in range(2, 6):
        c.on_segment(pseg(p, 1001, ACK, sack_blocks=((1001 + 1440, 1001 + 1440 * k),)), 1.1)
    segs = c.take_segments()
    assert segs[0].seq == 1001 and stats["fast_recovery"] == 1
    assert c.info().sacked == 1440 * 4


def test_rack_detects_loss_after_reo_wnd() -> None:
    c, stats = active(ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    p = PEER_ISS + 1
    # One SACKed segment above the hole: RACK waits reo_wnd = min_rtt/4.
    c.on_segment(pseg(p, 1001, ACK, sack_blocks=((1001 + 1440, 1001 + 2880),)), 1.015)
    assert c.take_segments() == [] and stats["fast_recovery"] == 0
    d = c.next_deadline
    assert d == pytest.approx(1.0175)
    c.on_timer(d)
    segs = c.take_segments()
    assert segs and segs[0].seq == 1001
    assert stats["rack_marked_lost"] >= 1


def test_tail_loss_probe() -> None:
    c, stats = active(ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    d = c.next_deadline
    assert d is not None and d < 1.0 + c.info().rto
    c.on_timer(d)
    segs = c.take_segments()
    assert stats["tlp"] == 1
    assert segs and segs[-1].seq == 1001 + 12960  # the last segment re-sent


def test_pto_of_a_flight_adds_linuxs_minimum_to_two_srtt() -> None:
    """RFC 8985 §7.2: PTO = 2*SRTT, plus WCDelAckT for a single segment; a longer
    flight adds 2 ms, as Linux (TCP_TIMEOUT_MIN): the peer's time to get round to
    its ACK, which a microsecond RTT does not hold (a zero-RTT path probed at once)."""
    c, _ = active(ts=False)
    srtt = c.info().srtt
    assert srtt is not None
    send_and_collect(c, b"q" * 14400, 1.0)
    assert c.next_deadline == pytest.approx(1.0 + 2 * srtt + 0.002, abs=1e-9)
    c2, _ = active(ts=False)
    send_and_collect(c2, b"q" * 100, 1.0)
    assert c2.next_deadline == pytest.approx(
        min(1.0 + 2 * srtt + 0.2, 1.0 + c2.info().rto), abs=1e-9
    )


def test_rto_backoff_and_retries2() -> None:
    c, stats = active(cfg(retries2=4), ts=False)
    send_and_collect(c, b"q" * 100, 1.0)
    times = []
    while c.state is State.ESTABLISHED:
        d = c.next_deadline
        assert d is not None
        c.on_timer(d)
        segs = c.take_segments()
        if segs:
            times.append(d)
    ev = c.take_events()
    assert ev[0].kind is EventKind.ERROR and ev[0].error == "timeout"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g2 >= g1 * 1.9 for g1, g2 in itertools.pairwise(gaps))
    assert stats["rto"] == 4


def test_user_timeout() -> None:
    c, _ = active(cfg(user_timeout=5.0), ts=False)
    send_and_collect(c, b"q" * 100, 1.0)
    while c.state is State.ESTABLISHED:
        d = c.next_deadline
        assert d is not None and d <= 6.0 + 1e-6
        c.on_timer(d)
    ev = c.take_events()
    assert ev[0].error == "timeout"


def test_karn_no_sample_from_retransmission() -> None:
    c, _ = active(ts=False)
    srtt = c.info().srtt
    send_and_collect(c, b"q" * 100, 1.0)
    d = c.next_deadline
    while c.info().rto and c.timers.rtx_mode != 0:  # skip the TLP
        assert d is not None
        c.on_timer(d)
        d = c.next_deadline
    assert d is not None
    c.on_timer(d)
    c.on_segment(pseg(PEER_ISS + 1, 1101, ACK), d + 5.0)
    assert c.info().srtt == srtt


def test_zero_window_persist_never_aborts_while_answered() -> None:
    c, stats = active(ts=False, window=0, wscale=0)
    c.send(b"x" * 5000, 1.0)
    assert c.take_segments() == []
    t = 1.0
    probes = []
    for _ in range(40):
        d = c.next_deadline
        assert d is not None
        t = d
        c.on_timer(t)
        for s in c.take_segments():
            probes.append((t, s))
            assert s.seq == 1000 and not s.payload  # SND.UNA - 1
            c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, window=0), t + 0.01)
    assert c.state is State.ESTABLISHED
    assert stats["persist_probes"] == 40
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probes)]
    assert gaps[3] > gaps[0]
    assert max(gaps) <= 120.0 + 1e-6
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, window=65535), t + 1)
    segs = c.take_segments()
    assert segs[0].seq == 1001
    # Minshall's Nagle: no small segment is unacknowledged, so the 680-byte tail goes too.
    assert sum(len(s.payload) for s in segs) == 5000


def test_keepalive() -> None:
    c, stats = active(cfg(keepalive=Keepalive(idle=10, interval=2, probes=3)), ts=False)
    assert c.next_deadline == pytest.approx(10.01)
    c.on_timer(10.01)
    (p,) = c.take_segments()
    assert p.seq == 1000 and not p.payload
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK), 10.05)
    assert c.next_deadline == pytest.approx(20.05)
    while c.state is State.ESTABLISHED:
        d = c.next_deadline
        assert d is not None
        c.on_timer(d)
    assert stats["keepalive_probes"] == 4
    ev = c.take_events()
    assert [e.error for e in ev if e.kind is EventKind.ERROR] == ["timeout"]


# -- close -------------------------------------------------------------------------------
def test_active_close_time_wait_and_rfc6191() -> None:
    c, _ = active()
    c.shutdown(1.0)
    (fin,) = c.take_segments()
    assert fin.flags & FIN and fin.seq == 1001
    assert c.state is State.FIN_WAIT_1
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK, timestamps=(700, 0)), 1.1)
    assert c.state is State.FIN_WAIT_2
    assert EventKind.FIN_ACKED in kinds(c)
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK | FIN, timestamps=(710, 0)), 1.2)
    assert c.state is State.TIME_WAIT
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 2
    # Retransmitted FIN re-arms TIME-WAIT.
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK | FIN, timestamps=(720, 0)), 5.0)
    assert len(c.take_segments()) == 1
    assert c.next_deadline == pytest.approx(15.0)
    new_syn = TCPSegment(80, 1111, PEER_ISS + 100000, 0, SYN, 65535, timestamps=(800, 0))
    old_syn = TCPSegment(80, 1111, PEER_ISS + 100000, 0, SYN, 65535, timestamps=(10, 0))
    assert c.time_wait_accepts_syn(new_syn)
    assert not c.time_wait_accepts_syn(old_syn)
    assert EventKind.EOF in kinds(c)
    c.on_timer(15.0)
    assert c.state is State.CLOSED
    assert kinds(c) == [EventKind.CLOSED]


def test_time_wait_syn_with_the_same_timestamp_falls_back_to_sequence_numbers() -> None:
    """A peer whose timestamp clock ticks in milliseconds reconnects within the
    millisecond of its FIN: the SYN's TSval equals TS.Recent, so it is neither newer
    nor a PAWS duplicate. RFC 6191 then falls back to RFC 1122's sequence-number
    test, as Linux's TIME-WAIT does (``tcp_timewait_state_process``)."""
    c, _ = active()
    c.shutdown(1.0)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK | FIN, timestamps=(710, 0)), 1.1)
    assert c.state is State.TIME_WAIT
    rcv_nxt = PEER_ISS + 2

    def syn(seq: int, tsval: int) -> TCPSegment:
        return TCPSegment(80, 1111, seq, 0, SYN, 65535, timestamps=(tsval, 0))

    assert c.time_wait_accepts_syn(syn(rcv_nxt + 1, 710))
    assert not c.time_wait_accepts_syn(syn(rcv_nxt, 710))
    assert not c.time_wait_accepts_syn(syn(rcv_nxt - 1, 710))
    # An older TSval is an old duplicate (PAWS) whatever its sequence number.
    assert not c.time_wait_accepts_syn(syn(rcv_nxt + 100000, 709))
    assert c.time_wait_accepts_syn(syn(rcv_nxt - 100, 711))


def test_time_wait_syn_without_timestamps() -> None:
    c, _ = active(ts=False)
    c.shutdown(1.0)
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK | FIN), 1.1)
    assert c.state is State.TIME_WAIT
    assert c.time_wait_accepts_syn(TCPSegment(80, 1111, PEER_ISS + 50, 0, SYN, 100))
    assert not c.time_wait_accepts_syn(TCPSegment(80, 1111, PEER_ISS - 50, 0, SYN, 100))


def test_simultaneous_close() -> None:
    c, _ = active(ts=False)
    c.shutdown(1.0)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK | FIN), 1.1)
    assert c.state is State.CLOSING
    c.on_segment(pseg(PEER_ISS + 2, 1002, ACK), 1.2)
    assert c.state is State.TIME_WAIT


def test_passive_close_last_ack() -> None:
    c, _ = active(ts=False)
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK | FIN, b"bye"), 1.0)
    assert c.state is State.CLOSE_WAIT
    c.take_segments()
    # Half-close: we can still send.
    segs = send_and_collect(c, b"reply", 1.1)
    assert segs[0].payload == b"reply"
    c.shutdown(1.2)
    assert c.state is State.LAST_ACK
    c.on_segment(pseg(PEER_ISS + 5, 1001 + 6, ACK), 1.3)
    assert c.state is State.CLOSED
    ev = kinds(c)
    assert ev[-2:] == [EventKind.FIN_ACKED, EventKind.CLOSED]


def test_half_close_keeps_receiving() -> None:
    c, _ = active(ts=False)
    c.shutdown(1.0)
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK, b"more"), 1.1)
    assert c.state is State.FIN_WAIT_2
    assert c.receive(10, 1.2) == b"more"


def test_abort_sends_rst() -> None:
    c, _ = active(ts=False)
    c.abort(1.0)
    (rst,) = c.take_segments()
    assert rst.flags & RST and rst.seq == 1001
    ev = c.take_events()
    assert ev[0].error == "aborted" and ev[-1].kind is EventKind.CLOSED
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, b"late"), 1.1)
    (rst2,) = c.take_segments()
    assert rst2.flags & RST and rst2.seq == 1001


# -- window management ---------------------------------------------------------------------
def test_window_update_when_reader_drains() -> None:
    c, stats = active(cfg(receive_buffer=20000, window_scale=False), ts=False)
    p = PEER_ISS + 1
    for k in range(13):
        c.on_segment(pseg(p + 1440 * k, 1001, ACK, b"w" * 1440), 1.0)
    segs = c.take_segments()
    assert segs[-1].window < 2000
    c.receive(100000, 1.1)
    (upd,) = c.take_segments()
    assert upd.window == 20000
    assert stats["window_updates"] == 1


def test_receiver_sws_avoidance() -> None:
    c, _ = active(cfg(receive_buffer=10000, window_scale=False), ts=False)
    p = PEER_ISS + 1
    c.on_segment(pseg(p, 1001, ACK, b"w" * 10000), 1.0)
    (a,) = c.take_segments()
    assert a.window == 0
    c.receive(100, 1.1)  # frees 100 bytes: too little to advertise
    c.on_segment(pseg(p + 9999, 1001, ACK), 1.2)  # a zero-window probe
    (a,) = c.take_segments()
    assert a.window == 0


def test_pmtu_reduction_resegments() -> None:
    c, _stats = active(ts=False, mss=8000, peer_mss=8000)
    assert c.mss == 8000
    segs = send_and_collect(c, b"m" * 40000, 1.0)
    assert len(segs[0].payload) == 8000
    cwnd = c.info().cwnd
    c.set_path_mtu(1000, 1.1)  # ignored (< 1280)
    c.set_path_mtu(1500, 1.1)
    assert c.mss == 1440
    segs = c.take_segments()
    assert segs and all(len(s.payload) <= 1440 for s in segs)
    assert segs[0].seq == 1001
    assert c.info().cwnd >= cwnd * 1440 // 8000
    c.set_path_mtu(9000, 1.2)
    assert c.mss == 1440


def test_accept_cookie_with_data() -> None:
    ack = TCPSegment(80, 1111, PEER_ISS + 1, 3001, ACK, 100, b"early", timestamps=(55, 77))
    c = Connection.accept_cookie(
        cfg(),
        ack,
        iss=3000,
        peer_mss=1400,
        peer_wscale=3,
        sack_permitted=True,
        timestamps=True,
        mss=1440,
        now=0.0,
    )
    assert c.state is State.ESTABLISHED
    assert c.mss == 1400 - 12 and c.snd_shift == 3 and c.sack_ok and c.ts_ok
    assert c.snd_wnd == 800
    assert c.receive(100, 0.0) == b"early"
    ev = kinds(c)
    assert ev[0] is EventKind.CONNECTED and EventKind.READABLE in ev
    (a,) = c.take_segments()
    assert a.ack == PEER_ISS + 6 and a.timestamps is not None and a.timestamps[1] == 55


def test_rfc5961_old_ack_challenged() -> None:
    c, stats = active(ts=False, window=1000, wscale=0)
    # SND.UNA - MAX.SND.WND <= SEG.ACK is acceptable (a duplicate); older is challenged.
    c.on_segment(pseg(PEER_ISS + 1, 1001 - 1000, ACK, b"ok"), 1.0)
    assert c.receive(10, 1.0) == b"ok"
    c.take_segments()
    c.on_segment(pseg(PEER_ISS + 3, 1001 - 5000, ACK, b"no"), 1.1)
    assert c.readable == 0
    assert stats["drop_old_ack"] == 1 and stats["challenge_acks"] == 1
    assert len(c.take_segments()) == 1


def test_syn_in_time_wait_gets_challenge_ack() -> None:
    c, _stats = active(ts=False)
    c.shutdown(1.0)
    c.on_segment(pseg(PEER_ISS + 1, 1002, ACK | FIN), 1.1)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS - 100, 0, SYN), 2.0)  # older ISN: not a new incarnation
    (a,) = c.take_segments()
    assert a.flags == ACK and a.ack == PEER_ISS + 2
    assert c.state is State.TIME_WAIT


def test_writable_when_acked_and_window_opens() -> None:
    c, _ = active(cfg(send_buffer=3000), ts=False)
    assert c.send(b"x" * 5000, 1.0) == 3000
    assert c.send_space == 0
    c.take_events()
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 1440, ACK), 1.1)
    assert EventKind.WRITABLE in kinds(c)
    assert c.send_space == 1440
    assert c.send_queue_end == (1001 + 3000) & M


def test_no_timestamp_segment_dropped_once_negotiated() -> None:
    c, stats = active()
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, b"zzz"), 1.0)
    assert c.readable == 0 and stats["drop_no_timestamp"] == 1
    # RSTs are exempt.
    c.on_segment(pseg(PEER_ISS + 1, 0, RST), 1.1)
    assert c.state is State.CLOSED


def test_rst_in_syn_received_from_simultaneous_open_is_refused() -> None:
    c = Connection.connect(cfg(), local_port=1111, remote_port=80, iss=1000, mss=1440, now=0.0)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS, 0, SYN, mss=1440), 0.1)
    assert c.state is State.SYN_RECEIVED
    c.on_segment(pseg(PEER_ISS + 1, 0, RST), 0.2)
    ev = c.take_events()
    assert ev[0].error == "refused"


def test_window_scale_advertised_and_applied() -> None:
    c, _ = active(ts=False, wscale=2, window=1000)
    assert c.snd_wnd == 1000  # the SYN-ACK window is not scaled
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, window=1000), 1.0)
    assert c.snd_wnd == 4000
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, b"d"), 1.1)
    (a,) = c.take_segments()
    # The free space (receive buffer less the byte unread) scaled by our shift (5),
    # rounded down (RFC 7323 §2.3): rounding up would offer a byte that does not fit.
    assert a.window == ((1 << 20) - 1) >> 5


def test_close_in_syn_received_sends_fin_at_once() -> None:
    c, _ = passive()
    c.shutdown(0.05)
    assert c.state is State.FIN_WAIT_1
    (fin,) = c.take_segments()
    assert fin.flags == FIN | ACK and fin.seq == 3001
    # The SYN-ACK is still retransmitted by its timer.
    d = c.next_deadline
    assert d == pytest.approx(1.0)
    c.on_timer(d)
    (sa,) = c.take_segments()
    assert sa.flags == SYN | ACK and sa.seq == 3000
    c.on_segment(pseg(PEER_ISS + 1, 3002, ACK), 1.1)
    assert c.state is State.FIN_WAIT_2
    ev = kinds(c)
    assert ev[0] is EventKind.CONNECTED and EventKind.FIN_ACKED in ev


def test_dsack_reported_for_duplicate_data() -> None:
    c, _ = active(ts=False)
    p = PEER_ISS + 1
    c.on_segment(pseg(p, 1001, ACK, b"a" * 100), 1.0)
    c.take_segments()
    c.on_segment(pseg(p, 1001, ACK, b"a" * 100), 1.1)  # a spurious retransmission
    (a,) = c.take_segments()
    assert a.ack == p + 100
    assert a.sack_blocks == ((p, p + 100),)  # RFC 2883 D-SACK: below the ACK


def test_spurious_rto_undone_with_timestamps() -> None:
    c, stats = active()
    send_and_collect(c, b"q" * 14000, 1.0)
    ts_sent = c.tsval(1.0)
    cwnd = c.info().cwnd
    t = 1.0
    while stats["rto"] == 0:
        d = c.next_deadline
        assert d is not None
        t = d
        c.on_timer(t)
    assert c.info().cwnd == c.mss
    c.take_segments()
    # The ACK echoes the original transmission's timestamp: the timeout was spurious.
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 14000, ACK, timestamps=(900, ts_sent)), t + 0.01)
    assert stats["spurious_rto_undo"] == 1
    assert c.info().cwnd >= cwnd


def test_rack_reordering_window_grows_on_dsack() -> None:
    c, stats = active(cfg(rack_dsack="rfc8985"), ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    p = PEER_ISS + 1
    assert c.rec.rack.reo_wnd_mult == 1
    # A D-SACK for data below the cumulative ACK: a retransmission was spurious.
    c.on_segment(pseg(p, 1001 + 2880, ACK, sack_blocks=((1001, 1001 + 1440),)), 1.05)
    assert stats["dsack_received"] == 1
    assert c.rec.rack.reo_wnd_mult == 2 and c.rec.rack.reord


def test_rack_reordering_window_grows_on_dsack_only_after_reordering() -> None:
    # rack_dsack="linux" (the default, Linux's tcp_dsack_seen): without reordering
    # seen, a D-SACK is a lost ACK's duplicate, not a sign of reordering.
    c, stats = active(ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    p = PEER_ISS + 1
    c.on_segment(pseg(p, 1001 + 2880, ACK, sack_blocks=((1001, 1001 + 1440),)), 1.05)
    assert stats["dsack_received"] == 1
    assert c.rec.rack.reo_wnd_mult == 1 and not c.rec.rack.reord
    c.rec.rack.reord = True
    c.on_segment(pseg(p, 1001 + 4320, ACK, sack_blocks=((1001, 1001 + 2880),)), 1.06)
    assert stats["dsack_received"] == 2
    assert c.rec.rack.reo_wnd_mult == 2


def test_tlp_repairing_a_loss_reduces_cwnd() -> None:
    c, stats = active(ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 12960, ACK), 1.01)  # all but the last
    d = c.next_deadline
    assert d is not None
    c.on_timer(d)
    (probe,) = c.take_segments()
    assert probe.seq == 1001 + 12960 and stats["tlp"] == 1
    cwnd = c.info().cwnd
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 14400, ACK), d + 0.01)
    assert stats["tlp_recovery"] == 1
    assert c.info().cwnd < cwnd


def test_dsack_undoes_spurious_fast_recovery() -> None:
    c, stats = active(cfg(rack=False), ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    cwnd = c.info().cwnd
    p = PEER_ISS + 1
    for k in range(2, 6):
        c.on_segment(pseg(p, 1001, ACK, sack_blocks=((1001 + 1440, 1001 + 1440 * k),)), 1.05)
    segs = c.take_segments()
    assert segs[0].seq == 1001 and stats["fast_recovery"] == 1
    assert c.info().cwnd < cwnd
    # The original was only delayed: the receiver reports our retransmission as a
    # duplicate (D-SACK) with the ACK that ends recovery.
    c.on_segment(pseg(p, 1001 + 14400, ACK, sack_blocks=((1001, 1001 + 1440),)), 1.06)
    assert stats["spurious_recovery_undo"] == 1
    assert c.info().cwnd == cwnd


def test_rfc6675_rule3_retransmits_unsacked_below_highest_sack() -> None:
    c, stats = active(cfg(rack=False, congestion="cubic", hystart=False), ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    p = PEER_ISS + 1
    s = [1001 + 1440 * k for k in range(11)]  # segment k spans s[k]..s[k+1]
    # Segments 1..3 and 8 SACKed: segment 0 is lost (IsLost); ssthresh = 0.7 * 14400.
    # pipe = 5 segments < ssthresh: PRR-SSRB allows two: the lost segment (rule 1),
    # then, with no new data, un-SACKed data below the highest SACK (rule 3).
    c.on_segment(pseg(p, 1001, ACK, sack_blocks=((s[1], s[4]), (s[8], s[9]))), 1.05)
    assert [x.seq for x in c.take_segments()] == [s[0], s[4]]
    # Segment 9 SACKed too; 5..7 still have too few SACKed segments above to be lost.
    c.on_segment(pseg(p, 1001, ACK, sack_blocks=((s[1], s[4]), (s[8], s[10]))), 1.06)
    assert [x.seq for x in c.take_segments()] == [s[5], s[6]]
    assert stats["rule3_retransmits"] == 3
    c.sb.check()


def test_sender_sws_override_timer() -> None:
    c, _ = active(ts=False, wscale=None)
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK, window=500), 1.0)
    assert c.send(b"w" * 2880, 1.1) == 2880
    assert c.take_segments() == []  # 500 < max window / 2: wait
    d = c.next_deadline
    assert d == pytest.approx(1.3)
    c.on_timer(d)
    (seg,) = c.take_segments()
    assert seg.seq == 1001 and len(seg.payload) == 500
    # A full segment goes at once.
    c.on_segment(pseg(PEER_ISS + 1, 1501, ACK, window=40000), 1.4)
    # The small 500-byte segment was acknowledged: Minshall's Nagle lets the tail go.
    assert [len(x.payload) for x in c.take_segments()] == [1440, 940]


def _rto_now(c: Connection, stats: Counter[str]) -> float:
    t = 0.0
    while stats["rto"] == 0:
        d = c.next_deadline
        assert d is not None
        t = d
        c.on_timer(t)
    return t


def test_frto_detects_spurious_timeout() -> None:
    c, stats = active(ts=False, sack=False)
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK), 0.5)
    send_and_collect(c, b"q" * 30000, 1.0)  # 10 segments out, more queued
    cwnd = c.info().cwnd
    t = _rto_now(c, stats)
    (rtx,) = c.take_segments()
    assert rtx.seq == 1001
    # First ACK advances SND.UNA: F-RTO sends two new segments instead.
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 2880, ACK), t + 0.01)
    segs = c.take_segments()
    assert [s.seq for s in segs] == [1001 + 14400, 1001 + 15840]
    # Second ACK advances it again: the originals arrived, the timeout was spurious.
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 5760, ACK), t + 0.02)
    assert stats["frto_spurious_rto"] == 1
    assert c.info().ca_state == "open"
    assert c.info().cwnd >= cwnd


def test_frto_falls_back_on_duplicate_ack() -> None:
    c, stats = active(ts=False, sack=False)
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK), 0.5)
    send_and_collect(c, b"q" * 30000, 1.0)
    t = _rto_now(c, stats)
    c.take_segments()
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 1440, ACK), t + 0.01)
    assert len(c.take_segments()) == 2  # new data probes
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 1440, ACK), t + 0.02)  # duplicate ACK
    segs = c.take_segments()
    assert segs and segs[0].seq == 1001 + 1440  # conventional: retransmit the hole
    assert stats["frto_spurious_rto"] == 0
    assert c.info().ca_state == "loss"


def test_paws_accepts_disordered_duplicate_ack() -> None:
    c, stats = active()
    send_and_collect(c, b"q" * 14400, 1.0)
    p = PEER_ISS + 1
    mss = c.mss  # 1428: the blocks cover whole segments (a part of one is ignored)
    first = (1001 + mss, 1001 + 2 * mss)
    c.on_segment(pseg(p, 1001, ACK, sack_blocks=(first,), timestamps=(700, 0)), 1.05)
    # An older duplicate ACK overtaken by the one above still brings its SACK block.
    second = (1001 + 2 * mss, 1001 + 3 * mss)
    c.on_segment(pseg(p, 1001, ACK, sack_blocks=(second,), timestamps=(690, 0)), 1.05)
    assert stats["paws_disordered_ack"] == 1 and stats["drop_paws"] == 0
    assert c.info().sacked == 2 * mss  # both blocks were taken
    # Data with an old timestamp is still dropped.
    c.on_segment(pseg(p, 1001, ACK, b"x", timestamps=(690, 0)), 1.06)
    assert stats["drop_paws"] == 1 and c.readable == 0


def test_pmtu_learnt_before_the_synack_is_kept() -> None:
    c = Connection.connect(cfg(), local_port=1111, remote_port=80, iss=1000, mss=8000, now=0.0)
    c.take_segments()
    c.set_path_mtu(1500, 0.05)
    c.on_segment(pseg(PEER_ISS, 1001, SYN | ACK, mss=8000), 0.1)
    assert c.state is State.ESTABLISHED
    assert c.mss == 1440


def test_rst_with_data_starting_before_rcv_nxt_is_challenged() -> None:
    c, stats = active(ts=False)
    c.on_segment(pseg(PEER_ISS - 10, 0, RST, b"x" * 50), 1.0)
    assert c.state is State.ESTABLISHED
    assert stats["challenge_acks"] == 1


def test_dsack_of_network_duplicated_original_does_not_undo_recovery() -> None:
    # A real loss (segment 0) starts fast recovery; the network also duplicated the
    # ORIGINAL segment 1 (never retransmitted), so the ACK ending recovery carries a
    # D-SACK for it. That says nothing about our retransmission of segment 0, which
    # repaired a real loss: the window reduction must stay (RFC 3708 §3, Linux
    # decrements undo_retrans only for D-SACKed retransmissions).
    c, stats = active(cfg(rack=False), ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    cwnd = c.info().cwnd
    p = PEER_ISS + 1
    for k in range(2, 6):
        c.on_segment(pseg(p, 1001, ACK, sack_blocks=((1001 + 1440, 1001 + 1440 * k),)), 1.05)
    segs = c.take_segments()
    assert [x.seq for x in segs if x.seq < 1001 + 14400] == [1001]
    assert stats["fast_recovery"] == 1
    reduced = c.info().cwnd
    assert reduced < cwnd
    c.on_segment(pseg(p, 1001 + 14400, ACK, sack_blocks=((1001 + 1440, 1001 + 2880),)), 1.06)
    assert stats["dsack_received"] == 1 and stats["recovery_exits"] == 1
    assert stats["spurious_recovery_undo"] == 0
    assert c.info().cwnd < cwnd


def test_repeated_dsack_of_one_retransmission_counts_once() -> None:
    # Segments 0 and 1 are lost and both retransmitted. Segment 0's original was only
    # delayed: its retransmission is D-SACKed, and the D-SACK repeats (the network
    # duplicated the retransmission). Segment 1's retransmission was needed, so the
    # recovery was real and must not be undone.
    c, stats = active(cfg(rack=False), ts=False)
    send_and_collect(c, b"q" * 14400, 1.0)
    cwnd = c.info().cwnd
    p = PEER_ISS + 1
    s = [1001 + 1440 * k for k in range(11)]
    for k in range(3, 7):
        c.on_segment(pseg(p, 1001, ACK, sack_blocks=((s[2], s[k]),)), 1.05)
    rtx = [x.seq for x in c.take_segments() if x.seq < s[10]]
    assert rtx == [s[0], s[1]] and stats["fast_recovery"] == 1
    # Partial ACK for segment 0 with a D-SACK of its retransmission, twice.
    c.on_segment(pseg(p, s[1], ACK, sack_blocks=((s[0], s[1]), (s[2], s[6]))), 1.06)
    c.on_segment(pseg(p, s[1], ACK, sack_blocks=((s[0], s[1]), (s[2], s[6]))), 1.061)
    assert stats["dsack_received"] == 2
    c.on_segment(pseg(p, s[10], ACK), 1.07)
    assert stats["recovery_exits"] == 1
    assert stats["spurious_recovery_undo"] == 0
    assert c.info().cwnd < cwnd


def test_tlp_with_sacked_tail_leaves_the_rto_armed() -> None:
    """RFC 8985 §7.3: a probe timeout that finds the last segment already SACKed
    sends nothing, and the RTO must stay armed (not turn back into a probe timer):
    the un-SACKed hole below the tail, retransmitted after the tail was sent (so
    RACK can never mark it lost), is then resent by the RTO in bounded time."""
    c, stats = active()
    una = c.snd_una
    c.send(bytes(2 * 1428), 1.0)
    a, b = c.take_segments()
    assert b.timestamps is not None
    # The hole's record as a retransmission sent after the tail (its original was
    # lost): RACK's newest delivered transmission is older, so it marks nothing.
    c.sb.mark_resent(0, 1.004)
    sack = ((b.seq, (b.seq + len(b.payload)) & M),)
    c.on_segment(
        pseg(PEER_ISS + 1, una, sack_blocks=sack, timestamps=(700, b.timestamps[0])), 1.005
    )
    assert c.take_segments() == []
    assert c.info().ca_state == "open"
    resent_at = None
    now = 1.005
    for _ in range(1000):
        deadline = c.next_deadline
        assert deadline is not None
        now = deadline
        c.on_timer(now)
        if any(s.seq == a.seq and s.payload for s in c.take_segments()):
            resent_at = now
            break
    assert resent_at is not None, f"hole never resent ({stats['tlp']} probes)"
    assert stats["rto"] == 1
    assert resent_at <= 1.005 + 2 * c.info().rto
