"""Flow traces (trio_tcp6.tcp.trace): what the engine reports, exactly, for a scripted
loss; the saved format; the flow and listener API; nothing when off."""

from __future__ import annotations

import heapq
import ipaddress
import json
from collections.abc import Callable
from pathlib import Path

import trio
import trio.testing

from trio_tcp6.cli.plot import from_trace
from trio_tcp6.config import TCPConfig
from trio_tcp6.links import VirtualNetwork
from trio_tcp6.runtime import open_stack
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.events import State
from trio_tcp6.tcp.seq import MASK
from trio_tcp6.tcp.trace import FORMAT, FlowTrace, TraceRecord
from trio_tcp6.wire.tcp import TCPSegment

DELAY = 0.01  # one way
ISS_A = 1000
MSS = 1428  # 1440 less the timestamps option


class Wire:
    """Two engines back to back with a fixed one-way delay; ``drop(seg, now)``
    decides the fate of every segment from ``a`` to ``b``. ``a`` is traced from its
    SYN on."""

    def __init__(self, drop: Callable[[TCPSegment, float], bool]) -> None:
        self.now = 0.0
        self.heap: list[tuple[float, int, int, TCPSegment]] = []
        self.n = 0
        self.drop = drop
        self.dropped: list[tuple[float, int]] = []
        self.received = bytearray()
        self.a = Connection.connect(
            TCPConfig(), local_port=1111, remote_port=80, iss=ISS_A, mss=1440, now=0.0
        )
        self.trace = FlowTrace()
        self.trace.attach(self.a)
        self.b: Connection | None = None
        #: (time, cwnd, ssthresh) of ``a`` after every on_timer call.
        self.after_timer: list[tuple[float, int, int]] = []
        self.flush(self.a, 0)

    def flush(self, c: Connection, src: int) -> None:
        for seg in c.take_segments():
            if src == 0 and self.drop(seg, self.now):
                self.dropped.append((self.now, (seg.seq - ISS_A) & MASK))
                continue
            heapq.heappush(self.heap, (self.now + DELAY, self.n, 1 - src, seg))
            self.n += 1
        c.take_events()
        if c.readable:
            self.received += c.receive(c.readable, self.now)

    def run(self, until: float) -> None:
        while True:
            ends = [c for c in (self.a, self.b) if c is not None]
            times = [c.next_deadline for c in ends if c.next_deadline is not None]
            if self.heap:
                times.append(self.heap[0][0])
            if not times or min(times) > until:
                self.now = until
                return
            self.now = min(times)
            while self.heap and self.heap[0][0] <= self.now:
                _, _, dst, seg = heapq.heappop(self.heap)
                if dst == 1 and self.b is None:
                    self.b = Connection.accept(TCPConfig(), seg, iss=5000, mss=1440, now=self.now)
                elif dst == 1:
                    assert self.b is not None
                    self.b.on_segment(seg, self.now)
                else:
                    self.a.on_segment(seg, self.now)
                c = self.a if dst == 0 else self.b
                assert c is not None
                self.flush(c, dst)
            for i, c in enumerate((self.a, self.b)):
                if c is not None and c.next_deadline is not None and c.next_deadline <= self.now:
                    c.on_timer(self.now)
                    if i == 0:
                        self.after_timer.append((self.now, c.cc.cwnd, c.cc.ssthresh))
                    self.flush(c, i)

    def send(self, data: bytes) -> None:
        assert self.a.send(data, self.now) == len(data)
        self.flush(self.a, 0)


