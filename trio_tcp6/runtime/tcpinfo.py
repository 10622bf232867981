"""Linux ``struct tcp_info``: reading it from a kernel socket and decoding it.

The kernel stack reports what the direct stack reports -- :class:`FlowInfo` from
``info()`` and the segment and byte counters of ``stats()`` -- and the kernel's
answer to both is ``getsockopt(TCP_INFO)``. Its layout (``linux/tcp.h``) and its
units (segments where the engine counts bytes, microseconds, sentinels for "none")
are a subject of their own, apart from the socket calls of
:mod:`trio_tcp6.runtime.kernel`: this module knows the layout and the units, the
kernel stack reads the decoded fields by name.
"""

from __future__ import annotations

import socket as _stdsocket
import struct
import sys
from collections import Counter

import trio

from ..tcp.events import State
from ..tcp.info import CAStateName
from .base import FlowInfo

__all__ = [
    "CLOSED_INFO",
    "add_flow_counters",
    "parse_tcp_info",
    "read_tcp_info",
    "tcp_info_to_flow_info",
]

# The socket module may not name it.
_TCP_INFO = getattr(_stdsocket, "TCP_INFO", 11)

# struct tcp_info (linux/tcp.h): 8 u8, 24 u32, 4 u64, 6 u32, 1 u64, 3 u64, 2 u32,
# 2 u64, 2 u32, 1 u32, 1 u32 (snd_wnd) and, since Linux 6.2, rcv_wnd.
_TCP_INFO_FMT = "=8B24I4Q6IQ3Q2I2Q2III"
_TCP_INFO_SIZE = struct.calcsize(_TCP_INFO_FMT)
_TCP_INFO_FIELDS = [
    "state",
    "ca_state",
    "retransmits",
    "probes",
    "backoff",
    "options",
    "wscale",
    "app_limited",
    "rto",
    "ato",
    "snd_mss",
    "rcv_mss",
    "unacked",
    "sacked",
    "lost",
    "retrans",
    "fackets",
    "last_data_sent",
    "last_ack_sent",
    "last_data_recv",
    "last_ack_recv",
    "pmtu",
    "rcv_ssthresh",
    "rtt",
    "rttvar",
    "snd_ssthresh",
    "snd_cwnd",
    "advmss",
    "reordering",
    "rcv_rtt",
    "rcv_space",
    "total_retrans",
    "pacing_rate",
    "max_pacing_rate",
    "bytes_acked",
    "bytes_received",
    "segs_out",
    "segs_in",
    "notsent_bytes",
    "min_rtt",
    "data_segs_in",
    "data_segs_out",
    "delivery_rate",
    "busy_time",
    "rwnd_limited",
    "sndbuf_limited",
    "delivered",
    "delivered_ce",
    "bytes_sent",
    "bytes_retrans",
    "dsack_dups",
    "reord_seen",
    "rcv_ooopack",
    "snd_wnd",
]
assert len(_TCP_INFO_FIELDS) == len(struct.unpack(_TCP_INFO_FMT, bytes(_TCP_INFO_SIZE)))

_TCPI_OPT_TIMESTAMPS = 1
_TCPI_OPT_SACK = 2
_TCPI_OPT_WSCALE = 4
_TCPI_OPT_ECN = 8

_KERNEL_STATES = {
    1: State.ESTABLISHED,
    2: State.SYN_SENT,
    3: State.SYN_RECEIVED,
    4: State.FIN_WAIT_1,
    5: State.FIN_WAIT_2,
    6: State.TIME_WAIT,
    7: State.CLOSED,
    8: State.CLOSE_WAIT,
    9: State.LAST_ACK,
    10: State.LISTEN,
    11: State.CLOSING,
}
_INFINITE_SSTHRESH = 0x7FFFFFFF


def parse_tcp_info(raw: bytes) -> dict[str, int]:
    """Decode Linux ``struct tcp_info`` (shorter answers from old kernels are padded
    with zeros); ``rcv_wnd`` is present when the kernel reports it."""
    padded = raw[:_TCP_INFO_SIZE].ljust(_TCP_INFO_SIZE, b"\0")
    fields = dict(zip(_TCP_INFO_FIELDS, struct.unpack(_TCP_INFO_FMT, padded), strict=True))
    if len(raw) >= _TCP_INFO_SIZE + 4:
        fields["rcv_wnd"] = struct.unpack_from("=I", raw, _TCP_INFO_SIZE)[0]
    return fields


