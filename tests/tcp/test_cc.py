"""Congestion control: NewReno (RFC 5681/6582), CUBIC (RFC 9438), HyStart++ (RFC 9406).

A small model of a window-limited sender drives the controllers: it keeps ``cwnd``
bytes in flight, every ACK acknowledges ``ack_bytes`` and the sender refills the
window at once; a round is the time for the data outstanding at its start to be
acknowledged, which matches how HyStart++ delimits rounds by sequence numbers.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.cc import (
    INFINITE_SSTHRESH,
    CongestionControl,
    CongestionControlBase,
    initial_window_bytes,
    make_congestion_control,
)
from trio_tcp6.tcp.cc.base import state_names
from trio_tcp6.tcp.cc.cubic import ALPHA_CUBIC, BETA_CUBIC, C, Cubic
from trio_tcp6.tcp.cc.hystart import CSS_ROUNDS, HyStartPhase, HyStartPlusPlus
from trio_tcp6.tcp.cc.newreno import NewReno
from trio_tcp6.tcp.connection import Connection

MSS = 1000


class Sender:
    """A greedy sender: the window is always full."""

    def __init__(self, cc: CongestionControl, *, now: float = 0.0, iss: int = 1) -> None:
        self.cc = cc
        self.now = now
        self.snd_una = iss
        self.snd_nxt = iss + cc.cwnd

    def round(self, rtt: float, ack_bytes: int = MSS, app_limit: int | None = None) -> None:
        """One round trip: every byte outstanding now gets acknowledged over ``rtt``."""
        end = self.snd_nxt
        n = max(1, (end - self.snd_una) // ack_bytes)
        while self.snd_una < end:
            acked = min(ack_bytes, end - self.snd_una)
            self.snd_una += acked
            self.now += rtt / n
            self.cc.on_ack(
                acked, self.now, rtt, self.snd_una, self.snd_nxt, self.snd_nxt - self.snd_una
            )
            window = self.cc.cwnd if app_limit is None else min(self.cc.cwnd, app_limit)
            self.snd_nxt = max(self.snd_nxt, self.snd_una + window)

    @property
    def in_flight(self) -> int:
        return self.snd_nxt - self.snd_una


# -- shared -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mss", "iw", "expected"),
    [
        (1460, 10, 14600),
        (1220, 10, 12200),
        (9000, 10, 18000),  # min(90000, max(18000, 14600))
        (500, 10, 5000),
        (1460, 1, 1460),
        (1460, 2, 2920),
    ],
)
def test_initial_window_rfc6928(mss: int, iw: int, expected: int) -> None:
    assert initial_window_bytes(mss, iw) == expected
    for name in ("newreno", "cubic"):
        cc = make_congestion_control(name, mss=mss, initial_window=iw)
        assert cc.cwnd == expected
        assert cc.ssthresh == INFINITE_SSTHRESH
        assert cc.in_slow_start()


def test_factory() -> None:
    assert isinstance(make_congestion_control("newreno", mss=MSS), NewReno)
    assert isinstance(make_congestion_control("cubic", mss=MSS), Cubic)
    assert isinstance(make_congestion_control("cubic", mss=MSS), CongestionControl)
    with pytest.raises(ValueError):
        make_congestion_control("vegas", mss=MSS)


# -- NewReno ------------------------------------------------------------------------


def test_newreno_slow_start_doubles_per_round() -> None:
    cc = NewReno(mss=MSS, hystart=False)
    s = Sender(cc)
    for expected_segments in (20, 40, 80, 160):
        s.round(0.05)
        assert cc.cwnd == expected_segments * MSS


def test_newreno_slow_start_with_delayed_acks_still_doubles() -> None:
    # ABC (RFC 3465): an ACK for 2 segments grows cwnd by 2 SMSS.
    cc = NewReno(mss=MSS, hystart=False)
    s = Sender(cc)
    s.round(0.05, ack_bytes=2 * MSS)
    assert cc.cwnd == 20 * MSS


def test_abc_limit_l2() -> None:
    cc = NewReno(mss=MSS, hystart=False, abc_limit=2)
    cc.on_ack(8 * MSS, 0.0, None, 8 * MSS, 20 * MSS, 10 * MSS)  # stretch ACK
    assert cc.cwnd == 12 * MSS  # + min(8, L=2) SMSS (RFC 3465)


def test_abc_limit_default_is_rfc9406_l8() -> None:
    cc = NewReno(mss=MSS, hystart=False)
    cc.on_ack(9 * MSS, 0.0, None, 9 * MSS, 20 * MSS, 10 * MSS)  # stretch ACK
    assert cc.cwnd == 18 * MSS  # + min(9, L=8) SMSS (RFC 9406 §4.3, not paced)


def test_slow_start_stops_at_ssthresh() -> None:
    cc = NewReno(mss=MSS, hystart=False)
    cc.ssthresh = 11 * MSS
    cc.on_ack(2 * MSS, 0.0, None, 0, 10 * MSS, 10 * MSS)
    assert cc.cwnd == 11 * MSS
    assert not cc.in_slow_start()


def test_newreno_congestion_avoidance_one_mss_per_round() -> None:
    cc = NewReno(mss=MSS, hystart=False)
    cc.cwnd = cc.ssthresh = 20 * MSS
    s = Sender(cc)
    for _ in range(10):
        s.round(0.05)
    assert cc.cwnd == 30 * MSS
    assert not cc.in_slow_start()


def test_no_growth_when_application_limited() -> None:
    for name in ("newreno", "cubic"):
        cc = make_congestion_control(name, mss=MSS, hystart=False)
        s = Sender(cc)
        s.snd_nxt = s.snd_una + 3 * MSS
        for _ in range(5):
            s.round(0.05, app_limit=3 * MSS)  # uses 3 of 10 segments
        assert cc.cwnd == 10 * MSS, name
        cc.cwnd = cc.ssthresh = 40 * MSS  # and in congestion avoidance
        for _ in range(20):
            s.round(0.05, app_limit=5 * MSS)
        assert cc.cwnd == 40 * MSS, name


def test_newreno_loss_eq4() -> None:
    cc = NewReno(mss=MSS)
    cc.cwnd = 40 * MSS
    cc.on_congestion_event(1.0, in_flight=30 * MSS)
    assert cc.ssthresh == 15 * MSS  # FlightSize / 2, not cwnd / 2
    cc.on_recovery_exit(1.5)
    assert cc.cwnd == 15 * MSS
    assert not cc.in_slow_start()
    cc.on_congestion_event(2.0, in_flight=MSS)
    assert cc.ssthresh == 2 * MSS  # floor of eq. (4)


def test_newreno_rto() -> None:
    cc = NewReno(mss=MSS)
    cc.cwnd = 40 * MSS
    cc.on_rto(1.0, in_flight=40 * MSS)
    assert cc.cwnd == MSS  # loss window
    assert cc.ssthresh == 20 * MSS
    assert cc.in_slow_start()
    cc.on_rto(3.0, in_flight=MSS, repeated=True)  # ssthresh held (RFC 5681 §3.1)
    assert cc.ssthresh == 20 * MSS and cc.cwnd == MSS
    cc.on_rto(7.0, in_flight=MSS)
    assert cc.ssthresh == 2 * MSS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_save_restore_undoes_rto_and_recovery(name: str) -> None:
    cc = make_congestion_control(name, mss=MSS)
    s = Sender(cc)
    for _ in range(3):
        s.round(0.05)
    cc.on_congestion_event(s.now, s.in_flight)
    cc.on_recovery_exit(s.now + 0.05)
    for _ in range(5):
        s.round(0.05)
    before = (cc.cwnd, cc.ssthresh)
    snap = cc.save()
    cc.on_rto(s.now, s.in_flight)
    assert cc.cwnd == MSS
    cc.restore(snap)
    assert (cc.cwnd, cc.ssthresh) == before
    snap = cc.save()
    cc.on_congestion_event(s.now, s.in_flight)
    cc.on_recovery_exit(s.now)
    cc.restore(snap)
    assert (cc.cwnd, cc.ssthresh) == before
    # The restored controller keeps working and the snapshot can be reused.
    s.round(0.05)
    assert cc.cwnd >= before[0]
    cc.restore(snap)
    assert (cc.cwnd, cc.ssthresh) == before
    with pytest.raises(TypeError):
        cc.restore(object())


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_idle_restart(name: str) -> None:
    cc = make_congestion_control(name, mss=MSS)
    cc.cwnd = 50 * MSS
    cc.on_idle_restart(10.0, 1.0)
    assert cc.cwnd == 10 * MSS
    cc.cwnd = 3 * MSS
    cc.on_idle_restart(20.0, 1.0)
    assert cc.cwnd == 3 * MSS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_set_mss_keeps_segments(name: str) -> None:
    cc = make_congestion_control(name, mss=1440)
    cc.cwnd = 20 * 1440
    cc.ssthresh = 15 * 1440
    cc.set_mss(1220)
    assert cc.mss == 1220
    assert cc.cwnd == 20 * 1220
    assert cc.ssthresh == 15 * 1220
    with pytest.raises(ValueError):
        cc.set_mss(0)


# -- CUBIC --------------------------------------------------------------------------


def cubic_after_loss(w_max_segments: int, rtt: float, **kw: bool) -> tuple[Cubic, Sender]:
    cc = Cubic(mss=MSS, hystart=False, **kw)
    cc.cwnd = w_max_segments * MSS
    cc.ssthresh = cc.cwnd
    s = Sender(cc)
    cc.on_congestion_event(s.now, s.in_flight)
    cc.on_recovery_exit(s.now)
    s.snd_nxt = s.snd_una + cc.cwnd
    return cc, s


def test_cubic_multiplicative_decrease() -> None:
    cc, _ = cubic_after_loss(100, 0.1)
    assert cc.w_max == 100 * MSS
    assert cc.ssthresh == 70 * MSS
    assert cc.cwnd == 70 * MSS
    assert not cc.in_slow_start()


def test_cubic_follows_the_cubic_curve() -> None:
    # W_max = 1000 segments, RTT 100 ms: K = 9.1 s, far above the Reno-friendly
    # estimate (about 750 segments at K), so cwnd follows W_cubic.
    rtt = 0.1
    w_max = 1000
    cc, s = cubic_after_loss(w_max, rtt)
    s.round(rtt)  # first CA ACK starts the epoch
    k = (w_max * (1 - BETA_CUBIC) / C) ** (1 / 3)  # eq. (2) with cwnd_epoch = beta * W_max
    assert cc.k == pytest.approx(k, rel=1e-6)
    assert cc.epoch_start is not None
    epoch = cc.epoch_start
    samples = []
    while s.now - epoch < 1.6 * k:
        s.round(rtt, ack_bytes=4 * MSS)
        t = s.now - epoch
        w_cubic = C * (t - k) ** 3 + w_max  # segments
        samples.append((t, cc.cwnd / MSS, w_cubic))
    for t, cwnd, w in samples:
        # cwnd aims at W_cubic(t + RTT): it tracks the curve within a few segments.
        assert w - 5 <= cwnd <= C * (t + rtt - k) ** 3 + w_max + 1, (t, cwnd, w)
    at_k = min(samples, key=lambda x: abs(x[0] - k))
    assert at_k[1] == pytest.approx(w_max, rel=0.01)  # W(K) = W_max
    # Concave then convex: growth per round is smallest around K.
    growth = [b[1] - a[1] for a, b in itertools.pairwise(samples)]
    i_k = samples.index(at_k)
    assert growth[i_k - 1] < growth[0]
    assert growth[i_k - 1] < growth[-1]


def test_cubic_fast_convergence() -> None:
    cc, s = cubic_after_loss(100, 0.1)
    cc.cwnd = 80 * MSS  # a second loss before reaching W_max again
    cc.on_congestion_event(s.now, 80 * MSS)
    assert cc.w_max == pytest.approx(80 * MSS * (1 + BETA_CUBIC) / 2)  # 68 segments
    assert cc.ssthresh == 56 * MSS
    cc2, s2 = cubic_after_loss(100, 0.1, fast_convergence=False)
    cc2.cwnd = 80 * MSS
    cc2.on_congestion_event(s2.now, 80 * MSS)
    assert cc2.w_max == 80 * MSS
    # A loss above the old W_max simply records the new maximum.
    cc.cwnd = 120 * MSS
    cc.on_congestion_event(s.now, 120 * MSS)
    assert cc.w_max == 120 * MSS


def test_cubic_reno_friendly_region() -> None:
    # Short RTT: Reno's 0.53 segment per RTT outruns the cubic curve (K = 4.2 s).
    rtt = 0.002
    cc, s = cubic_after_loss(100, rtt)
    s.round(rtt)
    epoch = cc.epoch_start
    assert epoch is not None
    start = cc.cwnd / MSS
    rounds = 40
    for _ in range(rounds):
        s.round(rtt)
    t = s.now - epoch
    w_cubic = C * (t - cc.k) ** 3 + 100
    cwnd = cc.cwnd / MSS
    assert cwnd > w_cubic + 10
    # W_est grows alpha_cubic segments per round (RFC 9438 §4.3 eq. 4).
    assert cwnd == pytest.approx(start + ALPHA_CUBIC * rounds, abs=1.5)
    # Once W_est reaches cwnd_prev (W_max here) alpha becomes 1: one segment per round.
    while cc.cwnd < 100 * MSS:
        s.round(rtt)
    assert cc.alpha_cubic == 1.0
    before = cc.cwnd
    for _ in range(10):
        s.round(rtt)
    assert (cc.cwnd - before) / MSS == pytest.approx(10, abs=1.5)


def test_cubic_rto_then_k_zero_epoch() -> None:
    cc = Cubic(mss=MSS, hystart=False)
    cc.cwnd = cc.ssthresh = 100 * MSS
    s = Sender(cc)
    cc.on_rto(0.0, in_flight=100 * MSS)
    assert cc.cwnd == MSS
    assert cc.ssthresh == 70 * MSS
    s.snd_nxt = s.snd_una + cc.cwnd
    while cc.in_slow_start():
        s.round(0.1)
    s.round(0.1)
    assert cc.k == 0.0  # §4.8: K = 0, W_max = cwnd at the start of CA
    assert cc.w_max == pytest.approx(70 * MSS, rel=0.05)
    before = cc.cwnd
    for _ in range(10):
        s.round(0.1)
    assert cc.cwnd > before  # convex growth from the start


def test_cubic_app_limited_time_does_not_count() -> None:
    rtt = 0.1
    a, sa = cubic_after_loss(100, rtt)
    b, sb = cubic_after_loss(100, rtt)
    for _ in range(5):
        sa.round(rtt)
        sb.round(rtt)
    for _ in range(2):  # the window drains
        sb.round(rtt, app_limit=10 * MSS)
    frozen = b.cwnd
    for _ in range(100):  # 10 s of application-limited traffic for b
        sb.round(rtt, app_limit=10 * MSS)
    assert b.cwnd == frozen
    sa.round(rtt)
    sa.round(rtt)
    sb.round(rtt)
    # Without the freeze, b would jump far beyond W_max (t ~ 10 s > K + 5 s).
    assert b.cwnd == pytest.approx(a.cwnd, rel=0.05)
    assert b.cwnd < 100 * MSS


def test_cubic_hystart_exit_sets_k_zero() -> None:
    cc = Cubic(mss=MSS)
    s = Sender(cc)
    for _ in range(3):
        s.round(0.05)
    for _ in range(3 + CSS_ROUNDS):
        s.round(0.08)
    assert not cc.in_slow_start()
    assert cc.ssthresh == cc.cwnd or cc.cwnd > cc.ssthresh
    s.round(0.08)
    assert cc.k == 0.0
    assert cc.alpha_cubic == 1.0


# -- HyStart++ ----------------------------------------------------------------------


def test_hystart_flat_rtt_never_exits() -> None:
    cc = NewReno(mss=MSS)
    s = Sender(cc)
    for i in range(8):
        s.round(0.05)
        assert cc.cwnd == 10 * MSS * 2 ** (i + 1)
    assert cc.hystart is not None and not cc.hystart.in_css
    assert cc.ssthresh == INFINITE_SSTHRESH


def test_hystart_rtt_increase_triggers_css_then_exit() -> None:
    cc = NewReno(mss=MSS)
    s = Sender(cc)
    for _ in range(3):
        s.round(0.05)
    assert cc.cwnd == 80 * MSS
    s.round(0.07)  # +20 ms > RttThresh = max(4 ms, min(50/8 ms, 16 ms)) = 6.25 ms
    hs = cc.hystart
    assert hs is not None and hs.in_css
    assert hs.css_baseline_min_rtt == 0.07
    assert 80 * MSS < cc.cwnd < 160 * MSS  # CSS cut the doubling short
    assert cc.in_slow_start()
    # CSS growth: a quarter of slow start per ACK, i.e. x1.25 per round.
    before = cc.cwnd
    s.round(0.07)
    assert cc.cwnd == pytest.approx(before * 1.25, rel=0.01)
    rounds = 1
    while cc.in_slow_start():
        assert hs.in_css
        s.round(0.07)
        rounds += 1
    # Exit after CSS_ROUNDS rounds (this model's rounds and the sequence-delimited
    # rounds of HyStart++ are offset by an ACK or so).
    assert CSS_ROUNDS - 1 <= rounds <= CSS_ROUNDS
    assert hs.done and not hs.in_css
    # ssthresh = cwnd at the exit; the rest of that round was congestion avoidance.
    assert cc.ssthresh <= cc.cwnd <= cc.ssthresh + MSS
    before = cc.cwnd
    s.round(0.07)
    assert 0 < cc.cwnd - before <= MSS


def test_hystart_spurious_increase_resumes_slow_start() -> None:
    cc = NewReno(mss=MSS)
    s = Sender(cc)
    for _ in range(3):
        s.round(0.05)
    s.round(0.07)
    assert cc.hystart is not None and cc.hystart.in_css
    s.round(0.05)  # RTT back below the CSS baseline
    assert not cc.hystart.in_css
    before = cc.cwnd
    s.round(0.05)
    assert cc.cwnd == 2 * before
    assert cc.ssthresh == INFINITE_SSTHRESH


def test_hystart_small_increase_below_threshold_ignored() -> None:
    cc = NewReno(mss=MSS)
    s = Sender(cc)
    for _ in range(3):
        s.round(0.05)
    s.round(0.055)  # +5 ms < 6.25 ms
    assert cc.hystart is not None and not cc.hystart.in_css
    assert cc.cwnd == 160 * MSS


def test_hystart_needs_n_rtt_samples() -> None:
    hs = HyStartPlusPlus()
    una, nxt = 0, 10
    for _ in range(10):  # round 1: baseline 50 ms
        assert hs.on_ack(0.05, una, nxt) is HyStartPhase.SLOW_START
    una, nxt = 10, 30
    phases = [hs.on_ack(0.1, una, nxt) for _ in range(8)]
    assert phases[:7] == [HyStartPhase.SLOW_START] * 7
    assert phases[7] is HyStartPhase.CSS


def test_hystart_only_in_initial_slow_start() -> None:
    cc = NewReno(mss=MSS)
    s = Sender(cc)
    cc.on_rto(0.0, in_flight=100 * MSS)  # ssthresh 50 MSS: standard slow start now
    s.snd_nxt = s.snd_una + cc.cwnd
    for rtt in (0.05, 0.05, 0.05, 0.2, 0.2):
        s.round(rtt)
    assert cc.hystart is not None and not cc.hystart.in_css
    assert cc.cwnd >= 32 * MSS


def test_hystart_sequence_wraparound() -> None:
    hs = HyStartPlusPlus()
    una = 0xFFFFFF00
    nxt = (una + 10_000) & 0xFFFFFFFF
    hs.on_ack(0.05, una, nxt)
    assert hs.window_end == nxt
    hs.on_ack(0.05, (una + 100) & 0xFFFFFFFF, (nxt + 100) & 0xFFFFFFFF)
    assert hs.window_end == nxt  # not yet past the round end across the wrap
    hs.on_ack(0.05, nxt, (nxt + 500) & 0xFFFFFFFF)
    assert hs.window_end == (nxt + 500) & 0xFFFFFFFF


# -- properties ---------------------------------------------------------------------


events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(1, 4 * MSS), st.integers(0, 200 * MSS)),
        st.tuples(st.just("loss"), st.just(0), st.integers(0, 200 * MSS)),
        st.tuples(st.just("exit"), st.just(0), st.just(0)),
        st.tuples(st.just("rto"), st.just(0), st.integers(0, 200 * MSS)),
        st.tuples(st.just("idle"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@given(st.sampled_from(["newreno", "cubic"]), st.booleans(), events)
def test_invariants(name: str, hystart: bool, evs: list[tuple[str, int, int]]) -> None:
    cc = make_congestion_control(name, mss=MSS, hystart=hystart)
    now = 0.0
    una = nxt = 5
    for kind, n, flight in evs:
        now += 0.01
        if kind == "ack":
            una += n
            nxt = max(nxt, una + flight)
            cc.on_ack(n, now, 0.05, una, nxt, flight)
        elif kind == "loss":
            cc.on_congestion_event(now, flight)
        elif kind == "exit":
            cc.on_recovery_exit(now)
        elif kind == "rto":
            cc.on_rto(now, flight)
        else:
            cc.on_idle_restart(now, 1.0)
        assert cc.cwnd >= MSS
        assert cc.ssthresh >= 2 * MSS
        assert cc.cwnd <= 10 * MSS + 2 * MSS * len(evs) + 200 * MSS


def test_cubic_w_max_is_the_window_used() -> None:
    # Receive-window-limited at the loss: slow start grew cwnd to 44 segments while
    # 22 were in flight. W_max (and cwnd_prev) is the 22 the flow used, not the 44
    # it never sent, so the curve plateaus at 22 (RFC 9438 §4.2, §5.8).
    cc = Cubic(mss=MSS, hystart=False)
    cc.cwnd = 44 * MSS
    cc.on_congestion_event(1.0, 22 * MSS)
    assert cc.w_max == 22 * MSS
    assert cc.cwnd_prev == 22 * MSS
    assert cc.ssthresh == int(22 * MSS * BETA_CUBIC)
    # cwnd-limited (the flight is cwnd, or loss_response="cwnd"): W_max = cwnd.
    cc2 = Cubic(mss=MSS, hystart=False)
    cc2.cwnd = 44 * MSS
    cc2.on_congestion_event(1.0, 44 * MSS)
    assert cc2.w_max == 44 * MSS


# -- the extension point: algorithms written in plain Python ----------------------------
# In the compiled build the built-in controllers are native classes; these check that
# interpreted subclasses still work there as in the pure build: their overrides are
# the ones called (by the test and by the compiled engine), and undo covers their own
# state, in slots and in a __dict__.


class CountingReno(NewReno):
    """NewReno that grows by half a segment per window and counts its ACKs."""

    __slots__ = ("avoidance_acks",)

    def __init__(self, *, mss: int) -> None:
        super().__init__(mss=mss)
        self.avoidance_acks = 0

    def _congestion_avoidance(
        self, acked: int, now: float, rtt: float | None, limited: bool
    ) -> None:
        self.avoidance_acks += 1
        self.bytes_acked += acked
        if self.bytes_acked >= 2 * self.cwnd:
            self.bytes_acked -= 2 * self.cwnd
            self.cwnd += self.mss


class Fixed(CongestionControlBase):
    """A controller of its own, without slots: its state lives in a __dict__."""

    def __init__(self, *, mss: int) -> None:
        super().__init__(mss=mss, hystart=False)
        self.losses = 0
        self.acked_total = 0

    def on_ack(
        self, acked: int, now: float, rtt: float | None, snd_una: int, snd_nxt: int, in_flight: int
    ) -> None:
        self.acked_total += acked

    def on_congestion_event(self, now: float, in_flight: int) -> None:
        self.losses += 1
        self.ssthresh = self.reno_ssthresh(in_flight)


def test_interpreted_subclass_override_is_called() -> None:
    cc = CountingReno(mss=MSS)
    cc.ssthresh = cc.cwnd  # straight into congestion avoidance
    s = Sender(cc)
    for _ in range(4):
        s.round(0.05)
    assert cc.avoidance_acks == 10 + 10 + 11 + 11  # one per segment acknowledged
    assert cc.cwnd == 12 * MSS  # half NewReno's growth: +1 SMSS per two windows


def test_undo_restores_a_subclass_slot_and_dict() -> None:
    cc = CountingReno(mss=MSS)
    cc.ssthresh = cc.cwnd
    s = Sender(cc)
    s.round(0.05)
    snap = cc.save()
    before = (cc.cwnd, cc.ssthresh, cc.avoidance_acks, cc.bytes_acked)
    s.round(0.05)
    cc.on_congestion_event(s.now, s.in_flight)
    assert (cc.cwnd, cc.ssthresh, cc.avoidance_acks, cc.bytes_acked) != before
    cc.restore(snap)
    assert (cc.cwnd, cc.ssthresh, cc.avoidance_acks, cc.bytes_acked) == before

    fixed = Fixed(mss=MSS)
    fixed.on_ack(5 * MSS, 0.1, 0.05, 5 * MSS, 15 * MSS, 10 * MSS)
    snap = fixed.save()
    fixed.on_congestion_event(0.2, 10 * MSS)
    fixed.on_ack(MSS, 0.3, 0.05, 6 * MSS, 15 * MSS, 9 * MSS)
    fixed.restore(snap)
    assert (fixed.acked_total, fixed.losses, fixed.ssthresh) == (5 * MSS, 0, INFINITE_SSTHRESH)


def test_engine_calls_an_interpreted_subclass() -> None:
    """The engine (compiled in the compiled build) calls the subclass's override."""
    config = TCPConfig(send_buffer=1 << 20, receive_buffer=1 << 20)
    a = Connection.connect(config, local_port=1, remote_port=2, iss=1, mss=MSS, now=0.0)
    b = Connection.accept(config, a.take_segments()[0], iss=99, mss=MSS, now=0.0)
    for seg in b.take_segments():
        a.on_segment(seg, 0.0)
    for seg in a.take_segments():
        b.on_segment(seg, 0.0)
    cc = CountingReno(mss=a.cc.mss)
    cc.ssthresh = cc.cwnd
    a.cc = cc
    now, sent, received = 0.0, 0, 0
    total = 200 * MSS
    while received < total:
        now += 0.01
        sent += a.send(bytes(min(a.send_space, total - sent)), now)
        for seg in a.take_segments():
            b.on_segment(seg, now)
        received += len(b.receive(1 << 30, now))
        if b.next_deadline is not None and b.next_deadline <= now:
            b.on_timer(now)
        for seg in b.take_segments():
            a.on_segment(seg, now)
    assert cc.avoidance_acks > 0
    assert cc.cwnd > 10 * MSS


def test_hystart_copy_is_equal_field_by_field() -> None:
    hs = HyStartPlusPlus()
    for i in range(20):
        hs.on_ack(0.01 + i * 0.002, 100 * i, 100 * i + 1000)
    copy = hs.copy()
    names = state_names(HyStartPlusPlus)
    assert len(names) == 8
    assert [getattr(copy, n) for n in names] == [getattr(hs, n) for n in names]
    copy.on_ack(0.5, 5000, 6000)
    assert [getattr(copy, n) for n in names] != [getattr(hs, n) for n in names]