def scripted_loss() -> Wire:
    """10 segments with the 5th lost once (repaired by RACK in fast recovery), then
    at t = 1 s two segments lost with the tail loss probe that follows them
    (repaired after the retransmission timeout)."""
    fifth = 1 + 4 * MSS
    seen: set[int] = set()

    def drop(seg: TCPSegment, now: float) -> bool:
        off = (seg.seq - ISS_A) & MASK
        if not seg.payload:
            return False
        if 1.0 <= now < 1.15:
            return True
        if off == fifth and off not in seen:
            seen.add(off)
            return True
        return False

    w = Wire(drop)
    w.run(0.1)
    assert w.a.state is State.ESTABLISHED
    w.send(bytes(10 * MSS))
    w.run(1.0)
    assert w.a.snd.una == w.a.snd.nxt  # all acknowledged
    w.send(bytes(2 * MSS))
    w.run(3.0)
    assert len(w.received) == 12 * MSS
    return w


def test_scripted_loss_events_exactly() -> None:
    w = scripted_loss()
    assert w.trace.events() == [
        ("recovery_enter", ""),
        ("retransmit", "rack"),
        ("recovery_exit", ""),
        ("tlp", ""),
        ("retransmit", "tlp"),
        ("rto", ""),
        ("retransmit", "rto"),
        ("retransmit", "rto"),
    ]
    stats = w.a.stats
    assert (stats["fast_recovery"], stats["tlp"], stats["rto"]) == (1, 1, 1)
    assert w.a.retransmits == sum(1 for r in w.trace if r.kind == "out" and r.retransmit) == 4


def test_rto_record_holds_the_engines_window_at_that_moment() -> None:
    w = scripted_loss()
    (rto,) = [r for r in w.trace if r.kind == "event" and r.name == "rto"]
    # The engine's values when the timer call that fired the RTO returned.
    ((when, cwnd, ssthresh),) = [a for a in w.after_timer if a[0] == rto.time]
    assert (rto.cwnd, rto.ssthresh) == (cwnd, ssthresh)
    assert rto.cwnd == MSS  # RFC 5681 §3.1: the loss window, one segment
    assert rto.ca_state == "loss"
    # The timeout's retransmission is the head (SND.UNA), right after the event.
    i = w.trace.records.index(rto)
    nxt = w.trace.records[i + 1]
    assert (nxt.kind, nxt.retransmit, nxt.cause, nxt.seq) == ("out", True, "rto", rto.snd_una)
    assert nxt.time == when


def test_records_of_segments_and_acks() -> None:
    w = scripted_loss()
    fifth = 1 + 4 * MSS
    # Offsets from the ISS: the first data byte is 1 (the SYN, queued before the
    # trace was attached, is not among the records).
    data = [r for r in w.trace if r.kind == "out" and r.length > 0]
    assert [r.seq for r in data[:10]] == [1 + k * MSS for k in range(10)]
    assert all(r.length == MSS for r in data[:10])
    assert not any(r.retransmit for r in data[:10])
    (rack,) = [r for r in data if r.cause == "rack"]
    assert (rack.seq, rack.length) == (fifth, MSS)
    # The ACKs after the loss carry the SACK block of what arrived above the hole.
    acks = [r for r in w.trace if r.kind == "in" and r.sack]
    assert acks
    assert acks[0].ack == fifth
    assert acks[0].sack == ((fifth + MSS, fifth + 2 * MSS),)
    assert max(e for r in acks for _, e in r.sack) == 1 + 10 * MSS
    # Recovery: entered in the loss's fast recovery, exit when the ACK covers it.
    enter = next(r for r in w.trace if r.name == "recovery_enter")
    assert enter.ca_state == "recovery" and enter.ssthresh is not None
    states = [(r.name, r.cause) for r in w.trace if r.kind == "state"]
    assert states == [("ESTABLISHED", "handshake completed")]


def test_save_load_round_trip(tmp_path: Path) -> None:
    w = scripted_loss()
    path = tmp_path / "flow.trace"
    w.trace.save(path)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == FORMAT and header["version"] == 1
    assert header["mss"] == MSS and header["local_port"] == 1111
    assert len(lines) == 1 + len(w.trace)
    back = FlowTrace.load(path)
    assert back.records == w.trace.records
    assert back.info == w.trace.info
    assert back.events() == w.trace.events()


