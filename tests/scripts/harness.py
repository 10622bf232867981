"""A packetdrill-style script runner for the sans-I/O TCP engine.

A script is a short text file: header lines (``--config``, ``--iss`` ...) and then one
step per line, each with a time. The runner plays the peer: it injects the ``<``
segments into :class:`trio_tcp6.tcp.connection.Connection`, makes the user calls,
fires the engine's timers on virtual time exactly when ``next_deadline`` says, and
checks that every segment the engine emits matches the next ``>`` line — no missing
segment, no extra one, at the right time. See ``tests/scripts/README.md`` for the format.

Run one script with a trace of every segment::

    python -m tests.scripts.harness tests/scripts/handshake/active_open.pkt -v
"""

from __future__ import annotations

import ast
import enum
import math
import operator
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import attrs

from trio_tcp6.config import Keepalive, TCPConfig
from trio_tcp6.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TCPSegment

__all__ = [
    "ScriptError",
    "ScriptFailure",
    "Script",
    "load_script",
    "parse_script",
    "run_script",
    "read_xfail",
    "main",
]

MASK = 0xFFFFFFFF
#: Floating-point slack when comparing a timer deadline with a line's time.
_EPS = 1e-9


class ScriptError(Exception):
    """The script itself is malformed (never an engine failure)."""


class ScriptFailure(AssertionError):
    """The engine did not behave as the script expects."""


class _Any:
    """The ``*`` wildcard."""

    def __repr__(self) -> str:
        return "*"


ANY: Any = _Any()


# -- data patterns -------------------------------------------------------------------
def _pattern(offset: int, length: int, salt: int) -> bytes:
    """Deterministic, non-periodic stream contents: byte ``k`` of a stream is a hash
    of ``k``, so a segment carrying the wrong stream offset is always caught."""
    return bytes(
        ((((k * 2654435761) & MASK) >> 13) + salt) & 0xFF for k in range(offset, offset + length)
    )


def our_data(offset: int, length: int) -> bytes:
    """Bytes the user (our side) sends: ``send N`` writes the next N of these."""
    return _pattern(offset, length, 0)


def peer_data(offset: int, length: int) -> bytes:
    """Bytes the scripted peer sends: ``< . 1:101(100)`` carries peer_data(0, 100)."""
    return _pattern(offset, length, 0x5A)


# -- script model --------------------------------------------------------------------
_FLAG_CHARS = [
    ("F", FIN),
    ("S", SYN),
    ("R", RST),
    ("P", PSH),
    (".", ACK),
    ("U", URG),
    ("E", ECE),
    ("W", CWR),
]


#: IPv6 ECN field spellings (packetdrill's): ``[ect0]`` before the flags.
_ECN_NAMES = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}
_ECN_SPELLING = {v: k for k, v in _ECN_NAMES.items()}


def ecn_str(ecn: Any) -> str:
    """The ``[..]`` annotation for an ECN field value (``""`` for Not-ECT)."""
    if ecn is ANY:
        return "[*] "
    return f"[{_ECN_SPELLING[ecn]}] " if ecn else ""


def flags_str(flags: int) -> str:
    return "".join(c for c, bit in _FLAG_CHARS if flags & bit) or "-"


def _parse_flags(text: str) -> int:
    if text == "-":
        return 0  # packetdrill's spelling of "no flags"
    flags = 0
    for ch in text:
        for c, bit in _FLAG_CHARS:
            if ch == c:
                flags |= bit
                break
        else:
            raise ScriptError(f"unknown flag {ch!r} in {text!r}")
    return flags


@dataclass
class OptionSpec:
    """Options of one scripted segment; ``None`` means absent, ``ANY`` any value."""

    mss: Any = None
    wscale: Any = None
    sack_permitted: bool = False
    sack_blocks: Any = ()  # tuple of (left, right) (either may be ANY), or ANY
    timestamps: Any = None  # (val, ecr) with ANY allowed, or None, or ANY
    wildcard: bool = False  # "<*>": do not check options at all

    def describe(self) -> str:
        if self.wildcard:
            return "<*>"
        parts: list[str] = []
        if self.mss is not None:
            parts.append(f"mss {self.mss}")
        if self.sack_permitted:
            parts.append("sackOK")
        if self.timestamps is ANY:
            parts.append("TS *")
        elif self.timestamps is not None:
            parts.append(f"TS val {self.timestamps[0]} ecr {self.timestamps[1]}")
        if self.sack_blocks is ANY:
            parts.append("sack *")
        elif self.sack_blocks:
            parts.append("sack " + " ".join(f"{left}:{right}" for left, right in self.sack_blocks))
        if self.wscale is not None:
            parts.append(f"wscale {self.wscale}")
        return f"<{','.join(parts)}>" if parts else ""


