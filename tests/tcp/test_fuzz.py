"""Random segments thrown at a connection never raise and never break invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import State
from trio_tcp6.wire.tcp import ACK, TCPSegment

from .test_connection import PEER_ISS, active, cfg

M = 0xFFFFFFFF

offsets = st.one_of(st.integers(-3000, 30000), st.integers(0, M))
segment = st.fixed_dictionaries(
    {
        "seq": offsets,
        "ack": offsets,
        "flags": st.one_of(st.just(ACK), st.integers(0, 0x3F)),
        "window": st.integers(0, 0xFFFF),
        "payload": st.binary(max_size=3000),
        "sack": st.lists(st.tuples(offsets, st.integers(-100, 5000)), max_size=4),
        "ts": st.one_of(st.none(), st.tuples(st.integers(0, M), st.integers(0, M))),
        "dt": st.floats(0, 2.0),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(segment, max_size=40),
    st.booleans(),
    st.booleans(),
    st.integers(0, M),
    st.integers(0, 20000),
)
def test_random_segments(
    segs: list[dict[str, object]], sack: bool, ts: bool, iss: int, queued: int
) -> None:
    c, _stats = active(cfg(delayed_ack=0.04), iss=iss, sack=sack, ts=ts)
    c.send(b"s" * queued, 0.02)
    now = 0.02
    for d in segs:
        now += float(d["dt"])  # type: ignore[arg-type]
        seq = (PEER_ISS + 1 + int(d["seq"])) & M  # type: ignore[call-overload]
        ack = (iss + 1 + int(d["ack"])) & M  # type: ignore[call-overload]
        blocks = tuple(
            ((iss + 1 + a) & M, (iss + 1 + a + n) & M)
            for a, n in d["sack"]  # type: ignore[attr-defined]
        )
        seg = TCPSegment(
            80,
            1111,
            seq,
            ack,
            int(d["flags"]),  # type: ignore[call-overload]
            int(d["window"]),  # type: ignore[call-overload]
            bytes(d["payload"]),  # type: ignore[call-overload]
            sack_blocks=blocks,
            timestamps=d["ts"],  # type: ignore[arg-type]
        )
        c.on_segment(seg, now)
        deadline = c.next_deadline
        if deadline is not None and deadline <= now:
            c.on_timer(now)
        c.receive(1 << 20, now)
        c.take_segments()
        c.take_events()
        if c.state is State.CLOSED:
            break
        c.sb.check()
        assert c.sb.una == c.snd.una and c.sb.nxt == c.snd.nxt
        assert 0 <= c.sb.sacked <= c.snd.nxt - c.snd.una
        assert c.snd.una <= c.snd.nxt
        assert c.snd.buf.base <= c.snd.una + 1
        d2 = c.next_deadline
        assert d2 is None or d2 > now - 1e-9 or c.state is State.CLOSED


def test_timers_always_progress() -> None:
    c: Connection
    c, _ = active()
    c.send(b"x" * 50000, 0.1)
    now = 0.1
    for _ in range(200):
        d = c.next_deadline
        if d is None:
            break
        assert d >= now
        now = d
        c.on_timer(now)
        c.take_segments()
    assert c.state is State.CLOSED  # retries2 exhausted against a silent peer