def test_load_rejects_what_is_not_a_trace(tmp_path: Path) -> None:
    bad = tmp_path / "x"
    for text in ("", "{}\n", '{"format": "trio_tcp6-trace", "version": 99}\n'):
        bad.write_text(text)
        try:
            FlowTrace.load(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"accepted {text!r}")
    bad.write_text('{"format": "trio_tcp6-trace", "version": 1}\n{"kind": "in"}\n')
    try:
        FlowTrace.load(bad)
    except ValueError as exc:
        assert "bad trace record" in str(exc)
    else:
        raise AssertionError("accepted a record without its fields")


def test_record_json_leaves_out_defaults() -> None:
    r = TraceRecord("event", 1.5, 1, 2, 3, None, None, 1.0, 0, 10, 20, "open", name="rto")
    obj = r.to_json()
    assert "seq" not in obj and "sack" not in obj and obj["name"] == "rto"
    assert TraceRecord.from_json(obj) == r


def test_off_by_default_and_detach() -> None:
    w = Wire(lambda seg, now: False)
    c = Connection.connect(TCPConfig(), local_port=1, remote_port=2, iss=0, mss=1440, now=0.0)
    assert c.flow_trace is None and c.trace is None
    w.run(0.1)
    n = len(w.trace)
    assert n > 0
    hooked: list[tuple[State, State]] = []
    w.trace.detach()
    assert w.a.flow_trace is None and w.a.trace is None and not w.trace.attached
    w.send(b"x" * 100)
    w.run(0.5)
    assert len(w.trace) == n
    # A state hook set before attaching keeps being called (the trace chains it).
    ft = FlowTrace()
    w.a.trace = lambda old, new, reason, now: hooked.append((old, new))
    ft.attach(w.a)
    w.a.shutdown(w.now)
    w.flush(w.a, 0)
    w.run(1.0)
    assert hooked and hooked[0] == (State.ESTABLISHED, State.FIN_WAIT_1)
    assert ft.of_kind("state")[0].name == "FIN_WAIT_1"


async def test_flow_and_listener_api(autojump_clock: trio.testing.MockClock) -> None:
    a_addr = ipaddress.IPv6Address("fd00::a")
    b_addr = ipaddress.IPv6Address("fd00::b")
    net = VirtualNetwork(seed=1)
    async with (
        open_stack(net.attach(a_addr), a_addr) as a,
        open_stack(net.attach(b_addr), b_addr) as b,
    ):
        listener = await b.open_tcp_listener(7000)
        listener.trace_accepted = True
        client = await a.open_tcp_stream(b_addr, 7000)
        server = await listener.accept()
        ft = client.trace()
        assert client.trace() is ft
        await client.send_all(b"y" * 5000)
        got = b""
        while len(got) < 5000:
            got += await server.receive_some(65536)
        while client.info().unacked:  # (the last ACK may be delayed)
            await trio.sleep(0.01)
        st = server.trace()
        # The accepted side was traced from its SYN-RECEIVED on: the handshake's ACK.
        assert st.of_kind("state")[0].name == "ESTABLISHED"
        assert sum(r.length for r in st.of_kind("in")) >= 5000
        # (A tail loss probe may resend the last segment while the ACK is delayed.)
        assert sum(r.length for r in ft.of_kind("out") if not r.retransmit) == 5000
        # Drawn from the receiver's side: the segments it received, its ACKs.
        pic = from_trace(st)
        assert pic.flight_label == "receive window (advertised)"
        assert sum(e - s for _, s, e, again in pic.sends if not again) == 5000
        assert max(a for _, a, _ in pic.acks) == 5001
        assert pic.title.startswith(f"[{a_addr}]:") and "(received)" in pic.title
        assert ft.info["remote"] == str(b_addr) and ft.info["remote_port"] == 7000
        await client.aclose()
        await server.aclose()
        await listener.aclose()
    net.close()
