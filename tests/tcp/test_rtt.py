"""RFC 6298 RTT estimation: numbers worked by hand from §2 and §5."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_tcp6.tcp.rtt import RTTEstimator


def est(min_rto: float = 0.2, max_rto: float = 120.0, g: float = 0.001) -> RTTEstimator:
    return RTTEstimator(initial_rto=1.0, min_rto=min_rto, max_rto=max_rto, granularity=g)


def test_initial_rto_before_any_sample() -> None:
    e = est()
    assert e.srtt is None and e.latest_rtt is None and e.min_rtt is None
    assert e.rto == 1.0  # §2.1
    assert e.backoff_count == 0


def test_first_sample() -> None:
    # §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, K*RTTVAR)
    e = est()
    e.sample(0.1)
    assert e.srtt == pytest.approx(0.1)
    assert e.rttvar == pytest.approx(0.05)
    assert e.rto == pytest.approx(0.1 + 4 * 0.05)
    assert e.latest_rtt == 0.1 and e.min_rtt == 0.1


def test_subsequent_samples_worked_by_hand() -> None:
    e = est()
    e.sample(0.1)
    e.sample(0.2)
    # RTTVAR = 3/4*0.05 + 1/4*|0.1 - 0.2| = 0.0625 (old SRTT used)
    # SRTT = 7/8*0.1 + 1/8*0.2 = 0.1125; RTO = 0.1125 + 4*0.0625 = 0.3625
    assert e.rttvar == pytest.approx(0.0625)
    assert e.srtt == pytest.approx(0.1125)
    assert e.rto == pytest.approx(0.3625)
    e.sample(0.1)
    # RTTVAR = 3/4*0.0625 + 1/4*0.0125 = 0.05; SRTT = 7/8*0.1125 + 1/8*0.1 = 0.1109375
    assert e.rttvar == pytest.approx(0.05)
    assert e.srtt == pytest.approx(0.1109375)
    assert e.rto == pytest.approx(0.3109375)
    assert e.min_rtt == 0.1 and e.latest_rtt == 0.1


def test_granularity_floor() -> None:
    # With a constant RTT, RTTVAR decays to ~0 and G takes over: RTO = SRTT + G.
    e = est(min_rto=1e-6, g=0.01)
    for _ in range(300):
        e.sample(0.1)
    assert e.rttvar < 1e-9
    assert e.rto == pytest.approx(0.11)


def test_min_rto_clamp() -> None:
    e = est(min_rto=1.0)  # RFC 6298 §2.4 value
    e.sample(0.1)
    assert e.rto == 1.0


def test_max_rto_clamp() -> None:
    e = est(max_rto=60.0)
    e.sample(100.0)  # 100 + 4*50 = 300 -> 60
    assert e.rto == 60.0


def test_backoff_doubles_and_caps_and_clears() -> None:
    e = est(max_rto=2.0)
    e.sample(0.1)  # RTO 0.3
    e.backoff()
    assert e.rto == pytest.approx(0.6)
    e.backoff()
    assert e.rto == pytest.approx(1.2)
    e.backoff()
    assert e.rto == 2.0  # capped (§5.5 "a maximum value may be placed")
    assert e.backoff_count == 3
    # A new sample does not cancel the backoff (Karn); clear_backoff does.
    e.sample(0.1)
    assert e.rto == 2.0
    e.clear_backoff()
    assert e.backoff_count == 0
    assert e.rto == pytest.approx(e.srtt + 4 * e.rttvar)  # type: ignore[operator]


def test_backoff_before_any_sample_and_many_backoffs() -> None:
    e = est()
    e.backoff()
    assert e.rto == 2.0
    for _ in range(5000):  # no overflow
        e.backoff()
    assert e.rto == 120.0


def test_syn_fallback() -> None:
    e = est()
    e.use_syn_fallback()
    assert e.rto == 3.0  # §5.7
    e.sample(0.1)
    assert e.rto == pytest.approx(0.3)
    e2 = est()
    e2.sample(0.1)
    e2.use_syn_fallback()  # a sample exists: no effect
    assert e2.rto == pytest.approx(0.3)


def test_windowed_min_rtt_expires() -> None:
    e = RTTEstimator(1.0, 0.2, 120.0, min_rtt_window=10.0)
    e.sample(0.01, now=0.0)
    e.sample(0.05, now=1.0)
    assert e.min_rtt == 0.01
    e.sample(0.05, now=6.0)  # new half-window bucket; old one still counts
    assert e.min_rtt == 0.01
    e.sample(0.06, now=11.5)  # the bucket holding 0.01 is now too old
    assert e.min_rtt == 0.05
    e.sample(0.07, now=40.0)  # a whole window without samples: only the new one
    assert e.min_rtt == 0.07


def test_min_rtt_without_time_is_global() -> None:
    e = est()
    for r in (0.3, 0.1, 0.2):
        e.sample(r)
    assert e.min_rtt == 0.1


def test_rejects_bad_samples_and_params() -> None:
    e = est()
    with pytest.raises(ValueError):
        e.sample(-1.0)
    with pytest.raises(ValueError):
        e.sample(float("nan"))
    with pytest.raises(ValueError):
        RTTEstimator(1.0, 2.0, 1.0)


@given(
    st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=1, max_size=50),
    st.integers(min_value=0, max_value=80),
)
def test_rto_always_within_bounds(samples: list[float], backoffs: int) -> None:
    e = est(min_rto=0.2, max_rto=60.0)
    for s in samples:
        e.sample(s)
        assert 0.2 <= e.rto <= 60.0
        assert e.srtt is not None
        assert min(samples) - 1e-9 <= e.srtt <= max(samples) + 1e-9
        assert e.rttvar >= 0
    before = e.rto
    for _ in range(backoffs):
        e.backoff()
        assert before <= e.rto <= 60.0
    assert e.min_rtt == min(samples)
