"""``python -m trio_tcp6 plot INPUT [-o OUT] [--time A:B] [--flow PORT]``: pictures of a
TCP flow.

``INPUT`` is a flow trace (:class:`~trio_tcp6.tcp.trace.FlowTrace`, saved with
``trace.save(path)``) or a pcap (``VirtualNetwork.capture``, the demo's ``--pcap``,
tcpdump...). The picture has two panels sharing the time axis:

* the time-sequence graph (Stevens'): each data segment a vertical bar from its first
  to its last sequence number at the time it was sent, retransmissions in red (with a
  red dot, visible at any scale), the cumulative ACK (SND.UNA) as a step line, the right edge
  of the advertised window above it, SACK blocks shaded in purple at the time they
  were received; periods of fast recovery shaded orange, after a retransmission
  timeout red, with a dashed line at each timeout;
* the congestion window and ssthresh (in segments; the data in flight thin and grey)
  with srtt and the RTO on a second axis, in milliseconds. A pcap has no cwnd: the
  panel then shows the data in flight seen in the capture and the RTT samples it
  allows (Karn's rule: none from retransmitted data).

Sequence numbers are offsets from the sender's ISN (the first data byte is 1). From a
trace the sender's view is drawn if it sent more than it received, otherwise the
receiver's (the segments it got, the ACKs it sent); from a pcap the direction that
carried the most data (``--flow PORT``: of the connections using that TCP port),
and a "retransmission" is any segment below the highest sequence number already seen
in the capture (so a duplicated or reordered packet counts as one too).

The output format follows the file name's suffix (``.png``, ``.svg``, ``.pdf``).
matplotlib is an optional dependency: ``pip install 'trio-tcp6[plot]'``.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import math
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs

from ..tcp.seq import MASK, seq_diff
from ..tcp.trace import FlowTrace
from ..wire.ipv6 import parse_ipv6
from ..wire.pcap import read_pcap
from ..wire.tcp import ACK, FIN, SYN, parse_tcp, verify_tcp_checksum
from . import args as checks

__all__ = [
    "FlowPicture",
    "MissingMatplotlib",
    "add_plot_parser",
    "draw",
    "from_pcap",
    "from_trace",
    "load_input",
    "require_matplotlib",
]

#: Colours: data, retransmissions, ACK, window, SACK, fast recovery, loss (after RTO).
DATA_COLOUR = "#1f4e9c"
RETRANSMIT_COLOUR = "#d62728"
ACK_COLOUR = "#2ca02c"
WINDOW_COLOUR = "#e6a700"
SACK_COLOUR = "#9467bd"
RECOVERY_COLOUR = "#ffd9a0"
LOSS_COLOUR = "#ffb3b3"

TCP_PROTOCOL = 6


class MissingMatplotlib(RuntimeError):
    """matplotlib is not installed (the ``plot`` extra)."""


@attrs.define
class FlowPicture:
    """What the picture shows, in seconds from the first sample and sequence offsets.

    ``sends``: ``(time, seq, end, retransmit)`` per data segment; ``acks``:
    ``(time, ack, window_edge)``; ``sacks``: ``(time, left, right)``; ``cwnd``:
    ``(time, cwnd, ssthresh, in_flight)`` in bytes (``ssthresh`` None: infinite;
    ``cwnd`` None: unknown, from a capture); ``rtt``: ``(time, srtt, rto)`` in seconds
    (``rto`` None: unknown); ``spans``: ``(start, end, "recovery" | "loss")``;
    ``rtos``: the times of retransmission timeouts; ``flight_label`` names the last
    column of ``cwnd`` (the data in flight, or a receiver's advertised window).
    """

    title: str
    mss: int | None = None
    from_capture: bool = False
    flight_label: str = "in flight"
    sends: list[tuple[float, int, int, bool]] = attrs.Factory(list)
    acks: list[tuple[float, int, int]] = attrs.Factory(list)
    sacks: list[tuple[float, int, int]] = attrs.Factory(list)
    cwnd: list[tuple[float, int | None, int | None, int]] = attrs.Factory(list)
    rtt: list[tuple[float, float | None, float | None]] = attrs.Factory(list)
    spans: list[tuple[float, float, str]] = attrs.Factory(list)
    rtos: list[float] = attrs.Factory(list)

    @property
    def retransmissions(self) -> int:
        """How many data segments are drawn as retransmissions."""
        return sum(1 for s in self.sends if s[3])


# -- from a trace -------------------------------------------------------------------------
def from_trace(trace: FlowTrace) -> FlowPicture:
    """The picture of a recorded :class:`~trio_tcp6.tcp.trace.FlowTrace`."""
    info = trace.info
    records = trace.records
    pic = FlowPicture(
        title=_trace_title(info),
        mss=info.get("mss") if isinstance(info.get("mss"), int) else None,
    )
    if not records:
        return pic
    t0 = records[0].time
    sent = sum(r.length for r in records if r.kind == "out")
    received = sum(r.length for r in records if r.kind == "in")
    sender = sent >= received
    if not sender:
        pic.title = _trace_title(info, received=True)
        pic.flight_label = "receive window (advertised)"
    data_kind, ack_kind = ("out", "in") if sender else ("in", "out")
    highest = -1
    ca = "open"
    span_start = 0.0
    for r in records:
        t = r.time - t0
        if r.kind == data_kind and r.length > 0:
            retransmit = r.retransmit if sender else r.seq < highest
            highest = max(highest, r.end)
            pic.sends.append((t, r.seq, r.end, retransmit))
        elif r.kind == ack_kind and r.ack >= 0:
            # The cumulative ACK: SND.UNA (an ACK overtaken by a later one moves
            # nothing); what we sent, for a receiver.
            ack = r.snd_una if sender else r.ack
            wnd = r.snd_wnd if sender else r.rcv_wnd
            pic.acks.append((t, ack, ack + wnd))
            if sender:
                pic.sacks.extend((t, s, e) for s, e in r.sack)
        elif r.kind == "event" and r.name == "rto":
            pic.rtos.append(t)
        if not sender:
            pic.cwnd.append((t, None, None, r.rcv_wnd))
            continue
        pic.cwnd.append((t, r.cwnd, r.ssthresh, r.pipe))
        pic.rtt.append((t, r.srtt, r.rto))
        if r.ca_state != ca:
            if ca != "open":
                pic.spans.append((span_start, t, ca))
            ca = r.ca_state
            span_start = t
    if sender and ca != "open":
        pic.spans.append((span_start, records[-1].time - t0, ca))
    return pic


def _trace_title(info: dict[str, Any], *, received: bool = False) -> str:
    def end(address: str, port: str) -> str:
        if address in info:
            return f"[{info[address]}]:{info.get(port, '?')}"
        return f"port {info.get(port, '?')}"

    local, remote = end("local", "local_port"), end("remote", "remote_port")
    parts = [f"{remote} -> {local} (received)" if received else f"{local} -> {remote}"]
    if info.get("congestion"):
        parts.append(str(info["congestion"]))
    if info.get("mss"):
        parts.append(f"MSS {info['mss']} B")
    return ", ".join(parts)


# -- from a capture ------------------------------------------------------------------------
_Key = tuple[bytes, int, bytes, int]


def _read_segments(path: str | os.PathLike[str]) -> list[tuple[float, _Key, Any]]:
    """The capture's TCP segments with a good checksum: ``(time, key, segment)``."""
    out: list[tuple[float, _Key, Any]] = []
    for t, raw in read_pcap(path):
        try:
            pkt = parse_ipv6(raw)
            if pkt.next_header != TCP_PROTOCOL:
                continue
            data = bytes(pkt.payload)
            if not verify_tcp_checksum(data, pkt.src, pkt.dst):
                continue
            seg = parse_tcp(data)
        except ValueError:  # (ParseError is one) a packet that is not a TCP segment
            continue
        out.append((t, (pkt.src, seg.src_port, pkt.dst, seg.dst_port), seg))
    return out


def _unwrap(seq: int, base: int, ref: int) -> int:
    """The offset of 32-bit ``seq`` from ``base`` nearest to offset ``ref``."""
    return ref + seq_diff(seq, (base + ref) & MASK)


def from_pcap(path: str | os.PathLike[str], port: int | None = None) -> FlowPicture:
    """The picture of the direction of a captured connection that carried the most
    data (``port``: among the connections with that TCP port). ``ValueError`` if the
    capture has no such data."""
    segments = _read_segments(path)
    volume: dict[_Key, int] = {}
    for _, key, seg in segments:
        if port is None or port in (key[1], key[3]):
            volume[key] = volume.get(key, 0) + len(seg.payload)
    if not volume or max(volume.values()) == 0:
        where = "" if port is None else f" on port {port}"
        raise ValueError(f"no TCP data{where} in {os.fspath(path)}")
    data_key = max(volume, key=lambda k: volume[k])
    ack_key = (data_key[2], data_key[3], data_key[0], data_key[1])
    src, dst = (ipaddress.IPv6Address(data_key[i]) for i in (0, 2))
    pic = FlowPicture(title=f"[{src}]:{data_key[1]} -> [{dst}]:{data_key[3]} (capture)")
    pic.from_capture = True
    pic.flight_label = "in flight (capture)"
    flow = [(t, key, seg) for t, key, seg in segments if key in (data_key, ack_key)]
    syn = next((seg for _, k, seg in flow if k == data_key and seg.flags & SYN), None)
    first = next(seg for _, k, seg in flow if k == data_key)
    base = syn.seq if syn is not None else (first.seq - 1) & MASK
    syn_back = next((seg for _, k, seg in flow if k == ack_key and seg.flags & SYN), None)
    shift = 0
    if syn is not None and syn_back is not None and None not in (syn.wscale, syn_back.wscale):
        shift = min(syn_back.wscale, 14)
    if syn is not None and syn.mss is not None:
        mss = min(syn.mss, syn_back.mss) if syn_back and syn_back.mss else syn.mss
        if syn.timestamps is not None and syn_back is not None and syn_back.timestamps:
            mss -= 12  # the timestamps option on every segment (RFC 7323 §3)
        pic.mss = mss
    t0 = flow[0][0]
    highest = 0
    ack = 0
    # RTT samples (Karn): [end, time sent, never retransmitted] of data not yet ACKed.
    pending: deque[list[Any]] = deque()
    for t, key, seg in flow:
        t -= t0
        if key == data_key:
            seq = _unwrap(seg.seq, base, highest)
            end = seq + len(seg.payload) + (1 if seg.flags & FIN else 0)
            if end > seq and not seg.flags & SYN:
                retransmit = seq < highest
                pic.sends.append((t, seq, end, retransmit))
                if retransmit:
                    for p in pending:
                        if p[0] > seq:
                            p[2] = False
                else:
                    pending.append([end, t, True])
                highest = max(highest, end)
        elif seg.flags & ACK:
            a = _unwrap(seg.ack, base, ack)
            window = seg.window if seg.flags & SYN else seg.window << shift
            sample: float | None = None
            while pending and pending[0][0] <= a:
                p = pending.popleft()
                if p[0] <= a and p[2] and a > ack:
                    sample = t - p[1]
            if sample is not None:
                pic.rtt.append((t, sample, None))
            if a >= ack:  # (an ACK overtaken by a later one moves nothing)
                ack = a
                pic.acks.append((t, a, a + window))
            for ls, rs in seg.sack_blocks:
                s = _unwrap(ls, base, a)
                pic.sacks.append((t, s, s + ((rs - ls) & MASK)))
        pic.cwnd.append((t, None, None, max(0, highest - ack)))
    return pic


#: The first four bytes of a classic pcap file (either byte order, us or ns).
_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


def load_input(path: str | os.PathLike[str], port: int | None = None) -> FlowPicture:
    """A trace or a pcap, recognised by its first bytes (``ValueError``: neither)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head in (
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\x3c\x4d",
    ):
        return from_pcap(path, port)
    return from_trace(FlowTrace.load(path))


# -- drawing -----------------------------------------------------------------------------------
def _matplotlib() -> tuple[Any, Any]:
    """matplotlib's Figure class and ticker module, or :class:`MissingMatplotlib`."""
    try:
        figure = importlib.import_module("matplotlib.figure")
        ticker = importlib.import_module("matplotlib.ticker")
    except ImportError:
        raise MissingMatplotlib(
            "plotting needs matplotlib: pip install 'trio-tcp6[plot]' (or matplotlib>=3.7)"
        ) from None
    return figure.Figure, ticker


def require_matplotlib() -> None:
    """Raise :class:`MissingMatplotlib` (with the command that installs it) unless
    matplotlib can be imported."""
    _matplotlib()


def _steps(
    points: Sequence[tuple[float | int | None, ...]], i: int
) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for p in points:
        y = p[i]
        if y is not None:
            xs.append(float(p[0] or 0))
            ys.append(float(y))
    return xs, ys


def draw(
    pic: FlowPicture,
    out: str | os.PathLike[str],
    *,
    start: float | None = None,
    end: float | None = None,
) -> None:
    """Draw ``pic`` into the file ``out`` (format from its suffix); ``start`` and
    ``end`` (seconds, as on the time axis) zoom into part of it."""
    figure_cls, ticker = _matplotlib()
    fig = figure_cls(figsize=(11, 7.5), dpi=100, layout="constrained")
    seq_ax, cc_ax = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    fig.suptitle(pic.title, fontsize=11)
    for ax in (seq_ax, cc_ax):
        for span_start, span_end, what in pic.spans:
            colour = LOSS_COLOUR if what == "loss" else RECOVERY_COLOUR
            ax.axvspan(span_start, span_end, color=colour, alpha=0.55, linewidth=0, zorder=0)
        for t in pic.rtos:
            ax.axvline(t, color=RETRANSMIT_COLOUR, linestyle="--", linewidth=0.9, zorder=1)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)

    # Time-sequence graph.
    new = [s for s in pic.sends if not s[3]]
    again = [s for s in pic.sends if s[3]]
    if pic.acks:
        xs, ys = _steps(pic.acks, 2)
        seq_ax.step(xs, ys, where="post", color=WINDOW_COLOUR, linewidth=1.0, label="ACK + window")
        xs, ys = _steps(pic.acks, 1)
        seq_ax.step(xs, ys, where="post", color=ACK_COLOUR, linewidth=1.3, label="ACK")
    if pic.sacks:
        seq_ax.vlines(
            [s[0] for s in pic.sacks],
            [s[1] for s in pic.sacks],
            [s[2] for s in pic.sacks],
            colors=SACK_COLOUR,
            linewidth=4,
            alpha=0.35,
            label="SACK block",
            gid="sack-blocks",
        )
    if new:
        seq_ax.vlines(
            [s[0] for s in new],
            [s[1] for s in new],
            [s[2] for s in new],
            colors=DATA_COLOUR,
            linewidth=1.4,
            label="data segment",
            gid="segments",
        )
    if again:
        seq_ax.vlines(
            [s[0] for s in again],
            [s[1] for s in again],
            [s[2] for s in again],
            colors=RETRANSMIT_COLOUR,
            linewidth=2.4,
            label=f"retransmission ({len(again)})",
            gid="retransmissions",
            zorder=3,
        )
        seq_ax.scatter(
            [s[0] for s in again],
            [s[1] for s in again],
            s=9,
            color=RETRANSMIT_COLOUR,
            zorder=3,
            gid="retransmission-dots",
        )
    # The window edge may run far above the data (a large receive window): the
    # range is the data's, and the window line shows only when it limits.
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    shown = [s for s in pic.sends if lo <= s[0] <= hi]
    acked = [a[1] for a in pic.acks if lo <= a[0] <= hi]
    data_top = max([s[2] for s in shown] + acked, default=0)
    data_bottom = min([s[1] for s in shown] + acked, default=0)
    if data_top > data_bottom:
        margin = (data_top - data_bottom) * 0.06
        seq_ax.set_ylim(data_bottom - margin, data_top + margin)
    seq_ax.set_ylabel("sequence offset")
    seq_ax.yaxis.set_major_formatter(ticker.EngFormatter(unit="B"))
    handles, labels = seq_ax.get_legend_handles_labels()
    handles += _span_handles(fig, pic)
    labels += [h.get_label() for h in _span_handles(fig, pic)]
    if handles:
        seq_ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)

    # Congestion window and RTT.
    mss = pic.mss
    scale = float(mss) if mss else 1.0
    unit = "segments" if mss else "bytes"
    if pic.cwnd:
        xs, ys = _steps(pic.cwnd, 1)
        has_cwnd = bool(ys)
        if has_cwnd:
            cc_ax.step(xs, [y / scale for y in ys], where="post", color=DATA_COLOUR, label="cwnd")
        xs, ys = _steps(pic.cwnd, 2)
        if ys:
            cc_ax.step(
                xs,
                [y / scale for y in ys],
                where="post",
                color=WINDOW_COLOUR,
                linestyle="--",
                label="ssthresh",
            )
        xs, ys = _steps(pic.cwnd, 3)
        cc_ax.step(
            xs,
            [y / scale for y in ys],
            where="post",
            color="#999999" if has_cwnd else "#555555",
            linewidth=0.7 if has_cwnd else 1.2,
            label=pic.flight_label,
        )
    cc_ax.set_ylabel(f"window ({unit}{f', MSS {mss} B' if mss else ''})")
    cc_ax.set_ylim(bottom=0)
    cc_ax.set_xlabel("time (s)")
    rtt_ax = cc_ax.twinx()
    if pic.rtt:
        if pic.from_capture:
            xs, ys = _steps(pic.rtt, 1)
            rtt_ax.scatter(xs, [y * 1000 for y in ys], s=5, color=ACK_COLOUR, label="RTT sample")
        else:
            xs, ys = _steps(pic.rtt, 1)
            rtt_ax.step(xs, [y * 1000 for y in ys], where="post", color=ACK_COLOUR, label="srtt")
            xs, ys = _steps(pic.rtt, 2)
            rtt_ax.step(
                xs,
                [y * 1000 for y in ys],
                where="post",
                color=RETRANSMIT_COLOUR,
                linewidth=0.8,
                alpha=0.8,
                label="RTO",
            )
    rtt_ax.set_ylabel("ms")
    rtt_ax.set_ylim(bottom=0)
    if not pic.rtt:
        rtt_ax.set_axis_off()  # (a receiver's trace: no RTT of its own to show)
    h1, l1 = cc_ax.get_legend_handles_labels()
    h2, l2 = rtt_ax.get_legend_handles_labels()
    if h1 or h2:
        cc_ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, ncols=2, framealpha=0.9)
    if start is not None or end is not None:
        # (Last: the twin axis's autoscaling would undo it.)
        seq_ax.set_xlim(start, end)
    fig.savefig(os.fspath(out))