@dataclass
class SegSpec:
    direction: str  # "<" inject, ">" expect
    flags: int
    start: Any  # relative seq or ANY
    length: Any  # payload length or ANY
    ack: Any  # relative ack, ANY, or None (not given)
    win: Any  # raw window, ANY, or None (not given)
    urg: int
    options: OptionSpec
    #: The IPv6 ECN field: injected with it, or expected (ANY: not checked).
    ecn: Any = 0

    def describe(self) -> str:
        if self.start is ANY:
            seq = "*"
        else:
            end = ANY if self.length is ANY else self.start + self.length
            seq = f"{self.start}:{end}({self.length})"
        text = f"{self.direction} {ecn_str(self.ecn)}{flags_str(self.flags)} {seq}"
        if self.ack is not None:
            text += f" ack {self.ack}"
        if self.win is not None:
            text += f" win {self.win}"
        if self.urg:
            text += f" urg {self.urg}"
        opts = self.options.describe()
        return f"{text} {opts}" if opts else text


@dataclass
class Line:
    lineno: int
    text: str
    lo: float  # earliest time (absolute; see ``rel``)
    hi: float  # latest time (== lo except for ranges on '>' lines)
    #: "+dt", "*" (= "+0") and "+a~+b" lines: the earliest and latest offset after the
    #: previous line's actual time (for a '>' line, when its segment was emitted),
    #: resolved when the script runs.
    rel: tuple[float, float] | None
    kind: str  # "seg", "call", "event", "noevent", "state", "info", "stats", "conn"
    args: Any


@dataclass
class Script:
    path: str
    config: dict[str, Any] = field(default_factory=dict)
    iss: int = 1000
    peer_iss: int = 5000
    mss: int = 1440
    ts_offset: int = 0
    local_port: int = 40000
    remote_port: int = 80
    tolerance: float = 0.002
    psh: str = "ignore"
    xfail: str | None = None
    lines: list[Line] = field(default_factory=list)

    def make_config(self) -> TCPConfig:
        kwargs = dict(self.config)
        ka = kwargs.get("keepalive")
        if isinstance(ka, tuple):
            kwargs["keepalive"] = Keepalive(*ka)
        return TCPConfig(**kwargs)