_KERNEL_CA_STATES: tuple[CAStateName, ...] = ("open", "disorder", "cwr", "recovery", "loss")


def tcp_info_to_flow_info(t: dict[str, int]) -> FlowInfo:
    """The :class:`~trio_tcp6.tcp.info.TCPInfo` for a decoded ``struct tcp_info``.
    Linux counts segments where the engine counts bytes (``in_flight``, ``lost``,
    ``sacked``, ``unacked``): those are segments times the MSS."""
    mss = t["snd_mss"]
    opts = t["options"]
    wscale = (t["wscale"] & 0x0F, t["wscale"] >> 4) if opts & _TCPI_OPT_WSCALE else None
    ssthresh = t["snd_ssthresh"]
    min_rtt = t["min_rtt"]
    ca = t["ca_state"]
    unacked, sacked, lost = t["unacked"], t["sacked"], t["lost"]
    return FlowInfo(
        state=_KERNEL_STATES.get(t["state"], State.CLOSED),
        srtt=t["rtt"] / 1e6 if t["rtt"] else None,
        rttvar=t["rttvar"] / 1e6 if t["rtt"] else None,
        rto=t["rto"] / 1e6,
        min_rtt=min_rtt / 1e6 if 0 < min_rtt < 0xFFFFFFFF else None,
        cwnd=t["snd_cwnd"] * mss,
        ssthresh=None if ssthresh >= _INFINITE_SSTHRESH else ssthresh * mss,
        mss=mss,
        snd_wnd=t["snd_wnd"],
        rcv_wnd=t.get("rcv_wnd", t["rcv_space"]),
        retransmits=t["total_retrans"],
        bytes_acked=t["bytes_acked"],
        bytes_received=t["bytes_received"],
        bytes_sent=t["bytes_sent"],
        sack=bool(opts & _TCPI_OPT_SACK),
        timestamps=bool(opts & _TCPI_OPT_TIMESTAMPS),
        wscale=wscale,
        in_flight=max(unacked - sacked - lost + t["retrans"], 0) * mss,
        lost=lost * mss,
        sacked=sacked * mss,
        reordering=t["reord_seen"] > 0,
        ca_state=_KERNEL_CA_STATES[ca] if ca < len(_KERNEL_CA_STATES) else "open",
        unacked=unacked * mss,
        ecn=bool(opts & _TCPI_OPT_ECN),
    )


#: What ``info()`` says of a kernel flow whose socket is gone.
CLOSED_INFO = FlowInfo(
    state=State.CLOSED,
    srtt=None,
    rttvar=None,
    rto=0.0,
    min_rtt=None,
    cwnd=0,
    ssthresh=None,
    mss=0,
    snd_wnd=0,
    rcv_wnd=0,
    retransmits=0,
    bytes_acked=0,
    bytes_received=0,
    bytes_sent=0,
    sack=False,
    timestamps=False,
    wscale=None,
    in_flight=0,
    lost=0,
    sacked=0,
    reordering=False,
    ca_state="open",
    unacked=0,
)


def read_tcp_info(sock: trio.socket.SocketType) -> dict[str, int] | None:
    """The decoded ``TCP_INFO`` of ``sock``; None off Linux, for a closed socket, or
    when the kernel will not say."""
    if not sys.platform.startswith("linux") or sock.fileno() == -1:
        return None
    try:
        raw = sock.getsockopt(_stdsocket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE + 64)
    except OSError:
        return None
    return parse_tcp_info(raw)


def add_flow_counters(totals: Counter[str], info: dict[str, int]) -> None:
    """Add one connection's counters from its decoded ``TCP_INFO`` to ``totals``
    (named as the direct stack's ``stats()`` names them)."""
    totals["segments_in"] += info["segs_in"]
    totals["segments_out"] += info["segs_out"]
    totals["retransmits"] += info["total_retrans"]
    totals["bytes_acked"] += info["bytes_acked"]
    totals["bytes_received"] += info["bytes_received"]
