"""``TCPConfig.linux()``: the preset that makes the choices Linux 6.x makes where
the RFCs allow both (the ssthresh it produces is checked by the engine scripts
``tests/scripts/cc/*_from_cwnd.pkt`` against their RFC counterparts)."""

from __future__ import annotations

import attrs
import pytest

from trio_tcp6.config import Keepalive, TCPConfig


def test_linux_preset_differs_from_the_defaults_exactly_here() -> None:
    default = TCPConfig()
    linux = TCPConfig.linux()
    changed = {
        f.name: getattr(linux, f.name)
        for f in attrs.fields(TCPConfig)
        if getattr(linux, f.name) != getattr(default, f.name)
    }
    assert changed == {
        "loss_response": "cwnd",
        "cwnd_validation": "linux",
        "slow_start_limit": None,
        "syn_retries": 6,
    }


def test_linux_preset_values_pinned() -> None:
    c = TCPConfig.linux()
    # bictcp_recalc_ssthresh / tcp_reno_ssthresh work from cwnd.
    assert c.loss_response == "cwnd"
    assert c.cwnd_validation == "linux"  # tcp_is_cwnd_limited
    assert c.slow_start_limit is None  # tcp_slow_start counts every ACKed segment
    assert c.congestion == "cubic"
    assert (c.sack, c.timestamps, c.window_scale, c.rack, c.hystart) == (True,) * 5
    assert c.nagle is True
    assert c.delayed_ack == 0.04  # TCP_DELACK_MIN
    assert (c.initial_rto, c.min_rto, c.max_rto) == (1.0, 0.2, 120.0)  # TCP_TIMEOUT_INIT, ..
    assert (c.syn_retries, c.synack_retries) == (6, 5)  # tcp_syn_retries, tcp_synack_retries
    assert (c.retries1, c.retries2) == (3, 15)  # tcp_retries1, tcp_retries2
    assert c.time_wait_duration == 60.0  # TCP_TIMEWAIT_LEN
    assert c.keepalive is None  # off unless SO_KEEPALIVE
    assert Keepalive() == Keepalive(idle=7200.0, interval=75.0, probes=9)  # tcp_keepalive_*
    assert c.initial_window == 10  # TCP_INIT_CWND
    assert c.syn_cookies is True  # tcp_syncookies = 1
    assert c.invalid_ack_ratelimit == 0.5  # tcp_invalid_ratelimit


def test_linux_preset_takes_overrides() -> None:
    c = TCPConfig.linux(send_buffer=16384, receive_buffer=16384, syn_retries=3)
    assert (c.send_buffer, c.receive_buffer, c.syn_retries) == (16384, 16384, 3)
    assert c.loss_response == "cwnd"
    with pytest.raises(ValueError):
        TCPConfig.linux(min_rto=0)


def test_default_loss_response_is_flight_size() -> None:
    assert TCPConfig().loss_response == "flight_size"
    assert TCPConfig().cwnd_validation == "rfc7661"
    assert TCPConfig().slow_start_limit == 8  # RFC 9406 §4.3, not paced


@pytest.mark.parametrize("congestion", ["cubic", "newreno"])
@pytest.mark.parametrize(("limit", "segments"), [(2, 2), (8, 8), (None, 20)])
def test_slow_start_limit_caps_a_stretch_ack(
    congestion: str, limit: int | None, segments: int
) -> None:
    """One ACK for 20 full segments in slow start (a coalescing receiver's stretch
    ACK) grows cwnd by min(20, L) SMSS: by 2 with RFC 3465's L, 8 with RFC 9406's
    (the default), all 20 with Linux's rule."""
    from trio_tcp6.tcp.cc import make_congestion_control

    mss = 1000
    for acked, expect in ((20 * mss, segments * mss), (20 * mss - 1, None)):
        cc = make_congestion_control(
            congestion, mss=mss, initial_window=10, hystart=False, abc_limit=limit
        )
        before = cc.cwnd
        flight = before  # cwnd-limited: the whole window was in flight
        cc.on_ack(acked, 0.1, 0.05, acked, acked + flight, flight)
        grown = cc.cwnd - before
        if expect is not None:
            assert grown == expect
        elif limit is None:
            assert grown == 20 * mss - 1
        else:
            assert grown == limit * mss
