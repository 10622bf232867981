"""Flow traces: what a connection's sender did, sample by sample, for plots and tests.

A :class:`FlowTrace` attached to a :class:`~.connection.Connection` (its
:attr:`~.connection.Connection.flow_trace` slot) is told by the engine

* of every segment it processes (:meth:`FlowTrace.segment_in`: the ACK, the SACK
  blocks, the payload length; called after the segment's processing, before what it
  releases is sent),
* of every segment it queues (:meth:`FlowTrace.segment_out`: the sequence range and
  whether it is a retransmission, with the cause),
* of the loss-recovery events (:meth:`FlowTrace.event`: ``rto``, ``tlp``,
  ``recovery_enter``, ``recovery_exit``),

and of the state transitions through the existing ``Connection.trace`` hook, which
:meth:`FlowTrace.attach` chains. Each call appends one :class:`TraceRecord` holding
the sender's state at that moment (snd_una, snd_nxt, cwnd, ssthresh, srtt, rto, the
data in flight, both windows and the congestion-avoidance state). When no trace is
attached each hook point costs the engine one ``is not None`` test.

Sequence numbers are *offsets*: counted from our ISS for what we send (the SYN is 0,
the first data byte 1) and from the peer's ISS for what we receive (the segment's
``seq``), as the engine keeps them; they do not wrap.

Retransmission causes: ``rto`` (sent after a retransmission timeout, the loss state),
``tlp`` (a tail loss probe, RFC 8985 §7), ``rack`` (fast recovery on RACK's loss
detection, RFC 8985), ``fast`` (fast recovery on duplicate ACKs or RFC 6675's
DupThresh), ``other`` (anything else, e.g. after a path-MTU reduction).

A trace is saved as JSON lines (:meth:`FlowTrace.save`, :meth:`FlowTrace.load`): a
header object ``{"format": "trio_tcp6-trace", "version": 1, ...}`` describing the
connection, then one object per record with the fields of :class:`TraceRecord`
(fields at their default value are left out). ``python -m trio_tcp6 plot`` draws it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

import attrs

from ..wire.tcp import ACK, FIN, PSH, RST, SYN, TCPSegment
from .cc import INFINITE_SSTHRESH
from .events import State
from .seq import MASK, seq_diff
from .states import CA_LOSS, CA_RECOVERY, CAState, StateTrace

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["FORMAT", "VERSION", "FlowTrace", "TraceRecord", "flag_text"]

#: The ``format`` field of a saved trace's header line.
FORMAT = "trio_tcp6-trace"
#: The version of the saved format this module writes (and reads).
VERSION = 1

#: Record kinds.
KINDS = ("in", "out", "event", "state")

# ``TraceRecord.ca_state`` by the engine's CAState value.
_CA_NAMES = tuple(state.name.lower() for state in sorted(CAState))


# flag_text's answers by flags value.
_FLAG_TEXT: dict[int, str] = {}


def flag_text(flags: int) -> str:
    """TCP flags as packetdrill and tcpdump print them (``S``, ``S.``, ``.``, ``P.``,
    ``F.``, ``R``...)."""
    text = _FLAG_TEXT.get(flags)
    if text is None:
        text = "".join(
            c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P")) if flags & bit
        )
        text = (text + "." if flags & ACK else text) or "-"
        _FLAG_TEXT[flags] = text
    return text


# (Mutable: a frozen attrs class sets every field through object.__setattr__, which
# made recording half again slower.)
@attrs.define
class TraceRecord:
    """One sample of a flow trace.

    ``kind`` says what happened at ``time``:

    ``"in"``
        a segment was processed: ``ack`` its acknowledgement (an offset, -1 when the
        ACK bit is clear), ``sack`` its SACK blocks, ``seq``/``length`` what it
        carried (offsets from the peer's ISS);
    ``"out"``
        a segment was queued: ``seq``/``length`` its range (SYN and FIN count),
        ``ack`` its acknowledgement (an offset from the peer's ISS, -1 without
        ACK), ``retransmit`` and ``cause`` (see the module docstring);
    ``"event"``
        ``name`` happened: ``rto`` (the retransmission timer fired), ``tlp`` (a
        tail loss probe is sent), ``recovery_enter`` and ``recovery_exit`` (fast
        recovery); the state fields are those after it (for ``rto``: the window the
        timeout left);
    ``"state"``
        a state transition, ``name`` the new state, ``cause`` the rule.

    The other fields are the sender's state after it: ``ssthresh`` is None while
    infinite, ``srtt`` None before the first RTT sample; ``pipe`` is the data in
    flight (RFC 6675), ``ca_state`` ``"open"``, ``"recovery"`` or ``"loss"``.
    """

    kind: str
    time: float
    snd_una: int
    snd_nxt: int
    cwnd: int
    ssthresh: int | None
    srtt: float | None
    rto: float
    pipe: int
    snd_wnd: int
    rcv_wnd: int
    ca_state: str
    seq: int = 0
    length: int = 0
    flags: str = ""
    ack: int = -1
    sack: tuple[tuple[int, int], ...] = ()
    retransmit: bool = False
    cause: str = ""
    name: str = ""

    @property
    def end(self) -> int:
        """``seq + length``: the offset after the segment."""
        return self.seq + self.length

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object, leaving out fields at their default."""
        out: dict[str, Any] = {}
        for field in attrs.fields(TraceRecord):
            value = getattr(self, field.name)
            if field.default is not attrs.NOTHING and value == field.default:
                continue
            if field.name == "sack":
                value = [list(b) for b in value]
            out[field.name] = value
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TraceRecord:
        """The inverse of :meth:`to_json` (``ValueError`` for a malformed object)."""
        try:
            kw = dict(obj)
            if "sack" in kw:
                kw["sack"] = tuple((int(s), int(e)) for s, e in kw["sack"])
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad trace record {obj!r}: {exc}") from None


class FlowTrace:
    """The recorder: a list of :class:`TraceRecord` and a little about the connection.

    Made by ``flow.trace()`` (:meth:`~trio_tcp6.runtime.flow.DirectFlow.trace`) or
    attached to an engine directly with :meth:`attach`; :meth:`detach` stops it.
    ``FlowTrace.load(path)`` reads a saved one back. ``info`` holds the connection's
    description (ports, MSS, ...) saved in the header line.
    """

    def __init__(self, info: dict[str, Any] | None = None) -> None:
        #: Every record, in order.
        self.records: list[TraceRecord] = []
        #: What is known of the connection (``local_port``, ``remote_port``, ``mss``,
        #: ``congestion``, ...).
        self.info: dict[str, Any] = dict(info or {})
        self._conn: Connection | None = None
        self._chained: StateTrace | None = None
        # A TLP event waits for the probe it announces.
        self._tlp_pending = False

    # -- attaching ---------------------------------------------------------------------
    def attach(self, conn: Connection) -> None:
        """Record ``conn`` from now on (its state transitions too: the trace chains
        any ``Connection.trace`` hook already set)."""
        if self._conn is not None:
            raise RuntimeError("this FlowTrace is already attached")
        self._conn = conn
        self._describe(conn)
        self._chained = conn.trace
        conn.trace = self.state
        conn.flow_trace = self

    def _describe(self, conn: Connection) -> None:
        # (Again after the handshake, which sets the MSS, and when detaching.)
        self.info.update(
            local_port=conn.local_port,
            remote_port=conn.remote_port,
            mss=conn.opt.mss,
            congestion=conn.config.congestion,
            passive=conn.passive,
        )

    def detach(self) -> None:
        """Stop recording (the records stay)."""
        conn = self._conn
        if conn is None:
            return
        self._describe(conn)
        if conn.flow_trace is self:
            conn.flow_trace = None
        if conn.trace == self.state:
            conn.trace = self._chained
        self._conn = None
        self._chained = None

    @property
    def attached(self) -> bool:
        """Whether the trace is recording."""
        return self._conn is not None

    # -- the engine's hooks ------------------------------------------------------------
    def _record(self, c: Connection, kind: str, now: float, **fields: Any) -> TraceRecord:
        snd = c.snd
        cc = c.cc
        ssthresh = cc.ssthresh
        rec = TraceRecord(
            kind,
            now,
            snd.una,
            snd.nxt,
            cc.cwnd,
            None if ssthresh >= INFINITE_SSTHRESH else ssthresh,
            c.rtt.srtt,
            c.rtt.rto,
            c.sb.pipe,
            snd.wnd,
            c.rcv_wnd,
            _CA_NAMES[c.rec.ca],
            **fields,
        )
        self.records.append(rec)
        return rec

    def segment_in(self, c: Connection, seg: TCPSegment, now: float) -> None:
        """Hook: ``seg`` was processed by ``c`` at ``now``."""
        self._tlp_pending = False
        una = c.snd.una
        base = (c.iss + una) & MASK
        ack = una + seq_diff(seg.ack, base) if seg.has_ack else -1
        nxt = c.rcv.buf.nxt
        sack: tuple[tuple[int, int], ...] = ()
        if seg.sack_blocks:
            sack = tuple(
                (una + seq_diff(s, base), una + seq_diff(s, base) + ((e - s) & MASK))
                for s, e in seg.sack_blocks
            )
        self._record(
            c,
            "in",
            now,
            seq=nxt + seq_diff(seg.seq, (c.irs + nxt) & MASK),
            length=seg.seg_len,
            flags=flag_text(seg.flags),
            ack=ack,
            sack=sack,
        )

    def segment_out(self, c: Connection, seg: TCPSegment, now: float) -> None:
        """Hook: ``c`` queued ``seg`` at ``now`` (called before SND.NXT moves past new
        data, so a segment starting below SND.NXT is a retransmission)."""
        snd = c.snd
        seq = snd.una + seq_diff(seg.seq, (c.iss + snd.una) & MASK)
        length = seg.seg_len
        retransmit = length > 0 and seq < snd.nxt
        cause = ""
        if retransmit:
            ca = c.rec.ca
            if self._tlp_pending:
                cause = "tlp"
            elif ca is CA_LOSS:
                cause = "rto"
            elif ca is CA_RECOVERY:
                cause = "rack" if c.config.rack and c.opt.sack_ok else "fast"
            else:
                cause = "other"
        if length > 0:
            self._tlp_pending = False
        self._record(
            c,
            "out",
            now,
            seq=seq,
            length=length,
            flags=flag_text(seg.flags),
            ack=c.rcv.buf.nxt if seg.has_ack else -1,
            retransmit=retransmit,
            cause=cause,
        )

    def event(self, c: Connection, name: str, now: float) -> None:
        """Hook: loss-recovery event ``name`` (see :class:`TraceRecord`)."""
        if name == "tlp":
            self._tlp_pending = True
        self._record(c, "event", now, name=name)

    def state(self, old: State, new: State, reason: str, now: float) -> None:
        """The ``Connection.trace`` hook (a :data:`~.states.StateTrace`)."""
        conn = self._conn
        if conn is not None:
            self._record(conn, "state", now, name=new.name, cause=reason)
            if new is State.ESTABLISHED:
                self._describe(conn)
        if self._chained is not None:
            self._chained(old, new, reason, now)

    # -- views -------------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[TraceRecord]:
        """The records of one ``kind`` (``"in"``, ``"out"``, ``"event"``, ``"state"``)."""
        return [r for r in self.records if r.kind == kind]

    def events(self) -> list[tuple[str, str]]:
        """The loss-recovery story in order: ``(name, cause)`` for each event and each
        retransmission (``("retransmit", cause)``)."""
        out: list[tuple[str, str]] = []
        for r in self.records:
            if r.kind == "event":
                out.append((r.name, ""))
            elif r.kind == "out" and r.retransmit:
                out.append(("retransmit", r.cause))
        return out

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    # -- files -------------------------------------------------------------------------
    def dump(self, f: IO[str]) -> None:
        """Write the trace as JSON lines to the text file ``f``."""
        if self._conn is not None:
            self._describe(self._conn)
        header = {"format": FORMAT, "version": VERSION, **self.info}
        f.write(json.dumps(header, separators=(",", ":")) + "\n")
        for r in self.records:
            f.write(json.dumps(r.to_json(), separators=(",", ":")) + "\n")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the trace to ``path`` (JSON lines, see the module docstring)."""
        with open(path, "w", encoding="utf-8") as f:
            self.dump(f)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> FlowTrace:
        """Read a trace from JSON lines (``ValueError`` if it is not one)."""
        it = iter(lines)
        try:
            header = json.loads(next(it))
        except (StopIteration, json.JSONDecodeError):
            raise ValueError("not a trio_tcp6 trace: no header line") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("not a trio_tcp6 trace (bad header)")
        if header.get("version") != VERSION:
            raise ValueError(f"unsupported trace version {header.get('version')!r}")
        info = {k: v for k, v in header.items() if k not in ("format", "version")}
        trace = cls(info)
        for n, line in enumerate(it, 2):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {n}: {exc}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"line {n}: not an object")
            trace.records.append(TraceRecord.from_json(obj))
        return trace

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FlowTrace:
        """Read a trace written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            return cls.parse(f)
