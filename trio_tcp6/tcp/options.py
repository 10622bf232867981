"""What the handshake negotiated: timestamps, SACK, window scaling, TS.Recent, MSS.

One :class:`Options` record per connection, filled by :mod:`.handshake` from the
peer's SYN (or a SYN cookie) and read everywhere else. Only TS.Recent (RFC 7323 §4.3)
and the MSS (path MTU discovery) change after the handshake.
"""

from __future__ import annotations

import attr

from ..wire.tcp import TS_OPTION_LEN

__all__ = ["DEFAULT_IPV6_MSS", "MAX_WSCALE", "PAWS_IDLE", "Options", "choose_shift"]

#: RFC 9293 §3.7.1 / RFC 8200: default send MSS for IPv6 when the peer sends none.
DEFAULT_IPV6_MSS = 1220
#: RFC 7323 §2.3: the largest window-scale shift.
MAX_WSCALE = 14
#: RFC 7323 §5.5: PAWS gives up on TS.Recent after 24 days of idleness.
PAWS_IDLE = 24 * 24 * 3600.0
#: The smallest MSS the engine uses, whatever a peer or the path says.
MIN_MSS = 64


def choose_shift(buffer: int) -> int:
    """The window-scale shift announced for a receive buffer of ``buffer`` bytes:
    the smallest that lets all of it be advertised, at most 14 (RFC 7323 §2.3)."""
    shift = 0
    while shift < MAX_WSCALE and (buffer >> shift) > 0xFFFF:
        shift += 1
    return shift


# attr.s rather than attrs.define: mypyc compiles this form to a native class.
@attr.s(auto_attribs=True, slots=True)
class Options:
    """The options in force on one connection, and the MSS they leave."""

    #: Our MSS (what we announce): the largest payload our link lets us receive.
    our_mss: int
    #: Effective send MSS: largest payload per segment, option overhead subtracted.
    mss: int
    #: The send MSS from the path (peer's option, our link, PMTU), before options.
    path_mss: int
    #: The path MTU (minus headers) learnt from Packet Too Big, if any.
    pmtu_mss: int | None = None
    #: When a Packet Too Big last lowered the MSS (they are rate limited).
    pmtu_at: float = -1e18
    #: Timestamps (RFC 7323) negotiated: every segment carries TSopt.
    ts_ok: bool = False
    #: SACK-permitted negotiated (RFC 2018).
    sack_ok: bool = False
    #: Window scaling negotiated (RFC 7323 §2).
    ws_ok: bool = False
    #: Shift applied to the peer's window field.
    snd_shift: int = 0
    #: Shift applied to the window we advertise.
    rcv_shift: int = 0
    #: TS.Recent: the timestamp to echo (RFC 7323 §4.3).
    ts_recent: int = 0
    #: When TS.Recent was last updated (for PAWS idleness, RFC 7323 §5.5).
    ts_recent_age: float = 0.0

    def effective_mss(self) -> int:
        """The send MSS the path leaves once the timestamps option is paid for."""
        mss = self.path_mss - (TS_OPTION_LEN if self.ts_ok else 0)
        return mss if mss > 32 else 32
