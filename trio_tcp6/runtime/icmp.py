"""ICMPv6 for the direct stack: echo, errors about our segments, path MTU discovery.

The stack's link reader hands every ICMPv6 message addressed to it to
:meth:`ICMPv6Handler.input` (RFC 4443): echo requests are answered; a Packet Too Big
lowers the path MTU of the destination it quotes (RFC 8201 §4), remembered per
destination for :data:`PMTU_TIMEOUT` seconds in a cache of at most
:data:`PMTU_CACHE_SIZE` destinations and applied to every connection to it, open now
or opened later; Destination Unreachable, Time Exceeded and Parameter Problem fail a
connection attempt at once and are soft errors afterwards (as Linux). An error is
applied only when its quote is one of our segments, of a live connection, with a
sequence number in SND.UNA..SND.NXT (RFC 5927 §4.1).

Errors the stack sends itself (Parameter Problem for a header or an upper layer it
cannot process, RFC 8200 §4) go through :meth:`ICMPv6Handler.parameter_problem` and
:meth:`ICMPv6Handler.unknown_protocol`: never about an error, a packet not for us or
from an unspecified or multicast source (RFC 4443 §2.4 (e)), and rate limited by a
token bucket (§2.4 (f), :data:`ICMP_ERROR_BURST`, :data:`ICMP_ERROR_RATE`).
"""

from __future__ import annotations

import errno
import ipaddress
import weakref
from collections import Counter
from collections.abc import Callable, Mapping

from ..errors import Refused, TCPError, Unknown
from ..links.ratelimit import TokenBucket
from ..tcp.events import State
from ..tcp.seq import seq_ge, seq_le
from ..wire.errors import ParseError
from ..wire.icmpv6 import (
    IPV6_MIN_MTU,
    MAX_QUOTE,
    UNREACH_ADDRESS,
    UNREACH_ADMIN_PROHIBITED,
    UNREACH_BEYOND_SCOPE,
    UNREACH_NO_ROUTE,
    UNREACH_POLICY,
    UNREACH_PORT,
    UNREACH_REJECT_ROUTE,
    DestinationUnreachable,
    EchoReply,
    EchoRequest,
    PacketTooBig,
    ParameterProblem,
    TimeExceeded,
    build_icmpv6,
    carries_icmpv6_error,
    parse_icmpv6,
    parse_invoking,
)
from ..wire.ipv6 import (
    IPV6_DST,
    IPV6_SRC,
    PP_UNRECOGNIZED_NEXT_HEADER,
    PROTO_ICMPV6,
    PROTO_TCP,
    IPv6Packet,
    ParameterProblemError,
    build_ipv6_header,
)
from ..wire.tcp import quoted_tcp_fields
from .base import Buffer, parse_host
from .flow import DirectFlow
from .timewait import FlowKey

__all__ = [
    "ICMP_ERROR_BURST",
    "ICMP_ERROR_RATE",
    "PMTU_CACHE_SIZE",
    "PMTU_TIMEOUT",
    "ICMPv6Handler",
]

#: Seconds a path MTU learnt from Packet Too Big is kept (RFC 8201 §4: at least 5 min).
PMTU_TIMEOUT = 600.0
#: Destinations whose path MTU is remembered (the oldest entry goes first).
PMTU_CACHE_SIZE = 1024
#: ICMPv6 errors we send (RFC 4443 §2.4 (f)): a token bucket of this many messages ...
ICMP_ERROR_BURST = 10
#: ... refilled at this many per second.
ICMP_ERROR_RATE = 10.0
_UNSPECIFIED = bytes(16)


