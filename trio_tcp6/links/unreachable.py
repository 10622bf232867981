"""The VirtualNetwork's answer to a packet for an address nobody has: an ICMPv6
Destination Unreachable, as a router would send it.

A packet to an unattached address is answered with Destination Unreachable, code 3
(address unreachable, RFC 4443 §3.1), from the network's ``ROUTER`` address, and the
answer is delivered at once to the sending link (``unreachable=False`` on the
network: dropped silently). It quotes the packet, so a stack fails a connection
attempt at once instead of retrying its SYN for minutes. As RFC 4443 §2.4 demands,
there is none for an ICMPv6 error, a multicast destination or an unspecified source
(e), and the answers are rate limited (f): a burst of ``UNREACHABLE_BURST``, then
``UNREACHABLE_RATE`` per second. Counted as ``icmp_unreachable_sent`` /
``icmp_unreachable_rate_limited`` in the network's ``stats()`` (outside the
``sent``/``delivered`` balance: no link sent them).

Which packets deserve an answer, and the answer's bytes, are RFC 4443's rules and
nothing of the network's routing: they are here, the network only delivers what
:meth:`UnreachableReplies.reply` builds.
"""

from __future__ import annotations

from ..wire.icmpv6 import (
    MAX_QUOTE,
    UNREACH_ADDRESS,
    DestinationUnreachable,
    build_icmpv6,
    carries_icmpv6_error,
)
from ..wire.ipv6 import IPV6_DST, IPV6_SRC, PROTO_ICMPV6, build_ipv6_header
from .ratelimit import TokenBucket

__all__ = ["UnreachableReplies"]


class UnreachableReplies:
    """The rate-limited Destination Unreachable answers of one network; ``sent``
    counts the answers delivered (the network counts them), ``limited`` those the
    rate limit held back."""

    __slots__ = ("_limit", "limited", "sent")

    def __init__(self, burst: int, rate: float) -> None:
        self._limit = TokenBucket(burst, rate)
        self.sent = 0
        self.limited = 0

    def reply(self, data: bytes, router: bytes, now: float) -> bytes | None:
        """The IPv6 packet answering ``data`` from ``router`` at ``now``, or None
        when ``data`` gets no answer (RFC 4443 §2.4 (e), or the rate limit)."""
        src = data[IPV6_SRC]
        if data[IPV6_DST.start] == 0xFF or src == bytes(16) or carries_icmpv6_error(data):
            return None  # RFC 4443 §2.4 (e)
        if not self._limit.take(now):
            self.limited += 1
            return None
        msg = DestinationUnreachable(UNREACH_ADDRESS, bytes(data[:MAX_QUOTE]))
        body = build_icmpv6(msg, router, src)
        return build_ipv6_header(router, src, PROTO_ICMPV6, len(body)) + body
