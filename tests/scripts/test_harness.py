"""Self-test of the script harness against a tiny fake engine.

The fake is deliberately simple (immediate ACKs, a fixed 1 s retransmission timer) so
these tests prove the *harness* catches every kind of mismatch, independent of the
real engine.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.events import Event, EventKind, State
from trio_tcp6.wire.tcp import ACK, FIN, PSH, SYN, TCPSegment

from .harness import Runner, ScriptError, ScriptFailure, parse_script, read_xfail, run_script

MASK = 0xFFFFFFFF


class FakeConnection:
    """Just enough TCP for the harness self-test."""

    corrupt_retransmit = False

    def __init__(self, local_port: int, remote_port: int, iss: int, mss: int) -> None:
        self.lp, self.rp = local_port, remote_port
        self.iss = self.snd_una = iss
        self.snd_nxt = (iss + 1) & MASK
        self.irs = self.rcv_nxt = 0
        self.state = State.SYN_SENT
        self.mss = mss
        self.out: list[TCPSegment] = []
        self.events: list[Event] = []
        self.sent = b""  # every byte ever sent (stream offset 0 = iss + 1)
        self.rcvbuf = b""
        self.deadline: float | None = None

    @classmethod
    def connect(
        cls,
        config: TCPConfig,
        *,
        local_port: int,
        remote_port: int,
        iss: int,
        mss: int,
        now: float,
        stats: Counter[str] | None = None,
        ts_offset: int = 0,
    ) -> FakeConnection:
        conn = cls(local_port, remote_port, iss, mss)
        conn._emit(SYN, conn.iss, mss=mss)
        conn.deadline = now + 1.0
        return conn

    def _emit(self, flags: int, seq: int, payload: bytes = b"", mss: int | None = None) -> None:
        self.out.append(
            TCPSegment(
                self.lp,
                self.rp,
                seq,
                self.rcv_nxt if flags & ACK else 0,
                flags,
                65535,
                payload,
                mss=mss,
            )
        )

    def on_segment(self, seg: TCPSegment, now: float) -> None:
        if self.state is State.SYN_SENT:
            if seg.syn and seg.has_ack and seg.ack == self.snd_nxt:
                self.irs = seg.seq
                self.rcv_nxt = (seg.seq + 1) & MASK
                self.snd_una = seg.ack
                self.state = State.ESTABLISHED
                self.deadline = None
                self._emit(ACK, self.snd_nxt)
                self.events.append(Event(EventKind.CONNECTED))
            return
        if seg.has_ack:
            self.snd_una = seg.ack
            if self.snd_una == self.snd_nxt:
                self.deadline = None
        if seg.payload and seg.seq == self.rcv_nxt:
            self.rcvbuf += seg.payload
            self.rcv_nxt = (self.rcv_nxt + len(seg.payload)) & MASK
            self._emit(ACK, self.snd_nxt)
            self.events.append(Event(EventKind.READABLE))

    def on_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        if self.state is State.SYN_SENT:
            self._emit(SYN, self.iss, mss=self.mss)
        else:
            off = (self.snd_una - self.iss - 1) & MASK
            data = self.sent[off:]
            if self.corrupt_retransmit:
                data = bytes(b ^ 1 for b in data)
            self._emit(ACK | PSH, self.snd_una, data)
        self.deadline = now + 1.0

    def send(self, data: bytes, now: float, *, nodelay: bool = False) -> int:
        self.sent += bytes(data)
        self._emit(ACK | PSH, self.snd_nxt, bytes(data))
        self.snd_nxt = (self.snd_nxt + len(data)) & MASK
        if self.deadline is None:
            self.deadline = now + 1.0
        return len(data)

    def receive(self, max_bytes: int, now: float) -> bytes:
        data, self.rcvbuf = self.rcvbuf[:max_bytes], self.rcvbuf[max_bytes:]
        return data

    def shutdown(self, now: float) -> None:
        self._emit(FIN | ACK, self.snd_nxt)
        self.snd_nxt = (self.snd_nxt + 1) & MASK
        self.state = State.FIN_WAIT_1

    def abort(self, now: float) -> None:
        self.state = State.CLOSED
        self.events.append(Event(EventKind.ERROR, "aborted"))

    def set_path_mtu(self, mtu: int, now: float) -> None:
        pass

    def take_segments(self) -> list[TCPSegment]:
        out, self.out = self.out, []
        return out

    def take_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    @property
    def next_deadline(self) -> float | None:
        return self.deadline

    @property
    def readable(self) -> int:
        return len(self.rcvbuf)

    def info(self) -> dict[str, object]:
        return {"state": self.state, "cwnd": 14400, "srtt": 0.1}


class BuggyConnection(FakeConnection):
    corrupt_retransmit = True


GOOD = """\
// a script that the fake engine passes
--iss 1000
--peer-iss 5000
0.000  connect
0.000  > S 0:0(0) win 65535 <mss 1440>
1.000  > S 0:0(0) win * <mss 1440>          // the fake's 1 s SYN timer
1.100  < S. 0:0(0) ack 1 win 65535 <mss 1440>
*      > . 1:1(0) ack 1
*      event CONNECTED
*      state ESTABLISHED
1.200  send 100
*      > P. 1:101(100) ack 1 win 65535
2.100~2.300  > P. 1:101(100) ack 1           // retransmission after 1 s
+0.1   < . 1:1(0) ack 101 win 65535
2.400  < P. 1:51(50) ack 101
*      > . 101:101(0) ack 51
*      event READABLE
*      conn readable == 50
*      conn rcv_nxt == 51
*      conn snd_una == 101
2.500  receive 100 -> 50
*      info cwnd == 14400
*      info srtt == 0.1
*      info state == "ESTABLISHED"
5.000  wait
"""


def run(text: str, engine: Any = FakeConnection) -> None:
    run_script(parse_script(text, "test.pkt"), engine=engine)


def fails(text: str, engine: Any = FakeConnection) -> str:
    with pytest.raises(ScriptFailure) as info:
        run(text, engine)
    return str(info.value)


def test_good_script_passes() -> None:
    run(GOOD)


def test_trace_lists_segments() -> None:
    lines: list[str] = []
    run_script(parse_script(GOOD, "t.pkt"), engine=FakeConnection, trace=lines.append)
    text = "\n".join(lines)
    assert "> S 0:0(0) win 65535 <mss 1440>" in text
    assert "< S. 0:0(0) ack 1 win 65535 <mss 1440>" in text
    assert "(timer)" in text


def test_wrong_ack_is_reported_with_a_diff() -> None:
    msg = fails(GOOD.replace("*      > . 1:1(0) ack 1", "*      > . 1:1(0) ack 2"))
    assert "test.pkt:8: segment mismatch" in msg
    assert "ack: expected 2, got 1" in msg
    assert "expected:" in msg and "actual" in msg


def test_wrong_flags_seq_len_win_options() -> None:
    assert "flags: expected F., got ." in fails(
        GOOD.replace("> . 1:1(0) ack 1", "> F. 1:1(0) ack 1")
    )
    assert "seq: expected 2, got 1" in fails(GOOD.replace("> . 1:1(0) ack 1", "> . 2:2(0) ack 1"))
    msg = fails(GOOD.replace("> P. 1:101(100) ack 1 win 65535", "> P. 1:91(90) ack 1 win 65535"))
    assert "length: expected 90, got 100" in msg
    msg = fails(GOOD.replace("> P. 1:101(100) ack 1 win 65535", "> P. 1:101(100) ack 1 win 100"))
    assert "win: expected 100, got 65535" in msg
    msg = fails(
        GOOD.replace(
            "0.000  > S 0:0(0) win 65535 <mss 1440>", "0.000  > S 0:0(0) win 65535 <mss 1400>"
        )
    )
    assert "mss: expected 1400, got 1440" in msg
    msg = fails(
        GOOD.replace("0.000  > S 0:0(0) win 65535 <mss 1440>", "0.000  > S 0:0(0) win 65535")
    )
    assert "mss: unexpected option (1440)" in msg
    msg = fails(
        GOOD.replace(
            "0.000  > S 0:0(0) win 65535 <mss 1440>", "0.000  > S 0:0(0) <mss 1440,sackOK>"
        )
    )
    assert "sackOK: expected True, got False" in msg


def test_psh_is_checked_when_strict() -> None:
    run(
        GOOD.replace(
            "*      > P. 1:101(100) ack 1 win 65535", "*      > . 1:101(100) ack 1 win 65535"
        )
    )
    msg = fails(
        "--psh strict\n"
        + GOOD.replace(
            "*      > P. 1:101(100) ack 1 win 65535", "*      > . 1:101(100) ack 1 win 65535"
        )
    )
    assert "flags: expected ., got P." in msg


def test_missing_segment() -> None:
    msg = fails(GOOD.replace("5.000  wait", "5.000  > . 101:101(0) ack 51"))
    assert "expected a segment at t=5.0000, but the engine sent nothing" in msg


def test_extra_segment_is_reported() -> None:
    # Remove the expectation of the data ACK: the next injection finds it pending.
    msg = fails(GOOD.replace("*      > . 101:101(0) ack 51\n", ""))
    assert "unexpected segment(s) emitted" in msg
    assert "> . 101:101(0) ack 51" in msg


def test_segment_left_at_the_end_is_reported() -> None:
    msg = fails(GOOD.replace("5.000  wait\n", "2.600  send 10\n"))
    assert "unexpected segment(s) emitted by the end of the script" in msg


def test_wait_catches_timer_output() -> None:
    # Nothing acknowledges the 10 bytes: the fake retransmits at 3.6, inside the wait.
    msg = fails(
        GOOD.replace("5.000  wait\n", "2.600  send 10\n*  > P. 101:111(10) ack 51\n5.000  wait\n")
    )
    assert "unexpected segment(s) emitted before t=5.0000" in msg
    assert "t=3.6000" in msg


def test_wrong_time() -> None:
    msg = fails(
        GOOD.replace("1.000  > S 0:0(0) win * <mss 1440>", "0.500  > S 0:0(0) win * <mss 1440>")
    )
    assert "expected a segment at t=0.5000, but the engine sent nothing" in msg
    msg = fails(GOOD.replace("2.100~2.300  > P.", "2.300~2.400  > P."))
    assert "time: expected t=2.3000~2.4000, emitted at t=2.2000" in msg


def test_wrong_payload_bytes() -> None:
    msg = fails(GOOD, engine=BuggyConnection)
    assert "payload: not the stream bytes at offset 0" in msg


def test_assertions() -> None:
    assert "state is ESTABLISHED, expected CLOSED" in fails(
        GOOD.replace("state ESTABLISHED", "state CLOSED")
    )
    assert "info cwnd is 14400, expected == 14401" in fails(
        GOOD.replace("cwnd == 14400", "cwnd == 14401")
    )
    assert "info() has no key 'nope'" in fails(
        GOOD.replace("info cwnd == 14400", "info nope == 1")
    )
    assert "conn readable is 50, expected == 49" in fails(
        GOOD.replace("readable == 50", "readable == 49")
    )
    assert "expected event EOF" in fails(GOOD.replace("event READABLE", "event EOF"))
    assert "receive returned 50 bytes, expected 40" in fails(
        GOOD.replace("receive 100 -> 50", "receive 100 -> 40")
    )
    assert "event CONNECTED was emitted" in fails(
        GOOD.replace("*      event CONNECTED\n", "*      noevent CONNECTED\n")
    )
    assert "stats drop is 0" in fails(GOOD + "*  stats drop == 1\n")


def test_relative_times() -> None:
    # "+0.1" after the range line is relative to when the retransmission really went
    # out (2.2): the ACK arrives at 2.3, before 2.4, so no further retransmission.
    lines: list[str] = []
    run_script(parse_script(GOOD, "t.pkt"), engine=FakeConnection, trace=lines.append)
    assert any(t.strip().startswith("2.3000  < . 1:1(0) ack 101") for t in lines)


def test_syntax_errors() -> None:
    for bad in [
        "0 > X 0:0(0)",
        "0 > S 0:5(4)",
        "0 < . 1:1(0)",  # inject with '.' needs an ack
        "0 frobnicate",
        "0 connect\n--iss 5",  # header after steps
        "1 connect\n0 abort",  # time goes backwards
        "0 < S 0:0(0) <mss *>",
        "0 > S 0:0(0) <bogus 3>",
        "--config nope=1",
    ]:
        with pytest.raises(ScriptError):
            parse_script(bad, "bad.pkt")


def test_read_xfail(tmp_path: Path) -> None:
    p = tmp_path / "x.pkt"
    p.write_text("// RFC\n--xfail engine bug: RFC 9293 §3.10.7.4\n0 connect\n")
    assert read_xfail(p) == "engine bug: RFC 9293 §3.10.7.4"
    assert parse_script(p.read_text()).xfail == "engine bug: RFC 9293 §3.10.7.4"
    p.write_text("0 connect\n")
    assert read_xfail(p) is None


def test_every_script_cites_its_rule_and_parses() -> None:
    root = Path(__file__).parent
    scripts = sorted(root.rglob("*.pkt"))
    assert len(scripts) >= 120
    for path in scripts:
        first = path.read_text().splitlines()[0]
        assert first.startswith("// RFC"), f"{path}: first line must cite the RFC rule"
        parse_script(path.read_text(), str(path))  # no syntax errors


def test_unexpected_error_event_fails() -> None:
    msg = fails(GOOD + "6.000  abort\n")
    assert "reported ERROR aborted at t=6.0000" in msg
    run(GOOD + "6.000  abort\n*  event ERROR aborted\n")


def test_explore_mode_reports_and_continues() -> None:
    bad = GOOD.replace("*      > . 1:1(0) ack 1", "*      > . 1:1(0) ack 2").replace(
        "*      > . 101:101(0) ack 51\n", ""
    )
    lines: list[str] = []
    Runner(parse_script(bad, "t.pkt"), FakeConnection, lines.append, explore=True).run()
    notes = [t for t in lines if t.startswith("!!")]
    assert any("ack: expected 2, got 1" in t for t in notes)
    assert any("unexpected segment(s)" in t for t in notes)
    # It kept going to the end of the script.
    assert any("receive" not in t and "2.4000" in t for t in lines)


# -- packetdrill's own spellings -----------------------------------------------------------
RETRANSMIT = "2.100~2.300  > P. 1:101(100) ack 1"  # the fake retransmits at 2.2


@pytest.mark.parametrize("same_time", ["+0", "+0.0", "*"])
def test_plus_zero_is_the_previous_lines_time(same_time: str) -> None:
    """packetdrill's ``+0`` means what the harness's ``*`` means: the previous line's
    actual time, checked (± tolerance) on a '>' line."""
    run(GOOD.replace("\n*      ", f"\n{same_time}      "))
    # The retransmission comes 1 s after the send, not at the same time.
    msg = fails(GOOD.replace(RETRANSMIT, f"{same_time}  > P. 1:101(100) ack 1"))
    assert "test.pkt:13: expected a segment at t=1.2000, but the engine sent nothing" in msg


def test_relative_time_range() -> None:
    # After the send at 1.2 (the previous line's actual time): 2.1~2.3.
    run(GOOD.replace(RETRANSMIT, "+0.9~+1.1  > P. 1:101(100) ack 1"))
    msg = fails(GOOD.replace(RETRANSMIT, "+1.1~+1.3  > P. 1:101(100) ack 1"))
    assert "time: expected t=2.3000~2.5000, emitted at t=2.2000" in msg
    msg = fails(GOOD.replace(RETRANSMIT, "+0.5~+0.9  > P. 1:101(100) ack 1"))
    assert "expected a segment at t=1.7000, but the engine sent nothing" in msg
    for bad in ["0 connect\n+0.1~0.2  > S 0:0(0)", "0 connect\n+0.2~+0.1  > S 0:0(0)"]:
        with pytest.raises(ScriptError):
            parse_script(bad, "bad.pkt")
    with pytest.raises(ScriptError, match="only for '>' lines"):
        parse_script("0 connect\n+0~+1  < S. 0:0(0) ack 1", "bad.pkt")


def test_ellipsis_options_match_any_options() -> None:
    first_syn = "0.000  > S 0:0(0) win 65535 <mss 1440>"
    run(GOOD.replace(first_syn, "0.000  > S 0:0(0) win 65535 <...>"))
    run(GOOD.replace("*      > . 1:1(0) ack 1", "*      > . 1:1(0) ack 1 <...>"))  # no options
    # Only the options are left unchecked.
    msg = fails(GOOD.replace(first_syn, "0.000  > S 1:1(0) win 65535 <...>"))
    assert "seq: expected 1, got 0" in msg
    with pytest.raises(ScriptError, match="cannot contain wildcards"):
        parse_script("0 connect\n0.1 < S. 0:0(0) ack 1 <...>", "bad.pkt")


def test_option_list_as_packetdrill_writes_it() -> None:
    script = parse_script(
        "0 listen\n0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>",
        "t.pkt",
    )
    opts = script.lines[1].args.options
    assert (opts.mss, opts.sack_permitted, opts.timestamps, opts.wscale) == (
        1460,
        True,
        (100, 0),
        7,
    )
    first_syn = "0.000  > S 0:0(0) win 65535 <mss 1440>"
    run(GOOD.replace(first_syn, "0.000  > S 0:0(0) win 65535 <nop,nop,mss 1440,eol>"))
    msg = fails(GOOD.replace(first_syn, "0.000  > S 0:0(0) win 65535 <mss 1440,nop,wscale 7>"))
    assert "wscale: option missing" in msg


def test_dash_is_a_segment_without_flags() -> None:
    seg = parse_script("0 connect\n0.1 < - 0:0(0)", "t.pkt").lines[1].args
    assert seg.flags == 0 and seg.ack is None
    # The fake ignores a segment without flags: nothing comes back.
    run(GOOD.replace("5.000  wait", "2.600  < - 51:51(0) win 65535\n5.000  wait"))
    msg = fails(GOOD.replace("*      > . 1:1(0) ack 1", "*      > - 1:1(0)"))
    assert "flags: expected -, got ." in msg


def test_c_comments_keep_line_numbers() -> None:
    commented = GOOD.replace(
        "1.100  < S.", "/* a comment\n   over two lines */ 1.100  < S."
    ).replace("*      event CONNECTED", "*      event /* inline */ CONNECTED")
    run(commented)
    msg = fails(commented.replace("> . 1:1(0) ack 1", "> . 1:1(0) ack 2"))
    assert "test.pkt:9: segment mismatch" in msg  # one line further down than in GOOD
    assert (
        "// ok: /* inside a line comment"
        in parse_script("0 connect // ok: /* inside a line comment\n", "t.pkt").lines[0].text
    )
    with pytest.raises(ScriptError, match=r"t.pkt:2: unterminated /\* comment"):
        parse_script("0 connect\n/* never closed\n0.1 abort\n", "t.pkt")


def test_tolerance_usecs_header() -> None:
    late = GOOD.replace(RETRANSMIT, "2.196  > P. 1:101(100) ack 1")  # emitted at 2.2
    assert "expected a segment at t=2.1960, but the engine sent nothing" in fails(late)
    run("--tolerance_usecs=5000\n" + late)
    assert parse_script("--tolerance_usecs=4000\n0 connect").tolerance == pytest.approx(0.004)
    assert parse_script("--tolerance=0.01\n0 connect").tolerance == pytest.approx(0.01)
    with pytest.raises(ScriptError):
        parse_script("--tolerance_usecs=-1\n0 connect")


class EchoECNConnection(FakeConnection):
    """The fake, but its ACKs go out with the ECN field the last segment came with."""

    last_ecn = 0

    def on_segment(self, seg: TCPSegment, now: float) -> None:
        self.last_ecn = seg.ecn
        super().on_segment(seg, now)

    def _emit(self, flags: int, seq: int, payload: bytes = b"", mss: int | None = None) -> None:
        super()._emit(flags, seq, payload, mss)
        self.out[-1].ecn = self.last_ecn


def test_ecn_field_is_injected_and_checked() -> None:
    # The injected [ce] reaches the engine, the expected [ce] matches its echo.
    run(
        GOOD.replace("2.400  < P. 1:51(50) ack 101", "2.400  < [ce] P. 1:51(50) ack 101").replace(
            "*      > . 101:101(0) ack 51", "*      > [ce] . 101:101(0) ack 51"
        ),
        EchoECNConnection,
    )
    # Omitted means Not-ECT on a '>' line too.
    msg = fails(
        GOOD.replace("2.400  < P. 1:51(50) ack 101", "2.400  < [ect0] P. 1:51(50) ack 101"),
        EchoECNConnection,
    )
    assert "ecn: expected [noecn], got [ect0]" in msg
    assert "> [ect0] . 101:101(0) ack 51" in msg  # the trace shows the field
    # [*] matches any field.
    run(
        GOOD.replace(
            "2.400  < P. 1:51(50) ack 101", "2.400  < [ect1] P. 1:51(50) ack 101"
        ).replace("*      > . 101:101(0) ack 51", "*      > [*] . 101:101(0) ack 51"),
        EchoECNConnection,
    )
    assert "ecn: expected [ce], got [noecn]" in fails(
        GOOD.replace("*      > . 101:101(0) ack 51", "*      > [ce] . 101:101(0) ack 51")
    )


def test_ecn_field_syntax_errors() -> None:
    with pytest.raises(ScriptError, match="unknown ECN field"):
        parse_script("// x\n0.000 connect\n0.100  < [ect2] S. 0:0(0) ack 1\n")
    with pytest.raises(ScriptError, match="wildcards"):
        parse_script("// x\n0.000 connect\n0.100  < [*] S. 0:0(0) ack 1\n")