class ICMPv6Handler:
    """The ICMPv6 side of one :class:`~trio_tcp6.runtime.stack.DirectStack` (see the
    module docstring).

    ``address``: the stack's (packed); ``link_mtu``: its link's MTU, the path MTU
    where no Packet Too Big lowered it; ``flows``: the stack's live connections by
    key (read, never changed here); ``counters``: the stack's counters;
    ``reply(packet)`` queues a packet for the stack to send after the batch;
    ``malformed(exc)`` counts a message that did not parse.
    """

    def __init__(
        self,
        address: bytes,
        link_mtu: int,
        flows: Mapping[FlowKey, DirectFlow],
        counters: Counter[str],
        reply: Callable[[bytes], None],
        malformed: Callable[[ParseError], None],
    ) -> None:
        self._addr = address
        self._link_mtu = link_mtu
        self._flows = flows
        self._counters = counters
        self._reply = reply
        self._malformed = malformed
        # Path MTUs by destination (mtu, expiry), soft errors by flow, and the token
        # bucket of the errors we send.
        self._pmtu: dict[bytes, tuple[int, float]] = {}
        self._soft_errors: weakref.WeakKeyDictionary[DirectFlow, TCPError] = (
            weakref.WeakKeyDictionary()
        )
        #: RFC 4443 §2.4 (f): :data:`ICMP_ERROR_BURST`, then :data:`ICMP_ERROR_RATE`/s.
        self._rate_limit = TokenBucket(ICMP_ERROR_BURST, ICMP_ERROR_RATE)

    def input(self, src: bytes, payload: Buffer, now: float) -> None:
        """RFC 4443: answer echo requests; apply errors to the connection they quote
        (Packet Too Big, Destination Unreachable, Time Exceeded, Parameter Problem).
        Nothing here ever answers an error with an error (§2.4 (e))."""
        c = self._counters
        try:
            msg = parse_icmpv6(payload, src, self._addr)
        except ParseError as exc:
            if exc.reason == "icmpv6_bad_checksum":
                c["drop_bad_checksum"] += 1
            else:
                self._malformed(exc)
            return
        c["icmp_in"] += 1
        if isinstance(msg, EchoRequest):
            if src[0] == 0xFF or src == _UNSPECIFIED:
                c["drop_icmp_bad_source"] += 1
                return
            body = build_icmpv6(EchoReply(msg.identifier, msg.sequence, msg.data), self._addr, src)
            header = build_ipv6_header(self._addr, src, PROTO_ICMPV6, len(body))
            self._reply(header + body)
            c["icmp_echo_replies"] += 1
            c["icmp_out"] += 1
        elif isinstance(msg, PacketTooBig):
            self._packet_too_big(msg, now)
        elif isinstance(msg, (DestinationUnreachable, TimeExceeded, ParameterProblem)):
            self._icmp_error_input(msg)
        else:
            c["icmp_ignored"] += 1

    def _quoted_flow(self, invoking: bytes) -> tuple[DirectFlow, int] | None:
        """The connection (and quoted sequence number) an ICMPv6 error is about, if
        the quote is one of our segments, of a live connection, with a sequence
        number in SND.UNA..SND.NXT (RFC 5927 §4.1: anything else is ignored)."""
        c = self._counters
        try:
            inner = parse_invoking(invoking)
        except ParseError:
            c["drop_icmp_bad_quote"] += 1
            return None
        if inner.src != self._addr or inner.next_header != PROTO_TCP or len(inner.payload) < 8:
            c["drop_icmp_bad_quote"] += 1
            return None
        sport, dport, seq = quoted_tcp_fields(inner.payload)
        flow = self._flows.get((inner.dst, dport, sport))
        if flow is None:
            c["drop_icmp_no_connection"] += 1
            return None
        conn = flow.engine
        if not (seq_ge(seq, conn.snd_una) and seq_le(seq, conn.snd_nxt)):
            c["drop_icmp_bad_seq"] += 1
            return None
        return flow, seq

    def _packet_too_big(self, msg: PacketTooBig, now: float) -> None:
        """RFC 8201 §4 with RFC 5927 §4.1's check that the quoted segment is ours.

        An MTU below 1280 is discarded (RFC 8201 §4), and a PTB never raises the path
        MTU. The MTU is remembered per destination for :data:`PMTU_TIMEOUT` seconds:
        every connection to that destination, open now or opened later, uses it."""
        c = self._counters
        if msg.mtu < IPV6_MIN_MTU:
            c["drop_icmp_ptb_below_minimum"] += 1
            return
        found = self._quoted_flow(msg.invoking)
        if found is None:
            return
        flow, _seq = found
        c["icmp_packet_too_big"] += 1
        dst = flow.remote_packed
        mtu = min(msg.mtu, self._link_mtu)
        cached = self.path_mtu(dst, now)
        if mtu >= cached:
            c["icmp_ptb_not_lower"] += 1
            return
        if len(self._pmtu) >= PMTU_CACHE_SIZE and dst not in self._pmtu:
            del self._pmtu[next(iter(self._pmtu))]  # the oldest entry
        self._pmtu[dst] = (mtu, now + PMTU_TIMEOUT)
        for other in list(self._flows.values()):
            if other.remote_packed == dst:
                other.engine.set_path_mtu(mtu, now)
                other.flush()

    def path_mtu(self, destination: bytes | str | ipaddress.IPv6Address, now: float) -> int:
        """The path MTU we use towards ``destination``: the link MTU unless a Packet
        Too Big lowered it less than :data:`PMTU_TIMEOUT` seconds before ``now``."""
        dst = destination if isinstance(destination, bytes) else parse_host(destination).packed
        entry = self._pmtu.get(dst)
        if entry is None:
            return self._link_mtu
        if now >= entry[1]:
            del self._pmtu[dst]  # RFC 8201 §4: try the larger MTU again
            return self._link_mtu
        return entry[0]

    def apply_path_mtu(self, flow: DirectFlow, now: float) -> None:
        """A new connection starts with the remembered path MTU of its destination."""
        if self._pmtu:
            mtu = self.path_mtu(flow.remote_packed, now)
            if mtu < self._link_mtu:
                flow.engine.set_path_mtu(mtu, now)

    def _icmp_error_input(
        self, msg: DestinationUnreachable | TimeExceeded | ParameterProblem
    ) -> None:
        """Hard error while connecting, soft error afterwards, as Linux does.

        While our SYN is outstanding (SYN-SENT, the quote is the SYN) the attempt fails
        at once: Port Unreachable as ``Refused``, the rest as ``Unknown`` with Linux's
        errno (``ENETUNREACH``, ``EHOSTUNREACH``, ``EACCES``, ...). On a synchronized
        connection the error is only recorded (RFC 5461, RFC 1122 §4.2.3.9: TCP
        recovers by itself); :meth:`soft_error` tells the last one."""
        c = self._counters
        found = self._quoted_flow(msg.invoking)
        if found is None:
            return
        flow, seq = found
        error = _icmp_error(msg)
        conn = flow.engine
        if conn.state is State.SYN_SENT and seq == conn.iss:
            c["icmp_unreachable_aborts"] += 1
            flow.abort(error)
            return
        c["icmp_soft_errors"] += 1
        self._soft_errors[flow] = error

    def soft_error(self, flow: DirectFlow) -> TCPError | None:
        """The last ICMPv6 error reported for ``flow`` that did not abort it (Linux's
        ``sk_err_soft``), or None."""
        return self._soft_errors.get(flow)

    def _send_icmp_error(
        self, data: Buffer, msg: ParameterProblem | DestinationUnreachable, now: float
    ) -> None:
        """Answer the invoking packet ``data`` with the error ``msg`` (its quote is
        filled in here), unless RFC 4443 §2.4 (e) forbids it or the rate limit says
        no. Never for a packet not addressed to us, from an unspecified or multicast
        source, or carrying an ICMPv6 error itself."""
        c = self._counters
        src, dst = bytes(data[IPV6_SRC]), bytes(data[IPV6_DST])
        if dst != self._addr or src[0] == 0xFF or src == _UNSPECIFIED or src == self._addr:
            c["icmp_errors_suppressed"] += 1
            return
        if carries_icmpv6_error(data):
            c["icmp_errors_suppressed"] += 1  # never an error about an error
            return
        if not self._rate_limit.take(now):
            c["icmp_errors_rate_limited"] += 1
            return
        msg.invoking = bytes(data[:MAX_QUOTE])
        body = build_icmpv6(msg, self._addr, src)
        self._reply(build_ipv6_header(self._addr, src, PROTO_ICMPV6, len(body)) + body)
        c["icmp_errors_sent"] += 1
        c["icmp_out"] += 1

    def parameter_problem(self, data: Buffer, exc: ParameterProblemError, now: float) -> None:
        """RFC 8200 §4: a header we cannot process; RFC 4443 §3.4 Parameter Problem."""
        self._malformed(exc)
        if exc.send_icmp:
            self._send_icmp_error(data, ParameterProblem(exc.code, exc.pointer), now)

    def unknown_protocol(self, data: Buffer, pkt: IPv6Packet, now: float) -> None:
        """RFC 8200 §4: an upper layer we do not implement (anything but TCP and
        ICMPv6): Parameter Problem code 1 pointing at the Next Header field."""
        self._counters["drop_unknown_protocol"] += 1
        self._send_icmp_error(
            data, ParameterProblem(PP_UNRECOGNIZED_NEXT_HEADER, pkt.next_header_pointer), now
        )


