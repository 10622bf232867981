"""Nagle in Minshall's variant (RFC 9293 §3.7.4 and Appendix A.3, as Linux does).

A small segment is held only while an earlier *small* segment is unacknowledged, so
the sub-MSS tail of a bulk write never waits for the delayed ACK of full segments
(the classic Nagle + delayed-ACK stall: 40 ms at the end of many transfers).
"""

from __future__ import annotations

from tests.tcp.test_connection import PEER_ISS, active, pseg


def test_tail_after_full_segments_goes_at_once() -> None:
    c, _ = active(ts=False)
    c.send(b"x" * (3 * 1440 + 100), 1.0)
    segs = c.take_segments()
    # Three full segments are unacknowledged, but none is small: the tail goes too.
    assert [len(s.payload) for s in segs] == [1440, 1440, 1440, 100]


def test_small_segment_outstanding_still_holds_the_next() -> None:
    c, _ = active(ts=False)
    c.send(b"a" * 100, 1.0)
    assert [len(s.payload) for s in c.take_segments()] == [100]
    c.send(b"b" * 100, 1.01)
    c.send(b"c" * 100, 1.02)
    assert c.take_segments() == []  # a small segment is in flight: coalesce
    c.on_segment(pseg(PEER_ISS + 1, 1101, window=65535), 1.1)
    assert [len(s.payload) for s in c.take_segments()] == [200]


def test_full_segments_then_small_then_small_waits() -> None:
    c, _ = active(ts=False)
    c.send(b"x" * (1440 + 10), 1.0)
    assert [len(s.payload) for s in c.take_segments()] == [1440, 10]
    c.send(b"y" * 10, 1.01)
    assert c.take_segments() == []  # the 10-byte segment is unacknowledged
    # Acknowledging only the full segment is not enough ...
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 1440, window=65535), 1.1)
    assert c.take_segments() == []
    # ... the small one must be acknowledged.
    c.on_segment(pseg(PEER_ISS + 1, 1001 + 1450, window=65535), 1.2)
    assert [len(s.payload) for s in c.take_segments()] == [10]
