"""Initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987 §3.6).

Both are keyed hashes of the connection's 4-tuple under a per-stack secret
(BLAKE2s in keyed mode, truncated), so an off-path attacker who does not know the
secret can neither predict our ISNs nor forge a cookie. ``now`` is passed in
(seconds, any epoch); nothing here reads a clock.

Addresses are the raw address bytes (16 for IPv6), ports plain ints.
"""

from __future__ import annotations

import hashlib
import os
import struct

from .seq import MASK

__all__ = [
    "COOKIE_SLOT",
    "COOKIE_SLOTS_ACCEPTED",
    "MSS_TABLE",
    "TS_OPTION_BITS",
    "ISNGenerator",
    "SynCookies",
    "decode_ts_options",
    "encode_ts_options",
]

#: RFC 6528 §3: M is a timer that ticks every 4 microseconds.
ISN_TICKS_PER_SECOND = 250_000


def _key(secret: bytes | None) -> bytes:
    """A BLAKE2s key (at most 32 bytes) from ``secret`` or 32 fresh random bytes."""
    if secret is None:
        return os.urandom(32)
    if not secret:
        raise ValueError("the secret must not be empty")
    return secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()


#: :func:`_tuple_bytes` for two IPv6 addresses (every connection's case) in one call.
_IPV6_TUPLE = struct.Struct("!B16sHB16sH")


def _tuple_bytes(
    local_addr: bytes, local_port: int, remote_addr: bytes, remote_port: int
) -> bytes:
    # Length-prefixed addresses keep the encoding unambiguous for any address size.
    if len(local_addr) == 16 and len(remote_addr) == 16:
        return _IPV6_TUPLE.pack(
            16, local_addr, local_port & 0xFFFF, 16, remote_addr, remote_port & 0xFFFF
        )
    return b"".join(
        (
            struct.pack("!B", len(local_addr)),
            local_addr,
            struct.pack("!H", local_port & 0xFFFF),
            struct.pack("!B", len(remote_addr)),
            remote_addr,
            struct.pack("!H", remote_port & 0xFFFF),
        )
    )


