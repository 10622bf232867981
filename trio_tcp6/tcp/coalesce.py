"""Receive coalescing (GRO-like): consecutive in-order data segments of a burst
become one engine call.

The runtime hands a connection every segment that arrived in one wake-up
(:meth:`.connection.Connection.on_segments`). A *run* of them that continues the
stream exactly -- in-order plain data segments (ACK, maybe PSH; no SYN, FIN, RST,
URG, no SACK blocks), each starting where the previous one ended, with the same
options and every other header field equal -- is merged into one super-segment of
at most :data:`MAX_MERGED_BYTES` payload (a 64 KiB packet) and processed once, as Linux processes a
GRO packet. The merged segment carries:

* SEQ of the first segment, the payload of all of them, the flags of the last (a
  PSH ends a run);
* the highest ACK and the window of the last segment (an older ACK ends a run);
* TSval of the first segment and TSecr of the last. A run starts at RCV.NXT, which
  is Last.ACK.sent after our last ACK, so RFC 7323 §4.3 takes TS.Recent from the
  first segment -- the one containing Last.ACK.sent -- and the single ACK
  answering the run echoes it, as a delayed ACK covering several segments must.
  TSvals within a run never decrease (a decrease ends it), so PAWS on the first
  TSval passes exactly when it would pass on each; the run only starts when the
  first passes. The RTT sample and Eifel use TSecr, which belongs to the segment
  carrying the highest ACK: the last.

A run starts only in a state that accepts text (ESTABLISHED, FIN-WAIT-1/2), at
RCV.NXT, when the stack is not under memory pressure, and never grows past the
receive window (a segment beyond it would be trimmed or refused on its own, so
those go through one by one).

ACKs (Linux after GRO): a merged super-segment of N segments counts as N segments
for the delayed-ACK rule, so it is acknowledged at once; and a burst that merged
anything ends with nothing left unacknowledged (no ACK delayed past the burst).

:data:`ENABLED` switches coalescing off (every segment then goes through
:meth:`~.connection.Connection.on_segment` as it arrived): tests compare both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ..wire.tcp import ACK, PSH, TCPSegment
from .seq import MASK, seq_ge
from .states import RECEIVING

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "ENABLED",
    "EXTRA_FIELDS",
    "MAX_MERGED_BYTES",
    "OBSERVER",
    "OTHER_FIELDS",
    "merge",
    "run_length",
]

#: Coalescing on (the default) or off (segment by segment).
ENABLED = True
#: Called with every super-segment the engine builds, before it is processed (for
#: tests and tools that watch the merging: a module attribute, so it works the same
#: when the engine is compiled and its calls to :func:`merge` cannot be patched).
OBSERVER: Callable[[TCPSegment], None] | None = None
#: The largest payload a merged super-segment carries: what one 64 KiB packet
#: (GRO's limit) holds after its IPv6 and TCP headers (with timestamps). At an MTU
#: of 64 KiB full segments are that large already and are never merged.
MAX_MERGED_BYTES = 65536 - 40 - 32

# Header fields the merge rule names (``ecn``, the IPv6 ECN bits: equal in a run).
_NAMED = {
    "src_port", "dst_port", "seq", "ack", "flags", "window", "payload", "urgent",
    "mss", "wscale", "sack_permitted", "sack_blocks", "timestamps", "ecn",
}  # fmt: skip
#: Any other field a segment has (one a later layer adds to TCPSegment) must be
#: equal for two segments to merge. Empty today.
OTHER_FIELDS = tuple(f.name for f in attrs.fields(TCPSegment) if f.name not in _NAMED)
#: Those fields with their defaults: a segment where one differs from its
#: default carries something the header-prediction path does not know how to
#: handle (:func:`.arrival.predicted` declines it). Empty today.
EXTRA_FIELDS: tuple[tuple[str, object], ...] = tuple(
    (f.name, f.default) for f in attrs.fields(TCPSegment) if f.name in OTHER_FIELDS
)


def _plain_data(seg: TCPSegment) -> bool:
    """ACK (maybe PSH) with data and no option but timestamps."""
    return (
        (seg.flags | PSH) == ACK | PSH
        and bool(seg.payload)
        and not seg.urgent
        and not seg.sack_blocks
        and seg.mss is None
        and seg.wscale is None
        and not seg.sack_permitted
    )


def run_length(c: Connection, segs: list[TCPSegment], i: int) -> int:
    """How many segments from ``segs[i]`` on merge into one (1: none)."""
    first = segs[i]
    n = len(segs)
    if i + 1 >= n or first.flags & PSH or not _plain_data(first):
        return 1
    if c.state not in RECEIVING:
        return 1
    rcv = c.rcv
    nxt = rcv.buf.nxt
    if first.seq != (c.irs + nxt) & MASK:
        return 1
    m = c.memory
    if m is not None and m.pressure:
        return 1
    ts = first.timestamps
    opt = c.opt
    if opt.ts_ok:
        if ts is None or not seq_ge(ts[0], opt.ts_recent):
            return 1
    elif ts is not None:
        return 1
    limit = rcv.adv - nxt
    if limit > MAX_MERGED_BYTES:
        limit = MAX_MERGED_BYTES
    total = len(first.payload)
    if total > limit:
        return 1
    # (The per-segment test below is _plain_data() and the continuation rules
    # spelled out inline: this loop runs for every segment of a burst.)
    nseq = (first.seq + total) & MASK
    ack = first.ack
    tsval = ts[0] if ts is not None else 0
    other = OTHER_FIELDS
    j = i + 1
    while j < n:
        seg = segs[j]
        payload = seg.payload
        plen = len(payload)
        flags = seg.flags
        if (
            seg.seq != nseq
            or not plen
            or total + plen > limit
            or (flags | PSH) != ACK | PSH
            or seg.sack_blocks
            or seg.urgent
            or seg.mss is not None
            or seg.wscale is not None
            or seg.sack_permitted
            or seg.ecn != first.ecn
        ):
            break
        sack = seg.ack
        if sack != ack:
            if not seq_ge(sack, ack):
                break
            ack = sack
        sts = seg.timestamps
        if ts is None:
            if sts is not None:
                break
        elif sts is None:
            break
        else:
            v = sts[0]
            if v != tsval:
                if not seq_ge(v, tsval):
                    break
                tsval = v
        if other and any(getattr(seg, name) != getattr(first, name) for name in other):
            break
        total += plen
        nseq = (nseq + plen) & MASK
        j += 1
        if flags & PSH:
            break
    return j - i


def merge(run: list[TCPSegment]) -> TCPSegment:
    """One super-segment standing for ``run`` (see the module docstring)."""
    first = run[0]
    last = run[-1]
    ts = first.timestamps
    if ts is not None:
        last_ts = last.timestamps
        assert last_ts is not None
        ts = (ts[0], last_ts[1])
    payload = b"".join([s.payload for s in run])
    if OTHER_FIELDS:
        # (A field this module does not name: evolve() carries it over.)
        return attrs.evolve(
            first, ack=last.ack, flags=last.flags, window=last.window, payload=payload,
            timestamps=ts,
        )  # fmt: skip
    # The constructor, not attrs.evolve(), which looks the fields up on every call:
    # this runs once per burst of every bulk receiver.
    return TCPSegment(
        first.src_port, first.dst_port, first.seq, last.ack, last.flags, last.window,
        payload, first.urgent, first.mss, first.wscale, first.sack_permitted,
        first.sack_blocks, ts, first.ecn,
    )  # fmt: skip