# -- parsing -------------------------------------------------------------------------
_NUM = r"-?\d+"
_SEG_RE = re.compile(
    rf"^(?P<dir>[<>])\s+(?:\[(?P<ecn>[a-z0-9]+|\*)\]\s+)?(?P<flags>[FSRP.UEW]+|-)\s+"
    rf"(?:(?P<star>\*)|(?P<start>{_NUM}):(?P<end>{_NUM}|\*)\((?P<len>\d+|\*)\))"
    r"(?P<rest>.*)$"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CALLS = {"connect", "listen", "send", "receive", "shutdown", "abort", "set_path_mtu", "wait"}


def _int_or_any(tok: str, what: str) -> Any:
    if tok == "*":
        return ANY
    try:
        return int(tok, 0)
    except ValueError:
        raise ScriptError(f"bad {what}: {tok!r}") from None


def _parse_options(text: str) -> OptionSpec:
    spec = OptionSpec()
    text = text.strip()
    if text in ("*", "..."):  # "<...>" is packetdrill's spelling
        spec.wildcard = True
        return spec
    for raw in text.split(","):
        item = raw.split()
        if not item:
            continue
        name = item[0]
        if name in ("nop", "eol"):
            continue
        if name == "mss" and len(item) == 2:
            spec.mss = _int_or_any(item[1], "mss")
        elif name == "wscale" and len(item) == 2:
            spec.wscale = _int_or_any(item[1], "wscale")
        elif name == "sackOK" and len(item) == 1:
            spec.sack_permitted = True
        elif name == "sack":
            if item[1:] == ["*"]:
                spec.sack_blocks = ANY
            else:
                blocks = []
                for blk in item[1:]:
                    left, sep, right = blk.partition(":")
                    if not sep:
                        raise ScriptError(f"bad sack block {blk!r}")
                    blocks.append((_int_or_any(left, "sack"), _int_or_any(right, "sack")))
                spec.sack_blocks = tuple(blocks)
        elif name == "TS":
            if item[1:] == ["*"]:
                spec.timestamps = ANY
            elif len(item) == 5 and item[1] == "val" and item[3] == "ecr":
                spec.timestamps = (_int_or_any(item[2], "TS val"), _int_or_any(item[4], "TS ecr"))
            else:
                raise ScriptError(f"bad TS option {raw!r} (want 'TS val V ecr E')")
        else:
            raise ScriptError(f"unknown option {raw.strip()!r}")
    return spec


def _parse_segment(text: str) -> SegSpec:
    m = _SEG_RE.match(text)
    if not m:
        raise ScriptError(f"bad segment line {text!r}")
    direction = m["dir"]
    flags = _parse_flags(m["flags"])
    ecn: Any = 0
    if m["ecn"] == "*":
        if direction == "<":
            raise ScriptError("an injected segment cannot contain wildcards")
        ecn = ANY
    elif m["ecn"] is not None:
        if m["ecn"] not in _ECN_NAMES:
            raise ScriptError(f"unknown ECN field [{m['ecn']}] (noecn, ect0, ect1, ce, *)")
        ecn = _ECN_NAMES[m["ecn"]]
    if m["star"]:
        if direction == "<":
            raise ScriptError("an injected segment needs a sequence number")
        start: Any = ANY
        length: Any = ANY
    else:
        start = int(m["start"])
        length = ANY if m["len"] == "*" else int(m["len"])
        if m["end"] != "*" and length is not ANY and int(m["end"]) - start != length:
            raise ScriptError(f"inconsistent {m['start']}:{m['end']}({m['len']})")
        if direction == "<" and length is ANY:
            raise ScriptError("an injected segment needs a length")
    rest = m["rest"].strip()
    options = OptionSpec()
    if "<" in rest:
        idx = rest.index("<")
        if not rest.endswith(">"):
            raise ScriptError(f"unterminated options in {text!r}")
        options = _parse_options(rest[idx + 1 : -1])
        rest = rest[:idx].strip()
    toks = rest.split()
    ack: Any = None
    win: Any = None
    urg = 0
    i = 0
    while i < len(toks):
        key = toks[i]
        if i + 1 >= len(toks):
            raise ScriptError(f"{key!r} needs a value in {text!r}")
        val = _int_or_any(toks[i + 1], key)
        if key == "ack":
            ack = val
        elif key == "win":
            win = val
        elif key == "urg":
            if val is ANY:
                raise ScriptError("urg cannot be a wildcard")
            urg = val
        else:
            raise ScriptError(f"unknown segment field {key!r}")
        i += 2
    if direction == "<":
        if flags & ACK and ack is None:
            raise ScriptError("an injected segment with '.' needs 'ack N'")
        if ANY in (ack, win) or options.wildcard or ANY in (options.mss, options.wscale):
            raise ScriptError("an injected segment cannot contain wildcards")
    elif ack is None and flags & ACK:
        raise ScriptError("an expected segment with '.' needs 'ack N' (or 'ack *')")
    return SegSpec(direction, flags, start, length, ack, win, urg, options, ecn)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # bare words compare as strings (e.g. state names)


def _parse_header(script: Script, text: str) -> None:
    name, _, value = text.partition(" ")
    if "=" in name:  # packetdrill's --name=value
        name, _, first = name.partition("=")
        value = f"{first} {value}"
    value = value.strip()
    if name == "--config":
        for item in value.split():
            key, sep, val = item.partition("=")
            if not sep:
                raise ScriptError(f"--config wants key=value, got {item!r}")
            script.config[key] = _literal(val)
        try:
            script.make_config()
        except (TypeError, ValueError) as exc:
            raise ScriptError(f"bad --config: {exc}") from None
    elif name in ("--iss", "--peer-iss", "--mss", "--ts-offset", "--local-port", "--remote-port"):
        try:
            number = int(value, 0)
        except ValueError:
            raise ScriptError(f"{name} wants an integer, got {value!r}") from None
        setattr(script, name[2:].replace("-", "_"), number)
    elif name == "--tolerance":
        script.tolerance = _seconds(value)
    elif name == "--tolerance_usecs":  # packetdrill's option
        script.tolerance = _seconds(value) / 1e6
    elif name == "--psh":
        if value not in ("strict", "ignore"):
            raise ScriptError("--psh is 'strict' or 'ignore'")
        script.psh = value
    elif name == "--xfail":
        if not value:
            raise ScriptError("--xfail needs a reason")
        script.xfail = value
    else:
        raise ScriptError(f"unknown header {name!r}")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScriptError(f"bad time {text!r}") from None
    if value < 0 or not math.isfinite(value):
        raise ScriptError(f"bad time {text!r}")
    return value


def _parse_time(
    tok: str, prev: float, is_expect: bool
) -> tuple[float, float, tuple[float, float] | None]:
    """(lo, hi, rel) of a step's time token; see :class:`Line`."""
    if tok == "*":
        return prev, prev, (0.0, 0.0)
    if "~" in tok:
        if not is_expect:
            raise ScriptError("time ranges a~b are only for '>' lines")
        a, b = tok.split("~", 1)
        if a.startswith("+") != b.startswith("+"):
            raise ScriptError(f"a range is absolute (a~b) or relative (+a~+b), not {tok!r}")
        relative = a.startswith("+")
        lo, hi = (_seconds(a[1:]), _seconds(b[1:])) if relative else (_seconds(a), _seconds(b))
        if hi < lo:
            raise ScriptError(f"empty time range {tok!r}")
        if relative:
            return prev + lo, prev + hi, (lo, hi)
        return lo, hi, None
    if tok.startswith("+"):
        dt = _seconds(tok[1:])
        return prev + dt, prev + dt, (dt, dt)
    t = _seconds(tok)
    if t < prev - _EPS:
        raise ScriptError(f"time goes backwards ({t} < {prev})")
    return t, t, None


def _parse_step(body: str) -> tuple[str, Any]:
    if body[:1] in "<>":
        return "seg", _parse_segment(body)
    word, _, rest = body.partition(" ")
    rest = rest.strip()
    if word in _CALLS:
        return "call", (word, rest)
    if word in ("event", "noevent"):
        parts = rest.split()
        if not 1 <= len(parts) <= 2:
            raise ScriptError(f"{word} KIND [error]")
        return word, (parts[0].upper(), parts[1] if len(parts) == 2 else None)
    if word == "state":
        return "state", rest.replace("_", "-").upper()
    if word in ("info", "stats", "conn"):
        m = re.match(r"^(\w+)\s*(==|!=|<=|>=|<|>)\s*(.+)$", rest)
        if not m:
            raise ScriptError(f"{word} wants 'NAME OP VALUE', got {rest!r}")
        return word, (m[1], m[2], _literal(m[3].strip()))
    raise ScriptError(f"unknown step {body!r}")


_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _strip_comments(text: str, path: str) -> list[str]:
    """The lines of ``text`` without ``//`` and ``/* ... */`` comments (packetdrill's
    two kinds), in their places: a comment spanning lines leaves them empty."""
    stripped = _COMMENT_RE.sub(lambda m: "\n" * m[0].count("\n"), text)
    if "/*" in stripped:
        lineno = stripped[: stripped.index("/*")].count("\n") + 1
        raise ScriptError(f"{path}:{lineno}: unterminated /* comment")
    return stripped.split("\n")


def parse_script(text: str, path: str = "<script>") -> Script:
    script = Script(path=path)
    prev = 0.0
    raws = text.split("\n")
    for lineno, line in enumerate(_strip_comments(text, path), 1):
        raw = raws[lineno - 1]
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("--"):
                if script.lines:
                    raise ScriptError("header lines must come before the first step")
                _parse_header(script, line)
                continue
            tok, _, body = line.partition(" ")
            body = body.strip()
            if not body:
                raise ScriptError("a step needs a time and an action")
            is_expect = body.startswith(">")
            lo, hi, rel = _parse_time(tok, prev, is_expect)
            kind, args = _parse_step(body)
        except ScriptError as exc:
            raise ScriptError(f"{path}:{lineno}: {exc}\n  {raw.strip()}") from None
        script.lines.append(Line(lineno, raw.strip(), lo, hi, rel, kind, args))
        prev = lo
    return script


def load_script(path: str | Path) -> Script:
    p = Path(path)
    return parse_script(p.read_text(), str(p))


def read_xfail(path: str | Path) -> str | None:
    """The ``--xfail`` reason of a script, read cheaply (for pytest collection)."""
    for raw in _strip_comments(Path(path).read_text(), str(path)):
        line = raw.strip()
        if line.startswith("--xfail"):
            return line[len("--xfail") :].strip() or "xfail"
    return None


# -- running -------------------------------------------------------------------------
@dataclass
class _Cookie:
    peer_mss: int = 1440
    peer_wscale: int | None = None
    sack_permitted: bool = False
    timestamps: bool = False


def _signed(x: int) -> int:
    x &= MASK
    return x - (1 << 32) if x >= 1 << 31 else x


class Runner:
    def __init__(
        self,
        script: Script,
        engine: Any = None,
        trace: Callable[[str], None] | None = None,
        explore: bool = False,
    ) -> None:
        if engine is None:
            from trio_tcp6.tcp.connection import Connection

            engine = Connection
        self.script = script
        self.engine = engine
        self.config = script.make_config()
        self.conn: Any = None
        self.now = 0.0
        self.queue: list[tuple[float, TCPSegment]] = []
        self.events: list[tuple[float, Any]] = []
        self.stats: Counter[str] = Counter()
        self.sent_total = 0
        self.received_total = 0
        self.listen: _Cookie | bool = False
        self.log: list[str] = []
        self.trace = trace
        self.line: Line | None = None
        #: Keep going after a mismatch (for writing scripts): report, do not raise.
        self.explore = explore

    # -- logging / failing ---------------------------------------------------------
    def _log(self, text: str) -> None:
        self.log.append(text)
        if self.trace is not None:
            self.trace(text)

    def fail(self, msg: str) -> ScriptFailure:
        where = f"{self.script.path}:{self.line.lineno}" if self.line else self.script.path
        text = f"{where}: {msg}"
        if self.line is not None:
            text += f"\n  script line: {self.line.text}"
        if self.log:
            text += "\n  recent trace:\n" + "\n".join("    " + t for t in self.log[-12:])
        return ScriptFailure(text)

    # -- formatting ------------------------------------------------------------------
    def fmt(self, seg: TCPSegment, outbound: bool) -> str:
        my_base, their_base = (self.script.iss, self.script.peer_iss)
        seq_base, ack_base = (my_base, their_base) if outbound else (their_base, my_base)
        start = _signed(seg.seq - seq_base)
        n = len(seg.payload)
        text = (
            f"{'>' if outbound else '<'} {ecn_str(seg.ecn)}{flags_str(seg.flags)} "
            f"{start}:{start + n}({n})"
        )
        if seg.flags & ACK:
            text += f" ack {_signed(seg.ack - ack_base)}"
        text += f" win {seg.window}"
        if seg.urgent:
            text += f" urg {seg.urgent}"
        opts: list[str] = []
        if seg.mss is not None:
            opts.append(f"mss {seg.mss}")
        if seg.sack_permitted:
            opts.append("sackOK")
        if seg.timestamps is not None:
            opts.append(f"TS val {seg.timestamps[0]} ecr {seg.timestamps[1]}")
        if seg.sack_blocks:
            blocks = " ".join(
                f"{_signed(a - ack_base)}:{_signed(b - ack_base)}" for a, b in seg.sack_blocks
            )
            opts.append(f"sack {blocks}")
        if seg.wscale is not None:
            opts.append(f"wscale {seg.wscale}")
        if opts:
            text += f" <{','.join(opts)}>"
        return text

    # -- engine plumbing -------------------------------------------------------------
    def _engine_call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except ScriptFailure:
            raise
        except Exception as exc:
            raise self.fail(f"engine raised {type(exc).__name__}: {exc} (during {what})") from exc
        self._drain()
        return result

    def _drain(self) -> None:
        if self.conn is None:
            return
        try:
            segs = self.conn.take_segments()
            events = self.conn.take_events()
        except Exception as exc:
            raise self.fail(f"engine raised {type(exc).__name__}: {exc} (take_*)") from exc
        for seg in segs:
            self._log(f"{self.now:9.4f}  {self.fmt(seg, True)}")
            if (seg.src_port, seg.dst_port) != (self.script.local_port, self.script.remote_port):
                raise self.fail(
                    f"segment with ports {seg.src_port}->{seg.dst_port}, expected "
                    f"{self.script.local_port}->{self.script.remote_port}"
                )
            self.queue.append((self.now, seg))
        for ev in events:
            err = f" {ev.error}" if getattr(ev, "error", None) else ""
            self._log(f"{self.now:9.4f}  event {ev.kind.name}{err}")
            self.events.append((self.now, ev))

    def _deadline(self) -> float | None:
        if self.conn is None:
            return None
        try:
            deadline: float | None = self.conn.next_deadline
        except Exception as exc:
            raise self.fail(f"engine raised {type(exc).__name__}: {exc} (next_deadline)") from exc
        return deadline

    def advance(self, t: float, stop_on_output: bool = False) -> None:
        """Fire every timer due up to ``t`` at its own deadline, then set now = t."""
        spins = 0
        while True:
            if stop_on_output and self.queue:
                return
            deadline = self._deadline()
            if deadline is None or deadline > t + _EPS:
                break
            fire_at = max(deadline, self.now)
            if fire_at <= self.now + _EPS:
                spins += 1
                if spins > 1000:
                    raise self.fail(f"engine timer loops: next_deadline stays at {deadline}")
            else:
                spins = 0
            self.now = fire_at
            self._log(f"{self.now:9.4f}  (timer)")
            self._engine_call("on_timer", lambda: self.conn.on_timer(self.now))
        if not stop_on_output:
            self.now = max(self.now, t)

    def _check_no_output(self, why: str) -> None:
        if self.queue:
            listing = "\n".join(f"    t={t:.4f}  {self.fmt(seg, True)}" for t, seg in self.queue)
            if self.explore:
                self._log(f"!! unexpected segment(s) emitted {why}:\n!! {listing.strip()}")
                self.queue.clear()
                return
            raise self.fail(f"unexpected segment(s) emitted {why}:\n{listing}")

    # -- running ---------------------------------------------------------------------
    def run(self) -> None:
        for line in self.script.lines:
            if line.rel is not None:
                # "+dt", "*" and "+a~+b": relative to the previous line's actual time.
                line = replace(line, lo=self.now + line.rel[0], hi=self.now + line.rel[1])
            self.line = line
            try:
                self._step(line)
            except ScriptFailure as exc:
                if not self.explore:
                    raise
                # Explore mode: report and carry on, dropping what did not match.
                self._log("!! " + str(exc).split("\n  script line:")[0].replace("\n", "\n!! "))
                self.queue.clear()
        if self.explore:
            self.advance(self.now)
            for t, seg in self.queue:
                self._log(f"!! left over: t={t:.4f}  {self.fmt(seg, True)}")
            return
        self._check_no_output("by the end of the script")
        errors = [(t, ev) for t, ev in self.events if ev.kind.name == "ERROR"]
        if errors:
            t, ev = errors[0]
            raise self.fail(
                f"the engine reported ERROR {ev.error} at t={t:.4f} and no 'event ERROR' "
                "line expected it"
            )

    def _step(self, line: Line) -> None:
        if line.kind == "seg" and line.args.direction == ">":
            self._expect(line)
            return
        self.advance(line.lo)
        if line.kind in ("seg", "call"):
            self._check_no_output(f"before t={line.lo:.4f}")
        if line.kind == "seg":
            self._inject(line.args)
        elif line.kind == "call":
            self._call(*line.args)
        elif line.kind == "event":
            self._event(*line.args)
        elif line.kind == "noevent":
            kind, err = line.args
            for t, ev in self.events:
                if ev.kind.name == kind and (err is None or ev.error == err):
                    raise self.fail(f"event {kind} was emitted at t={t:.4f}")
        elif line.kind == "state":
            self._need_conn()
            actual = self.conn.state.value
            if actual != line.args:
                raise self.fail(f"state is {actual}, expected {line.args}")
        else:
            self._assert_value(line.kind, *line.args)

    def _need_conn(self) -> None:
        if self.conn is None:
            raise ScriptError(
                f"{self.script.path}:{self.line.lineno if self.line else 0}: no connection yet"
            )

    # -- segments --------------------------------------------------------------------
    def _inject(self, spec: SegSpec) -> None:
        s = self.script
        assert spec.start is not ANY and spec.length is not ANY
        data_off = spec.start + (1 if spec.flags & SYN else 0) - 1
        payload = peer_data(data_off, spec.length) if spec.length else b""
        opts = spec.options
        seg = TCPSegment(
            src_port=s.remote_port,
            dst_port=s.local_port,
            seq=(s.peer_iss + spec.start) & MASK,
            ack=(s.iss + spec.ack) & MASK if spec.ack is not None else 0,
            flags=spec.flags,
            window=65535 if spec.win is None else spec.win,
            payload=payload,
            urgent=spec.urg,
            mss=opts.mss,
            wscale=opts.wscale,
            sack_permitted=opts.sack_permitted,
            sack_blocks=tuple(
                ((s.iss + a) & MASK, (s.iss + b) & MASK) for a, b in opts.sack_blocks
            ),
            timestamps=opts.timestamps,
            ecn=spec.ecn,
        )
        self._log(f"{self.now:9.4f}  {self.fmt(seg, False)}")
        if self.conn is None:
            self._open_passive(seg)
        else:
            self._engine_call("on_segment", lambda: self.conn.on_segment(seg, self.now))

    def _open_passive(self, seg: TCPSegment) -> None:
        s = self.script
        if self.listen is False:
            raise ScriptError(f"{s.path}: segment injected before connect/listen")
        common = dict(iss=s.iss, mss=s.mss, now=self.now, stats=self.stats, ts_offset=s.ts_offset)
        if isinstance(self.listen, _Cookie):
            c = self.listen
            self.conn = self._engine_call(
                "accept_cookie",
                lambda: self.engine.accept_cookie(
                    self.config,
                    seg,
                    peer_mss=c.peer_mss,
                    peer_wscale=c.peer_wscale,
                    sack_permitted=c.sack_permitted,
                    timestamps=c.timestamps,
                    **common,
                ),
            )
        else:
            if not seg.syn:
                raise ScriptError(
                    f"{s.path}: the first injected segment after listen must be a SYN"
                )
            self.conn = self._engine_call(
                "accept", lambda: self.engine.accept(self.config, seg, **common)
            )
        self._drain()

    def _expect(self, line: Line) -> None:
        spec: SegSpec = line.args
        tol = self.script.tolerance
        self.advance(line.lo)
        if not self.queue:
            self.advance(line.hi + tol, stop_on_output=True)
        if not self.queue:
            raise self.fail(
                f"expected a segment at t={line.lo:.4f}, but the engine sent nothing\n"
                f"  expected: {spec.describe()}"
            )
        t, seg = self.queue.pop(0)
        diffs = self._compare(spec, seg)
        if not line.lo - tol <= t <= line.hi + tol:
            when = f"{line.lo:.4f}" if line.lo == line.hi else f"{line.lo:.4f}~{line.hi:.4f}"
            diffs.append(f"time: expected t={when}, emitted at t={t:.4f}")
        if diffs:
            raise self.fail(
                "segment mismatch\n"
                f"  expected:            {spec.describe()}\n"
                f"  actual (t={t:.4f}): {self.fmt(seg, True)}\n"
                "  differences: " + "; ".join(diffs)
            )
        self._log(f"{self.now:9.4f}  ok: line {line.lineno}")
        self.now = max(self.now, line.lo)

    def _compare(self, spec: SegSpec, seg: TCPSegment) -> list[str]:
        s = self.script
        diffs: list[str] = []
        want_flags, got_flags = spec.flags, seg.flags
        if s.psh == "ignore":
            want_flags &= ~PSH
            got_flags &= ~PSH
        if want_flags != got_flags:
            diffs.append(f"flags: expected {flags_str(spec.flags)}, got {flags_str(seg.flags)}")
        rel = _signed(seg.seq - s.iss)
        if spec.start is not ANY and rel != spec.start:
            diffs.append(f"seq: expected {spec.start}, got {rel}")
        n = len(seg.payload)
        if spec.length is not ANY and n != spec.length:
            diffs.append(f"length: expected {spec.length}, got {n}")
        if spec.flags & ACK and spec.ack is not ANY:
            got_ack = _signed(seg.ack - s.peer_iss)
            if got_ack != spec.ack:
                diffs.append(f"ack: expected {spec.ack}, got {got_ack}")
        if spec.win is not None and spec.win is not ANY and seg.window != spec.win:
            diffs.append(f"win: expected {spec.win}, got {seg.window}")
        if spec.ecn is not ANY and seg.ecn != spec.ecn:
            want, got = _ECN_SPELLING[spec.ecn], _ECN_SPELLING[seg.ecn & 3]
            diffs.append(f"ecn: expected [{want}], got [{got}]")
        if seg.urgent != spec.urg and (spec.urg or seg.flags & URG):
            diffs.append(f"urg: expected {spec.urg}, got {seg.urgent}")
        diffs += self._compare_options(spec.options, seg)
        # The payload must be exactly our stream's bytes at that offset.
        if n:
            off = rel + (1 if seg.flags & SYN else 0) - 1
            if off >= 0:
                if off + n > self.sent_total:
                    diffs.append(
                        f"payload: bytes {off}..{off + n} of our stream, but only "
                        f"{self.sent_total} were sent"
                    )
                elif seg.payload != our_data(off, n):
                    diffs.append(f"payload: not the stream bytes at offset {off}")
        return diffs

    def _compare_options(self, want: OptionSpec, seg: TCPSegment) -> list[str]:
        if want.wildcard:
            return []
        diffs: list[str] = []
        s = self.script

        def scalar(name: str, exp: Any, got: Any) -> None:
            if exp is None:
                if got is not None:
                    diffs.append(f"{name}: unexpected option ({got})")
            elif got is None:
                diffs.append(f"{name}: option missing")
            elif exp is not ANY and exp != got:
                diffs.append(f"{name}: expected {exp}, got {got}")

        scalar("mss", want.mss, seg.mss)
        scalar("wscale", want.wscale, seg.wscale)
        if want.sack_permitted != seg.sack_permitted:
            diffs.append(f"sackOK: expected {want.sack_permitted}, got {seg.sack_permitted}")
        if want.timestamps is None or want.timestamps is ANY:
            scalar("TS", want.timestamps, seg.timestamps)
        elif seg.timestamps is None:
            diffs.append("TS: option missing")
        else:
            for label, exp, got in zip(
                ("val", "ecr"), want.timestamps, seg.timestamps, strict=True
            ):
                if exp is not ANY and exp != got:
                    diffs.append(f"TS {label}: expected {exp}, got {got}")
        if want.sack_blocks is ANY:
            if not seg.sack_blocks:
                diffs.append("sack: option missing")
        else:
            got_blocks = [
                (_signed(a - s.peer_iss), _signed(b - s.peer_iss)) for a, b in seg.sack_blocks
            ]
            ok = len(got_blocks) == len(want.sack_blocks) and all(
                (el is ANY or el == gl) and (er is ANY or er == gr)
                for (el, er), (gl, gr) in zip(want.sack_blocks, got_blocks, strict=True)
            )
            if not ok:
                exp_txt = " ".join(f"{a}:{b}" for a, b in want.sack_blocks) or "none"
                got_txt = " ".join(f"{a}:{b}" for a, b in got_blocks) or "none"
                diffs.append(f"sack: expected {exp_txt}, got {got_txt}")
        return diffs

    # -- user calls ------------------------------------------------------------------
    def _call(self, name: str, rest: str) -> None:
        s = self.script
        words = rest.split()
        if name == "wait":
            return  # advancing time and checking for silence already happened
        if name == "connect":
            if self.conn is not None:
                raise ScriptError(f"{s.path}: connect on an existing connection")
            self.conn = self._engine_call(
                "connect",
                lambda: self.engine.connect(
                    self.config,
                    local_port=s.local_port,
                    remote_port=s.remote_port,
                    iss=s.iss,
                    mss=s.mss,
                    now=self.now,
                    stats=self.stats,
                    ts_offset=s.ts_offset,
                ),
            )
            self._drain()
            return
        if name == "listen":
            if words and words[0] == "cookie":
                cookie = _Cookie()
                for item in words[1:]:
                    key, _, val = item.partition("=")
                    if key not in ("peer_mss", "peer_wscale", "sack_permitted", "timestamps"):
                        raise ScriptError(f"{s.path}: unknown listen cookie parameter {key!r}")
                    setattr(cookie, key, _literal(val))
                self.listen = cookie
            else:
                self.listen = True
            return
        self._need_conn()
        conn = self.conn
        if name == "send":
            expected, words = self._result(words)
            if not words or not words[0].isdigit():
                raise ScriptError(f"{s.path}: send N [nodelay] [-> M]")
            n = int(words[0])
            nodelay = "nodelay" in words[1:]
            data = our_data(self.sent_total, n)
            taken = self._engine_call("send", lambda: conn.send(data, self.now, nodelay=nodelay))
            self.sent_total += taken
            want = n if expected is None else expected
            if taken != want:
                raise self.fail(f"send took {taken} bytes, expected {want}")
        elif name == "receive":
            expected, words = self._result(words)
            if len(words) != 1 or expected is None:
                raise ScriptError(f"{s.path}: receive N -> M")
            n = int(words[0])
            got = self._engine_call("receive", lambda: conn.receive(n, self.now))
            if len(got) != expected:
                raise self.fail(f"receive returned {len(got)} bytes, expected {expected}")
            if bytes(got) != peer_data(self.received_total, len(got)):
                raise self.fail(
                    f"receive returned the wrong bytes (not the peer's stream at offset "
                    f"{self.received_total})"
                )
            self.received_total += len(got)
        elif name == "shutdown":
            self._engine_call("shutdown", lambda: conn.shutdown(self.now))
        elif name == "abort":
            self._engine_call("abort", lambda: conn.abort(self.now))
        elif name == "set_path_mtu":
            mtu = int(words[0])
            self._engine_call("set_path_mtu", lambda: conn.set_path_mtu(mtu, self.now))

    @staticmethod
    def _result(words: list[str]) -> tuple[int | None, list[str]]:
        if "->" in words:
            i = words.index("->")
            if i + 2 != len(words):
                raise ScriptError("'-> M' must end the line")
            return int(words[i + 1]), words[:i]
        return None, words

    # -- assertions ------------------------------------------------------------------
    def _event(self, kind: str, err: str | None) -> None:
        for i, (_t, ev) in enumerate(self.events):
            if ev.kind.name == kind and (err is None or ev.error == err):
                del self.events[i]
                return
        pending = ", ".join(
            f"{ev.kind.name}{' ' + ev.error if ev.error else ''}@{t:.3f}" for t, ev in self.events
        )
        want = kind + (f" {err}" if err else "")
        raise self.fail(f"expected event {want}; pending events: [{pending}]")

    def _assert_value(self, kind: str, name: str, op: str, expected: Any) -> None:
        if kind == "stats":
            actual: Any = self.stats[name]
        else:
            self._need_conn()
            try:
                if kind == "info":
                    raw = self.conn.info()
                    info = attrs.asdict(raw, recurse=False) if attrs.has(type(raw)) else raw
                    if name not in info:
                        raise self.fail(f"info() has no key {name!r} (keys: {sorted(info)})")
                    actual = info[name]
                    if name == "ssthresh" and actual is None:
                        actual = math.inf  # no loss yet: "arbitrarily high" (RFC 5681)
                else:
                    actual = getattr(self.conn, name)
            except ScriptFailure:
                raise
            except Exception as exc:
                raise self.fail(
                    f"engine raised {type(exc).__name__}: {exc} (reading {name})"
                ) from exc
            if kind == "conn":
                if name in ("iss", "snd_una", "snd_nxt", "send_queue_end"):
                    actual = _signed(actual - self.script.iss)
                elif name in ("irs", "rcv_nxt"):
                    actual = _signed(actual - self.script.peer_iss)
        if isinstance(actual, enum.Enum):
            actual = actual.value
        if isinstance(actual, float) and isinstance(expected, (int, float)) and op in ("==", "!="):
            same = math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6)
            ok = same if op == "==" else not same
        else:
            try:
                ok = _OPS[op](actual, expected)
            except TypeError:
                ok = False
        if not ok:
            raise self.fail(f"{kind} {name} is {actual!r}, expected {op} {expected!r}")