def _span_handles(fig: Any, pic: FlowPicture) -> list[Any]:
    patches = importlib.import_module("matplotlib.patches")
    lines = importlib.import_module("matplotlib.lines")
    out: list[Any] = []
    kinds = {what for _, _, what in pic.spans}
    if "recovery" in kinds:
        out.append(patches.Patch(color=RECOVERY_COLOUR, label="fast recovery"))
    if "loss" in kinds:
        out.append(patches.Patch(color=LOSS_COLOUR, label="after RTO (loss)"))
    if pic.rtos:
        out.append(
            lines.Line2D([], [], color=RETRANSMIT_COLOUR, linestyle="--", label="RTO fired")
        )
    return out


def default_output(path: str) -> str:
    """``INPUT`` with its suffix replaced by ``.png``."""
    root, _ = os.path.splitext(path)
    return root + ".png"


# -- the command line ---------------------------------------------------------------------------
def add_plot_parser(sub: Any) -> None:
    """Add the ``plot`` subcommand to an argparse subparsers object."""
    plot = sub.add_parser(
        "plot",
        help="draw a flow trace or a pcap: time-sequence graph, cwnd, RTT",
        description=(
            "Draw a flow trace (FlowTrace.save) or a pcap: the time-sequence graph "
            "(segments, ACKs, SACK blocks, retransmissions in red) and cwnd/ssthresh "
            "with srtt/RTO over time. Needs matplotlib (pip install 'trio-tcp6[plot]')."
        ),
    )
    plot.add_argument("input", metavar="INPUT", help="a saved trace or a pcap file")
    plot.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the picture: OUT.png or OUT.svg (default: INPUT with .png)",
    )
    plot.add_argument(
        "--time",
        type=_time_range,
        metavar="START:END",
        help="draw only this part, in seconds on the time axis (either may be empty)",
    )
    plot.add_argument(
        "--flow",
        type=checks.port(allow_zero=False),
        metavar="PORT",
        help="pcap only: the connection using this TCP port (default: the most data)",
    )
    plot.set_defaults(func=_main, parser=plot)


def _time_range(text: str) -> tuple[float | None, float | None]:
    first, sep, second = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"a time range is START:END, got {text!r}")
    try:
        lo = float(first) if first.strip() else None
        hi = float(second) if second.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time range in seconds: {text!r}") from None
    if lo is not None and hi is not None and not lo < hi:
        raise argparse.ArgumentTypeError(f"the range must end after it starts: {text!r}")
    return lo, hi


def _main(ns: argparse.Namespace) -> int:
    out = ns.output or default_output(ns.input)
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in (".png", ".svg", ".pdf"):
        ns.parser.error(f"the output must end in .png, .svg or .pdf, got {out!r}")
    try:
        pic = load_input(ns.input, ns.flow)
        start, end = ns.time or (None, None)
        draw(pic, out, start=start, end=end)
    except MissingMatplotlib as exc:
        return checks.fail(ns.parser.prog, str(exc), 1)
    except (OSError, ValueError) as exc:
        return checks.fail(ns.parser.prog, str(exc), 1)
    print(
        f"{out}: {len(pic.sends)} segments ({pic.retransmissions} retransmitted), "
        f"{len(pic.acks)} ACKs"
    )
    return 0
