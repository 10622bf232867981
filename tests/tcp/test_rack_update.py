"""RFC 8985 §6.2 step 2: which delivered records may advance RACK.

A delivered retransmission is ambiguous when its RTT is below min_RTT or when the
ACK echoes a timestamp older than the retransmission's TSval (the ACK may be for
the original); RACK then keeps its state. A record never retransmitted always
advances it."""

from __future__ import annotations

from trio_tcp6.tcp.rack import Rack
from trio_tcp6.tcp.sack import EVER_RETRANS, SentSeg


def delivered(flags: int, xmit: float = 1.0, order: int = 5) -> SentSeg:
    return SentSeg(1000, 2000, xmit, flags, order)


def test_retransmission_echoing_an_older_tsval_is_ignored() -> None:
    rack = Rack()
    # RTT 0.08 s is above min_RTT (0.06 s): only the echo makes it ambiguous.
    rack.update(delivered(EVER_RETRANS), 1.08, 0.06, echoes_older=True)
    assert (rack.order, rack.xmit_ts, rack.rtt) == (-1, -1.0, 0.0)


def test_retransmission_echoing_its_own_tsval_advances_rack() -> None:
    rack = Rack()
    rack.update(delivered(EVER_RETRANS), 1.08, 0.06, echoes_older=False)
    assert (rack.order, rack.xmit_ts, rack.end_seq) == (5, 1.0, 2000)
    assert abs(rack.rtt - 0.08) < 1e-9


def test_retransmission_faster_than_min_rtt_is_ignored() -> None:
    rack = Rack()
    rack.update(delivered(EVER_RETRANS), 1.05, 0.06, echoes_older=False)
    assert rack.order == -1


def test_original_transmission_ignores_the_echo() -> None:
    # Never retransmitted: no ambiguity, whatever the ACK echoes.
    rack = Rack()
    rack.update(delivered(0), 1.05, 0.06, echoes_older=True)
    assert (rack.order, rack.xmit_ts) == (5, 1.0)


def test_ambiguous_retransmission_advances_to_its_first_transmission() -> None:
    # Whichever transmission the ACK is for was sent no earlier than the first:
    # RACK moves to that one (order 2), keeping its RTT.
    rack = Rack()
    rack.update(delivered(0, xmit=0.9, order=1), 1.0, 0.06)
    retrans = SentSeg(2000, 3000, 1.2, EVER_RETRANS, 7, first_xmit=0.95, first_order=2)
    rack.update(retrans, 1.3, 0.06, echoes_older=True)
    assert (rack.order, rack.xmit_ts, rack.end_seq) == (2, 0.95, 3000)
    assert abs(rack.rtt - 0.1) < 1e-9
