"""Routers of the simulated network: forwarding by longest prefix, and the ICMPv6
errors a router sends (RFC 4443, RFC 8200).

For each packet that is not addressed to the router itself, in this order:

1. shorter than an IPv6 header, or not version 6: dropped (``dropped_malformed``);
2. Hop Limit 0 or 1: it would reach 0 here, so the packet is dropped and answered
   with Time Exceeded, code 0 (RFC 8200 §3, RFC 4443 §3.3; ``hop_limit_exceeded``);
3. no route to the destination: Destination Unreachable, code 0 "no route"
   (RFC 4443 §3.1; ``no_route``);
4. larger than the MTU of the outgoing link: Packet Too Big carrying that MTU
   (RFC 4443 §3.2, what path MTU discovery (RFC 8201) lives on; ``packet_too_big``);
5. otherwise forwarded with its Hop Limit decremented (``forwarded``).

Each router has one address (:attr:`Router.address`, not one per interface): the
source of its ICMPv6 errors, and the address ``traceroute`` reports for it. A packet
addressed to it is answered if it is an Echo Request (``echo_replies``) and
otherwise dropped (``dropped_local``).

The errors follow RFC 4443 §2.4: none about an ICMPv6 error, a packet to a
multicast address, or from an unspecified or multicast source (counted as
``icmp_suppressed``); the quote is cut so the message fits 1280 bytes; and they are
rate limited by a token bucket per router (§2.4 (f)): a burst of
:attr:`Router.ICMP_BURST`, then :attr:`Router.ICMP_RATE` per second
(``icmp_rate_limited``). ``icmp_sent`` counts those sent.

Routes: the network computes them (shortest path by hop count, see
:class:`~trio_tcp6.sim.network.Network`) as a /128 route to every node's address;
static routes (:meth:`Network.route <trio_tcp6.sim.network.Network.route>`) may add
any prefix and take precedence over a computed route of the same prefix. The lookup
is longest prefix first; its result is cached per destination address until the
routes change.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, ClassVar

from ..links.ratelimit import TokenBucket
from ..wire.errors import ParseError
from ..wire.icmpv6 import (
    ICMPV6_ECHO_REQUEST,
    UNREACH_NO_ROUTE,
    DestinationUnreachable,
    EchoReply,
    EchoRequest,
    PacketTooBig,
    TimeExceeded,
    build_icmpv6,
    carries_icmpv6_error,
    parse_icmpv6,
)
from ..wire.ipv6 import IPV6_HEADER_LEN, PROTO_ICMPV6, build_ipv6_header
from .node import Node

if TYPE_CHECKING:
    from .link import Channel

__all__ = ["Router"]

_UNSPECIFIED = bytes(16)
#: Destinations remembered by the lookup cache before it starts afresh.
ROUTE_CACHE_SIZE = 4096


class Router(Node):
    """A router (made by :meth:`Network.router <trio_tcp6.sim.network.Network.router>`):
    forwards by longest prefix, answers with ICMPv6 errors; :meth:`stats`."""

    #: ICMPv6 errors sent back to back at most ...
    ICMP_BURST: ClassVar[int] = 10
    #: ... and then per second (RFC 4443 §2.4 (f)).
    ICMP_RATE: ClassVar[float] = 100.0

    def __init__(self, name: str, address: ipaddress.IPv6Address) -> None:
        super().__init__(name, address)
        # prefix length -> {masked address (16 bytes) -> outgoing channel}, longest first
        self._table: dict[int, dict[bytes, Channel]] = {}
        self._cache: dict[bytes, Channel | None] = {}
        #: RFC 4443 §2.4 (f): :attr:`ICMP_BURST`, then :attr:`ICMP_RATE` per second.
        self._rate_limit = TokenBucket(self.ICMP_BURST, self.ICMP_RATE)
        self.forwarded = 0
        self.hop_limit_exceeded = 0
        self.no_route = 0
        self.packet_too_big = 0
        self.dropped_malformed = 0
        self.dropped_local = 0
        self.echo_replies = 0
        self.icmp_sent = 0
        self.icmp_suppressed = 0
        self.icmp_rate_limited = 0

    # -- routes ---------------------------------------------------------------------

    def set_routes(self, routes: list[tuple[ipaddress.IPv6Network, Channel]]) -> None:
        """Replace the routing table; a later entry for the same prefix wins."""
        table: dict[int, dict[bytes, Channel]] = {}
        for prefix, channel in routes:
            table.setdefault(prefix.prefixlen, {})[prefix.network_address.packed] = channel
        self._table = dict(sorted(table.items(), reverse=True))
        self._cache = {}

    def routes(self) -> list[tuple[ipaddress.IPv6Network, Channel]]:
        """The routing table, longest prefixes first."""
        return [
            (ipaddress.IPv6Network((ipaddress.IPv6Address(key), length)), channel)
            for length, entries in self._table.items()
            for key, channel in entries.items()
        ]

    def lookup(self, dst: bytes) -> Channel | None:
        """The channel a packet to ``dst`` (16 bytes) leaves by, or None (no route)."""
        cache = self._cache
        try:
            return cache[dst]
        except KeyError:
            pass
        found: Channel | None = None
        value = int.from_bytes(dst, "big")
        for length, entries in self._table.items():
            mask = ((1 << length) - 1) << (128 - length)
            found = entries.get((value & mask).to_bytes(16, "big"))
            if found is not None:
                break
        if len(cache) >= ROUTE_CACHE_SIZE:
            cache.clear()
        cache[dst] = found
        return found

    # -- forwarding -----------------------------------------------------------------

    def receive(self, channel: Channel, packet: bytes, now: float) -> None:
        """Forward ``packet`` (arrived over ``channel``), or answer it, or drop it."""
        if len(packet) < IPV6_HEADER_LEN or packet[0] >> 4 != 6:
            self.dropped_malformed += 1
            return
        dst = packet[24:40]
        if dst == self.packed:
            self._local(packet, now)
            return
        hop_limit = packet[7]
        if hop_limit <= 1:
            self.hop_limit_exceeded += 1
            self._error(TimeExceeded(0, packet), packet, now)
            return
        out = self.lookup(dst)
        if out is None:
            self.no_route += 1
            self._error(DestinationUnreachable(UNREACH_NO_ROUTE, packet), packet, now)
            return
        if len(packet) > out.mtu:
            self.packet_too_big += 1
            self._error(PacketTooBig(out.mtu, packet), packet, now)
            return
        self.forwarded += 1
        out.offer(packet[:7] + bytes((hop_limit - 1,)) + packet[8:], now)

    def _local(self, packet: bytes, now: float) -> None:
        """A packet for the router itself: answer a ping, drop the rest."""
        src = packet[8:24]
        if (
            packet[6] == PROTO_ICMPV6
            and len(packet) > IPV6_HEADER_LEN
            and packet[IPV6_HEADER_LEN] == ICMPV6_ECHO_REQUEST
            and src[0] != 0xFF
            and src != _UNSPECIFIED
        ):
            try:
                msg = parse_icmpv6(packet[IPV6_HEADER_LEN:], src, self.packed)
            except ParseError:
                msg = None
            if isinstance(msg, EchoRequest):
                body = build_icmpv6(
                    EchoReply(msg.identifier, msg.sequence, msg.data), self.packed, src
                )
                self.echo_replies += 1
                self._originate(
                    build_ipv6_header(self.packed, src, PROTO_ICMPV6, len(body)) + body, now
                )
                return
        self.dropped_local += 1

    def _error(
        self, msg: TimeExceeded | DestinationUnreachable | PacketTooBig, packet: bytes, now: float
    ) -> None:
        """Answer ``packet`` with the error ``msg`` if RFC 4443 §2.4 allows it."""
        src = packet[8:24]
        if (
            packet[24] == 0xFF
            or src[0] == 0xFF
            or src == _UNSPECIFIED
            or (carries_icmpv6_error(packet))
        ):
            self.icmp_suppressed += 1
            return
        if not self._rate_limit.take(now):
            self.icmp_rate_limited += 1
            return
        body = build_icmpv6(msg, self.packed, src)
        self.icmp_sent += 1
        self._originate(build_ipv6_header(self.packed, src, PROTO_ICMPV6, len(body)) + body, now)

    def _originate(self, packet: bytes, now: float) -> None:
        """Send a packet of the router's own (no hop-limit decrement, no errors)."""
        out = self.lookup(packet[24:40])
        if out is None or len(packet) > out.mtu:
            self.dropped_local += 1
            return
        out.offer(packet, now)

    def stats(self) -> dict[str, int]:
        """The counters named in the module docstring."""
        return {
            "forwarded": self.forwarded,
            "hop_limit_exceeded": self.hop_limit_exceeded,
            "no_route": self.no_route,
            "packet_too_big": self.packet_too_big,
            "dropped_malformed": self.dropped_malformed,
            "dropped_local": self.dropped_local,
            "echo_replies": self.echo_replies,
            "icmp_sent": self.icmp_sent,
            "icmp_suppressed": self.icmp_suppressed,
            "icmp_rate_limited": self.icmp_rate_limited,
        }
