"""Engine rules from the audit against the specifying issue that the script format
cannot express (urgent sends), driven with hand-made segments."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import EventKind, State
from trio_tcp6.wire.tcp import ACK, FIN, PSH, SYN, URG, TCPSegment

from .test_connection import PEER_ISS, active, cfg, kinds, pseg

M = 0xFFFFFFFF


def test_urgent_send_sets_urg_and_points_past_the_urgent_data() -> None:
    """RFC 9293 §3.8.5 (MUST-62, RFC 6093): segments carrying urgent data have URG
    set and the pointer is the offset of the first non-urgent octet; urgent data is
    pushed (not held by Nagle); data after it is sent without URG."""
    c, _ = active(cfg(), sack=False, ts=False, wscale=None)
    assert c.send(b"n" * 100, 1.0) == 100
    (plain,) = c.take_segments()
    assert not plain.flags & URG and plain.urgent == 0
    # Nagle would hold this small segment behind the unacknowledged one: urgent
    # data is pushed, like a nodelay write.
    assert c.send(b"u" * 10, 1.0, urgent=True) == 10
    (urg,) = c.take_segments()
    assert urg.flags & URG and urg.flags & PSH
    assert urg.payload == b"u" * 10 and urg.urgent == 10
    c.on_segment(pseg(PEER_ISS + 1, 1000 + 1 + 110), 1.1)
    c.take_segments()
    assert c.send(b"after", 1.2) == 5
    (after,) = c.take_segments()
    assert not after.flags & URG and after.urgent == 0


def test_urgent_pointer_in_a_retransmission_and_beyond_the_segment() -> None:
    """The pointer is relative to each segment's own SEQ, also in retransmissions and
    in segments before the end of the urgent data (at most 65535)."""
    c, _ = active(cfg(nagle=False), sack=False, ts=False, wscale=None, peer_mss=1000)
    c.send(b"x" * 2500, 1.0, urgent=True)
    segs = c.take_segments()
    assert [s.urgent for s in segs] == [2500, 1500, 500]
    assert all(s.flags & URG for s in segs)
    # RTO: the head is retransmitted with the same pointer.
    c.on_timer(c.next_deadline or 0.0)
    (rtx,) = c.take_segments()
    assert rtx.seq == segs[0].seq and rtx.flags & URG and rtx.urgent == 2500


def test_urgent_receive_event_once_per_advance() -> None:
    c, stats = active(cfg(), sack=False, ts=False, wscale=None)
    c.on_segment(pseg(PEER_ISS + 1, 1001, ACK | URG, b"a" * 10, urgent=4), 1.0)
    assert EventKind.URGENT in kinds(c)
    assert c.urgent_pending == 4
    c.on_segment(pseg(PEER_ISS + 11, 1001, ACK | URG, b"b" * 10, urgent=0), 1.1)
    assert EventKind.URGENT not in kinds(c)  # the pointer did not advance
    assert c.receive(100, 1.2) == b"a" * 10 + b"b" * 10
    assert c.urgent_pending == 0 and stats["urgent_received"] == 1


offsets = st.one_of(st.integers(-3000, 70000), st.integers(0, M))
segment = st.fixed_dictionaries(
    {
        "seq": offsets,
        "ack": st.one_of(st.integers(-3, 3), offsets),
        "flags": st.one_of(st.just(ACK), st.integers(0, 0x3F)),
        "window": st.integers(0, 0xFFFF),
        "payload": st.binary(max_size=2000),
        "urgent": st.integers(0, 0xFFFF),
        "dt": st.floats(0, 2.0),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.binary(max_size=3000),
    st.booleans(),
    st.lists(segment, max_size=30),
    st.integers(100, 70000),
)
def test_passive_open_with_syn_text_and_urgent_never_raises(
    text: bytes, fin: bool, segs: list[dict[str, Any]], buffer: int
) -> None:
    """Random segments after a SYN that carried text (and maybe FIN), with random
    urgent pointers: nothing raises, the delivered stream is the SYN's text first."""
    stats: Counter[str] = Counter()
    syn = TCPSegment(80, 1111, PEER_ISS, 0, SYN | (FIN if fin else 0), 65535, text, mss=1440)
    c = Connection.accept(
        cfg(receive_buffer=buffer), syn, iss=3000, mss=1440, now=0.0, stats=stats
    )
    got = bytearray()
    now = 0.0
    for d in segs:
        now += float(d["dt"])
        seg = TCPSegment(
            80,
            1111,
            (PEER_ISS + 1 + int(d["seq"])) & M,
            (3001 + int(d["ack"])) & M,
            int(d["flags"]),
            int(d["window"]),
            bytes(d["payload"]),
            int(d["urgent"]),
        )
        c.on_segment(seg, now)
        deadline = c.next_deadline
        if deadline is not None and deadline <= now:
            c.on_timer(now)
        got += c.receive(1 << 20, now)
        assert c.urgent_pending >= 0
        c.take_segments()
        c.take_events()
        if c.state is State.CLOSED:
            break
    if c.state is not State.SYN_RECEIVED and got:
        # Whatever arrived later, the stream starts with the SYN's (trimmed) text.
        head = text[: min(len(text), buffer, 0xFFFF)]
        assert bytes(got[: len(head)]) == head[: len(got)]


def test_delayed_ack_config_below_half_a_second() -> None:
    """RFC 9293 §3.8.6.3 (MUST-40): the delayed-ACK timer cannot be set to 0.5 s or
    more (nor to zero or less; None switches delayed ACKs off)."""
    assert cfg(delayed_ack=0.49).delayed_ack == 0.49
    assert cfg(delayed_ack=None).delayed_ack is None
    for bad in (0.5, 1.0, 0.0, -0.1):
        with pytest.raises(ValueError, match="delayed_ack"):
            cfg(delayed_ack=bad)
