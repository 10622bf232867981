"""cwnd validation (``TCPConfig.cwnd_validation``): when an ACK may grow cwnd.

``"rfc7661"`` grows cwnd while the flight an ACK found is at least cwnd / 2;
``"linux"`` grows it in slow start while cwnd < 2 x the largest flight of the last
two rounds and in congestion avoidance only after a round that filled cwnd (Linux
``tcp_is_cwnd_limited``). A greedy sender limited to ``limit`` bytes in flight (a
receive window) drives the controllers, as in ``test_cc.py``.
"""

from __future__ import annotations

import pytest

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.cc import CongestionControl, make_congestion_control

MSS = 1000


def run_rounds(cc: CongestionControl, rounds: int, limit: int, iss: int = 1) -> None:
    """``rounds`` round trips of a sender that keeps min(cwnd, limit) bytes in
    flight and gets one ACK per segment."""
    una = iss
    nxt = iss + min(cc.cwnd, limit)
    now = 0.0
    for _ in range(rounds):
        end = nxt
        while una < end:
            una += MSS
            now += 0.1 * MSS / max(1, end - iss)
            cc.on_ack(MSS, now, 0.1, una, nxt, nxt - una)
            nxt = max(nxt, una + min(cc.cwnd, limit))


@pytest.mark.parametrize("name", ["cubic", "newreno"])
def test_congestion_avoidance_below_a_full_window_does_not_grow_under_linux(name: str) -> None:
    # 15 of 20 segments in flight: more than cwnd / 2, less than cwnd.
    linux = make_congestion_control(name, mss=MSS, hystart=False, validation="linux")
    rfc = make_congestion_control(name, mss=MSS, hystart=False, validation="rfc7661")
    for cc in (linux, rfc):
        cc.cwnd = cc.ssthresh = 20 * MSS
        run_rounds(cc, 30, limit=15 * MSS)
    assert linux.cwnd == 20 * MSS
    assert rfc.cwnd > 20 * MSS  # the RFC 7661 rule counts this window as validated


@pytest.mark.parametrize("name", ["cubic", "newreno"])
def test_congestion_avoidance_grows_when_the_window_is_filled(name: str) -> None:
    cc = make_congestion_control(name, mss=MSS, hystart=False, validation="linux")
    cc.cwnd = cc.ssthresh = 20 * MSS
    run_rounds(cc, 10, limit=1 << 30)
    assert cc.cwnd > 20 * MSS


def test_linux_slow_start_stops_at_twice_the_largest_flight() -> None:
    cc = make_congestion_control("newreno", mss=MSS, hystart=False, validation="linux")
    run_rounds(cc, 10, limit=12 * MSS)
    # Grows while cwnd < 2 x 12 segments: the last increment (2 SMSS, ABC L = 2)
    # starts at 23 segments at most.
    assert 24 * MSS <= cc.cwnd <= 25 * MSS
    assert cc.in_slow_start()


def test_linux_rule_rounds_survive_sequence_wraparound() -> None:
    cc = make_congestion_control("newreno", mss=MSS, hystart=False, validation="linux")
    cc.cwnd = cc.ssthresh = 20 * MSS
    run_rounds(cc, 30, limit=15 * MSS, iss=(1 << 32) - 7 * MSS)
    assert cc.cwnd == 20 * MSS


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        make_congestion_control("cubic", mss=MSS, validation="bogus")


def test_config_carries_the_rule() -> None:
    assert TCPConfig().cwnd_validation == "rfc7661"
    assert TCPConfig.linux().cwnd_validation == "linux"