def run_script(
    script: Script | str | Path,
    engine: Any = None,
    trace: Callable[[str], None] | None = None,
) -> None:
    """Run a script (a parsed :class:`Script` or a path); raise on any mismatch."""
    if not isinstance(script, Script):
        script = load_script(script)
    Runner(script, engine, trace).run()


def iter_scripts(root: str | Path) -> Iterator[Path]:
    yield from sorted(Path(root).rglob("*.pkt"))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run TCP engine scripts with a trace.")
    parser.add_argument("paths", nargs="+", help=".pkt files or folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every segment")
    parser.add_argument(
        "--explore",
        action="store_true",
        help="do not stop at a mismatch: print the whole trace with '!!' notes (implies -v)",
    )
    args = parser.parse_args(argv)
    failures = 0
    for arg in args.paths:
        paths = list(iter_scripts(arg)) if Path(arg).is_dir() else [Path(arg)]
        for path in paths:
            try:
                script = load_script(path)
            except ScriptError as exc:
                failures += 1
                print(f"ERROR {path}\n{exc}\n", file=sys.stderr)
                continue
            if args.explore:
                Runner(script, trace=print, explore=True).run()
                continue
            try:
                run_script(script, trace=print if args.verbose else None)
            except ScriptFailure as exc:
                if script.xfail:
                    print(f"xfail {path} ({script.xfail})")
                    if args.verbose:
                        print(exc)
                else:
                    failures += 1
                    print(f"FAIL  {path}\n{exc}\n", file=sys.stderr)
            else:
                if script.xfail:
                    failures += 1
                    print(f"XPASS {path}: remove its --xfail line ({script.xfail})")
                else:
                    print(f"ok    {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