class ISNGenerator:
    """RFC 6528 §3: ``ISN = M + F(localip, localport, remoteip, remoteport, secretkey)``.

    M is a 4-microsecond timer derived from ``now``; F is BLAKE2s keyed with the
    secret (32 random bytes unless given), truncated to 32 bits. Connections to the
    same peer and port get ISNs that advance with time (so old duplicates of an
    earlier incarnation fall outside the window), while the offsets of different
    4-tuples are unrelated.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = _key(secret)
        # The keyed state, copied for each hash: keying BLAKE2 compresses one block
        # of its own, which every connection would otherwise pay again.
        self._keyed = hashlib.blake2s(digest_size=4, key=self._key, person=b"tcp6isn")

    def offset(
        self, local_addr: bytes, local_port: int, remote_addr: bytes, remote_port: int
    ) -> int:
        """F(4-tuple, secret): the per-4-tuple offset of the ISN clock."""
        h = self._keyed.copy()
        h.update(_tuple_bytes(local_addr, local_port, remote_addr, remote_port))
        return int.from_bytes(h.digest(), "big")

    def isn(
        self, local_addr: bytes, local_port: int, remote_addr: bytes, remote_port: int, now: float
    ) -> int:
        m = int(now * ISN_TICKS_PER_SECOND)
        return (m + self.offset(local_addr, local_port, remote_addr, remote_port)) & MASK


# -- SYN cookies --------------------------------------------------------------------

#: Seconds per cookie time slot.
COOKIE_SLOT = 64.0
#: Slots a cookie stays valid: the current and the previous one (64 to 128 s).
COOKIE_SLOTS_ACCEPTED = 2

#: MSS values a cookie can remember (3 bits). IPv6 minimum MTU 1280 gives 1220;
#: 1420/1440 are MTU 1480 (tunnels) / 1500 (Ethernet) minus 60 bytes of IPv6 + TCP
#: headers; 4036 and 8940 are 4096- and 9000-byte jumbo frames. 536 is only for a
#: peer that announces an MSS below the IPv6 minimum.
MSS_TABLE: tuple[int, ...] = (536, 1220, 1380, 1420, 1440, 1460, 4036, 8940)

# Cookie layout (our ISN, 32 bits):
#   bits 31..27  time slot counter modulo 32 (floor(now / 64 s))
#   bits 26..24  index into MSS_TABLE
#   bits 23..0   MAC(secret; 4-tuple, peer ISN, full slot counter, MSS index)
_COUNTER_SHIFT = 27
_COUNTER_MASK = 0x1F
_MSS_SHIFT = 24
_MSS_MASK = 0x7
_MAC_MASK = 0xFFFFFF


def mss_index(mss: int) -> int:
    """Index of the largest table MSS not above ``mss`` (0 if ``mss`` is below all)."""
    best = 0
    for i, value in enumerate(MSS_TABLE):
        if value <= mss:
            best = i
    return best


class SynCookies:
    """Stateless SYN-ACKs (RFC 4987 §3.6) for when the SYN backlog is full.

    :meth:`make` returns the ISN to put in the SYN-ACK; when the handshake's ACK
    arrives, ``cookie = ack - 1`` and ``peer_isn = seq - 1`` go to :meth:`check`,
    which returns the remembered MSS or None. Options other than the MSS survive only
    through the timestamp echo (:func:`encode_ts_options`).
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = _key(secret)
        # The keyed state, copied for each MAC (see ISNGenerator).
        self._keyed = hashlib.blake2s(digest_size=4, key=self._key, person=b"tcp6syn")

    @staticmethod
    def _slot(now: float) -> int:
        return int(now // COOKIE_SLOT)

    def _mac(
        self,
        local_addr: bytes,
        local_port: int,
        remote_addr: bytes,
        remote_port: int,
        peer_isn: int,
        slot: int,
        index: int,
    ) -> int:
        data = _tuple_bytes(local_addr, local_port, remote_addr, remote_port) + struct.pack(
            "!IqB", peer_isn & MASK, slot, index
        )
        h = self._keyed.copy()
        h.update(data)
        return int.from_bytes(h.digest(), "big") & _MAC_MASK

    def make(
        self,
        local_addr: bytes,
        local_port: int,
        remote_addr: bytes,
        remote_port: int,
        peer_isn: int,
        mss: int,
        now: float,
    ) -> int:
        """The cookie (our ISN) for a SYN from ``remote`` with sequence ``peer_isn``;
        ``mss`` is the MSS to use (the peer's option, or 1220 without one, already
        capped to ours), rounded down to :data:`MSS_TABLE`."""
        slot = self._slot(now)
        index = mss_index(mss)
        mac = self._mac(local_addr, local_port, remote_addr, remote_port, peer_isn, slot, index)
        return (
            ((slot & _COUNTER_MASK) << _COUNTER_SHIFT) | ((index & _MSS_MASK) << _MSS_SHIFT) | mac
        )

    def check(
        self,
        local_addr: bytes,
        local_port: int,
        remote_addr: bytes,
        remote_port: int,
        peer_isn: int,
        cookie: int,
        now: float,
    ) -> int | None:
        """The MSS encoded in ``cookie`` if it is ours for this 4-tuple and peer ISN and
        was made in the current or the previous time slot; else None."""
        cookie &= MASK
        counter = (cookie >> _COUNTER_SHIFT) & _COUNTER_MASK
        index = (cookie >> _MSS_SHIFT) & _MSS_MASK
        current = self._slot(now)
        age = (current - counter) % (_COUNTER_MASK + 1)
        if age >= COOKIE_SLOTS_ACCEPTED:
            return None
        slot = current - age
        mac = self._mac(local_addr, local_port, remote_addr, remote_port, peer_isn, slot, index)
        if mac != cookie & _MAC_MASK:
            return None
        return MSS_TABLE[index]


# -- options in the timestamp -------------------------------------------------------

#: Low bits of our TSval that carry the SYN's options through a cookie handshake:
#:   bits 3..0  the peer's window-scale shift 0..14, or 15 if it sent no WS option
#:   bit  4     the peer sent SACK-permitted
TS_OPTION_BITS = 5
_TS_OPTION_MASK = (1 << TS_OPTION_BITS) - 1
_WSCALE_NONE = 0xF
_SACK_BIT = 0x10


def encode_ts_options(tsval: int, wscale: int | None, sack: bool) -> int:
    """Our SYN-ACK TSval (the timestamp clock ``tsval``) with the low
    :data:`TS_OPTION_BITS` bits replaced by the peer's window-scale shift (None: no
    option) and SACK-permitted flag. The peer echoes it in TSecr of the ACK that
    completes the handshake.

    The result is never later than ``tsval`` (at most 31 ticks earlier, modulo
    2^32), as Linux's ``cookie_init_timestamp``: the peer keeps it as TS.Recent, and
    a SYN-ACK TSval ahead of our clock would make its PAWS check (RFC 7323 §5) drop
    our first segments until the clock caught up."""
    if wscale is not None and not 0 <= wscale <= 14:
        raise ValueError(f"window scale shift must be 0..14 (RFC 7323 §2.3), got {wscale}")
    low = (_WSCALE_NONE if wscale is None else wscale) | (_SACK_BIT if sack else 0)
    tsval &= MASK
    if tsval & _TS_OPTION_MASK < low:
        tsval -= _TS_OPTION_MASK + 1  # the previous unit: the options fit below the clock
    return ((tsval & MASK) & ~_TS_OPTION_MASK) | low


def decode_ts_options(tsecr: int) -> tuple[int | None, bool]:
    """``(wscale, sack)`` from the TSecr of a cookie ACK; see :func:`encode_ts_options`."""
    ws = tsecr & 0xF
    return (None if ws == _WSCALE_NONE else ws), bool(tsecr & _SACK_BIT)
