"""Edges of loss recovery found by review: a zero-window ACK held for the read must
not outlast the sender's probe timeout; RACK under Linux's D-SACK rule must still
notice reordering at the head of the window; the loss response of a sender that ran
out of data starts from what it has in flight."""

from __future__ import annotations

import random

from trio_tcp6.wire.tcp import ACK

from .test_backtoback import Path, Sim, cfg, run_transfer
from .test_connection import PEER_ISS, active, pseg, send_and_collect
from .test_connection import cfg as ccfg


def test_held_zero_window_ack_does_not_provoke_a_tail_loss_probe() -> None:
    """The sender's PTO (2 SRTT = 10 ms) is shorter than the receiver's hold
    (delayed_ack = 40 ms): while the application has not read, the sender probes
    with a spurious retransmission of data already received, whose duplicate is
    then answered with the zero-window ACK the hold meant to avoid."""
    no_ts = {"timestamps": False, "window_scale": False, "delayed_ack": 0.04}
    data = random.Random(1).randbytes(300_000)
    sim = Sim(
        cfg(**no_ts), cfg(receive_buffer=14400, **no_ts), data, b"", path_ab=Path(delay=0.0025)
    )
    period = 0.03  # the application reads everything every 30 ms
    nxt = {"t": period}

    class Gate:  # read credit: all at each tick, nothing in between
        def __rmul__(self, dt: float) -> float:
            if sim.now >= nxt["t"]:
                nxt["t"] = sim.now + period
                return 1e12
            return 0.0

    orig = sim.deliver

    def deliver(dst: int, seg: object) -> None:
        orig(dst, seg)
        ep = sim.ends[1]
        if ep is not None and ep.read_rate is None:
            ep.read_rate = Gate()  # type: ignore[assignment]
            ep.last_read = sim.now

    sim.deliver = deliver  # type: ignore[method-assign]
    sim.run(limit=30.0)
    assert bytes(sim.ends[1].received) == data
    assert sim.stats_b["ack_held_zero_window"] >= 1  # the hold happened
    assert sim.stats_a["tlp"] == 0 and sim.stats_a["retransmits"] == 0


def test_loss_basis_of_an_app_limited_flight() -> None:
    """Ten segments in flight, all ACKed; the application then writes three, the
    first is lost. RFC 5681 eq. (4): ssthresh = max(FlightSize / 2, 2 SMSS) with
    FlightSize = 3 segments (CUBIC: max(0.7 x 3, 2) segments). main takes the
    10-segment flight of the previous round
    instead (ssthresh 7 segments) before the fix."""
    c, _ = active(ccfg(), ts=False)
    p = PEER_ISS + 1
    send_and_collect(c, b"q" * 14400, 1.0)
    c.on_segment(pseg(p, 1001 + 14400, ACK), 1.05)
    c.take_segments()
    send_and_collect(c, b"r" * 4320, 1.06)
    base = 1001 + 14400
    c.on_segment(pseg(p, base, ACK, sack_blocks=((base + 1440, base + 4320),)), 1.11)
    for t in (1.12, 1.13, 1.15, 1.2):
        c.on_timer(t)
    assert c.stats["fast_recovery"] == 1
    # CUBIC: max(0.7 x FlightSize, 2 SMSS) with FlightSize the three segments.
    assert c.cc.ssthresh == max(3 * 1440 * 7 // 10, 2 * 1440)


def test_reordering_without_loss_is_seen_with_rack_dsack_linux() -> None:
    """No loss, 2 % of packets held back by up to three path delays: every
    retransmission is spurious and its D-SACK says so. With the default
    rack_dsack="linux", RACK.reord is set only by a SACK below the highest SACK of
    a never-retransmitted record; a late original at SND.UNA is acknowledged
    cumulatively, so reord stays False, every D-SACK is ignored and reo_wnd never
    grows. Before the fix: 198 retransmissions over these 8 flows and 6 of 8
    without reord; rack_dsack="rfc8985": 87 and 0 of 8."""
    rtx = {}
    for rd in ("linux", "rfc8985"):
        rtx[rd] = 0
        blind = 0
        for seed in range(8):
            sim = run_transfer(
                2_000_000,
                0,
                seed=seed,
                cfg_a=cfg(rack_dsack=rd),
                path=Path(delay=0.01, reorder=0.02),
                limit=600,
            )
            a = sim.ends[0].conn
            rtx[rd] += sim.stats_a["retransmits"]
            if sim.stats_a["dsack_received"] and not a.rec.rack.reord:
                blind += 1
        if rd == "linux":
            assert blind == 0, f"{blind} of 8 flows got D-SACKs and never saw reordering"
    # Linux's rule may only ignore D-SACKs it has a reason to: about as few spurious
    # retransmissions as RFC 8985's every-D-SACK rule (198 against 87 before).
    assert rtx["linux"] <= rtx["rfc8985"] * 1.25, rtx