#: Destination Unreachable codes (RFC 4443 §3.1) as Linux's icmpv6_err_convert maps them.
_UNREACHABLE: dict[int, tuple[str, int]] = {
    UNREACH_NO_ROUTE: ("network is unreachable", errno.ENETUNREACH),
    UNREACH_ADMIN_PROHIBITED: ("communication administratively prohibited", errno.EACCES),
    UNREACH_BEYOND_SCOPE: (
        "host is unreachable (beyond the scope of the source address)",
        errno.EHOSTUNREACH,
    ),
    UNREACH_ADDRESS: ("host is unreachable", errno.EHOSTUNREACH),
    UNREACH_POLICY: ("source address failed ingress/egress policy", errno.EACCES),
    UNREACH_REJECT_ROUTE: ("reject route to destination", errno.EACCES),
}


def _icmp_error(msg: DestinationUnreachable | TimeExceeded | ParameterProblem) -> TCPError:
    """The public error for an ICMPv6 error message about one of our segments."""
    if isinstance(msg, DestinationUnreachable):
        if msg.code == UNREACH_PORT:
            return Refused("connection refused (ICMPv6 port unreachable)")
        text, err = _UNREACHABLE.get(msg.code, _UNREACHABLE[UNREACH_NO_ROUTE])
        return Unknown(f"{text} (ICMPv6 destination unreachable, code {msg.code})", err)
    if isinstance(msg, TimeExceeded):
        return Unknown("host is unreachable (ICMPv6 time exceeded)", errno.EHOSTUNREACH)
    if msg.code == PP_UNRECOGNIZED_NEXT_HEADER:  # our TCP is unknown there: as Linux, a refusal
        return Refused("connection refused (ICMPv6 parameter problem: next header)")
    return Unknown(f"protocol error (ICMPv6 parameter problem, code {msg.code})", errno.EPROTO)
